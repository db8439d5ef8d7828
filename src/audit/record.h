// Record: what the audit trail keeps of one decision. The caller (the engine's recording stage)
// fills it; it never holds raw PII: parameters arrive already redacted, with a digest of the raw
// ones so a record can be matched to a call without keeping the call.
#ifndef AEGIS_AUDIT_RECORD_H_
#define AEGIS_AUDIT_RECORD_H_

#include <cstdint>
#include <string>
#include <vector>

namespace aegis::audit {

struct Record {
  std::string decision_id;
  std::string tenant;
  std::string agent;
  std::string tool;
  std::string action;
  std::string decision;   // allow | deny | sanitize | approval_needed
  std::string effective;  // what was enforced (shadow mode: allow)
  std::string policy_version;
  std::string front_door;
  std::vector<std::string> reasons;  // reason codes, the deciding one first
  std::string rule;                  // the deciding rule's id, or empty
  int64_t cost_micros = 0;
  int64_t time_unix_nanos = 0;
  std::string params_redacted_json;  // a JSON object
  std::string params_sha256;         // SHA-256 hex of the raw parameters' canonical JSON
  std::string approval_id;
  std::string trace_id;
};

}  // namespace aegis::audit

#endif  // AEGIS_AUDIT_RECORD_H_
