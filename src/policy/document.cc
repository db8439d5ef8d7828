#include "policy/document.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>

#include "common/strings.h"
#include <map>

#include "yaml.h"

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

// Owns one libyaml event.
class Event {
 public:
  Event() = default;
  ~Event() {
    if (filled_) yaml_event_delete(&event_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  yaml_event_t* get() { return &event_; }
  void set_filled() { filled_ = true; }
  yaml_event_type_t type() const { return event_.type; }
  const yaml_event_t& operator*() const { return event_; }

 private:
  yaml_event_t event_{};
  bool filled_ = false;
};

// Builds a DocNode tree from libyaml's event stream. libyaml itself does not recurse; this
// builder recurses once per nesting level and stops at the depth limit, and it counts alias
// expansions against the node budget so "billion laughs" documents stop early.
class TreeBuilder {
 public:
  TreeBuilder(std::string_view file, std::string_view text, const DocumentLimits& limits,
              Diagnostics& diags)
      : file_(file), limits_(limits), diags_(diags) {
    yaml_parser_initialize(&parser_);
    yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
  }
  ~TreeBuilder() { yaml_parser_delete(&parser_); }
  TreeBuilder(const TreeBuilder&) = delete;
  TreeBuilder& operator=(const TreeBuilder&) = delete;

  bool Build(DocNode& out) {
    Event e;
    if (!Next(e) || e.type() != YAML_STREAM_START_EVENT) return Fail(e);
    Event doc;
    if (!Next(doc)) return false;
    if (doc.type() == YAML_STREAM_END_EVENT) {  // empty file
      out = DocNode{};
      out.location = Location{std::string(file_), 1, 1};
      return true;
    }
    if (doc.type() != YAML_DOCUMENT_START_EVENT) return Fail(doc);
    Event root;
    if (!Next(root) || !BuildNode(root, out, 0)) return false;
    Event doc_end;
    if (!Next(doc_end)) return false;
    Event after;
    if (!Next(after)) return false;
    if (after.type() != YAML_STREAM_END_EVENT) {
      diags_.Error(At((*after).start_mark), "multiple-documents",
                   "file holds more than one YAML document; put each policy in its own file");
      return false;
    }
    return true;
  }

 private:
  Location At(const yaml_mark_t& mark) const {
    return Location{std::string(file_), static_cast<int>(mark.line) + 1,
                    static_cast<int>(mark.column) + 1};
  }

  bool Next(Event& e) {
    if (!yaml_parser_parse(&parser_, e.get())) {
      const yaml_mark_t& mark =
          parser_.problem_mark.line || parser_.problem_mark.column ? parser_.problem_mark
                                                                    : parser_.context_mark;
      std::string message = parser_.problem ? parser_.problem : "malformed YAML";
      if (parser_.context) message = StrCat(message, " ", parser_.context);
      diags_.Error(At(mark), "yaml-syntax", message);
      return false;
    }
    e.set_filled();
    return true;
  }

  bool Fail(Event& e) {
    diags_.Error(At((*e).start_mark), "yaml-syntax", "unexpected YAML structure");
    return false;
  }

  bool Count(const Location& at, size_t n) {
    nodes_ += n;
    if (nodes_ > limits_.max_nodes) {
      diags_.Error(at, "too-large",
                   StrCat("document expands to more than ", limits_.max_nodes,
                          " nodes (anchors and aliases count each time they are used)"));
      return false;
    }
    return true;
  }

  bool CheckTag(const Location& at, const unsigned char* tag) {
    if (!tag) return true;
    diags_.Error(at, "yaml-tag", StrCat("YAML tags are not supported (", 
                                        reinterpret_cast<const char*>(tag), ")"));
    return false;
  }

  void Anchor(const unsigned char* anchor, const DocNode& node, size_t count) {
    if (anchor) anchors_[reinterpret_cast<const char*>(anchor)] = {node, count};
  }

  bool BuildNode(Event& e, DocNode& out, int depth) {
    const yaml_event_t& ev = *e;
    out.location = At(ev.start_mark);
    if (depth > limits_.max_depth) {
      diags_.Error(out.location, "too-deep",
                   StrCat("document nests deeper than ", limits_.max_depth, " levels"));
      return false;
    }
    size_t before = nodes_;
    switch (ev.type) {
      case YAML_ALIAS_EVENT: {
        auto it = anchors_.find(reinterpret_cast<const char*>(ev.data.alias.anchor));
        if (it == anchors_.end()) {
          diags_.Error(out.location, "yaml-syntax", "alias to an unknown anchor");
          return false;
        }
        if (!Count(out.location, it->second.second)) return false;
        Location at = out.location;
        out = it->second.first;
        out.location = at;
        return true;
      }
      case YAML_SCALAR_EVENT: {
        if (!Count(out.location, 1)) return false;
        if (!CheckTag(out.location, ev.data.scalar.tag)) return false;
        out.kind = DocNode::Kind::kScalar;
        out.scalar.assign(reinterpret_cast<const char*>(ev.data.scalar.value),
                          ev.data.scalar.length);
        out.quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        if (!out.quoted && out.scalar.empty()) out.kind = DocNode::Kind::kNull;
        Anchor(ev.data.scalar.anchor, out, 1);
        return true;
      }
      case YAML_SEQUENCE_START_EVENT: {
        if (!Count(out.location, 1)) return false;
        if (!CheckTag(out.location, ev.data.sequence_start.tag)) return false;
        out.kind = DocNode::Kind::kSequence;
        while (true) {
          Event item;
          if (!Next(item)) return false;
          if (item.type() == YAML_SEQUENCE_END_EVENT) break;
          out.items.emplace_back();
          if (!BuildNode(item, out.items.back(), depth + 1)) return false;
        }
        Anchor(ev.data.sequence_start.anchor, out, nodes_ - before);
        return true;
      }
      case YAML_MAPPING_START_EVENT: {
        if (!Count(out.location, 1)) return false;
        if (!CheckTag(out.location, ev.data.mapping_start.tag)) return false;
        out.kind = DocNode::Kind::kMap;
        bool ok = true;
        std::set<std::string> seen;
        while (true) {
          Event key_event;
          if (!Next(key_event)) return false;
          if (key_event.type() == YAML_MAPPING_END_EVENT) break;
          out.members.emplace_back();
          DocMember& m = out.members.back();
          if (!BuildNode(key_event, m.key, depth + 1)) return false;
          Event value_event;
          if (!Next(value_event) || !BuildNode(value_event, m.value, depth + 1)) return false;
          if (m.key.is_scalar() && !seen.insert(m.key.scalar).second) {
            diags_.Error(m.key.location, "duplicate-key",
                         StrCat("key \"", m.key.scalar, "\" appears more than once in this map"));
            ok = false;
          }
        }
        Anchor(ev.data.mapping_start.anchor, out, nodes_ - before);
        return ok;
      }
      default:
        return Fail(e);
    }
  }

  std::string_view file_;
  const DocumentLimits& limits_;
  Diagnostics& diags_;
  yaml_parser_t parser_{};
  size_t nodes_ = 0;
  std::map<std::string, std::pair<DocNode, size_t>> anchors_;  // node and its node count
};

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
  // YAML allows only printable characters (c-printable) plus tab, LF and CR.
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
  TreeBuilder builder(file, text, limits, diags);
  return builder.Build(out);
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
