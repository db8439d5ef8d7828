#include "policy/document.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>

#include "common/strings.h"
#include "yaml-cpp/yaml.h"

namespace aegis::policy {

using common::StrCat;

std::string_view DocNode::KindName() const {
  switch (kind) {
    case Kind::kNull:
      return "null";
    case Kind::kScalar:
      return "a scalar";
    case Kind::kSequence:
      return "a list";
    case Kind::kMap:
      return "a map";
  }
  return "?";
}

namespace {

class Converter {
 public:
  Converter(std::string_view file, const DocumentLimits& limits, Diagnostics& diags)
      : file_(file), limits_(limits), diags_(diags) {}

  bool Convert(const YAML::Node& node, DocNode& out, int depth) {
    out.location = At(node.Mark());
    if (++nodes_ > limits_.max_nodes) {
      if (!reported_budget_) {
        diags_.Error(out.location, "too-large",
                     StrCat("document expands to more than ", limits_.max_nodes,
                            " nodes (anchors and aliases count each time they are used)"));
        reported_budget_ = true;
      }
      return false;
    }
    if (depth > limits_.max_depth) {
      diags_.Error(out.location, "too-deep",
                   StrCat("document nests deeper than ", limits_.max_depth, " levels"));
      return false;
    }
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out.kind = DocNode::Kind::kNull;
        return true;
      case YAML::NodeType::Scalar:
        out.kind = DocNode::Kind::kScalar;
        out.scalar = node.Scalar();
        out.quoted = node.Tag() == "!";
        return true;
      case YAML::NodeType::Sequence: {
        out.kind = DocNode::Kind::kSequence;
        bool ok = true;
        for (const auto& item : node) {
          out.items.emplace_back();
          ok = Convert(item, out.items.back(), depth + 1) && ok;
          if (reported_budget_) return false;
        }
        return ok;
      }
      case YAML::NodeType::Map: {
        out.kind = DocNode::Kind::kMap;
        bool ok = true;
        std::set<std::string> seen;
        for (const auto& kv : node) {
          out.members.emplace_back();
          auto& [key, value] = out.members.back();
          ok = Convert(kv.first, key, depth + 1) && ok;
          ok = Convert(kv.second, value, depth + 1) && ok;
          if (reported_budget_) return false;
          if (key.is_scalar() && !seen.insert(key.scalar).second) {
            diags_.Error(key.location, "duplicate-key",
                         StrCat("key \"", key.scalar, "\" appears more than once in this map"));
            ok = false;
          }
        }
        return ok;
      }
    }
    return false;
  }

  Location At(const YAML::Mark& mark) const {
    if (mark.is_null()) return Location{std::string(file_), 0, 0};
    return Location{std::string(file_), mark.line + 1, mark.column + 1};
  }

 private:
  std::string_view file_;
  const DocumentLimits& limits_;
  Diagnostics& diags_;
  size_t nodes_ = 0;
  bool reported_budget_ = false;
};

// Deep flow nesting makes yaml-cpp recurse before any of our limits can act, so count brackets
// first (outside quotes); a policy file has no use for more than a few levels.
bool FlowNestingWithin(std::string_view text, int max_depth) {
  int depth = 0;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote) {
      if (c == '\\' && quote == '"') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\n')) {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    if (c == '"' || c == '\'') {
      // A quote only opens a string at the start of a scalar; inside a word it is a character.
      if (i == 0 || std::string_view(" \t\n[{,:-").find(text[i - 1]) != std::string_view::npos) {
        quote = c;
      }
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

}  // namespace

bool ParseDocument(std::string_view file, std::string_view text, const DocumentLimits& limits,
                   DocNode& out, Diagnostics& diags) {
  Location whole{std::string(file), 0, 0};
  if (text.size() > limits.max_file_bytes) {
    diags.Error(whole, "too-large",
                StrCat("file is ", text.size(), " bytes; the limit is ", limits.max_file_bytes));
    return false;
  }
  if (!common::IsValidUtf8(text)) {
    diags.Error(whole, "invalid-utf8", "file is not valid UTF-8");
    return false;
  }
  // YAML allows only printable characters (c-printable) plus tab, LF and CR; refusing the rest
  // here also keeps NUL and other control bytes away from yaml-cpp, which mishandles them.
  int line = 1, column = 1;
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      diags.Error(Location{std::string(file), line, column}, "invalid-character",
                  StrCat("control character U+00", "0123456789ABCDEF"[c >> 4],
                         "0123456789ABCDEF"[c & 15], " is not allowed in a policy file"));
      return false;
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0) != 0x80) {
      ++column;
    }
  }
  if (!FlowNestingWithin(text, limits.max_depth)) {
    diags.Error(whole, "too-deep",
                StrCat("document nests deeper than ", limits.max_depth, " levels"));
    return false;
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    Location at = whole;
    if (!e.mark.is_null()) at = Location{std::string(file), e.mark.line + 1, e.mark.column + 1};
    diags.Error(at, "yaml-syntax", e.msg);
    return false;
  }
  if (docs.empty()) {
    out = DocNode{};
    out.location = Location{std::string(file), 1, 1};
    return true;
  }
  if (docs.size() > 1) {
    diags.Error(whole, "multiple-documents",
                "file holds more than one YAML document; put each policy in its own file");
    return false;
  }
  try {
    Converter converter(file, limits, diags);
    return converter.Convert(docs[0], out, 0);
  } catch (const YAML::Exception& e) {
    diags.Error(whole, "yaml-syntax", e.msg);
    return false;
  }
}

namespace {

bool IsCoreNull(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

bool ParseCoreInt(std::string_view s, int64_t& v) {
  std::string_view body = s;
  bool negative = false;
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  int base = 10;
  if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'o')) {
    if (s[0] == '-' || s[0] == '+') return false;  // core schema: no sign on 0x / 0o
    base = body[1] == 'x' ? 16 : 8;
    body.remove_prefix(2);
  }
  if (body.empty()) return false;
  uint64_t magnitude;
  auto res = std::from_chars(body.data(), body.data() + body.size(), magnitude, base);
  if (res.ec != std::errc() || res.ptr != body.data() + body.size()) return false;
  if (negative) {
    if (magnitude > static_cast<uint64_t>(INT64_MAX) + 1) return false;
    v = static_cast<int64_t>(0 - magnitude);
  } else {
    if (magnitude > static_cast<uint64_t>(INT64_MAX)) return false;
    v = static_cast<int64_t>(magnitude);
  }
  return true;
}

bool LooksLikeCoreFloat(std::string_view s) {
  // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  } else {
    if (digits() == 0) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      digits();
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

}  // namespace

bool ToJson(const DocNode& node, common::Json& out, Diagnostics& diags) {
  switch (node.kind) {
    case DocNode::Kind::kNull:
      out = common::Json::Null();
      return true;
    case DocNode::Kind::kScalar: {
      const std::string& s = node.scalar;
      if (node.quoted) {
        out = common::Json::String(s);
        return true;
      }
      if (IsCoreNull(s)) {
        out = common::Json::Null();
        return true;
      }
      if (s == "true" || s == "True" || s == "TRUE") {
        out = common::Json::Bool(true);
        return true;
      }
      if (s == "false" || s == "False" || s == "FALSE") {
        out = common::Json::Bool(false);
        return true;
      }
      int64_t i;
      if (ParseCoreInt(s, i)) {
        out = common::Json::Int(i);
        return true;
      }
      if (LooksLikeCoreFloat(s)) {
        double d = std::strtod(s.c_str(), nullptr);
        if (!std::isfinite(d)) {
          diags.Error(node.location, "number-out-of-range",
                      StrCat("number ", s, " is out of range"));
          return false;
        }
        out = common::Json::Double(d);
        return true;
      }
      std::string_view lower = s;
      if (lower == ".inf" || lower == "-.inf" || lower == ".nan" || lower == ".NaN") {
        diags.Error(node.location, "number-out-of-range",
                    "infinite and NaN numbers are not allowed");
        return false;
      }
      out = common::Json::String(s);
      return true;
    }
    case DocNode::Kind::kSequence: {
      std::vector<common::Json> items;
      items.reserve(node.items.size());
      bool ok = true;
      for (const auto& item : node.items) {
        items.emplace_back();
        ok = ToJson(item, items.back(), diags) && ok;
      }
      out = common::Json::Array(std::move(items));
      return ok;
    }
    case DocNode::Kind::kMap: {
      std::vector<common::Json::Member> members;
      bool ok = true;
      for (const auto& [key, value] : node.members) {
        if (!key.is_scalar()) {
          diags.Error(key.location, "wrong-type", "map keys must be plain strings");
          ok = false;
          continue;
        }
        common::Json v;
        ok = ToJson(value, v, diags) && ok;
        members.push_back({key.scalar, std::move(v)});
      }
      auto obj = common::Json::Object(std::move(members));
      if (!obj.ok()) {
        // Duplicate keys were already reported by ParseDocument.
        out = common::Json::EmptyObject();
        return false;
      }
      out = *std::move(obj);
      return ok;
    }
  }
  return false;
}

}  // namespace aegis::policy
