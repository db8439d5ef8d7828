// Fuzz target for everything that reads a trail: the line parser, the chain checker as Verify
// runs it and as the writer's recovery runs it (resume mode), and Show. Any bytes must give a
// report or an error, never a crash, and the report must be self-consistent.
//
// Input: the files of one trail directory, each introduced by a line "=== <name>"; bytes before
// the first such line belong to 000001.log. The seed corpus (tests/fuzz/corpus/audit_segment)
// holds real trails packed this way.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "audit/chain_checker.h"
#include "audit/format.h"
#include "audit/show.h"
#include "audit/trail_source.h"
#include "audit/verify.h"

namespace {

std::map<std::string, std::string> Unpack(std::string_view in) {
  std::map<std::string, std::string> files;
  std::string name = "000001.log";
  constexpr std::string_view kMark = "=== ";
  while (!in.empty()) {
    size_t next = in.find("\n=== ");
    size_t start_mark = in.substr(0, kMark.size()) == kMark ? 0 : std::string_view::npos;
    if (start_mark == 0) {
      size_t eol = in.find('\n');
      name = std::string(
          in.substr(kMark.size(), eol == std::string_view::npos ? in.size() : eol - kMark.size()));
      in.remove_prefix(eol == std::string_view::npos ? in.size() : eol + 1);
      continue;
    }
    std::string_view body = next == std::string_view::npos ? in : in.substr(0, next + 1);
    files[name] += std::string(body);
    in.remove_prefix(body.size());
  }
  return files;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aegis::audit;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto files = Unpack(in);
  auto source = MemorySource(files);

  VerifyReport r = VerifyTrail(*source, VerifyOptions{});
  if (r.ok != r.error.empty()) std::abort();
  if (r.ok &&
      (r.first_bad_record != 0 || r.records != r.last_record || r.last_checkpoint > r.last_record ||
       r.unsealed_records != r.last_record - r.last_checkpoint)) {
    std::abort();
  }
  if (!r.ok && r.first_bad_record > r.last_record + 1) std::abort();

  auto shown = ShowTrail(*source, ShowFilter{.agent = "a", .limit = 3});
  if (shown.ok() && shown->size() > 3) std::abort();

  // Every line alone through the parser.
  for (const auto& [name, bytes] : files) {
    std::string_view rest = bytes;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      auto e = ParseEntry(line);
      if (e.ok() && e->kind == Entry::Kind::kRecord && e->hash_matches && e->hash.size() != 64) {
        std::abort();
      }
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    }
  }

  // The recovery path: the last segment alone, trusting its header.
  auto chain_text = files.find(std::string(kChainFileName));
  if (chain_text == files.end()) return 0;
  auto chain = ParseChainInfo(chain_text->second);
  if (!chain.ok()) return 0;
  auto key = VerifyingKey::FromHex(chain->public_key_hex);
  if (!key.ok()) return 0;
  std::string last;
  for (const auto& [name, bytes] : files) {
    if (ParseSegmentFileName(name)) last = name;
  }
  if (last.empty()) return 0;
  ChainChecker checker(*chain, *key);
  auto reader = source->Open(last);
  if (!reader.ok()) return 0;
  bool ok = checker.CheckSegment(*ParseSegmentFileName(last), last, **reader, true, true);
  if (ok && checker.segment_good_bytes() + checker.segment_torn_bytes() != files[last].size()) {
    std::abort();
  }
  if (!ok && checker.error().empty()) std::abort();
  return 0;
}
