// Content digests: SHA-256 over bytes, as lowercase hex.
#ifndef AEGIS_COMMON_DIGEST_H_
#define AEGIS_COMMON_DIGEST_H_

#include <string>
#include <string_view>

namespace aegis::common {

// Returns the SHA-256 of `data` as 64 lowercase hex characters.
std::string Sha256Hex(std::string_view data);

// Appends the SHA-256 of `data` to `out` as 64 lowercase hex characters. `data` must not point
// into `out`. Thread-safe; each thread reuses one digest context (OpenSSL 3's one-shot SHA256()
// looks the algorithm up in the provider tables on every call, which costs more than hashing an
// audit record).
void AppendSha256Hex(std::string_view data, std::string& out);

}  // namespace aegis::common

#endif  // AEGIS_COMMON_DIGEST_H_
