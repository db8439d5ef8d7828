#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "common/strings.h"
#include "engine/call_digest.h"
#include "expr/expr.h"

namespace aegis::engine {

using policy::Effect;
using policy::Rule;

namespace {

// UUIDv7: 48 bits of Unix milliseconds, then random bits, so ids sort by time. The generator
// is per thread and seeded from the OS; decision ids are identifiers, not secrets.
void NewDecisionId(std::array<char, 36>& out, int64_t now_unix_nanos) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto ms = static_cast<uint64_t>(now_unix_nanos / 1'000'000);
  uint64_t hi = (ms << 16) | 0x7000 | (rng() & 0x0FFF);
  uint64_t lo = (rng() & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  static constexpr char kHex[] = "0123456789abcdef";
  int pos = 0;
  auto put = [&](uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) out[pos++] = kHex[(v >> (4 * i)) & 15];
  };
  put(hi >> 32, 8);
  out[pos++] = '-';
  put((hi >> 16) & 0xFFFF, 4);
  out[pos++] = '-';
  put(hi & 0xFFFF, 4);
  out[pos++] = '-';
  put(lo >> 48, 4);
  out[pos++] = '-';
  put(lo & 0xFFFFFFFFFFFFULL, 12);
}

struct PerThread {
  expr::Activation activation;
  expr::EvalScratch scratch;
};

// The action of `tool` whose method and path pattern match the call's request, or null.
const policy::Action* MatchAction(const policy::Tool& tool, const CallContext& call) {
  std::string_view method = call.method();
  std::string_view path = call.path();
  if (path.empty()) return nullptr;
  for (const auto& a : tool.actions) {
    if (a.path.empty() || (!a.method.empty() && a.method != method)) continue;
    if (a.path.Matches(path)) return &a;
  }
  return nullptr;
}

// Stage 3: fills tool and action from the catalog when the call did not name them. Among the
// tools serving the request's host, the first (tenant's before bundle-wide, then by name) with
// an action matching method and path wins; a host's tool without actions is the fallback.
// Returns a refusal reason, or an empty view when resolved.
std::string_view Resolve(const policy::CompiledPolicy& p, const CallContext& call,
                         Decision& d, const policy::Tool*& tool, const policy::Action*& action) {
  if (d.tool.empty()) {
    std::string_view host = call.host();
    const policy::Tool* catch_all = nullptr;
    for (const policy::Scope* s : {p.FindScope(d.tenant), p.FindScope("")}) {
      if (!s || tool) continue;
      for (const auto& [name, t] : s->tools) {
        if (std::none_of(t.hosts.begin(), t.hosts.end(),
                         [&](const policy::HostPattern& h) { return h.Matches(host); })) {
          continue;
        }
        if (t.actions.empty()) {
          if (!catch_all) catch_all = &t;
          continue;
        }
        if (const policy::Action* a = d.action.empty() ? MatchAction(t, call)
                                                       : t.FindAction(d.action)) {
          tool = &t;
          action = a;
          break;
        }
      }
    }
    if (!tool) tool = catch_all;
    if (!tool) return reason::kUnresolved;
    d.tool = tool->name;
    if (action) d.action = action->name;
    return {};
  }
  tool = p.FindTool(d.tenant, d.tool);
  if (!tool) return reason::kUnknownTool;
  if (tool->actions.empty()) return {};
  if (!d.action.empty()) {
    action = tool->FindAction(d.action);
    return action ? std::string_view() : reason::kUnknownAction;
  }
  action = MatchAction(*tool, call);
  if (action) {
    d.action = action->name;
    return {};
  }
  return call.host().empty() ? reason::kUnknownAction : reason::kUnresolved;
}

// Stage 4: agent known, tool in the agent's scope, host within the tool and the agent's domains.
std::string_view CheckScope(const policy::CompiledPolicy& p, const CallContext& call,
                            const Decision& d, const policy::Tool& tool) {
  const policy::AgentProfile* agent = p.FindAgent(d.tenant, d.agent);
  if (!agent) return reason::kUnknownAgent;
  if (!agent->MayUseTool(tool.name)) return reason::kToolOutOfScope;
  std::string_view host = call.host();
  if (!host.empty()) {
    if (!tool.hosts.empty() &&
        std::none_of(tool.hosts.begin(), tool.hosts.end(),
                     [&](const policy::HostPattern& h) { return h.Matches(host); })) {
      return reason::kHostNotInTool;
    }
    if (!agent->MayReachHost(host)) return reason::kDomainOutOfScope;
  } else if (!agent->MayReachTool(tool)) {
    // A call without a request (an SDK call naming the tool) still reaches the tool's hosts:
    // the agent must be allowed at least one of them.
    return reason::kDomainOutOfScope;
  }
  return {};
}

// The limits store's window for a policy budget.
limits::Window BudgetWindowOf(const policy::BudgetLimit& b) {
  switch (b.window) {
    case policy::BudgetWindow::kDay:
      return {limits::Window::Kind::kDay, 0};
    case policy::BudgetWindow::kMonth:
      return {limits::Window::Kind::kMonth, 0};
    case policy::BudgetWindow::kDuration:
      return {limits::Window::Kind::kDuration, b.duration_nanos};
  }
  return {};
}

// The largest cost an expression may give: $1,000,000.
constexpr int64_t kMaxExpressionCostUsd = 1'000'000;

std::string_view KindName(expr::Value::Kind kind) {
  switch (kind) {
    case expr::Value::Kind::kNull:
      return "null";
    case expr::Value::Kind::kBool:
      return "bool";
    case expr::Value::Kind::kInt:
      return "int";
    case expr::Value::Kind::kUint:
      return "uint";
    case expr::Value::Kind::kDouble:
      return "double";
    case expr::Value::Kind::kString:
      return "string";
    case expr::Value::Kind::kBytes:
      return "bytes";
    case expr::Value::Kind::kList:
      return "list";
    case expr::Value::Kind::kMap:
      return "map";
    case expr::Value::Kind::kTimestamp:
      return "timestamp";
    case expr::Value::Kind::kDuration:
      return "duration";
    case expr::Value::Kind::kType:
      return "type";
    case expr::Value::Kind::kError:
      return "error";
  }
  return "value";
}

// Converts a cost expression's result (dollars) to micro-dollars, rounding to the nearest.
// Returns false with `error` set when it is an error, not a number, not finite, negative or
// above kMaxExpressionCostUsd; `out` is then unchanged.
bool CostFromValue(const expr::Value& v, policy::Micros& out, std::string& error) {
  std::string value;
  switch (v.kind()) {
    case expr::Value::Kind::kError:
      error = common::StrCat("cost_usd expression failed: ", v.string_value());
      return false;
    case expr::Value::Kind::kInt:
      if (v.int_value() >= 0 && v.int_value() <= kMaxExpressionCostUsd) {
        out = v.int_value() * 1'000'000;
        return true;
      }
      value = std::to_string(v.int_value());
      break;
    case expr::Value::Kind::kUint:
      if (v.uint_value() <= static_cast<uint64_t>(kMaxExpressionCostUsd)) {
        out = static_cast<policy::Micros>(v.uint_value()) * 1'000'000;
        return true;
      }
      value = std::to_string(v.uint_value());
      break;
    case expr::Value::Kind::kDouble: {
      double d = v.double_value();
      if (d >= 0 && d <= static_cast<double>(kMaxExpressionCostUsd)) {  // false for NaN
        out = static_cast<policy::Micros>(std::llround(d * 1e6));
        return true;
      }
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", d);
      value = buf;
      break;
    }
    default:
      error = common::StrCat("cost_usd expression gave a ", KindName(v.kind()),
                             ", not a number of dollars");
      return false;
  }
  error = common::StrCat("cost_usd expression gave ", value,
                         "; a cost must be a finite number of dollars from 0 to ",
                         kMaxExpressionCostUsd);
  return false;
}

// Stage 5, rules: candidates come from the index, strongest effect first, bundle-wide rules and
// the tenant's own. The first match of the strongest effect decides; sanitize rules of equal
// strength all apply their redactions.
void ApplyRules(const policy::CompiledPolicy& p, const policy::Tool& tool,
                const expr::Activation& act, expr::EvalScratch& scratch, DecideTrace* trace,
                Decision& d) {
  std::string_view action_key = tool.actions.empty() ? std::string_view("*") : d.action;
  const Rule* winner = nullptr;
  std::string winner_error;
  auto consider = [&](const std::vector<const Rule*>& candidates) {
    for (const Rule* r : candidates) {
      // Each list is ordered by effect, then bundle order, so once a rule cannot beat the
      // winner (weaker, or equally strong but later) no rule after it in this list can.
      // Sanitize rules of the winning strength still run: their redactions all apply.
      if (!trace && winner &&
          (r->effect < winner->effect ||
           (r->effect == winner->effect && r->effect != Effect::kSanitize &&
            r->order > winner->order))) {
        return;
      }
      if (!r->tenants.Matches(d.tenant) || !r->agents.Matches(d.agent) ||
          !r->actions.Matches(d.action)) {
        continue;
      }
      bool matched = true;
      std::string error;
      if (r->condition) {
        expr::Value v = r->condition->Evaluate(act, scratch);
        if (v.kind() == expr::Value::Kind::kBool) {
          matched = v.bool_value();
        } else {
          error =
              v.is_error() ? std::string(v.string_value()) : "condition did not evaluate to a bool";
          // Errors fail safe: they count as a match for deny and approval_needed rules and
          // as no match for allow and sanitize rules.
          matched = r->effect == Effect::kDeny || r->effect == Effect::kApprovalNeeded;
          if (!matched) d.reasons.push_back({reason::kConditionError, r, error});
        }
      }
      if (!matched) continue;
      if (trace) trace->matched.push_back(r);
      if (!winner || r->effect > winner->effect ||
          (r->effect == winner->effect && r->order < winner->order)) {
        if (!winner || r->effect > winner->effect) {
          d.redact = {};
          d.sanitize_rules.clear();
        }
        winner = r;
        winner_error = error;
      }
      if (r->effect == Effect::kSanitize && winner->effect == Effect::kSanitize) {
        d.sanitize_rules.push_back(r);
        for (const auto& f : r->redact.fields) d.redact.fields.push_back(f);
        for (const auto& det : r->redact.detectors) d.redact.detectors.push_back(det);
        if (d.redact.style.empty()) d.redact.style = r->redact.style;
      }
    }
  };
  consider(p.index.Candidates("", d.tool, action_key));
  if (!d.tenant.empty()) consider(p.index.Candidates(d.tenant, d.tool, action_key));

  if (winner) {
    d.outcome = winner->effect;
    d.deciding_rule = winner;
    Reason r{winner_error.empty() ? reason::kRule : reason::kConditionError, winner, winner_error};
    d.reasons.insert(d.reasons.begin(), std::move(r));
  } else {
    d.outcome = p.DefaultEffect(d.tenant);
    d.reasons.insert(d.reasons.begin(), Reason{reason::kDefault, nullptr, {}});
  }
}

}  // namespace

Engine::Engine(std::shared_ptr<const policy::CompiledPolicy> policy, limits::LimitStore* limits,
               OverrideRedeemer* overrides, const std::string& redaction_key)
    : policy_(std::move(policy)), limits_(limits), overrides_(overrides) {
  // One redactor per sanitize rule, compiled once per policy version.
  for (const auto& r : policy_->rules) {
    if (r->effect != Effect::kSanitize) continue;
    auto style = redact::ParseStyle(r->redact.style);
    auto redactor = redact::Redactor::Create(r->redact.detectors,
                                             style.value_or(redact::Style::kMask), redaction_key);
    if (redactor.ok()) {
      redactors_.emplace(r.get(), std::move(*redactor));
    } else {
      redactor_errors_.emplace(r.get(), redactor.status().message());
    }
  }
}

void Engine::Sanitize(const CallContext& call, Decision& d) const {
  common::Json params = call.params;
  std::vector<std::string> paths;
  for (const policy::Rule* r : d.sanitize_rules) {
    auto it = redactors_.find(r);
    if (it == redactors_.end()) {
      auto error = redactor_errors_.find(r);
      d.outcome = Effect::kDeny;
      d.reasons.insert(d.reasons.begin(),
                       Reason{reason::kRedactionError, r,
                              error == redactor_errors_.end() ? "no redactor" : error->second});
      d.sanitized_params.reset();
      return;
    }
    auto result = it->second.RedactJson(params, r->redact.fields);
    for (auto& p : result.paths) {
      if (std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(std::move(p));
    }
  }
  d.sanitized_params = std::move(params);
  d.redacted_paths = std::move(paths);
}

void Engine::ApplyLimits(const policy::CompiledPolicy& p, const policy::Tool* tool,
                         const CallContext& call, Decision& d) const {
  const policy::AgentProfile* agent = p.FindAgent(d.tenant, d.agent);
  if (!agent) return;
  limits::Charge charge;
  auto add = [&](const policy::LimitSpec& spec, const std::string& key) {
    if (spec.max_requests_per_second) {
      charge.rates.push_back({key, {*spec.max_requests_per_second, spec.burst.value_or(1)}});
    }
    for (const policy::BudgetLimit& b : spec.budgets) {
      charge.budgets.push_back({key, {b.usd, BudgetWindowOf(b)}});
    }
  };
  // Keys are built only for limits that exist: most calls have one or two.
  if (!agent->limits.empty()) add(agent->limits, common::StrCat("agent/", d.tenant, "/", d.agent));
  if (tool && !tool->limits.empty()) {
    add(tool->limits, common::StrCat("agent_tool/", d.tenant, "/", d.agent, "/", d.tool));
  }
  const policy::Scope* scope = d.tenant.empty() ? nullptr : p.FindScope(d.tenant);
  if (scope && !scope->limits.empty()) add(scope->limits, common::StrCat("tenant/", d.tenant));
  if (d.deciding_rule && !d.deciding_rule->limits.empty()) {
    add(d.deciding_rule->limits,
        common::StrCat("rule/", d.tenant, "/", d.deciding_rule->id, "/", d.agent));
  }
  if (charge.rates.empty() && charge.budgets.empty()) return;
  charge.cost = d.cost;
  charge.reservation_id = std::string(d.id_view());
  charge.owner = d.tenant;
  charge.now_unix_nanos = call.now_unix_nanos;
  limits::Outcome o = limits_->Admit(charge);
  d.limits_fail_open = o.fail_open;
  if (o.result == limits::Outcome::Result::kAdmitted) {
    d.reserved = !charge.budgets.empty();
    return;
  }
  d.outcome = Effect::kDeny;
  d.deciding_rule = nullptr;
  d.redact = {};
  d.sanitize_rules.clear();
  switch (o.result) {
    case limits::Outcome::Result::kRateLimited:
      d.retry_after_nanos = o.retry_after_nanos;
      d.reasons.insert(d.reasons.begin(), Reason{reason::kRateLimited, nullptr, o.key});
      break;
    case limits::Outcome::Result::kBudgetExceeded:
      d.budget_remaining = o.remaining;
      d.budget_resets_unix_nanos = o.window_reset_unix_nanos;
      d.reasons.insert(d.reasons.begin(), Reason{reason::kBudgetExceeded, nullptr, o.key});
      break;
    case limits::Outcome::Result::kUnavailable:
    case limits::Outcome::Result::kAdmitted:
      d.reasons.insert(d.reasons.begin(), Reason{reason::kLimitsUnavailable, nullptr, {}});
      break;
  }
}

bool Engine::Offers(const CallContext& call) const {
  const policy::CompiledPolicy& p = *policy_;
  if (p.ModeFor(call.tenant) == policy::Mode::kShadow) return true;
  Decision d;
  d.tenant = call.tenant;
  d.agent = call.agent;
  d.tool = call.tool;
  d.action = call.action;
  if (call.verified &&
      (call.verified->agent != call.agent || call.verified->tenant != call.tenant)) {
    return false;
  }
  const policy::Tool* tool = nullptr;
  const policy::Action* action = nullptr;
  if (!Resolve(p, call, d, tool, action).empty() || !CheckScope(p, call, d, *tool).empty()) {
    return false;
  }
  std::string_view action_key = tool->actions.empty() ? std::string_view("*") : d.action;
  bool could_pass = p.DefaultEffect(d.tenant) != Effect::kDeny;
  // The bundle-wide rules, then the tenant's, as Decide considers them.
  for (std::string_view tenant : {std::string_view(), std::string_view(d.tenant)}) {
    for (const policy::Rule* r : p.index.Candidates(tenant, d.tool, action_key)) {
      if (!r->tenants.Matches(d.tenant) || !r->agents.Matches(d.agent) ||
          !r->actions.Matches(d.action)) {
        continue;
      }
      if (r->effect == Effect::kDeny && !r->condition) return false;
      if (r->effect != Effect::kDeny) could_pass = true;
    }
    if (d.tenant.empty()) break;
  }
  return could_pass;
}

Decision Engine::Decide(const CallContext& call, DecideTrace* trace) const {
  const policy::CompiledPolicy& p = *policy_;
  Decision d;
  NewDecisionId(d.id, call.now_unix_nanos);
  d.policy = policy_;
  d.tenant = call.tenant;
  d.agent = call.agent;
  d.tool = call.tool;
  d.action = call.action;
  d.mode = p.ModeFor(call.tenant);

  // Stage 2, identify: a front door that verified an agent token fills agent and tenant from
  // it; a call claiming another identity is refused before anything else.
  const policy::Tool* tool = nullptr;
  const policy::Action* action = nullptr;
  std::string_view refusal;
  std::string refusal_detail;
  if (call.verified &&
      (call.verified->agent != call.agent || call.verified->tenant != call.tenant)) {
    refusal = reason::kIdentityMismatch;
    refusal_detail = common::StrCat("the agent token is for agent \"", call.verified->agent,
                                    "\" of tenant \"", call.verified->tenant, "\"");
  } else {
    refusal = Resolve(p, call, d, tool, action);
    if (refusal.empty()) refusal = CheckScope(p, call, d, *tool);
  }

  // The call's cost: the caller's, else the action's, else the tool's. A constant is known
  // now; an expression is evaluated once the call is in scope (below).
  const policy::CostExpression* cost_expr = nullptr;
  if (tool) {
    if (call.cost) {
      d.cost = *call.cost;
    } else if (action && action->has_cost()) {
      if (action->cost_expr) {
        cost_expr = action->cost_expr.get();
      } else {
        d.cost = *action->cost;
      }
    } else if (tool->cost_expr) {
      cost_expr = tool->cost_expr.get();
    } else if (tool->cost) {
      d.cost = *tool->cost;
    }
  }

  if (!refusal.empty()) {
    d.outcome = Effect::kDeny;
    d.reasons.push_back({refusal, nullptr, std::move(refusal_detail)});
  } else {
    // The variables conditions and cost expressions read; cost_usd is filled once known.
    thread_local PerThread per_thread;
    expr::Activation& act = per_thread.activation;
    act.slots.resize(static_cast<size_t>(p.env.size()));
    act.slots[p.slots.agent] = expr::Value::String(d.agent);
    act.slots[p.slots.tenant] = expr::Value::String(d.tenant);
    act.slots[p.slots.tool] = expr::Value::String(d.tool);
    act.slots[p.slots.action] = expr::Value::String(d.action);
    act.slots[p.slots.params] = expr::Value::FromJson(call.params);
    act.slots[p.slots.request] = expr::Value::FromJson(call.request);
    act.slots[p.slots.identity] = expr::Value::FromJson(call.identity);
    act.slots[p.slots.now] = expr::Value::Timestamp(call.now_unix_nanos);
    // A cost expression reads the same variables as the rules except cost_usd (the compiler
    // refuses it there). When it cannot give a cost the call is denied and no rule runs:
    // neither the rules that read cost_usd nor the budgets could be applied (fail closed).
    std::string cost_error;
    if (cost_expr &&
        !CostFromValue(cost_expr->program->Evaluate(act, per_thread.scratch), d.cost, cost_error)) {
      d.outcome = Effect::kDeny;
      d.reasons.push_back({reason::kCostError, nullptr, std::move(cost_error)});
    } else {
      act.slots[p.slots.cost_usd] = expr::Value::Double(static_cast<double>(d.cost) / 1e6);
      ApplyRules(p, *tool, act, per_thread.scratch, trace, d);  // stage 5
    }
  }

  // Stage 6, override: a valid, unused override token bound to exactly this call turns
  // approval_needed into allow, and is consumed. A token with any other outcome is left alone.
  std::string consumed_jti;
  if (d.outcome == Effect::kApprovalNeeded && !call.override_token.empty() && !call.record_only) {
    OverrideRedeemer::Result r;
    if (overrides_) {
      r = overrides_->Redeem(call.override_token,
                             CallDigest(d.tenant, d.agent, d.tool, d.action, call.params),
                             d.tenant, d.agent, call.now_unix_nanos);
    } else {
      r.error = "override tokens are not accepted here";
    }
    if (r.ok) {
      d.outcome = Effect::kAllow;
      d.approval_id = r.approval_id;
      d.reasons.insert(d.reasons.begin(), Reason{reason::kApproved, nullptr, r.approval_id});
      consumed_jti = std::move(r.jti);
    } else {
      d.reasons.push_back({reason::kOverrideInvalid, nullptr, std::move(r.error)});
    }
  }

  // Stage 7, limits: only a call that will happen is counted — allowed or sanitized, enforced.
  // Every limit of the call is checked and charged in one step; a refusal is a deny.
  if (limits_ && d.mode == policy::Mode::kEnforce && !call.record_only &&
      (d.outcome == Effect::kAllow || d.outcome == Effect::kSanitize)) {
    ApplyLimits(p, tool, call, d);
    // Refused by a limit: the approved call did not happen, so its token stays usable.
    if (!consumed_jti.empty() && d.outcome == Effect::kDeny) overrides_->Release(consumed_jti);
  }

  // Stage 8, obligations: sanitize rewrites the parameters with every matching sanitize rule's
  // redaction, for the front door to send instead.
  if (d.outcome == Effect::kSanitize) Sanitize(call, d);

  // Stage 9, mode: in shadow mode the decision stands as recorded but is not enforced.
  if (d.mode == policy::Mode::kShadow) d.reasons.push_back({reason::kShadowMode, nullptr, {}});

  // Stage 10, record: audit, metrics and traces (audit issue).
  return d;
}

}  // namespace aegis::engine
