#include "frontdoors/proxy/mcp.h"

#include "common/strings.h"

namespace aegis::proxy::mcp {

using common::Json;
using common::StrCat;

namespace {

// The end of the first event in `s` at or after `from`: the index just past its blank line,
// or npos. Line ends are CRLF, LF or CR; an event ends where a line end follows a line end.
size_t EventEnd(std::string_view s, size_t from) {
  for (size_t i = from; i < s.size(); ++i) {
    if (s[i] != '\n' && s[i] != '\r') continue;
    size_t next = i + 1;
    if (s[i] == '\r') {
      if (next == s.size()) return std::string_view::npos;  // CR; LF may follow in the next piece
      if (s[next] == '\n') ++next;
    }
    if (next >= s.size()) return std::string_view::npos;
    if (s[next] == '\n') return next + 1;
    if (s[next] == '\r') {
      if (next + 1 == s.size()) return std::string_view::npos;
      return s[next + 1] == '\n' ? next + 2 : next + 1;
    }
    i = next - 1;
  }
  return std::string_view::npos;
}

// Calls `line(text)` for each line of `event` (without its line end).
template <typename F>
void ForEachLine(std::string_view event, F line) {
  size_t pos = 0;
  while (pos < event.size()) {
    size_t end = event.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) end = event.size();
    line(event.substr(pos, end - pos));
    if (end < event.size() && event[end] == '\r' && end + 1 < event.size() &&
        event[end + 1] == '\n') {
      ++end;
    }
    pos = end + 1;
  }
}

}  // namespace

bool SseSplitter::Feed(std::string_view bytes, size_t max_event_bytes) {
  buffer_.append(bytes);
  size_t end = EventEnd(buffer_, 0);
  return end != std::string::npos || buffer_.size() <= max_event_bytes;
}

std::optional<std::string> SseSplitter::Next() {
  size_t end = EventEnd(buffer_, 0);
  if (end == std::string::npos) return std::nullopt;
  std::string event = buffer_.substr(0, end);
  buffer_.erase(0, end);
  return event;
}

std::optional<std::string> EventData(std::string_view event) {
  std::optional<std::string> data;
  ForEachLine(event, [&](std::string_view line) {
    if (line.substr(0, 5) != "data:" && line != "data") return;
    std::string_view value = line.size() > 5 ? line.substr(5) : std::string_view();
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (data) {
      *data += '\n';
      *data += value;
    } else {
      data = std::string(value);
    }
  });
  return data;
}

std::string ReplaceEventData(std::string_view event, std::string_view data) {
  std::string out;
  bool written = false;
  ForEachLine(event, [&](std::string_view line) {
    if (line.empty()) return;
    if (line.substr(0, 5) == "data:" || line == "data") {
      if (!written) out += StrCat("data: ", data, "\n");
      written = true;
      return;
    }
    out += line;
    out += '\n';
  });
  if (!written) out += StrCat("data: ", data, "\n");
  out += '\n';
  return out;
}

std::string ErrorMessage(const Json* id, int code, std::string_view message) {
  std::string out = "{\"jsonrpc\":\"2.0\",\"id\":";
  out += id ? id->Canonical() : "null";
  out += StrCat(",\"error\":{\"code\":", code, ",\"message\":");
  common::AppendJsonString(out, message);
  out += "}}";
  return out;
}

std::string RefusalResult(const Json& id, const Json& decision) {
  auto str = [](const Json* j, std::string_view key) -> std::string {
    const Json* v = j && j->is_object() ? j->Find(key) : nullptr;
    return v && v->is_string() ? v->as_string() : std::string();
  };
  std::string text = StrCat("Aegis refused this tool call: ", str(&decision, "decision"));
  const Json* reasons = decision.Find("reasons");
  if (reasons && reasons->is_array() && !reasons->as_array().empty()) {
    const Json& r = reasons->as_array().front();
    text += StrCat(" (", str(&r, "code"));
    if (std::string rule = str(&r, "rule"); !rule.empty()) text += StrCat(", rule ", rule);
    text += ")";
    if (std::string m = str(&r, "message"); !m.empty()) text += StrCat(": ", m);
    if (std::string m = str(&r, "detail"); !m.empty()) text += StrCat(": ", m);
  }
  std::string approval = str(decision.Find("approval"), "id");
  if (approval.empty()) approval = str(&decision, "approval_id");
  if (!approval.empty()) {
    text += StrCat(". A human must approve it: approval ", approval,
                   "; once approved, repeat the call with the override token");
  }
  if (std::string id_text = str(&decision, "decision_id"); !id_text.empty()) {
    text += StrCat(". Decision ", id_text);
  }
  text += ".";
  std::string out = "{\"jsonrpc\":\"2.0\",\"id\":";
  out += id.Canonical();
  out += ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":";
  common::AppendJsonString(out, text);
  out += "}],\"isError\":true,\"_meta\":{\"aegis/decision\":";
  out += decision.Canonical();
  out += "}}}";
  return out;
}

size_t FilterTools(Json& message, const std::function<bool(std::string_view)>& offered) {
  if (!message.is_object()) return 0;
  auto& members = message.mutable_object();
  for (auto& [key, result] : members) {
    if (key != "result" || !result.is_object()) continue;
    for (auto& [rkey, tools] : result.mutable_object()) {
      if (rkey != "tools" || !tools.is_array()) continue;
      auto& list = tools.mutable_array();
      size_t before = list.size();
      std::vector<Json> kept;
      for (Json& tool : list) {
        const Json* name = tool.is_object() ? tool.Find("name") : nullptr;
        if (name && name->is_string() && offered(name->as_string())) kept.push_back(std::move(tool));
      }
      list = std::move(kept);
      return before - list.size();
    }
  }
  return 0;
}

}  // namespace aegis::proxy::mcp
