#include "engine/decision.h"

#include "common/json.h"
#include "common/strings.h"
#include "expr/time_util.h"
#include "policy/compiler.h"

namespace aegis::engine {

using common::AppendJsonString;

bool reason::IsKnownCode(std::string_view code) {
  for (std::string_view known :
       {kRule, kConditionError, kDefault, kUnknownAgent, kUnknownTool, kUnknownAction, kUnresolved,
        kToolOutOfScope, kHostNotInTool, kDomainOutOfScope, kShadowMode, kRateLimited,
        kBudgetExceeded, kLimitsUnavailable, kIdentityMismatch, kApproved, kOverrideInvalid, kRedactionError, kAuditUnavailable, kCostError}) {
    if (code == known) return true;
  }
  return false;
}

namespace {


void AppendStringList(std::string& out, const std::vector<std::string>& list) {
  out.push_back('[');
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) out.push_back(',');
    AppendJsonString(out, list[i]);
  }
  out.push_back(']');
}

}  // namespace

std::string Decision::ToJson() const {
  std::string out;
  out.reserve(512);
  out += "{\"decision_id\":";
  AppendJsonString(out, id_view());
  out += ",\"decision\":";
  AppendJsonString(out, policy::EffectName(outcome));
  out += ",\"effective_decision\":";
  AppendJsonString(out, policy::EffectName(effective()));
  out += ",\"enforced\":";
  out += enforced() ? "true" : "false";
  out += ",\"mode\":";
  AppendJsonString(out, policy::ModeName(mode));
  out += ",\"reasons\":[";
  for (size_t i = 0; i < reasons.size(); ++i) {
    const Reason& r = reasons[i];
    if (i) out.push_back(',');
    out += "{\"code\":";
    AppendJsonString(out, r.code);
    if (r.rule) {
      out += ",\"rule\":";
      AppendJsonString(out, r.rule->id);
      if (!r.rule->message.empty()) {
        out += ",\"message\":";
        AppendJsonString(out, r.rule->message);
      }
    }
    if (!r.detail.empty()) {
      out += ",\"detail\":";
      AppendJsonString(out, r.detail);
    }
    out.push_back('}');
  }
  out += "],\"policy\":";
  AppendJsonString(out, policy ? policy->name : "");
  out += ",\"policy_version\":";
  AppendJsonString(out, policy ? policy->version : "");
  for (auto [key, value] : {std::pair<const char*, const std::string*>{"tenant", &tenant},
                            {"agent", &agent},
                            {"tool", &tool},
                            {"action", &action}}) {
    out += ",\"";
    out += key;
    out += "\":";
    AppendJsonString(out, *value);
  }
  out += ",\"cost_usd\":";
  out += policy::FormatUsdMicros(cost);
  if (outcome == policy::Effect::kSanitize) {
    out += ",\"redact\":{\"fields\":";
    AppendStringList(out, redact.fields);
    out += ",\"detectors\":";
    AppendStringList(out, redact.detectors);
    out += ",\"style\":";
    AppendJsonString(out, redact.style);
    out += "}";
    if (sanitized_params) {
      out += ",\"sanitized_params\":";
      sanitized_params->AppendCanonical(out);
      out += ",\"redacted_paths\":";
      AppendStringList(out, redacted_paths);
    }
  }
  if (reserved) out += ",\"reserved\":true";
  if (limits_fail_open) out += ",\"limits_fail_open\":true";
  if (retry_after_nanos > 0) {
    out += common::StrCat(",\"retry_after_ms\":", (retry_after_nanos + 999'999) / 1'000'000);
  }
  if (budget_resets_unix_nanos > 0) {
    out += ",\"budget\":{\"remaining_usd\":";
    out += policy::FormatUsdMicros(budget_remaining);
    out += ",\"resets_at\":";
    std::string at;
    expr::internal::AppendTimestamp(at, budget_resets_unix_nanos);
    AppendJsonString(out, at);
    out += "}";
  }
  if (outcome == policy::Effect::kApprovalNeeded && deciding_rule) {
    const auto& a = deciding_rule->approval;
    out += ",\"approval\":{";
    if (!approval_id.empty()) {
      out += "\"id\":";
      AppendJsonString(out, approval_id);
      out += ",\"poll\":";
      AppendJsonString(out, common::StrCat("/v1/approvals/", approval_id));
      out += ",";
    }
    out += common::StrCat("\"quorum\":", a.quorum,
                          ",\"ttl_seconds\":", a.ttl_seconds, ",\"notify\":");
    AppendStringList(out, a.notify);
    out += "}";
  }
  out += "}";
  return out;
}

}  // namespace aegis::engine
