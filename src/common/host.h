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
// Refuses, with a reason (never quoting more than a few bytes of the input):
//   - userinfo ('@'), backslashes, percent-encoding (so also IPv6 zone ids, "%25eth0"), NUL and
//     other control bytes, spaces, '/', '?', '#';
//   - non-ASCII (send IDNA A-labels, "xn--...");
//   - empty labels, labels over 63 bytes, names over 253 bytes;
//   - a port that is empty, not all digits, 0 or over 65535;
//   - names that end in a number (digits or 0x-hex) unless the whole name is a canonical dotted
//     quad: 0x7f.1, 2130706433, 0177.0.0.1, 127.1, 0x, foo.123 are IPv4 in some encoding to some
//     resolver or URL parser;
//   - IPv6 without brackets, invalid IPv6, and IPv6 addresses that embed an IPv4 address
//     (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d,
//     NAT64 64:ff9b::/96 and 64:ff9b:1::/48): these are refused, not rewritten to IPv4, so a
//     policy written for the IPv4 address cannot be sidestepped by the IPv6 spelling.
//   - IDNA look-alikes (see CheckIdnaLabel in host.cc): an "xn--" label that is not canonical
//     Punycode, decodes to plain ASCII, holds an invisible, punctuation or ASCII-compatibility
//     character, mixes Latin, Cyrillic and Greek letters, or is made only of Cyrillic or only of
//     Greek letters that look like Latin ones ("xn--80ak6aa92e", Cyrillic "аррӏе").
// An IPv6 literal comes back in brackets, in RFC 5952 canonical form ("[2001:db8::1]"), so two
// spellings of one address compare equal. Other hosts keep their ASCII form ("xn--" labels are
// not converted to Unicode).
StatusOr<std::string> NormalizeHost(std::string_view host, int* port = nullptr);

// Decodes the part of an IDNA A-label after "xn--" with Punycode (RFC 3492) into Unicode code
// points. Expects lower case, as NormalizeHost produces. Returns InvalidArgument for characters
// other than a-z, 0-9 and '-', input over 59 bytes (a label holds at most 63), arithmetic
// overflow, code points that are basic (ASCII), surrogates or beyond U+10FFFF, and input that is
// not the canonical encoding of what it decodes to (so a label has exactly one spelling).
StatusOr<std::u32string> DecodePunycode(std::string_view encoded);

}  // namespace aegis::common

#endif  // AEGIS_COMMON_HOST_H_
