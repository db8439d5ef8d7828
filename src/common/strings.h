// StrCat: concatenates strings and numbers into one string, for building messages.
#ifndef AEGIS_COMMON_STRINGS_H_
#define AEGIS_COMMON_STRINGS_H_

#include <string>
#include <string_view>
#include <type_traits>

namespace aegis::common {

namespace strings_internal {
inline void Append(std::string& out, std::string_view s) { out.append(s); }
inline void Append(std::string& out, char c) { out.push_back(c); }
template <typename T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, bool>)
void Append(std::string& out, T v) {
  out += std::to_string(v);
}
}  // namespace strings_internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  (strings_internal::Append(out, args), ...);
  return out;
}

}  // namespace aegis::common

#endif  // AEGIS_COMMON_STRINGS_H_
