#include "policy/pattern.h"

#include "common/host.h"

namespace aegis::policy {

bool IsValidName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == ':' || c == '/';
    if (!ok) return false;
  }
  return true;
}

bool GlobMatch(std::string_view pattern, std::string_view s) {
  // Iterative matcher with single backtrack point: O(len(pattern) * len(s)) worst case.
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == s[i])) {
      ++p;
      ++i;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

NamePattern::NamePattern(std::string text)
    : text_(std::move(text)), glob_(text_.find_first_of("*?") != std::string::npos) {}

bool NamePattern::Matches(std::string_view name) const {
  return glob_ ? GlobMatch(text_, name) : text_ == name;
}

HostPattern::HostPattern(std::string normalised)
    : text_(std::move(normalised)),
      wildcard_(text_.size() > 2 && std::string_view(text_).substr(0, 2) == "*.") {}

bool HostPattern::Parse(std::string_view text, HostPattern& out, std::string& error) {
  bool wildcard = text.size() > 2 && text[0] == '*' && text[1] == '.';
  auto norm = common::NormalizeHost(wildcard ? text.substr(2) : text);
  if (!norm.ok()) {
    error = norm.status().message();
    if (text.find('*') != std::string_view::npos) error = "'*' may only start a host as \"*.\"";
    return false;
  }
  out = HostPattern(wildcard ? "*." + *norm : *norm);
  return true;
}

bool HostPattern::Matches(std::string_view host) const {
  if (!wildcard_) return host == text_;
  std::string_view suffix = std::string_view(text_).substr(1);  // ".example.com"
  return host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix;
}

bool PathPattern::Parse(std::string_view text, PathPattern& out, std::string& error) {
  out = PathPattern();
  if (text.empty() || text[0] != '/') {
    error = "path pattern must start with '/'";
    return false;
  }
  out.text_ = std::string(text);
  size_t pos = 1;
  while (true) {
    size_t end = text.find('/', pos);
    std::string_view seg = text.substr(pos, end == std::string_view::npos ? end : end - pos);
    Segment s;
    if (seg == "**") {
      if (end != std::string_view::npos) {
        error = "'**' may only be the last segment of a path pattern";
        return false;
      }
      s.kind = Segment::Kind::kRest;
    } else if (seg == "*") {
      s.kind = Segment::Kind::kAny;
    } else if (!seg.empty() && seg.front() == '{') {
      if (seg.back() != '}' || seg.size() < 3 ||
          seg.substr(1, seg.size() - 2).find_first_of("{}/*") != std::string_view::npos) {
        error = "a capture segment looks like {name}";
        return false;
      }
      s.kind = Segment::Kind::kCapture;
      s.text = std::string(seg.substr(1, seg.size() - 2));
    } else {
      if (seg.find_first_of("{}*") != std::string_view::npos) {
        error = "'{', '}' and '*' may only form whole segments ({name}, *, **)";
        return false;
      }
      s.kind = Segment::Kind::kLiteral;
      s.text = std::string(seg);
    }
    out.segments_.push_back(std::move(s));
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return true;
}

bool PathPattern::Matches(std::string_view path,
                          std::vector<std::pair<std::string, std::string>>* captures) const {
  if (segments_.empty() || path.empty() || path[0] != '/') return false;
  size_t pos = 1;
  size_t captured = captures ? captures->size() : 0;
  auto fail = [&] {
    if (captures) captures->resize(captured);
    return false;
  };
  for (const Segment& s : segments_) {
    if (s.kind == Segment::Kind::kRest) return true;
    if (pos > path.size()) return fail();
    size_t end = path.find('/', pos);
    std::string_view seg = path.substr(pos, end == std::string_view::npos ? end : end - pos);
    switch (s.kind) {
      case Segment::Kind::kLiteral:
        if (seg != s.text) return fail();
        break;
      case Segment::Kind::kCapture:
        if (seg.empty()) return fail();
        if (captures) captures->emplace_back(s.text, std::string(seg));
        break;
      case Segment::Kind::kAny:
        if (seg.empty()) return fail();
        break;
      case Segment::Kind::kRest:
        break;
    }
    pos = end == std::string_view::npos ? path.size() + 1 : end + 1;
  }
  return pos == path.size() + 1 ? true : fail();
}

}  // namespace aegis::policy
