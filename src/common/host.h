// Host name normalisation for scope checks (DESIGN.md section 7): hosts are compared only after
// this, and anything ambiguous is refused rather than guessed.
#ifndef AEGIS_COMMON_HOST_H_
#define AEGIS_COMMON_HOST_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace aegis::common {

// Normalises a host as it appears in a Host header, URL authority or policy: lower-cases it,
// removes one trailing dot and an optional ":port" (returned in *port when non-null, 0 if none).
// IPv4 must be in canonical dotted-quad form; IPv6 must be bracketed. Refuses, with a reason:
// userinfo ('@'), backslashes, percent-encoding, NUL and other control bytes, non-ASCII (send
// IDNA A-labels, "xn--..."), empty labels, labels over 63 bytes, names over 253 bytes, and
// numeric forms other than dotted quad (0x7f.1, 2130706433, 0177.0.0.1) that resolvers read
// as IPv4.
StatusOr<std::string> NormalizeHost(std::string_view host, int* port = nullptr);

}  // namespace aegis::common

#endif  // AEGIS_COMMON_HOST_H_
