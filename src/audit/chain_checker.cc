#include "audit/chain_checker.h"

#include <utility>

#include "common/strings.h"

namespace aegis::audit {
namespace {

using common::StrCat;

constexpr size_t kMaxWarnings = 100;

// Enough of a hash or id to tell two apart in a message.
std::string_view Short(std::string_view hex) { return hex.substr(0, 16); }

}  // namespace

// A checkpoint line kept apart from the segments, checked on its own: well-formed, this chain,
// this key, a valid signature.
common::StatusOr<Anchor> ParseAnchor(std::string_view text, const ChainInfo& chain,
                                     const VerifyingKey& key, std::string source) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  auto entry = ParseEntry(text);
  if (!entry.ok())
    return common::InvalidArgumentError(StrCat(source, ": ", entry.status().message()));
  if (entry->kind != Entry::Kind::kCheckpoint) {
    return common::InvalidArgumentError(StrCat(source, " does not hold a checkpoint"));
  }
  const Checkpoint& cp = entry->checkpoint;
  if (cp.chain_id != chain.chain_id) {
    return common::InvalidArgumentError(StrCat(source, " is a checkpoint of another chain"));
  }
  if (cp.key_id != chain.key_id) {
    return common::InvalidArgumentError(
        StrCat(source, " was signed by key ", cp.key_id, ", not this trail's key ", chain.key_id));
  }
  if (!key.Verify(CheckpointMessage(cp), cp.sig_hex)) {
    return common::InvalidArgumentError(StrCat("signature of the checkpoint in ", source,
                                               " (record ", cp.seq, ") does not verify"));
  }
  return Anchor{cp.seq, cp.hash, std::move(source)};
}

std::string ChainChecker::Where() const {
  return StrCat("segment ", name_, " line ", line_no_, " (record ", last_seq_ + 1, ")");
}

bool ChainChecker::Fail(std::string message, uint64_t first_bad) {
  error_ = std::move(message);
  first_bad_ = first_bad;
  return false;
}

bool ChainChecker::FailLine(std::string message, uint64_t first_bad) {
  return Fail(StrCat(Where(), ": ", message), first_bad);
}

void ChainChecker::Warn(std::string message) {
  if (warnings_.size() < kMaxWarnings - 1) {
    warnings_.push_back(std::move(message));
    return;
  }
  ++warnings_dropped_;
  std::string more = StrCat("... and ", warnings_dropped_, " more warnings");
  if (warnings_.size() == kMaxWarnings) {
    warnings_.back() = std::move(more);
  } else {
    warnings_.push_back(std::move(more));
  }
}

bool ChainChecker::CheckSegment(uint64_t index, const std::string& name, ByteReader& in, bool last,
                                bool resume) {
  index_ = index;
  name_ = name;
  line_no_ = 0;
  segment_has_header_ = false;
  good_bytes_ = torn_bytes_ = 0;
  segment_records_ = 0;
  if (!any_segment_ && !resume) last_hash_ = chain_.chain_id;

  LineReader reader(in, kMaxLineBytes);
  Line line;
  uint64_t end = 0;
  uint64_t nul_line = 0;  // the first of a run of NUL-only lines, 0 if none
  for (;;) {
    auto more = reader.Next(&line);
    if (!more.ok())
      return Fail(StrCat("segment ", name, ": ", more.status().message()), last_seq_ + 1);
    if (!*more) break;
    ++line_no_;
    end = line.offset + line.length + (line.complete ? 1 : 0);
    if (line.all_nul) {
      if (nul_line == 0) nul_line = line_no_;
      continue;
    }
    if (!line.complete) break;  // an unfinished last line: torn
    if (nul_line != 0) {
      line_no_ = nul_line;
      return FailLine("a line of NUL bytes inside the segment (the file was damaged)",
                      last_seq_ + 1);
    }
    if (line.overlong) {
      return FailLine(StrCat("a line longer than ", kMaxLineBytes, " bytes"), last_seq_ + 1);
    }
    auto entry = ParseEntry(line.text);
    if (!entry.ok()) {
      return FailLine(StrCat(line_no_ == 1 ? "not a segment header: " : "malformed line: ",
                             entry.status().message()),
                      last_seq_ + 1);
    }
    bool ok = true;
    if (entry->kind == Entry::Kind::kSegmentHeader) {
      ok = OnHeader(entry->header, resume);
    } else if (!segment_has_header_) {
      return FailLine("not a segment header: every segment begins with one", last_seq_ + 1);
    } else if (entry->kind == Entry::Kind::kRecord) {
      ok = OnRecord(*entry);
    } else {
      ok = OnCheckpoint(entry->checkpoint);
    }
    if (!ok) return false;
    good_bytes_ = end;
  }
  torn_bytes_ = end - good_bytes_;
  if (torn_bytes_ > 0 && !last) {
    return Fail(StrCat("segment ", name, " ends in ", torn_bytes_,
                       " bytes of an unfinished line or NUL bytes after record ", last_seq_,
                       ": only the last segment of a trail may (a crash mid-write)"),
                last_seq_ + 1);
  }
  if (!segment_has_header_) {
    if (!last) {
      return Fail(StrCat("segment ", name, " holds no segment header (empty or damaged)"),
                  last_seq_ + 1);
    }
    Warn(StrCat("segment ", name, " holds no complete header (", torn_bytes_,
                " bytes): the writer stopped while creating it; its next start removes it"));
    return true;
  }
  if (torn_bytes_ > 0) {
    Warn(StrCat("segment ", name, " ends in an unfinished line (", torn_bytes_,
                " bytes after record ", last_seq_,
                "): a crash mid-write; the writer cuts it at its next start"));
  }
  if (!last && !(last_ == Last::kCheckpoint && last_reason_ == CheckpointReason::kRoll)) {
    return Fail(
        StrCat("segment ", name, " does not end with a roll checkpoint (its last record is ",
               last_seq_, ") although segment ", SegmentFileName(index + 1),
               " follows: its end was cut, or lines were added after the roll"),
        last_seq_ + 1);
  }
  return true;
}

bool ChainChecker::OnHeader(const SegmentHeader& h, bool resume) {
  uint64_t first_bad = resume ? h.first_seq : last_seq_ + 1;
  if (line_no_ != 1) return FailLine("a segment header in the middle of a segment", first_bad);
  if (h.chain_id != chain_.chain_id) {
    return FailLine(StrCat("segment from another chain: its header names chain ", Short(h.chain_id),
                           "..., this trail is chain ", Short(chain_.chain_id), "..."),
                    first_bad);
  }
  if (h.index != index_) {
    return FailLine(StrCat("the header says this is segment ", h.index,
                           " (renamed, or copied from elsewhere in the trail?)"),
                    first_bad);
  }
  if (h.index == 1 && (h.first_seq != 1 || h.prev != chain_.chain_id)) {
    return FailLine("the first segment must start at record 1, after the chain id", first_bad);
  }
  if (resume) {
    last_seq_ = h.first_seq - 1;
    last_hash_ = h.prev;
    last_ = h.index == 1 ? Last::kTrailStart : Last::kSegmentStart;
  } else {
    if (h.first_seq != last_seq_ + 1) {
      return FailLine(StrCat("the segment starts at record ", h.first_seq,
                             " but the trail before it ends at record ", last_seq_),
                      first_bad);
    }
    if (h.prev != last_hash_) {
      return FailLine(StrCat("the segment header does not continue the chain: its prev is not "
                             "the hash of record ",
                             last_seq_),
                      first_bad);
    }
    if (last_ != Last::kTrailStart) last_ = Last::kSegmentStart;
  }
  segment_has_header_ = true;
  any_segment_ = true;
  return true;
}

bool ChainChecker::OnRecord(const Entry& e) {
  uint64_t expected = last_seq_ + 1;
  if (!e.hash_matches) {
    if (e.seq == expected) {
      return FailLine(StrCat("record ", expected, " altered (its hash does not match its content)"),
                      expected);
    }
    return FailLine(StrCat("a record line was altered (its hash does not match its content; it "
                           "says it is record ",
                           e.seq, ")"),
                    expected);
  }
  if (last_ == Last::kTrailStart) {
    return FailLine("the trail does not begin with the writer's signed open checkpoint", expected);
  }
  if (last_ == Last::kCheckpoint && last_reason_ == CheckpointReason::kClose) {
    return FailLine(
        StrCat("record ", e.seq, " follows the closing checkpoint at record ", last_seq_,
               " without an open checkpoint: it was added after the writer closed "
               "(forged?)"),
        expected);
  }
  if (last_ == Last::kCheckpoint && last_reason_ == CheckpointReason::kRoll) {
    return FailLine(StrCat("record ", e.seq, " follows the roll checkpoint at record ", last_seq_,
                           ", which must end its segment"),
                    expected);
  }
  if (e.seq == last_seq_ && e.hash == last_hash_) {
    return FailLine(StrCat("record ", e.seq, " appears twice (duplicated)"), expected);
  }
  if (e.seq != expected) {
    if (e.seq > expected) {
      return FailLine(StrCat("record ", expected, " is missing or out of order: found record ",
                             e.seq, " after record ", last_seq_),
                      expected);
    }
    return FailLine(
        StrCat("records out of order: found record ", e.seq, " after record ", last_seq_),
        expected);
  }
  if (e.prev != last_hash_) {
    return FailLine(StrCat("hash chain broken: prev does not match the hash of record ", last_seq_),
                    expected);
  }
  for (const Anchor& a : anchors_) {
    if (a.seq == e.seq && a.hash != e.hash) {
      return FailLine(StrCat("record ", e.seq, " does not match the checkpoint in ", a.source,
                             ": the trail was rewritten after that checkpoint was taken"),
                      last_checkpoint_seq_ + 1);
    }
  }
  last_seq_ = e.seq;
  last_hash_ = e.hash;
  last_ = Last::kRecord;
  ++records_;
  ++segment_records_;
  if (e.is_event) {
    const common::Json* event = e.record.Find("event");
    const common::Json* count = e.record.Find("count");
    if (event->as_string() == "records_dropped") {
      Warn(StrCat("record ", e.seq, ": the writer's queue was full and ", count->as_int(),
                  " records were dropped (overflow policy drop_and_count)"));
    }
  }
  return true;
}

bool ChainChecker::OnCheckpoint(const Checkpoint& cp) {
  uint64_t sealed_from = last_checkpoint_seq_ + 1;
  if (cp.chain_id != chain_.chain_id) {
    return FailLine(StrCat("checkpoint at record ", cp.seq, " belongs to another chain (",
                           Short(cp.chain_id), "...)"),
                    sealed_from);
  }
  if (cp.key_id != chain_.key_id) {
    return FailLine(StrCat("checkpoint at record ", cp.seq, " was signed by key ", cp.key_id,
                           ", not this trail's key ", chain_.key_id),
                    sealed_from);
  }
  if (!key_.Verify(CheckpointMessage(cp), cp.sig_hex)) {
    return FailLine(StrCat("signature of checkpoint at record ", cp.seq, " does not verify"),
                    sealed_from);
  }
  if (cp.seq > last_seq_) {
    return FailLine(StrCat("records missing: the checkpoint covers record ", cp.seq,
                           " but the trail here ends at record ", last_seq_),
                    last_seq_ + 1);
  }
  if (cp.seq < last_seq_) {
    return FailLine(StrCat("the checkpoint at record ", cp.seq, " comes after record ", last_seq_,
                           ": records were inserted after record ", cp.seq),
                    cp.seq + 1);
  }
  if (cp.hash != last_hash_) {
    return FailLine(
        StrCat("checkpoint at record ", cp.seq,
               " does not match the trail: the signed hash differs from record ", cp.seq,
               "'s, so records after ", sealed_from - 1, " were rewritten (hashes recomputed)"),
        sealed_from);
  }
  if (last_ == Last::kCheckpoint && last_reason_ == CheckpointReason::kRoll) {
    return FailLine(StrCat("a checkpoint follows the roll checkpoint at record ", last_seq_,
                           ", which must end its segment"),
                    last_seq_ + 1);
  }
  bool after_close = last_ == Last::kCheckpoint && last_reason_ == CheckpointReason::kClose;
  if (cp.reason == CheckpointReason::kOpen) {
    if (last_ == Last::kSegmentStart && index_ > 1) {
      Warn(StrCat("the writer stopped after its roll checkpoint at record ", last_seq_,
                  " (a crash while starting segment ", name_, ")"));
    } else if (last_ == Last::kRecord || (last_ == Last::kCheckpoint && !after_close)) {
      if (last_seq_ >= sealed_from) {
        Warn(StrCat("the writer stopped after record ", last_seq_,
                    " without a closing checkpoint (a crash); its next start sealed records ",
                    sealed_from, "..", last_seq_, " (", name_, " line ", line_no_, ")"));
      } else {
        Warn(StrCat("the writer stopped after record ", last_seq_,
                    " without a closing checkpoint (a crash; ", name_, " line ", line_no_, ")"));
      }
    }
  } else {
    if (last_ == Last::kTrailStart) {
      return FailLine("the trail does not begin with the writer's signed open checkpoint", 1);
    }
    if (after_close) {
      return FailLine(StrCat("a ", CheckpointReasonName(cp.reason),
                             " checkpoint follows the closing checkpoint at record ", last_seq_,
                             " without an open checkpoint"),
                      last_seq_ + 1);
    }
  }
  last_ = Last::kCheckpoint;
  last_reason_ = cp.reason;
  last_checkpoint_seq_ = cp.seq;
  seen_checkpoint_ = true;
  ++checkpoints_;
  return true;
}

bool ChainChecker::Finish() {
  if (!any_segment_)
    return Fail("no segment holds a complete header: the trail was never written", 0);
  if (!seen_checkpoint_) {
    return Fail(
        "the trail holds no checkpoint: it does not begin with the writer's open checkpoint", 1);
  }
  for (const Anchor& a : anchors_) {
    if (a.seq > last_seq_) {
      return Fail(StrCat("records missing after record ", last_seq_, ": the last checkpoint (",
                         a.source, ") covers record ", a.seq),
                  last_seq_ + 1);
    }
    if (a.seq == 0 && a.hash != chain_.chain_id) {
      return Fail(StrCat("the checkpoint in ", a.source, " does not match the chain's start"), 1);
    }
  }
  return true;
}

}  // namespace aegis::audit
