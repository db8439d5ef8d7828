#include "policy/policy.h"

#include <algorithm>

#include "common/strings.h"

namespace aegis::policy {

std::string_view EffectName(Effect e) {
  switch (e) {
    case Effect::kAllow:
      return "allow";
    case Effect::kSanitize:
      return "sanitize";
    case Effect::kApprovalNeeded:
      return "approval_needed";
    case Effect::kDeny:
      return "deny";
  }
  return "deny";
}

std::optional<Effect> ParseEffect(std::string_view s) {
  if (s == "allow") return Effect::kAllow;
  if (s == "sanitize") return Effect::kSanitize;
  if (s == "approval_needed") return Effect::kApprovalNeeded;
  if (s == "deny") return Effect::kDeny;
  return std::nullopt;
}

std::string_view ModeName(Mode m) { return m == Mode::kShadow ? "shadow" : "enforce"; }

const Action* Tool::FindAction(std::string_view action) const {
  for (const auto& a : actions) {
    if (a.name == action) return &a;
  }
  return nullptr;
}

bool AgentProfile::MayUseTool(std::string_view tool) const {
  return std::any_of(tools.begin(), tools.end(),
                     [&](const NamePattern& p) { return p.Matches(tool); });
}

bool AgentProfile::MayReachHost(std::string_view host) const {
  return !has_domain_scope ||
         std::any_of(allowed_domains.begin(), allowed_domains.end(),
                     [&](const HostPattern& d) { return d.Matches(host); });
}

bool AgentProfile::MayReachTool(const Tool& tool) const {
  return !has_domain_scope || tool.hosts.empty() ||
         std::any_of(tool.hosts.begin(), tool.hosts.end(),
                     [&](const HostPattern& h) { return MayReachHost(h.text()); });
}

bool Matcher::Matches(std::string_view name) const {
  if (any) return true;
  for (const auto& p : patterns) {
    if (p.Matches(name)) return true;
  }
  return false;
}

std::string RuleIndex::Key(std::string_view tenant, std::string_view tool,
                           std::string_view action) const {
  return common::StrCat(tenant, '\x1f', tool, '\x1f', action);
}

void RuleIndex::Add(std::string_view tenant, std::string_view tool, std::string_view action,
                    const Rule* rule) {
  buckets_[Key(tenant, tool, action)].push_back(rule);
}

void RuleIndex::Finish() {
  for (auto& [key, rules] : buckets_) {
    std::sort(rules.begin(), rules.end(), [](const Rule* a, const Rule* b) {
      if (a->effect != b->effect) return a->effect > b->effect;
      return a->order < b->order;
    });
    rules.erase(std::unique(rules.begin(), rules.end()), rules.end());
  }
}

const std::vector<const Rule*>& RuleIndex::Candidates(std::string_view tenant,
                                                      std::string_view tool,
                                                      std::string_view action) const {
  // Keys are short; building one per lookup costs less than a nested map walk. A thread-local
  // buffer keeps it allocation-free after the first call.
  thread_local std::string key;
  key.clear();
  key.append(tenant).push_back('\x1f');
  key.append(tool).push_back('\x1f');
  key.append(action);
  auto it = buckets_.find(key);
  return it == buckets_.end() ? empty_ : it->second;
}

const Scope* CompiledPolicy::FindScope(std::string_view tenant) const {
  auto it = scopes.find(tenant);
  return it == scopes.end() ? nullptr : &it->second;
}

const Tool* CompiledPolicy::FindTool(std::string_view tenant, std::string_view tool) const {
  for (const Scope* s : {FindScope(tenant), FindScope("")}) {
    if (!s) continue;
    auto it = s->tools.find(tool);
    if (it != s->tools.end()) return &it->second;
  }
  return nullptr;
}

const AgentProfile* CompiledPolicy::FindAgent(std::string_view tenant,
                                              std::string_view agent) const {
  for (const Scope* s : {FindScope(tenant), FindScope("")}) {
    if (!s) continue;
    auto it = s->agents.find(agent);
    if (it != s->agents.end()) return &it->second;
  }
  return nullptr;
}

Effect CompiledPolicy::DefaultEffect(std::string_view tenant) const {
  if (!tenant.empty()) {
    const Scope* s = FindScope(tenant);
    if (s && s->default_effect) return *s->default_effect;
  }
  const Scope* g = FindScope("");
  return g && g->default_effect ? *g->default_effect : Effect::kDeny;
}

Mode CompiledPolicy::ModeFor(std::string_view tenant) const {
  if (!tenant.empty()) {
    const Scope* s = FindScope(tenant);
    if (s && s->mode) return *s->mode;
  }
  const Scope* g = FindScope("");
  return g && g->mode ? *g->mode : Mode::kEnforce;
}

}  // namespace aegis::policy
