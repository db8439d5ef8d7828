// ChainChecker: the rules of a valid trail (docs/audit.md), applied one segment at a time.
// Verify runs it over every segment from the first; the writer's recovery runs it over the last
// segment only, trusting that segment's header, to find where the chain ends and what to cut.
#ifndef AEGIS_AUDIT_CHAIN_CHECKER_H_
#define AEGIS_AUDIT_CHAIN_CHECKER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "audit/format.h"
#include "audit/key.h"
#include "audit/trail_source.h"

namespace aegis::audit {

// A checkpoint kept outside the segments (head.json, a pinned anchor): the record it covers must
// be in the trail with that hash.
struct Anchor {
  uint64_t seq = 0;
  std::string hash;
  std::string source;  // "head.json", "the anchor checkpoint"
};

// Parses a checkpoint line kept apart from the segments (head.json, an anchor) and checks it on
// its own: well-formed, this chain, this key, a valid signature. `source` names it in messages.
common::StatusOr<Anchor> ParseAnchor(std::string_view text, const ChainInfo& chain,
                                     const VerifyingKey& key, std::string source);

class ChainChecker {
 public:
  // What the last entry checked was.
  enum class Last { kTrailStart, kSegmentStart, kRecord, kCheckpoint };

  ChainChecker(ChainInfo chain, VerifyingKey key)
      : chain_(std::move(chain)), key_(std::move(key)) {}

  void AddAnchor(Anchor anchor) { anchors_.push_back(std::move(anchor)); }

  // Checks segment `index` (file `name`) from `in`. `last`: the trail's last segment, the only one
  // that may end in a torn line. `resume`: take the segment's header as the chain state instead of
  // checking it against the segments before (recovery). Returns false at the first error.
  bool CheckSegment(uint64_t index, const std::string& name, ByteReader& in, bool last,
                    bool resume);
  // After the last segment: the checks of the trail's end (anchors beyond it). False on error.
  bool Finish();

  const std::string& error() const { return error_; }
  uint64_t first_bad_record() const { return first_bad_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // The state after the segments checked so far.
  uint64_t last_seq() const { return last_seq_; }
  const std::string& last_hash() const { return last_hash_; }
  Last last() const { return last_; }
  CheckpointReason last_reason() const { return last_reason_; }
  uint64_t records() const { return records_; }
  uint64_t checkpoints() const { return checkpoints_; }
  uint64_t last_checkpoint_seq() const { return last_checkpoint_seq_; }
  bool seen_checkpoint() const { return seen_checkpoint_; }

  // About the last segment checked:
  bool segment_has_header() const { return segment_has_header_; }
  uint64_t segment_good_bytes() const {
    return good_bytes_;
  }  // up to the end of the last good line
  uint64_t segment_torn_bytes() const { return torn_bytes_; }  // after it: a torn tail
  uint64_t segment_records() const { return segment_records_; }

 private:
  bool Fail(std::string message, uint64_t first_bad);
  bool FailLine(std::string message, uint64_t first_bad);
  void Warn(std::string message);
  bool OnHeader(const SegmentHeader& h, bool resume);
  bool OnRecord(const Entry& e);
  bool OnCheckpoint(const Checkpoint& cp);
  std::string Where() const;

  const ChainInfo chain_;
  const VerifyingKey key_;
  std::vector<Anchor> anchors_;

  uint64_t last_seq_ = 0;
  std::string last_hash_;
  Last last_ = Last::kTrailStart;
  CheckpointReason last_reason_ = CheckpointReason::kOpen;
  uint64_t records_ = 0, checkpoints_ = 0;
  uint64_t last_checkpoint_seq_ = 0;
  bool seen_checkpoint_ = false;
  bool any_segment_ = false;

  // The segment being checked.
  uint64_t index_ = 0;
  std::string name_;
  uint64_t line_no_ = 0;
  bool segment_has_header_ = false;
  uint64_t good_bytes_ = 0, torn_bytes_ = 0;
  uint64_t segment_records_ = 0;

  std::string error_;
  uint64_t first_bad_ = 0;
  std::vector<std::string> warnings_;
  size_t warnings_dropped_ = 0;
};

}  // namespace aegis::audit

#endif  // AEGIS_AUDIT_CHAIN_CHECKER_H_
