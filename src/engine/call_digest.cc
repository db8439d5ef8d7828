#include "engine/call_digest.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <vector>

#include "common/digest.h"

namespace aegis::engine {

namespace {

void AppendJcsString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

// The UTF-16 code units of valid UTF-8 text (the JSON parser has validated it).
std::u16string Utf16(std::string_view s) {
  std::u16string out;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    char32_t cp;
    int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < len && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    i += len;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(cp));
    }
  }
  return out;
}

}  // namespace

std::string EcmaScriptNumber(double d) {
  if (d == 0) return "0";  // also -0
  // Shortest round-trip digits and exponent: "d.ddde±x".
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  std::string sign;
  if (sci.front() == '-') {
    sign = "-";
    sci.remove_prefix(1);
  }
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());
  // Value = 0.digits × 10^n, in ECMAScript's terms: n = exp10 + 1, k = number of digits.
  int k = static_cast<int>(digits.size());
  int n = exp10 + 1;
  std::string out = sign;
  if (k <= n && n <= 21) {
    out += digits;
    out.append(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, static_cast<size_t>(n));
    out += '.';
    out += digits.substr(static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-n), '0');
    out += digits;
  } else {
    out += digits.substr(0, 1);
    if (k > 1) {
      out += '.';
      out += digits.substr(1);
    }
    out += 'e';
    out += n - 1 >= 0 ? '+' : '-';
    out += std::to_string(std::abs(n - 1));
  }
  return out;
}

void AppendJcs(std::string& out, const common::Json& v) {
  switch (v.kind()) {
    case common::Json::Kind::kNull:
      out += "null";
      return;
    case common::Json::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case common::Json::Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case common::Json::Kind::kDouble:
      out += EcmaScriptNumber(v.as_double());
      return;
    case common::Json::Kind::kString:
      AppendJcsString(out, v.as_string());
      return;
    case common::Json::Kind::kArray: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.as_array()) {
        if (!first) out.push_back(',');
        first = false;
        AppendJcs(out, item);
      }
      out.push_back(']');
      return;
    }
    case common::Json::Kind::kObject: {
      // Sorted by UTF-16 code units, which differs from the objects' own byte order only for
      // keys holding characters above U+FFFF (4-byte UTF-8 sequences): without such keys, the
      // members are written as they are.
      bool byte_order = true;
      for (const auto& m : v.as_object()) {
        for (char c : m.key) byte_order = byte_order && static_cast<unsigned char>(c) < 0xF0;
      }
      if (byte_order) {
        out.push_back('{');
        bool first = true;
        for (const auto& m : v.as_object()) {
          if (!first) out.push_back(',');
          first = false;
          AppendJcsString(out, m.key);
          out.push_back(':');
          AppendJcs(out, m.value);
        }
        out.push_back('}');
        return;
      }
      std::vector<std::pair<std::u16string, const common::Json::Member*>> members;
      for (const auto& m : v.as_object()) members.emplace_back(Utf16(m.key), &m);
      std::sort(members.begin(), members.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      out.push_back('{');
      bool first = true;
      for (const auto& [unused, m] : members) {
        if (!first) out.push_back(',');
        first = false;
        AppendJcsString(out, m->key);
        out.push_back(':');
        AppendJcs(out, m->value);
      }
      out.push_back('}');
      return;
    }
  }
}

std::string CanonicalCall(std::string_view tenant, std::string_view agent, std::string_view tool,
                          std::string_view action, const common::Json& params) {
  std::string out = "{\"action\":";
  AppendJcsString(out, action);
  out += ",\"agent\":";
  AppendJcsString(out, agent);
  out += ",\"params\":";
  AppendJcs(out, params);
  out += ",\"tenant\":";
  AppendJcsString(out, tenant);
  out += ",\"tool\":";
  AppendJcsString(out, tool);
  out += "}";
  return out;
}

std::string CallDigest(std::string_view tenant, std::string_view agent, std::string_view tool,
                       std::string_view action, const common::Json& params) {
  return common::Sha256Hex(CanonicalCall(tenant, agent, tool, action, params));
}

}  // namespace aegis::engine
