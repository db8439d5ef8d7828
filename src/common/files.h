// Small file-system and retry helpers shared by the components that keep private state in the
// data dir (keys, the audit trail) and that retry deliveries (notifications, span export).
#ifndef AEGIS_COMMON_FILES_H_
#define AEGIS_COMMON_FILES_H_

#include <chrono>
#include <random>
#include <string>
#include <string_view>

#include "common/status.h"

namespace aegis::common {

// Internal error "<what> <path>: <strerror(errno)>".
Status ErrnoError(std::string_view what, const std::string& path);

// Creates `dir` and its missing parents with mode 0700, then checks that it is a directory not
// writable by group or others. `what` names it in errors ("key directory", "audit directory").
Status MakePrivateDir(const std::string& dir, std::string_view what);

// Exponential backoff with equal jitter: the `attempts`-th retry waits between half and all of
// initial × 2^(attempts-1), capped at `max`, so retries spread out but never bunch at zero.
std::chrono::milliseconds JitteredBackoff(int attempts, std::chrono::milliseconds initial,
                                          std::chrono::milliseconds max, std::mt19937_64& rng);

}  // namespace aegis::common

#endif  // AEGIS_COMMON_FILES_H_
