// CompiledPolicy: the immutable result of compiling a bundle. The engine reads it on every call
// from many threads; nothing in it changes after Compile returns.
#ifndef AEGIS_POLICY_POLICY_H_
#define AEGIS_POLICY_POLICY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/json.h"
#include "expr/expr.h"
#include "policy/diagnostic.h"
#include "policy/pattern.h"

namespace aegis::policy {

// Ordered by strength: a stronger effect wins when several rules match.
enum class Effect : uint8_t { kAllow = 0, kSanitize = 1, kApprovalNeeded = 2, kDeny = 3 };
std::string_view EffectName(Effect e);
std::optional<Effect> ParseEffect(std::string_view s);

enum class Mode : uint8_t { kEnforce, kShadow };
std::string_view ModeName(Mode m);

// Money is integer micro-dollars everywhere; never floating point.
using Micros = int64_t;

// The window a budget counts spend over: a UTC day, a UTC calendar month, or a fixed duration
// (windows of that length since the Unix epoch).
enum class BudgetWindow : uint8_t { kDay, kMonth, kDuration };

// One spending ceiling: at most `usd` within each window. Written as max_daily_budget_usd,
// max_monthly_budget_usd or an entry of `budgets:`.
struct BudgetLimit {
  Micros usd = 0;
  BudgetWindow window = BudgetWindow::kDay;
  int64_t duration_nanos = 0;  // kDuration only: 1s to 366d
  Location location;           // where it is written
};

// Rate limit and budgets, as an agent, a tool (per agent using it) or a tenant declares them.
// Enforced by the limits stage when the engine has a limit store.
struct LimitSpec {
  std::optional<double> max_requests_per_second;
  std::optional<int64_t> burst;  // default 1
  // Each budget has its own counter; no two of one spec have the same window.
  std::vector<BudgetLimit> budgets;

  bool empty() const { return !max_requests_per_second && budgets.empty(); }
};

// cost_usd written as an expression instead of a number: evaluated per call with the variables
// rules see (cost_usd excepted), giving dollars as an int, uint or double.
struct CostExpression {
  std::string source;
  std::unique_ptr<expr::Program> program;  // never null
  Location location;
};

struct Action {
  std::string name;
  std::string method;       // upper case; empty = any
  PathPattern path;         // empty pattern = not mappable from HTTP
  // The action's cost_usd: a constant, or an expression (at most one of the two is set).
  std::optional<Micros> cost;
  std::shared_ptr<const CostExpression> cost_expr;

  bool has_cost() const { return cost || cost_expr != nullptr; }
};

struct Tool {
  std::string name;
  std::vector<HostPattern> hosts;
  std::vector<Action> actions;     // empty: any action name is accepted
  // Default cost of its actions: a constant or an expression (at most one of the two is set).
  std::optional<Micros> cost;
  std::shared_ptr<const CostExpression> cost_expr;
  LimitSpec limits;                // per agent×tool
  Location location;

  const Action* FindAction(std::string_view name) const;
};

struct AgentProfile {
  std::string name;
  std::vector<NamePattern> tools;           // tool scope; empty = no tools
  std::vector<HostPattern> allowed_domains;  // empty = no host restriction
  bool has_domain_scope = false;
  LimitSpec limits;
  Location location;

  bool MayUseTool(std::string_view tool) const;
  // Whether `host` is within the agent's domain scope (always, when it has none).
  bool MayReachHost(std::string_view host) const;
  // Whether some host of `tool` is within the agent's domain scope (always, when the agent has
  // no domain scope or the tool declares no hosts).
  bool MayReachTool(const Tool& tool) const;
};

// A match on one dimension: any, or a list of exact names and globs.
struct Matcher {
  bool any = true;
  std::vector<NamePattern> patterns;

  bool Matches(std::string_view name) const;
};

struct RedactSpec {
  std::vector<std::string> fields;     // JSON paths: params.patient.ssn, params.records[*].dob
  std::vector<std::string> detectors;  // ssn, dob, email, phone, card, iban, ip, secret, jwt
  std::string style;                   // mask (default), partial, hash
};

struct ApprovalSpec {
  int quorum = 1;
  int64_t ttl_seconds = 3600;
  std::vector<std::string> notify;
};

struct Rule {
  std::string id;
  std::string tenant;  // from its file's metadata.tenant; empty = every tenant
  Matcher tenants, agents, tools, actions;
  std::string condition_source;               // empty: unconditional
  std::unique_ptr<expr::Program> condition;   // null when unconditional
  Effect effect = Effect::kDeny;
  std::string message;
  RedactSpec redact;
  ApprovalSpec approval;
  // Allow and sanitize rules only: limits on the calls this rule decides, per agent.
  LimitSpec limits;
  Location location;
  int order = 0;  // position in the bundle, for stable precedence among equals
};

struct PolicyTest {
  std::string name;
  common::Json input;  // call JSON, as the decide API takes it
  Effect expect_decision = Effect::kDeny;
  std::string expect_rule;    // empty: not checked
  std::string expect_reason;  // reason code; empty: not checked
  Location location;
};

// Everything that applies within one tenant scope ("" = the bundle-wide scope).
struct Scope {
  std::string tenant;
  std::optional<Effect> default_effect;
  std::optional<Mode> mode;
  std::map<std::string, Tool, std::less<>> tools;
  std::map<std::string, AgentProfile, std::less<>> agents;
  LimitSpec limits;  // a tenant's own: every call of the tenant counts against it
};

// The rule index: for a tool and action, the rules that could match, strongest effect first.
// Rules are bucketed at compile time by expanding their tool and action matchers against the
// catalog, so a call looks at the rules for its own tool and action only.
class RuleIndex {
 public:
  // Candidate rules of one scope for (tool, action), ordered by effect (strongest first), then
  // bundle order. Never null: an empty list when none.
  const std::vector<const Rule*>& Candidates(std::string_view tenant, std::string_view tool,
                                             std::string_view action) const;

  void Add(std::string_view tenant, std::string_view tool, std::string_view action,
           const Rule* rule);
  void Finish();  // sorts buckets; call once after the last Add

 private:
  std::string Key(std::string_view tenant, std::string_view tool, std::string_view action) const;
  std::unordered_map<std::string, std::vector<const Rule*>> buckets_;
  std::vector<const Rule*> empty_;
};

class CompiledPolicy {
 public:
  std::string name;     // bundle name (first metadata.name seen, else the directory name)
  std::string version;  // content hash of the canonical bundle
  std::vector<std::unique_ptr<Rule>> rules;
  std::vector<PolicyTest> tests;
  std::map<std::string, Scope, std::less<>> scopes;  // "" and each tenant
  RuleIndex index;
  expr::Environment env;  // variables conditions were compiled against

  // Slots of the environment's variables, fixed at compile time.
  struct Slots {
    int agent, tenant, tool, action, params, request, identity, cost_usd, now;
  } slots{};

  // The scope for `tenant`, or nullptr when the bundle says nothing about that tenant.
  const Scope* FindScope(std::string_view tenant) const;
  const Tool* FindTool(std::string_view tenant, std::string_view tool) const;
  const AgentProfile* FindAgent(std::string_view tenant, std::string_view agent) const;
  Effect DefaultEffect(std::string_view tenant) const;
  Mode ModeFor(std::string_view tenant) const;
  size_t RuleCount() const { return rules.size(); }
};

}  // namespace aegis::policy

#endif  // AEGIS_POLICY_POLICY_H_
