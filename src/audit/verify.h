// Offline verification of an audit trail (`aegis audit verify DIR`): the whole chain, every
// checkpoint signature, the segment sequence and the end of the trail, streamed in bounded memory.
// What it proves and what it cannot: docs/audit.md, "Guarantees".
#ifndef AEGIS_AUDIT_VERIFY_H_
#define AEGIS_AUDIT_VERIFY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "audit/trail_source.h"

namespace aegis::audit {

struct VerifyReport {
  bool ok = false;
  uint64_t records = 0, checkpoints = 0, segments = 0;
  // Empty when ok; else exactly what is wrong and where, e.g. "segment 000003.log line 1742
  // (record 51742): hash chain broken: prev does not match the hash of record 51741".
  std::string error;
  // When not ok: the 1-based sequence number at which the trail stops being trustworthy (records
  // before it verified, up to the last good checkpoint when a checkpoint failed); 0 when the
  // problem is not about a record (a missing chain.json, a bad key pin).
  uint64_t first_bad_record = 0;

  // Also filled when !ok, as far as verification got:
  std::string chain_id;
  std::string public_key_hex;  // the key that signs this trail's checkpoints; pin it
  std::string key_id;
  uint64_t last_record = 0;       // the last record's seq
  uint64_t last_checkpoint = 0;   // the seq the last valid checkpoint covers
  uint64_t unsealed_records = 0;  // records after the last checkpoint (crash, or writer live)
  bool closed_cleanly = false;    // the trail ends with a closing checkpoint
  // Things that are not tampering but that a reader should know: a torn last line (crash
  // mid-write), a writer that stopped without a closing checkpoint, records dropped by the
  // overflow policy. Capped at 100 entries; the last one then says how many were left out.
  std::vector<std::string> warnings;
};

struct VerifyOptions {
  // When set, the trail's key must have this key id (chain.json could have been replaced along
  // with every signature): the value `aegis audit verify` printed earlier, or from config.
  std::string expected_key_id = {};
  // A checkpoint line kept outside the directory (shipped to a SIEM, printed by an earlier verify):
  // the trail must contain the record it covers, with that hash. This is what detects a trail
  // cut back to an earlier checkpoint by someone who also rewrote head.json.
  std::string anchor_checkpoint = {};
};

// Verifies the trail in `dir`. Never throws, never modifies the directory; safe to run while a
// writer appends (the live tail is reported as unsealed, a half-written line as torn).
VerifyReport Verify(const std::string& dir);
VerifyReport Verify(const std::string& dir, const VerifyOptions& options);
// The same over any source (tests, the fuzzer).
VerifyReport VerifyTrail(TrailSource& source, const VerifyOptions& options);

}  // namespace aegis::audit

#endif  // AEGIS_AUDIT_VERIFY_H_
