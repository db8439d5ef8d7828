// Redactor::RedactJson and field paths.
#include <algorithm>
#include <string>
#include <vector>

#include "common/strings.h"
#include "redact/compiled.h"
#include "redact/detectors.h"
#include "redact/redact.h"

namespace aegis::redact {

using common::InvalidArgumentError;
using common::Json;
using common::Status;
using common::StrCat;

namespace {

struct Step {
  enum class Kind { kName, kIndex, kAny } kind;
  std::string_view name;  // kName: the key, as written (no escapes exist)
  size_t index = 0;       // kIndex
};

bool IsNameChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == '-' || c == '$' || c == '@';
}

// Parses a field path into steps. Returns InvalidArgument saying what is wrong at which offset.
Status ParsePath(std::string_view path, std::vector<Step>* steps) {
  constexpr std::string_view kRoot = "params";
  if (path.substr(0, kRoot.size()) != kRoot ||
      (path.size() > kRoot.size() && path[kRoot.size()] != '.' && path[kRoot.size()] != '[')) {
    return InvalidArgumentError(StrCat("field path \"", path, "\" must start with params"));
  }
  auto error = [&](size_t at, std::string_view what) {
    return InvalidArgumentError(StrCat("field path \"", path, "\" at offset ", at, ": ", what));
  };
  size_t i = kRoot.size();
  while (i < path.size()) {
    if (path[i] == '.') {
      size_t start = ++i;
      while (i < path.size() && IsNameChar(path[i])) ++i;
      if (i == start) return error(start, "expected a name after '.'");
      if (steps) steps->push_back({Step::Kind::kName, path.substr(start, i - start)});
      continue;
    }
    if (path[i] != '[') return error(i, "expected '.' or '['");
    ++i;
    if (i < path.size() && path[i] == '*') {
      if (i + 1 >= path.size() || path[i + 1] != ']') return error(i + 1, "expected ']'");
      if (steps) steps->push_back({Step::Kind::kAny, {}});
      i += 2;
      continue;
    }
    if (i < path.size() && (path[i] == '"' || path[i] == '\'')) {
      char quote = path[i];
      size_t start = ++i;
      size_t close = path.find(quote, start);
      if (close == std::string_view::npos) return error(start - 1, "unterminated quoted key");
      if (close + 1 >= path.size() || path[close + 1] != ']') {
        return error(close + 1, "expected ']' after the quoted key");
      }
      if (steps) steps->push_back({Step::Kind::kName, path.substr(start, close - start)});
      i = close + 2;
      continue;
    }
    size_t start = i;
    size_t index = 0;
    while (i < path.size() && path[i] >= '0' && path[i] <= '9') {
      if (i - start == 9) return error(start, "index too large");
      index = index * 10 + static_cast<size_t>(path[i] - '0');
      ++i;
    }
    if (i == start) return error(start, "expected an index, '*' or a quoted key");
    if (i - start > 1 && path[start] == '0') return error(start, "index with a leading zero");
    if (i >= path.size() || path[i] != ']') return error(i, "expected ']'");
    ++i;
    if (steps) steps->push_back({Step::Kind::kIndex, {}, index});
  }
  return common::OkStatus();
}

// The values `path` names in `root` (the params value), appended to `out`.
void Resolve(Json& root, std::string_view path, std::vector<Json*>& out) {
  std::vector<Step> steps;
  if (!ParsePath(path, &steps).ok()) return;  // refused when the policy loaded
  std::vector<Json*> frontier{&root}, next;
  for (const Step& step : steps) {
    next.clear();
    for (Json* node : frontier) {
      switch (step.kind) {
        case Step::Kind::kName: {
          if (!node->is_object()) break;
          auto& members = node->mutable_object();
          auto it = std::lower_bound(
              members.begin(), members.end(), step.name,
              [](const Json::Member& m, std::string_view key) { return m.key < key; });
          if (it != members.end() && it->key == step.name) next.push_back(&it->value);
          break;
        }
        case Step::Kind::kIndex:
          if (node->is_array() && step.index < node->as_array().size()) {
            next.push_back(&node->mutable_array()[step.index]);
          }
          break;
        case Step::Kind::kAny:
          if (node->is_array()) {
            for (Json& item : node->mutable_array()) next.push_back(&item);
          } else if (node->is_object()) {
            for (Json::Member& m : node->mutable_object()) next.push_back(&m.value);
          }
          break;
      }
    }
    frontier.swap(next);
    if (frontier.empty()) return;
  }
  out.insert(out.end(), frontier.begin(), frontier.end());
}

bool IsIdentifier(std::string_view key) {
  if (key.empty() || (key[0] >= '0' && key[0] <= '9')) return false;
  for (char c : key) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')) {
      return false;
    }
  }
  return true;
}

void AppendKeyStep(std::string& path, std::string_view key) {
  if (IsIdentifier(key)) {
    path += '.';
    path += key;
  } else {
    path += '[';
    common::AppendJsonString(path, key);
    path += ']';
  }
}

// The text a scalar is replaced as: strings as they are, numbers and booleans as JSON text.
std::string ScalarText(const Json& v) {
  switch (v.kind()) {
    case Json::Kind::kString:
      return v.as_string();
    case Json::Kind::kInt:
      return std::to_string(v.as_int());
    case Json::Kind::kDouble:
      return common::FormatDouble(v.as_double());
    case Json::Kind::kBool:
      return v.as_bool() ? "true" : "false";
    default:
      return {};
  }
}

}  // namespace

Status ValidateFieldPath(std::string_view path) { return ParsePath(path, nullptr); }

Redactor::Result Redactor::RedactJson(Json& value, const std::vector<std::string>& fields) const {
  Result result;
  const Compiled& c = *c_;

  std::vector<Json*> targets;
  for (const std::string& field : fields) Resolve(value, field, targets);
  std::sort(targets.begin(), targets.end());
  auto is_target = [&](const Json* node) {
    return !targets.empty() && std::binary_search(targets.begin(), targets.end(), node);
  };
  const bool scan = c.combined != nullptr;
  if (targets.empty() && !scan) return result;

  // Replaces every string, number and boolean under `root` (a field path's value); returns how
  // many.
  std::vector<Json*> inner;
  std::string replacement;
  auto redact_whole = [&](Json* root) {
    size_t n = 0;
    inner.assign(1, root);
    while (!inner.empty()) {
      Json* node = inner.back();
      inner.pop_back();
      switch (node->kind()) {
        case Json::Kind::kNull:
          break;
        case Json::Kind::kArray:
          for (Json& item : node->mutable_array()) inner.push_back(&item);
          break;
        case Json::Kind::kObject:
          for (Json::Member& m : node->mutable_object()) inner.push_back(&m.value);
          break;
        default:
          replacement.clear();
          c.AppendFieldReplacement(replacement, ScalarText(*node));
          *node = Json::String(replacement);
          ++n;
          break;
      }
    }
    return n;
  };

  // Depth-first walk with an explicit stack. `steps` holds the path of the node last taken off
  // the stack, one step per level; a frame's parent is always on that path, so cutting `steps`
  // back to the frame's depth and adding its own step gives the frame's path. Paths are only
  // spelled out for values that change.
  struct Step {
    const std::string* key;  // null for an array element
    size_t index;
  };
  struct Frame {
    Json* node;
    size_t depth;
    Step step;
    std::string_view context_key;  // the member's key; an array's key for its elements
  };
  std::vector<Step> steps;
  auto path_string = [&]() {
    std::string path = "params";
    for (const Step& s : steps) {
      if (s.key) {
        AppendKeyStep(path, *s.key);
      } else {
        path += '[';
        path += std::to_string(s.index);
        path += ']';
      }
    }
    return path;
  };
  std::vector<Frame> stack;
  stack.push_back({&value, 0, {nullptr, 0}, {}});
  std::vector<Finding> findings;
  std::string text, out;
  while (!stack.empty()) {
    const Frame f = stack.back();
    stack.pop_back();
    if (f.depth > 0) {
      steps.resize(f.depth - 1);
      steps.push_back(f.step);
    }
    Json* node = f.node;
    if (is_target(node)) {
      size_t n = redact_whole(node);
      if (n > 0) {
        result.replaced += n;
        result.paths.push_back(path_string());
      }
      continue;
    }
    switch (node->kind()) {
      case Json::Kind::kObject: {
        auto& members = node->mutable_object();
        for (size_t i = members.size(); i-- > 0;) {
          stack.push_back({&members[i].value, f.depth + 1, {&members[i].key, 0}, members[i].key});
        }
        break;
      }
      case Json::Kind::kArray: {
        auto& items = node->mutable_array();
        for (size_t i = items.size(); i-- > 0;) {
          stack.push_back({&items[i], f.depth + 1, {nullptr, i}, f.context_key});
        }
        break;
      }
      case Json::Kind::kString: {
        if (!scan) break;
        const std::string& s = node->as_string();
        findings.clear();
        c.Scan(s, internal::Context(f.context_key), findings);
        if (findings.empty()) break;
        result.replaced += c.Redact(s, findings, out);
        *node = Json::String(std::move(out));
        out = std::string();
        result.paths.push_back(path_string());
        break;
      }
      case Json::Kind::kInt: {
        // Nine digits or more can be an SSN, a card or a phone number; eight under a
        // date-of-birth key can be 19800102.
        if (!scan) break;
        int64_t v = node->as_int();
        internal::Context ctx(f.context_key);
        if (v > -100000000 && v < 100000000 && !(v >= 10000000 && ctx.DobKey())) break;
        text = std::to_string(v);
        findings.clear();
        c.Scan(text, ctx, findings);
        if (findings.empty()) break;
        result.replaced += c.Redact(text, findings, out);
        *node = Json::String(std::move(out));
        out = std::string();
        result.paths.push_back(path_string());
        break;
      }
      default:
        break;
    }
  }
  return result;
}

}  // namespace aegis::redact
