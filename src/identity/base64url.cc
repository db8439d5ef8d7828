#include "identity/base64url.h"

#include <array>
#include <cstdint>

#include "common/strings.h"

namespace aegis::identity {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> MakeDecodeTable() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr std::array<int8_t, 256> kDecode = MakeDecodeTable();

}  // namespace

std::string Base64UrlEncode(std::string_view data) {
  std::string out;
  out.reserve((data.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t v = static_cast<uint8_t>(data[i]) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    uint32_t v = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

common::StatusOr<std::string> Base64UrlDecode(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (kDecode[static_cast<uint8_t>(text[i])] < 0) {
      if (text[i] == '=') return common::InvalidArgumentError("'=' padding is not allowed");
      return common::InvalidArgumentError(
          common::StrCat("character at offset ", i, " is not in the base64url alphabet"));
    }
  }
  if (text.size() % 4 == 1) {
    return common::InvalidArgumentError(
        common::StrCat("length ", text.size(), " is not a possible base64url length"));
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<uint32_t>(kDecode[static_cast<uint8_t>(text[k])]); };
  for (; i + 4 <= text.size(); i += 4) {
    uint32_t v = (at(i) << 18) | (at(i + 1) << 12) | (at(i + 2) << 6) | at(i + 3);
    out.push_back(static_cast<char>(v >> 16));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
  }
  size_t rest = text.size() - i;
  if (rest == 2) {
    uint32_t v = (at(i) << 18) | (at(i + 1) << 12);
    if ((v & 0xffff) != 0) return common::InvalidArgumentError("non-zero trailing bits");
    out.push_back(static_cast<char>(v >> 16));
  } else if (rest == 3) {
    uint32_t v = (at(i) << 18) | (at(i + 1) << 12) | (at(i + 2) << 6);
    if ((v & 0xff) != 0) return common::InvalidArgumentError("non-zero trailing bits");
    out.push_back(static_cast<char>(v >> 16));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
  }
  return out;
}

}  // namespace aegis::identity
