// What the front doors agree on about request headers: which ones belong to the call as
// conditions see it (`request.headers`), and ASCII lower-casing of names.
#ifndef AEGIS_FRONTDOORS_HEADERS_H_
#define AEGIS_FRONTDOORS_HEADERS_H_

#include <algorithm>
#include <iterator>
#include <string>
#include <string_view>

namespace aegis::frontdoors {

// False for hop-by-hop headers, the body's framing, the X-Original-* headers nginx uses to
// describe the call, the x-aegis-* hints that name the call rather than belong to it, and the
// agent's and approvers' tokens (never shown to policies).
// `lower_name` must be lower case.
inline bool IsCallHeader(std::string_view lower_name) {
  static constexpr std::string_view kNotCall[] = {
      "connection",     "keep-alive",     "transfer-encoding", "te",
      "upgrade",        "proxy-connection", "content-length",  "x-original-uri",
      "x-original-method", "x-original-host", "x-aegis-agent", "x-aegis-tenant",
      "x-aegis-tool",   "x-aegis-action", "x-aegis-token", "x-aegis-override",
      "authorization", "proxy-authorization"};
  return std::find(std::begin(kNotCall), std::end(kNotCall), lower_name) == std::end(kNotCall);
}

inline std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace aegis::frontdoors

#endif  // AEGIS_FRONTDOORS_HEADERS_H_
