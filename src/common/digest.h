// Content digests: SHA-256 over bytes, as lowercase hex.
#ifndef AEGIS_COMMON_DIGEST_H_
#define AEGIS_COMMON_DIGEST_H_

#include <string>
#include <string_view>

namespace aegis::common {

// Returns the SHA-256 of `data` as 64 lowercase hex characters.
std::string Sha256Hex(std::string_view data);

}  // namespace aegis::common

#endif  // AEGIS_COMMON_DIGEST_H_
