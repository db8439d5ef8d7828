#include "audit/verify.h"

#include <algorithm>
#include <utility>

#include "audit/chain_checker.h"
#include "audit/format.h"
#include "audit/key.h"
#include "common/strings.h"

namespace aegis::audit {
namespace {

using common::StrCat;

constexpr size_t kMaxSmallFile = 64 << 10;

void Fill(VerifyReport& r, const ChainChecker& c) {
  r.records = c.records();
  r.checkpoints = c.checkpoints();
  r.last_record = c.last_seq();
  r.last_checkpoint = c.last_checkpoint_seq();
  r.unsealed_records = c.seen_checkpoint() ? c.last_seq() - c.last_checkpoint_seq() : c.last_seq();
  r.closed_cleanly =
      c.last() == ChainChecker::Last::kCheckpoint && c.last_reason() == CheckpointReason::kClose;
  r.warnings = c.warnings();
}

}  // namespace

VerifyReport Verify(const std::string& dir) { return Verify(dir, VerifyOptions{}); }

VerifyReport Verify(const std::string& dir, const VerifyOptions& options) {
  auto source = DirectorySource(dir);
  return VerifyTrail(*source, options);
}

VerifyReport VerifyTrail(TrailSource& source, const VerifyOptions& options) {
  VerifyReport r;
  auto fail = [&r](std::string message, uint64_t first_bad) {
    r.ok = false;
    r.error = std::move(message);
    r.first_bad_record = first_bad;
    return r;
  };

  auto chain_text = source.ReadSmallFile(kChainFileName, kMaxSmallFile);
  if (!chain_text.ok()) {
    if (chain_text.status().code() == common::StatusCode::kNotFound) {
      return fail(
          StrCat(source.Describe(), " is not an audit trail: ", kChainFileName, " is missing"), 0);
    }
    return fail(chain_text.status().message(), 0);
  }
  auto chain = ParseChainInfo(*chain_text);
  if (!chain.ok()) return fail(StrCat(kChainFileName, ": ", chain.status().message()), 0);
  r.chain_id = chain->chain_id;
  r.public_key_hex = chain->public_key_hex;
  r.key_id = chain->key_id;
  auto key = VerifyingKey::FromHex(chain->public_key_hex);
  if (!key.ok()) return fail(StrCat(kChainFileName, ": ", key.status().message()), 0);
  if (!options.expected_key_id.empty() && options.expected_key_id != chain->key_id) {
    return fail(StrCat("the trail's checkpoint key is ", chain->key_id, " (", kChainFileName,
                       "), not the expected key ", options.expected_key_id,
                       ": chain.json was replaced, or this is another trail"),
                0);
  }

  ChainChecker checker(*chain, *key);
  bool head_missing = false;
  auto head = source.ReadSmallFile(kHeadFileName, kMaxSmallFile);
  if (head.ok()) {
    auto anchor = ParseAnchor(*head, *chain, *key, std::string(kHeadFileName));
    if (!anchor.ok()) return fail(anchor.status().message(), 0);
    checker.AddAnchor(std::move(*anchor));
  } else if (head.status().code() == common::StatusCode::kNotFound) {
    head_missing = true;
  } else {
    return fail(head.status().message(), 0);
  }
  if (!options.anchor_checkpoint.empty()) {
    auto anchor = ParseAnchor(options.anchor_checkpoint, *chain, *key, "the anchor checkpoint");
    if (!anchor.ok()) return fail(anchor.status().message(), 0);
    checker.AddAnchor(std::move(*anchor));
  }

  auto files = source.ListFiles();
  if (!files.ok()) return fail(files.status().message(), 0);
  std::vector<uint64_t> indexes;
  for (const std::string& name : *files) {
    if (auto index = ParseSegmentFileName(name)) indexes.push_back(*index);
  }
  std::sort(indexes.begin(), indexes.end());
  if (indexes.empty()) {
    return fail(StrCat("no segment files (", SegmentFileName(1), ", ...) in ", source.Describe()),
                0);
  }
  for (size_t i = 0; i < indexes.size(); ++i) {
    std::string name = SegmentFileName(indexes[i]);
    if (indexes[i] != i + 1) {
      Fill(r, checker);
      std::string where = i == 0
                              ? StrCat("the first segment present is ", name)
                              : StrCat("between ", SegmentFileName(indexes[i - 1]), " and ", name);
      return fail(StrCat("segment ", SegmentFileName(i + 1), " is missing (", where, ")"),
                  checker.last_seq() + 1);
    }
    auto reader = source.Open(name);
    if (!reader.ok()) return fail(reader.status().message(), checker.last_seq() + 1);
    ++r.segments;
    bool ok = checker.CheckSegment(indexes[i], name, **reader, i + 1 == indexes.size(),
                                   /*resume=*/false);
    if (!ok) {
      Fill(r, checker);
      return fail(checker.error(), checker.first_bad_record());
    }
  }
  bool finished = checker.Finish();
  Fill(r, checker);
  if (!finished) return fail(checker.error(), checker.first_bad_record());
  if (head_missing) {
    std::string message =
        StrCat(kHeadFileName,
               " is missing: the end of the trail cannot be checked against its "
               "last checkpoint (restore it, or verify with an anchor checkpoint)");
    if (r.records > 0 && options.anchor_checkpoint.empty()) return fail(message, 0);
    r.warnings.push_back(std::move(message));
  }
  if (!r.closed_cleanly) {
    std::string message =
        StrCat("the trail ended without a closing checkpoint after record ", r.last_record,
               " (crash or truncation, or a writer still running)");
    if (r.unsealed_records > 0) {
      message += StrCat("; records ", r.last_checkpoint + 1, "..", r.last_record,
                        " are hash-chained but no signed checkpoint covers them");
    }
    r.warnings.push_back(std::move(message));
  }
  r.ok = true;
  return r;
}

}  // namespace aegis::audit
