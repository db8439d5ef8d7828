#include "common/json.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "common/strings.h"

namespace aegis::common {

Json::Json() = default;
Json::~Json() = default;
Json::Json(const Json&) = default;
Json::Json(Json&&) noexcept = default;
Json& Json::operator=(const Json&) = default;
Json& Json::operator=(Json&&) noexcept = default;

Json Json::Null() { return Json(); }

Json Json::Bool(bool b) {
  Json j;
  j.kind_ = Kind::kBool;
  j.bool_ = b;
  return j;
}

Json Json::Int(int64_t i) {
  Json j;
  j.kind_ = Kind::kInt;
  j.int_ = i;
  return j;
}

Json Json::Double(double d) {
  Json j;
  j.kind_ = Kind::kDouble;
  j.double_ = d;
  return j;
}

Json Json::String(std::string s) {
  Json j;
  j.kind_ = Kind::kString;
  j.string_ = std::move(s);
  return j;
}

Json Json::Array(std::vector<Json> items) {
  Json j;
  j.kind_ = Kind::kArray;
  j.array_ = std::move(items);
  return j;
}

Json Json::SortedObject(std::vector<Member> members) {
  Json j;
  j.kind_ = Kind::kObject;
  j.object_ = std::move(members);
  return j;
}

Json Json::EmptyObject() {
  Json j;
  j.kind_ = Kind::kObject;
  return j;
}

StatusOr<Json> Json::Object(std::vector<Member> members) {
  std::sort(members.begin(), members.end(),
            [](const Member& a, const Member& b) { return a.key < b.key; });
  for (size_t i = 1; i < members.size(); ++i) {
    if (members[i].key == members[i - 1].key) {
      return InvalidArgumentError(StrCat("duplicate key \"", members[i].key, "\""));
    }
  }
  Json j;
  j.kind_ = Kind::kObject;
  j.object_ = std::move(members);
  return j;
}

std::vector<Json::Member>& Json::mutable_object() {
  assert(kind_ == Kind::kObject);
  return object_;
}
const std::vector<Json::Member>& Json::as_object() const {
  assert(kind_ == Kind::kObject);
  return object_;
}

const Json* Json::Find(std::string_view key) const {
  if (kind_ != Kind::kObject) return nullptr;
  // Call parameters are small objects: a linear scan that compares lengths first beats a
  // binary search of string comparisons there.
  if (object_.size() <= 16) {
    for (const Member& m : object_) {
      if (m.key.size() == key.size() && (key.empty() || m.key[0] == key[0]) &&
          std::memcmp(m.key.data(), key.data(), key.size()) == 0) {
        return &m.value;
      }
    }
    return nullptr;
  }
  auto it = std::lower_bound(object_.begin(), object_.end(), key,
                             [](const Member& m, std::string_view k) { return m.key < k; });
  if (it == object_.end() || it->key != key) return nullptr;
  return &it->value;
}

void Json::Set(std::string key, Json value) {
  assert(kind_ == Kind::kObject);
  auto it = std::lower_bound(object_.begin(), object_.end(), key,
                             [](const Member& m, const std::string& k) { return m.key < k; });
  if (it != object_.end() && it->key == key) {
    it->value = std::move(value);
  } else {
    object_.insert(it, Member{std::move(key), std::move(value)});
  }
}

bool operator==(const Json& a, const Json& b) {
  if (a.kind_ != b.kind_) return false;
  switch (a.kind_) {
    case Json::Kind::kNull:
      return true;
    case Json::Kind::kBool:
      return a.bool_ == b.bool_;
    case Json::Kind::kInt:
      return a.int_ == b.int_;
    case Json::Kind::kDouble:
      return a.double_ == b.double_;
    case Json::Kind::kString:
      return a.string_ == b.string_;
    case Json::Kind::kArray:
      return a.array_ == b.array_;
    case Json::Kind::kObject:
      if (a.object_.size() != b.object_.size()) return false;
      for (size_t i = 0; i < a.object_.size(); ++i) {
        if (a.object_[i].key != b.object_[i].key || !(a.object_[i].value == b.object_[i].value)) {
          return false;
        }
      }
      return true;
  }
  return false;
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
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
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:  // the other control characters
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(s.data() + start, s.size() - start);
  out.push_back('"');
}

void Json::AppendCanonical(std::string& out) const {
  switch (kind_) {
    case Kind::kNull:
      out += "null";
      return;
    case Kind::kBool:
      out += bool_ ? "true" : "false";
      return;
    case Kind::kInt:
      out += std::to_string(int_);
      return;
    case Kind::kDouble:
      if (std::isfinite(double_)) {
        out += FormatDouble(double_);
      } else {
        AppendJsonString(out, FormatDouble(double_));
      }
      return;
    case Kind::kString:
      AppendJsonString(out, string_);
      return;
    case Kind::kArray:
      out.push_back('[');
      for (size_t i = 0; i < array_.size(); ++i) {
        if (i) out.push_back(',');
        array_[i].AppendCanonical(out);
      }
      out.push_back(']');
      return;
    case Kind::kObject:
      out.push_back('{');
      for (size_t i = 0; i < object_.size(); ++i) {
        if (i) out.push_back(',');
        AppendJsonString(out, object_[i].key);
        out.push_back(':');
        object_[i].value.AppendCanonical(out);
      }
      out.push_back('}');
      return;
  }
}

std::string Json::Canonical() const {
  std::string out;
  AppendCanonical(out);
  return out;
}

// Decodes one UTF-8 sequence at s[i]; returns its length, or 0 if it is malformed.
static size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    // ASCII eight bytes at a time: most of what is checked (names, ids, hashes, JSON) is ASCII.
    if (i + 8 <= s.size()) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

namespace {

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

// Declared a friend of Json (for SortedObject); not part of the API.
class JsonParser {
 public:
  JsonParser(std::string_view text, const JsonLimits& limits) : text_(text), limits_(limits) {}

  StatusOr<Json> ParseDocument() {
    SkipWhitespace();
    Json value;
    if (!ParseValue(value, 0)) return error_;
    SkipWhitespace();
    if (pos_ != text_.size()) {
      Fail("unexpected data after the JSON value");
      return error_;
    }
    return value;
  }

 private:
  void Fail(std::string_view what) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    error_ = InvalidArgumentError(StrCat("line ", line, ", column ", col, ": ", what));
  }

  void SkipWhitespace() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  bool Consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool ParseValue(Json& out, int depth) {
    if (pos_ >= text_.size()) {
      Fail("unexpected end of input");
      return false;
    }
    char c = text_[pos_];
    switch (c) {
      case '{':
        return ParseObject(out, depth + 1);
      case '[':
        return ParseArray(out, depth + 1);
      case '"': {
        std::string s;
        if (!ParseString(s)) return false;
        out = Json::String(std::move(s));
        return true;
      }
      case 't':
        if (Consume("true")) {
          out = Json::Bool(true);
          return true;
        }
        break;
      case 'f':
        if (Consume("false")) {
          out = Json::Bool(false);
          return true;
        }
        break;
      case 'n':
        if (Consume("null")) {
          out = Json::Null();
          return true;
        }
        break;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    }
    Fail("invalid JSON value");
    return false;
  }

  bool EnterNesting(int depth) {
    if (depth > limits_.max_depth) {
      Fail(StrCat("nesting deeper than ", limits_.max_depth, " levels"));
      error_ = ResourceExhaustedError(error_.message());
      return false;
    }
    return true;
  }

  bool ParseObject(Json& out, int depth) {
    if (!EnterNesting(depth)) return false;
    ++pos_;  // '{'
    std::vector<Json::Member> members;
    members.reserve(8);  // most objects are small; growing moves every member
    std::vector<size_t> key_positions;  // by original order, for the duplicate-key message
    key_positions.reserve(8);
    SkipWhitespace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      out = Json::EmptyObject();
      return true;
    }
    while (true) {
      SkipWhitespace();
      if (pos_ >= text_.size() || text_[pos_] != '"') {
        Fail("expected a string key");
        return false;
      }
      key_positions.push_back(pos_);
      Json::Member& m = members.emplace_back();  // parsed in place, never moved on the way
      if (!ParseString(m.key)) return false;
      SkipWhitespace();
      if (pos_ >= text_.size() || text_[pos_] != ':') {
        Fail("expected ':' after an object key");
        return false;
      }
      ++pos_;
      SkipWhitespace();
      if (!ParseValue(m.value, depth)) return false;
      SkipWhitespace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        break;
      }
      Fail("expected ',' or '}' in an object");
      return false;
    }
    // Sort an index by key (insertion sort for small objects, a stable sort otherwise), so
    // duplicates are adjacent, in O(n log n) even for a hostile object with many keys; equal
    // keys keep their order, so the error points at the later occurrence.
    std::vector<uint32_t> order(members.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    auto less = [&](uint32_t a, uint32_t b) { return members[a].key < members[b].key; };
    if (order.size() <= 32) {
      for (size_t i = 1; i < order.size(); ++i) {
        uint32_t v = order[i];
        size_t j = i;
        for (; j > 0 && less(v, order[j - 1]); --j) order[j] = order[j - 1];
        order[j] = v;
      }
    } else {
      std::stable_sort(order.begin(), order.end(), less);
    }
    for (size_t i = 1; i < order.size(); ++i) {
      if (members[order[i]].key == members[order[i - 1]].key) {
        pos_ = key_positions[order[i]];
        Fail(StrCat("duplicate key \"", members[order[i]].key, "\""));
        return false;
      }
    }
    // Apply the permutation in place, one cycle at a time: members[i] = old members[order[i]].
    for (size_t i = 0; i < order.size(); ++i) {
      if (order[i] == i) continue;
      Json::Member held = std::move(members[i]);
      size_t j = i;
      while (order[j] != i) {
        size_t from = order[j];
        members[j] = std::move(members[from]);
        order[j] = static_cast<uint32_t>(j);
        j = from;
      }
      members[j] = std::move(held);
      order[j] = static_cast<uint32_t>(j);
    }
    out = Json::SortedObject(std::move(members));
    return true;
  }

  bool ParseArray(Json& out, int depth) {
    if (!EnterNesting(depth)) return false;
    ++pos_;  // '['
    std::vector<Json> items;
    SkipWhitespace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      out = Json::Array();
      return true;
    }
    while (true) {
      SkipWhitespace();
      Json value;
      if (!ParseValue(value, depth)) return false;
      items.push_back(std::move(value));
      SkipWhitespace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        break;
      }
      Fail("expected ',' or ']' in an array");
      return false;
    }
    out = Json::Array(std::move(items));
    return true;
  }

  bool ParseHex4(uint32_t& v) {
    if (pos_ + 4 > text_.size()) {
      Fail("truncated \\u escape");
      return false;
    }
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_ + i];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v |= c - 'A' + 10;
      } else {
        Fail("invalid \\u escape");
        return false;
      }
    }
    pos_ += 4;
    return true;
  }

  bool ParseString(std::string& out) {
    ++pos_;  // opening quote
    while (true) {
      // Copy the run of plain ASCII (no quote, backslash or control byte) in one append.
      size_t run = pos_;
      // Eight bytes at a time while none is special, then byte by byte.
      while (run + 8 <= text_.size()) {
        uint64_t w;
        std::memcpy(&w, text_.data() + run, 8);
        constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
        uint64_t below_space = (w - kOnes * 0x20) & ~w;
        uint64_t quote = w ^ (kOnes * '"');
        uint64_t backslash = w ^ (kOnes * '\\');
        uint64_t special = (below_space | w | ((quote - kOnes) & ~quote) |
                            ((backslash - kOnes) & ~backslash)) &
                           kHigh;
        if (special) break;
        run += 8;
      }
      while (run < text_.size()) {
        auto b = static_cast<unsigned char>(text_[run]);
        if (b < 0x20 || b >= 0x80 || b == '"' || b == '\\') break;
        ++run;
      }
      if (run > pos_) {
        out.append(text_.data() + pos_, run - pos_);
        pos_ = run;
      }
      if (pos_ >= text_.size()) {
        Fail("unterminated string");
        return false;
      }
      auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) {
        Fail("control character in string");
        return false;
      }
      if (c == '\\') {
        if (pos_ + 1 >= text_.size()) {
          Fail("unterminated escape");
          return false;
        }
        char e = text_[pos_ + 1];
        pos_ += 2;
        switch (e) {
          case '"':
            out.push_back('"');
            break;
          case '\\':
            out.push_back('\\');
            break;
          case '/':
            out.push_back('/');
            break;
          case 'b':
            out.push_back('\b');
            break;
          case 'f':
            out.push_back('\f');
            break;
          case 'n':
            out.push_back('\n');
            break;
          case 'r':
            out.push_back('\r');
            break;
          case 't':
            out.push_back('\t');
            break;
          case 'u': {
            uint32_t cp;
            if (!ParseHex4(cp)) return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
              Fail("lone low surrogate in \\u escape");
              return false;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              uint32_t lo;
              if (text_.substr(pos_, 2) != "\\u") {
                Fail("lone high surrogate in \\u escape");
                return false;
              }
              pos_ += 2;
              if (!ParseHex4(lo)) return false;
              if (lo < 0xDC00 || lo > 0xDFFF) {
                Fail("lone high surrogate in \\u escape");
                return false;
              }
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            AppendUtf8(out, cp);
            break;
          }
          default:
            pos_ -= 1;
            Fail("invalid escape");
            return false;
        }
        continue;
      }
      size_t n = Utf8SequenceLength(text_, pos_);
      if (n == 0) {
        Fail("invalid UTF-8 in string");
        return false;
      }
      out.append(text_.substr(pos_, n));
      pos_ += n;
    }
  }

  bool ParseNumber(Json& out) {
    size_t start = pos_;
    bool integral = true;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t s = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ - s;
    };
    size_t int_start = pos_;
    size_t n = digits();
    if (n == 0) {
      Fail("invalid number");
      return false;
    }
    if (n > 1 && text_[int_start] == '0') {
      pos_ = int_start;
      Fail("leading zero in number");
      return false;
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (digits() == 0) {
        Fail("expected digits after '.'");
        return false;
      }
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (digits() == 0) {
        Fail("expected digits in exponent");
        return false;
      }
    }
    std::string_view literal = text_.substr(start, pos_ - start);
    if (integral) {
      int64_t v;
      auto res = std::from_chars(literal.data(), literal.data() + literal.size(), v);
      if (res.ec == std::errc() && res.ptr == literal.data() + literal.size()) {
        out = Json::Int(v);
        return true;
      }
      // Too large for int64: falls through to double, like any JSON reader that keeps precision
      // where it can.
    }
    double d;
    auto res = std::from_chars(literal.data(), literal.data() + literal.size(), d);
    if (res.ec != std::errc() || !std::isfinite(d)) {
      pos_ = start;
      Fail("number out of range");
      return false;
    }
    out = Json::Double(d);
    return true;
  }

  std::string_view text_;
  JsonLimits limits_;
  size_t pos_ = 0;
  Status error_;
};

StatusOr<Json> ParseJson(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return ResourceExhaustedError(
        StrCat("JSON document of ", text.size(), " bytes exceeds the limit of ",
                     limits.max_bytes, " bytes"));
  }
  return JsonParser(text, limits).ParseDocument();
}

}  // namespace aegis::common
