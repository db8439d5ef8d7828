#include "common/host.h"

#include <charconv>

#include "common/strings.h"

namespace aegis::common {

namespace {

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// True when every label is numeric-looking (digits, or 0x-hex): a resolver would treat the
// name as an IPv4 address in some encoding.
bool LooksNumeric(std::string_view host) {
  size_t pos = 0;
  while (pos <= host.size()) {
    size_t end = host.find('.', pos);
    std::string_view label = host.substr(pos, end == std::string_view::npos ? end : end - pos);
    bool numeric = IsDigits(label);
    if (!numeric && label.size() > 2 && label[0] == '0' && label[1] == 'x') {
      numeric = true;
      for (char c : label.substr(2)) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) numeric = false;
      }
    }
    if (!numeric) return false;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return true;
}

bool IsCanonicalDottedQuad(std::string_view host) {
  int parts = 0;
  size_t pos = 0;
  while (true) {
    size_t end = host.find('.', pos);
    std::string_view label = host.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (!IsDigits(label) || label.size() > 3 || (label.size() > 1 && label[0] == '0')) {
      return false;
    }
    int v = 0;
    std::from_chars(label.data(), label.data() + label.size(), v);
    if (v > 255) return false;
    ++parts;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return parts == 4;
}

bool IsValidIpv6Body(std::string_view s) {
  if (s.empty() || s.size() > 45) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.')) return false;
  }
  return s.find(':') != std::string_view::npos;
}

}  // namespace

StatusOr<std::string> NormalizeHost(std::string_view host, int* port) {
  if (port) *port = 0;
  if (host.empty()) return InvalidArgumentError("empty host");
  for (unsigned char c : host) {
    if (c < 0x21 || c == 0x7f) return InvalidArgumentError("host contains a control byte or space");
    if (c >= 0x80) {
      return InvalidArgumentError("host is not ASCII; use its IDNA A-label (xn--...)");
    }
    if (c == '@') return InvalidArgumentError("host contains userinfo ('@')");
    if (c == '\\') return InvalidArgumentError("host contains a backslash");
    if (c == '%') return InvalidArgumentError("host contains percent-encoding");
    if (c == '/' || c == '?' || c == '#') {
      return InvalidArgumentError("host contains a path, query or fragment character");
    }
  }
  std::string h;
  h.reserve(host.size());
  for (char c : host) h.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c);

  std::string_view view = h;
  std::string_view port_text;
  if (view[0] == '[') {
    size_t close = view.find(']');
    if (close == std::string_view::npos) return InvalidArgumentError("unterminated IPv6 literal");
    std::string_view rest = view.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return InvalidArgumentError("junk after IPv6 literal");
      port_text = rest.substr(1);
    }
    if (!IsValidIpv6Body(view.substr(1, close - 1))) {
      return InvalidArgumentError("invalid IPv6 literal");
    }
    view = view.substr(0, close + 1);
  } else {
    size_t colon = view.find(':');
    if (colon != std::string_view::npos) {
      port_text = view.substr(colon + 1);
      view = view.substr(0, colon);
      if (port_text.find(':') != std::string_view::npos) {
        return InvalidArgumentError("IPv6 literals must be in brackets");
      }
      if (port_text.empty()) return InvalidArgumentError("empty port");
    }
  }
  if (!port_text.empty()) {
    int p = 0;
    auto res = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (!IsDigits(port_text) || res.ec != std::errc() || p < 1 || p > 65535) {
      return InvalidArgumentError(StrCat("invalid port \"", port_text, "\""));
    }
    if (port) *port = p;
  }
  if (view[0] == '[') return std::string(view);

  if (!view.empty() && view.back() == '.') view.remove_suffix(1);
  if (view.empty()) return InvalidArgumentError("empty host");
  if (view.size() > 253) return InvalidArgumentError("host name longer than 253 bytes");
  size_t pos = 0;
  while (true) {
    size_t end = view.find('.', pos);
    std::string_view label = view.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (label.empty()) return InvalidArgumentError("host has an empty label");
    if (label.size() > 63) return InvalidArgumentError("host label longer than 63 bytes");
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (!ok) return InvalidArgumentError(StrCat("host contains '", c, "'"));
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  if (LooksNumeric(view) && !IsCanonicalDottedQuad(view)) {
    return InvalidArgumentError(
        "numeric host is not a canonical dotted-quad IPv4 address (ambiguous encoding)");
  }
  return std::string(view);
}

}  // namespace aegis::common
