#include "audit/show.h"

#include <algorithm>
#include <deque>

#include "audit/format.h"
#include "common/json.h"
#include "common/strings.h"

namespace aegis::audit {
namespace {

using common::StrCat;

// `"name":"value"` as the writer spells it: a line without it cannot match, so it is not parsed.
std::string Needle(std::string_view name, std::string_view value) {
  std::string out = StrCat("\"", name, "\":");
  common::AppendJsonString(out, value);
  return out;
}

bool FieldEquals(const common::Json& record, std::string_view name, const std::string& want) {
  if (want.empty()) return true;
  const common::Json* v = record.Find(name);
  return v != nullptr && v->is_string() && v->as_string() == want;
}

}  // namespace

common::StatusOr<std::vector<std::string>> Show(const std::string& dir, const ShowFilter& filter) {
  auto source = DirectorySource(dir);
  return ShowTrail(*source, filter);
}

common::StatusOr<std::vector<std::string>> ShowTrail(TrailSource& source,
                                                     const ShowFilter& filter) {
  if (auto chain = source.ReadSmallFile(kChainFileName, 64 << 10); !chain.ok()) {
    if (chain.status().code() == common::StatusCode::kNotFound) {
      return common::NotFoundError(
          StrCat(source.Describe(), " is not an audit trail: ", kChainFileName, " is missing"));
    }
    return chain.status();
  }
  auto files = source.ListFiles();
  if (!files.ok()) return files.status();
  std::vector<uint64_t> indexes;
  for (const std::string& name : *files) {
    if (auto index = ParseSegmentFileName(name)) indexes.push_back(*index);
  }
  std::sort(indexes.begin(), indexes.end());

  std::vector<std::string> needles;
  if (!filter.agent.empty()) needles.push_back(Needle("agent", filter.agent));
  if (!filter.tool.empty()) needles.push_back(Needle("tool", filter.tool));
  if (!filter.decision.empty()) needles.push_back(Needle("decision", filter.decision));

  std::deque<std::string> out;
  for (uint64_t index : indexes) {
    auto reader = source.Open(SegmentFileName(index));
    if (!reader.ok()) return reader.status();
    LineReader lines(**reader, kMaxLineBytes);
    Line line;
    for (;;) {
      auto more = lines.Next(&line);
      if (!more.ok()) return more.status();
      if (!*more) break;
      if (!line.complete || line.overlong || line.text.substr(0, 7) != "{\"seq\":") continue;
      bool candidate = true;
      for (const std::string& n : needles) {
        candidate = candidate && line.text.find(n) != std::string_view::npos;
      }
      if (!candidate) continue;
      auto entry = ParseEntry(line.text);
      if (!entry.ok() || entry->kind != Entry::Kind::kRecord) continue;
      if (entry->is_event && !needles.empty()) continue;
      if (!FieldEquals(entry->record, "agent", filter.agent) ||
          !FieldEquals(entry->record, "tool", filter.tool) ||
          !FieldEquals(entry->record, "decision", filter.decision)) {
        continue;
      }
      int64_t t = entry->time_unix_nanos;
      if (filter.since_unix_nanos != 0 && t < filter.since_unix_nanos) continue;
      if (filter.until_unix_nanos != 0 && t >= filter.until_unix_nanos) continue;
      out.emplace_back(line.text);
      if (filter.limit != 0 && out.size() > filter.limit) out.pop_front();
    }
  }
  return std::vector<std::string>(std::make_move_iterator(out.begin()),
                                  std::make_move_iterator(out.end()));
}

}  // namespace aegis::audit
