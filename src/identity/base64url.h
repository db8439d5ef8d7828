// Base64url without padding (RFC 4648 section 5, RFC 7515 section 2), as JWS segments use it.
#ifndef AEGIS_IDENTITY_BASE64URL_H_
#define AEGIS_IDENTITY_BASE64URL_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace aegis::identity {

// Returns `data` in base64url, without '=' padding.
std::string Base64UrlEncode(std::string_view data);

// Decodes unpadded base64url strictly: only A-Z a-z 0-9 - _, no '=' padding, no whitespace, no
// impossible length (4n+1), and the unused low bits of the last character zero, so that every
// byte string has exactly one accepted encoding. Returns InvalidArgument saying what is wrong.
common::StatusOr<std::string> Base64UrlDecode(std::string_view text);

}  // namespace aegis::identity

#endif  // AEGIS_IDENTITY_BASE64URL_H_
