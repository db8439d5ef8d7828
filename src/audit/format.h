// The on-disk format of the audit trail (docs/audit.md): the lines of a segment file, the chain
// file and how each line is hashed and signed. Pure functions of bytes, no I/O, so the writer, the
// verifier, `Show` and the fuzzer share one definition.
//
// A segment file `NNNNNN.log` is a sequence of lines, each one JSON object ending in '\n':
//   {"segment":{...}}      the first line: which chain, which segment, where it starts
//   {"seq":N,"prev":...,"hash":...}   a record, hash-chained to the one before
//   {"checkpoint":{...,"sig":...}}    an Ed25519-signed statement "record N has hash H"
#ifndef AEGIS_AUDIT_FORMAT_H_
#define AEGIS_AUDIT_FORMAT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "audit/record.h"
#include "common/json.h"
#include "common/status.h"

namespace aegis::audit {

inline constexpr int kFormatVersion = 1;
// No line of a valid trail is longer than this ('\n' excluded); the writer keeps records under it.
inline constexpr size_t kMaxLineBytes = 4 << 20;
// Redacted parameters larger than this (or not a JSON object) are replaced by a marker object.
inline constexpr size_t kMaxParamsBytes = 1 << 20;
// Each string field of a record is cut at this many bytes (a UTF-8 boundary) and marked.
inline constexpr size_t kMaxFieldBytes = 8 << 10;
// At most this many reason codes are kept per record.
inline constexpr size_t kMaxReasons = 64;

inline constexpr std::string_view kChainFileName = "chain.json";
inline constexpr std::string_view kHeadFileName = "head.json";
inline constexpr std::string_view kKeyFileName = "audit_key.pem";
inline constexpr std::string_view kLockFileName = "LOCK";

// "000001.log" for 1. Indexes start at 1.
std::string SegmentFileName(uint64_t index);
// The index of a segment file name (six or more digits, then ".log"), or nullopt.
std::optional<uint64_t> ParseSegmentFileName(std::string_view name);

// Lowercase hex of bytes, and the check that a string is exactly `n` lowercase hex digits.
std::string HexEncode(std::string_view bytes);
bool IsLowerHex(std::string_view s, size_t n);

// chain.json: who this trail is. `chain_id` (64 hex) is also the `prev` of record 1; the public
// key (64 hex, raw Ed25519) verifies every checkpoint; `key_id` is the first 16 hex digits of the
// SHA-256 of the raw public key.
struct ChainInfo {
  std::string chain_id;
  std::string public_key_hex;
  std::string key_id;
  int64_t created_unix_nanos = 0;
};
std::string EncodeChainInfo(const ChainInfo& chain);  // one line, '\n' at the end
common::StatusOr<ChainInfo> ParseChainInfo(std::string_view text);
std::string KeyIdOf(std::string_view public_key_hex);

// The first line of every segment: not hashed (everything in it is checked against the chain).
struct SegmentHeader {
  std::string chain_id;
  uint64_t index = 0;
  uint64_t first_seq = 0;  // the seq of the segment's first record
  std::string prev;        // the hash of the record before it (the chain id for record 1)
};
std::string EncodeSegmentHeader(const SegmentHeader& header);  // '\n' at the end

enum class CheckpointReason { kOpen, kInterval, kRoll, kClose };
std::string_view CheckpointReasonName(CheckpointReason reason);

// A signed statement that record `seq` of chain `chain_id` has hash `hash` (seq 0: the chain id).
struct Checkpoint {
  std::string chain_id;
  uint64_t seq = 0;
  std::string hash;
  int64_t time_unix_nanos = 0;
  CheckpointReason reason = CheckpointReason::kInterval;
  std::string key_id;
  std::string sig_hex;  // Ed25519 over CheckpointMessage, 128 hex
};
// The signed bytes: {"chain":C,"hash":H,"key_id":K,"reason":R,"seq":N,"time":T} (canonical JSON:
// sorted keys, no whitespace; every value is hex, a lowercase word or an integer).
std::string CheckpointMessage(const Checkpoint& cp);
// {"checkpoint":{"chain":C,"hash":H,"key_id":K,"reason":R,"seq":N,"time":T,"sig":S}} and '\n'.
std::string EncodeCheckpoint(const Checkpoint& cp);

// Appends the line of a decision record (with '\n') to `out` and returns its hash:
//   hash = SHA-256 of the line's bytes up to, not including, `,"hash":"`
// `params_json` must already be a JSON object on one line (see NormalizeParams).
std::string AppendRecordLine(const Record& r, std::string_view params_json, uint64_t seq,
                             std::string_view prev, std::string& out);
// An event record: the writer's own note in the chain, e.g. {"event":"records_dropped","count":N}.
std::string AppendEventLine(std::string_view event, uint64_t count, int64_t time_unix_nanos,
                            uint64_t seq, std::string_view prev, std::string& out);
// The caller's redacted parameters as one canonical line, or a marker object saying why they
// could not be kept: {"_aegis_params_omitted":"..."}.
std::string NormalizeParams(std::string_view params_redacted_json);

// One parsed line (without its '\n').
struct Entry {
  enum class Kind { kSegmentHeader, kRecord, kCheckpoint };
  Kind kind = Kind::kRecord;
  SegmentHeader header;   // kSegmentHeader
  Checkpoint checkpoint;  // kCheckpoint
  // kRecord:
  uint64_t seq = 0;
  std::string prev;
  std::string hash;
  int64_t time_unix_nanos = 0;
  bool hash_matches = false;  // the line's bytes hash to `hash`
  bool is_event = false;
  common::Json record;  // the whole record object
};
// Parses a line strictly: well-formed JSON (no duplicate keys, valid UTF-8), exactly the members
// of one of the three kinds with the right types. Returns InvalidArgument saying what is wrong.
common::StatusOr<Entry> ParseEntry(std::string_view line);

}  // namespace aegis::audit

#endif  // AEGIS_AUDIT_FORMAT_H_
