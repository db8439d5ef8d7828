#include "policy/compiler.h"

#include "redact/redact.h"

#include <algorithm>
#include <cassert>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>

#include "common/digest.h"
#include "common/host.h"
#include "common/strings.h"

namespace aegis::policy {

using common::Json;
using common::StrCat;

namespace fs = std::filesystem;

bool ParseUsdMicros(std::string_view text, Micros& out) {
  if (text.empty() || text.size() > 32) return false;
  size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (whole.empty() || frac.size() > 6 || (dot != std::string_view::npos && frac.empty())) {
    return false;
  }
  Micros value = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
    if (value > 1'000'000'000'000) return false;
  }
  Micros micros = 0;
  for (size_t i = 0; i < 6; ++i) {
    char c = i < frac.size() ? frac[i] : '0';
    if (c < '0' || c > '9') return false;
    micros = micros * 10 + (c - '0');
  }
  out = value * 1'000'000 + micros;
  return true;
}

std::string FormatUsdMicros(Micros m) {
  std::string out;
  if (m < 0) {
    out.push_back('-');
    m = -m;
  }
  out += std::to_string(m / 1'000'000);
  Micros frac = m % 1'000'000;
  if (frac == 0) return out;
  std::string digits = std::to_string(frac);
  digits.insert(0, 6 - digits.size(), '0');
  while (digits.back() == '0') digits.pop_back();
  return out + "." + digits;
}

std::vector<SourceFile> ReadBundleDir(const std::string& dir, const BundleLimits& limits,
                                      Diagnostics& diags) {
  std::vector<SourceFile> files;
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {
    // A single policy file is a bundle of one.
    std::string ext = fs::path(dir).extension().string();
    if (ext != ".yaml" && ext != ".yml" && ext != ".json") {
      diags.Error({dir, 0, 0}, "not-a-bundle", "a policy file must end in .yaml, .yml or .json");
      return files;
    }
    auto size = fs::file_size(dir, ec);
    if (!ec && size > limits.document.max_file_bytes) {
      diags.Error({dir, 0, 0}, "too-large",
                  StrCat("file is ", size, " bytes; the limit is ",
                         limits.document.max_file_bytes));
      return files;
    }
    std::ifstream in(dir, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (ec || !in) {
      diags.Error({dir, 0, 0}, "read-error", "cannot read file");
      return files;
    }
    files.push_back({dir, std::move(text), fs::path(dir).filename().string()});
    return files;
  }
  if (!fs::is_directory(dir, ec)) {
    diags.Error({dir, 0, 0}, "not-a-bundle",
                "bundle path is neither a directory nor a .yaml, .yml or .json file");
    return files;
  }
  std::vector<fs::path> paths;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string ext = it->path().extension().string();
    if (ext == ".yaml" || ext == ".yml" || ext == ".json") paths.push_back(it->path());
  }
  if (ec) diags.Error({dir, 0, 0}, "read-error", StrCat("cannot list directory: ", ec.message()));
  std::sort(paths.begin(), paths.end());
  if (paths.size() > limits.max_files) {
    diags.Error({dir, 0, 0}, "too-large",
                StrCat("bundle has ", paths.size(), " files; the limit is ", limits.max_files));
    return {};
  }
  size_t total = 0;
  for (const auto& p : paths) {
    std::string rel = fs::relative(p, dir, ec).string();
    if (ec) rel = p.string();
    std::string name = (fs::path(dir) / rel).lexically_normal().string();
    auto size = fs::file_size(p, ec);
    if (ec) {
      diags.Error({name, 0, 0}, "read-error", StrCat("cannot read file: ", ec.message()));
      continue;
    }
    if (size > limits.document.max_file_bytes) {
      diags.Error({name, 0, 0}, "too-large",
                  StrCat("file is ", size, " bytes; the limit is ",
                         limits.document.max_file_bytes));
      continue;
    }
    total += size;
    if (total > limits.max_total_bytes) {
      diags.Error({dir, 0, 0}, "too-large",
                  StrCat("bundle exceeds ", limits.max_total_bytes, " bytes"));
      return {};
    }
    std::ifstream in(p, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      diags.Error({name, 0, 0}, "read-error", "cannot read file");
      continue;
    }
    files.push_back({name, std::move(text), fs::path(rel).generic_string()});
  }
  if (files.empty() && !diags.has_errors()) {
    diags.Error({dir, 0, 0}, "empty-bundle", "bundle holds no .yaml, .yml or .json files");
  }
  return files;
}

namespace {

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool IsValidNamePattern(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (c == '*' || c == '?') continue;
    if (!IsValidName(std::string_view(&c, 1))) return false;
  }
  return true;
}

// Parses "90s", "15m", "1h", "1h30m", "2d" into seconds.
bool ParseDurationSeconds(std::string_view s, int64_t& out) {
  if (s.empty() || s.size() > 32) return false;
  int64_t total = 0, num = 0;
  bool have_digits = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      num = num * 10 + (c - '0');
      if (num > 100'000'000) return false;
      have_digits = true;
      continue;
    }
    if (!have_digits) return false;
    int64_t unit = c == 's' ? 1 : c == 'm' ? 60 : c == 'h' ? 3600 : c == 'd' ? 86400 : 0;
    if (unit == 0) return false;
    total += num * unit;
    num = 0;
    have_digits = false;
  }
  if (have_digits) return false;
  out = total;
  return total > 0;
}

// Where byte `offset` of an expression written as the scalar `n` is in the file.
Location ExprLocation(const DocNode& n, std::string_view source, size_t offset) {
  Location at = n.location;
  std::string_view before = source.substr(0, offset);
  size_t newline = before.rfind('\n');
  if (newline == std::string_view::npos) {
    at.column += static_cast<int>(offset) + (n.quoted ? 1 : 0);
  } else {
    at.line += 1 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
    at.column = static_cast<int>(offset - newline);
  }
  return at;
}

constexpr int64_t kDaySeconds = 86'400;
constexpr int64_t kNanosPerSecond = 1'000'000'000;

// Whether two budgets count over the same windows: the same kind and length, where a duration
// of one day has the UTC day's bounds.
bool SameWindow(const BudgetLimit& a, const BudgetLimit& b) {
  auto canonical = [](const BudgetLimit& x) {
    if (x.window == BudgetWindow::kDuration && x.duration_nanos == kDaySeconds * kNanosPerSecond) {
      return std::make_pair(BudgetWindow::kDay, int64_t{0});
    }
    return std::make_pair(x.window, x.window == BudgetWindow::kDuration ? x.duration_nanos : 0);
  };
  return canonical(a) == canonical(b);
}

// Declares the variables conditions and cost expressions read, in one fixed order, so that
// environments declared by it agree on every slot. `cost_usd_name` names the cost_usd slot.
void DeclareVariables(expr::Environment& env, CompiledPolicy::Slots& slots,
                      std::string_view cost_usd_name) {
  slots.agent = env.Declare("agent", "string");
  slots.tenant = env.Declare("tenant", "string");
  slots.tool = env.Declare("tool", "string");
  slots.action = env.Declare("action", "string");
  slots.params = env.Declare("params", "map(string, dyn)");
  slots.request = env.Declare("request", "map(string, dyn)");
  slots.identity = env.Declare("identity", "map(string, dyn)");
  slots.cost_usd = env.Declare(cost_usd_name, "double");
  slots.now = env.Declare("now", "timestamp");
}

void DeclareVariables(CompiledPolicy& p) { DeclareVariables(p.env, p.slots, "cost_usd"); }

struct RuleSource {
  Rule* rule = nullptr;
  const DocNode* node = nullptr;
  const DocNode* tools_node = nullptr;
  const DocNode* agents_node = nullptr;
  const DocNode* actions_node = nullptr;
  const DocNode* if_node = nullptr;
  std::vector<std::pair<std::string, Location>> agent_refs, tool_refs, action_refs;
};

struct AgentSource {
  AgentProfile* agent;
  std::string tenant;
  std::vector<std::pair<std::string, Location>> tool_refs;
};

class Builder {
 public:
  // `policy` has its variables declared already.
  Builder(CompiledPolicy& policy, Diagnostics& diags) : p_(policy), d_(diags) {
    // Cost expressions see what conditions see, in the same slots, except cost_usd: they
    // compute it. Its slot gets a name no expression can write, so reading cost_usd is an
    // undeclared reference at load.
    CompiledPolicy::Slots slots{};
    DeclareVariables(cost_env_, slots, kCostUsdInCostExpression);
    assert(slots.now == p_.slots.now && cost_env_.size() == p_.env.size());
  }

  void AddDocument(const SourceFile& file, const DocNode& root);
  void ResolveReferences();
  void CompileConditions();
  void FindUnreachableRules();
  void BuildIndex();

 private:
  // Schema helpers: each reports what is wrong and returns false.
  bool ExpectKind(const DocNode& n, DocNode::Kind kind, std::string_view what) {
    if (n.kind == kind) return true;
    std::string_view want = kind == DocNode::Kind::kMap        ? "a map"
                            : kind == DocNode::Kind::kSequence ? "a list"
                                                               : "a scalar";
    d_.Error(n.location, "wrong-type", StrCat(what, " must be ", want, ", not ", n.KindName()));
    return false;
  }

  void CheckKeys(const DocNode& map, std::initializer_list<std::string_view> allowed,
                 std::string_view where) {
    for (const auto& [key, value] : map.members) {
      if (!key.is_scalar()) {
        d_.Error(key.location, "wrong-type", StrCat("keys of ", where, " must be strings"));
        continue;
      }
      if (std::find(allowed.begin(), allowed.end(), key.scalar) != allowed.end()) continue;
      std::string hint;
      size_t best = 3;
      for (auto a : allowed) {
        size_t dist = EditDistance(key.scalar, a);
        if (dist < best) {
          best = dist;
          hint = StrCat("; did you mean \"", a, "\"?");
        }
      }
      std::string list;
      for (auto a : allowed) list += list.empty() ? std::string(a) : StrCat(", ", a);
      d_.Error(key.location, "unknown-key",
               StrCat("unknown key \"", key.scalar, "\" in ", where,
                      hint.empty() ? StrCat(" (allowed: ", list, ")") : hint));
    }
  }

  static const DocNode* Field(const DocNode& map, std::string_view key) {
    for (const auto& [k, v] : map.members) {
      if (k.is_scalar() && k.scalar == key) return &v;
    }
    return nullptr;
  }

  bool GetString(const DocNode& n, std::string& out, std::string_view what) {
    if (n.kind != DocNode::Kind::kScalar) {
      d_.Error(n.location, "wrong-type", StrCat(what, " must be a string, not ", n.KindName()));
      return false;
    }
    out = n.scalar;
    return true;
  }

  bool GetName(const DocNode& n, std::string& out, std::string_view what) {
    if (!GetString(n, out, what)) return false;
    if (!IsValidName(out)) {
      d_.Error(n.location, "invalid-name",
               StrCat(what, " \"", out,
                      "\" must be 1-128 characters of letters, digits and _ - . : /"));
      return false;
    }
    return true;
  }

  bool GetInt(const DocNode& n, int64_t& out, std::string_view what) {
    Json j;
    Diagnostics scratch;
    if (n.kind != DocNode::Kind::kScalar || n.quoted || !ToJson(n, j, scratch) || !j.is_int()) {
      d_.Error(n.location, "wrong-type", StrCat(what, " must be an integer"));
      return false;
    }
    out = j.as_int();
    return true;
  }

  bool GetNumber(const DocNode& n, double& out, std::string_view what) {
    Json j;
    Diagnostics scratch;
    if (n.kind != DocNode::Kind::kScalar || n.quoted || !ToJson(n, j, scratch) ||
        !j.is_number()) {
      d_.Error(n.location, "wrong-type", StrCat(what, " must be a number"));
      return false;
    }
    out = j.as_double();
    return true;
  }

  bool GetUsd(const DocNode& n, Micros& out, std::string_view what) {
    if (n.kind != DocNode::Kind::kScalar || n.quoted || !ParseUsdMicros(n.scalar, out)) {
      d_.Error(n.location, "invalid-amount",
               StrCat(what, " must be a non-negative dollar amount with at most 6 decimals"));
      return false;
    }
    return true;
  }

  // A string or a list of strings, as (text, location) pairs.
  bool GetStringList(const DocNode& n, std::vector<std::pair<std::string, Location>>& out,
                     std::string_view what) {
    if (n.is_scalar()) {
      out.emplace_back(n.scalar, n.location);
      return true;
    }
    if (!n.is_sequence()) {
      d_.Error(n.location, "wrong-type",
               StrCat(what, " must be a string or a list of strings, not ", n.KindName()));
      return false;
    }
    bool ok = true;
    for (const auto& item : n.items) {
      if (!item.is_scalar()) {
        d_.Error(item.location, "wrong-type", StrCat("items of ", what, " must be strings"));
        ok = false;
        continue;
      }
      out.emplace_back(item.scalar, item.location);
    }
    return ok;
  }

  void ParseTool(const std::string& tenant, const DocNode& key, const DocNode& n);
  // Reads max_requests_per_second, burst, max_daily_budget_usd, max_monthly_budget_usd and
  // budgets from the map `n`.
  void ParseLimits(const DocNode& n, LimitSpec& out);
  // Reads one entry of `budgets:` ({usd: N, window: day|month|<duration>}) into `out`, the
  // window as written into `window_text` and its node into `window_node`. Reports what is
  // wrong and returns false.
  bool ParseBudget(const DocNode& n, BudgetLimit& out, std::string& window_text,
                   const DocNode*& window_node);
  // Reads cost_usd: a plain number is a constant amount, a string an expression compiled now.
  // `owner` names the tool or action in messages.
  void ParseCost(const DocNode& n, std::optional<Micros>& constant,
                 std::shared_ptr<const CostExpression>& expression, const std::string& owner);
  void ParseAgent(const std::string& tenant, const DocNode& key, const DocNode& n);
  void ParseRule(const std::string& tenant, const DocNode& n);
  void ParseTest(const DocNode& n);
  bool ParseMatcher(const DocNode& n, Matcher& m, std::vector<std::pair<std::string, Location>>& refs,
                    std::string_view what);

  // Tool definitions a rule of `tenant` can see: global ones plus the tenant's.
  std::vector<const Tool*> VisibleTools(const std::string& tenant) const;
  std::vector<const AgentProfile*> VisibleAgents(const std::string& tenant) const;

  static constexpr std::string_view kCostUsdInCostExpression = "<cost_usd being computed>";

  CompiledPolicy& p_;
  Diagnostics& d_;
  expr::Environment cost_env_;
  std::vector<RuleSource> rule_sources_;
  std::vector<AgentSource> agent_sources_;
  std::map<std::string, Location> rule_ids_;
  std::map<std::string, Location> global_tool_names_;
  std::map<std::pair<std::string, std::string>, Location> scope_settings_;
  int order_ = 0;
};

void Builder::AddDocument(const SourceFile& file, const DocNode& root) {
  if (root.kind == DocNode::Kind::kNull) {
    d_.Error({file.name, 0, 0}, "empty-file", "file is empty");
    return;
  }
  if (!ExpectKind(root, DocNode::Kind::kMap, "a policy file")) return;
  CheckKeys(root,
            {"apiVersion", "kind", "metadata", "mode", "default", "limits", "tools", "agents",
             "rules", "tests"},
            "a policy file");
  const DocNode* api = Field(root, "apiVersion");
  if (!api) {
    d_.Error(root.location, "missing-key", "apiVersion is required (apiVersion: aegis/v1)");
  } else if (!api->is_scalar() || api->scalar != "aegis/v1") {
    d_.Error(api->location, "unsupported-version",
             StrCat("apiVersion must be aegis/v1, not \"", api->scalar, "\""));
  }
  const DocNode* kind = Field(root, "kind");
  if (!kind) {
    d_.Error(root.location, "missing-key", "kind is required (kind: Policy)");
  } else if (!kind->is_scalar() || kind->scalar != "Policy") {
    d_.Error(kind->location, "wrong-value", "kind must be Policy");
  }

  std::string tenant;
  if (const DocNode* meta = Field(root, "metadata")) {
    if (ExpectKind(*meta, DocNode::Kind::kMap, "metadata")) {
      CheckKeys(*meta, {"name", "tenant", "description", "labels"}, "metadata");
      if (const DocNode* t = Field(*meta, "tenant")) GetName(*t, tenant, "metadata.tenant");
      if (const DocNode* n = Field(*meta, "name")) {
        std::string name;
        if (GetName(*n, name, "metadata.name") && tenant.empty() && p_.name.empty()) {
          p_.name = name;
        }
      }
      if (const DocNode* l = Field(*meta, "labels")) ExpectKind(*l, DocNode::Kind::kMap, "labels");
    }
  }
  Scope& scope = p_.scopes[tenant];
  scope.tenant = tenant;

  auto setting = [&](std::string_view key) -> const DocNode* {
    const DocNode* n = Field(root, key);
    if (!n) return nullptr;
    auto [it, inserted] = scope_settings_.emplace(std::make_pair(tenant, std::string(key)),
                                                  n->location);
    if (!inserted) {
      d_.Error(n->location, "conflicting-setting",
               StrCat(key, " is already set for ",
                      tenant.empty() ? std::string("the bundle") : StrCat("tenant ", tenant),
                      " at ", it->second.file, ":", it->second.line));
      return nullptr;
    }
    return n;
  };
  if (const DocNode* m = setting("mode")) {
    std::string s;
    if (GetString(*m, s, "mode")) {
      if (s == "enforce") {
        scope.mode = Mode::kEnforce;
      } else if (s == "shadow") {
        scope.mode = Mode::kShadow;
      } else {
        d_.Error(m->location, "wrong-value", "mode must be enforce or shadow");
      }
    }
  }
  if (const DocNode* def = setting("default")) {
    std::string s;
    if (GetString(*def, s, "default")) {
      auto e = ParseEffect(s);
      if (!e || *e == Effect::kSanitize) {
        d_.Error(def->location, "wrong-value",
                 "default must be allow, deny or approval_needed");
      } else {
        scope.default_effect = *e;
      }
    }
  }
  if (const DocNode* limits = setting("limits")) {
    if (tenant.empty()) {
      d_.Error(limits->location, "tenant-scope",
               "limits at the top of a file are a tenant's: set metadata.tenant, or put limits on "
               "agents and tools");
    } else if (ExpectKind(*limits, DocNode::Kind::kMap, "limits")) {
      CheckKeys(*limits,
                {"max_requests_per_second", "burst", "max_daily_budget_usd",
                 "max_monthly_budget_usd", "budgets"},
                "limits");
      ParseLimits(*limits, scope.limits);
    }
  }
  if (const DocNode* tools = Field(root, "tools")) {
    if (ExpectKind(*tools, DocNode::Kind::kMap, "tools")) {
      for (const auto& [k, v] : tools->members) ParseTool(tenant, k, v);
    }
  }
  if (const DocNode* agents = Field(root, "agents")) {
    if (ExpectKind(*agents, DocNode::Kind::kMap, "agents")) {
      for (const auto& [k, v] : agents->members) ParseAgent(tenant, k, v);
    }
  }
  if (const DocNode* rules = Field(root, "rules")) {
    if (ExpectKind(*rules, DocNode::Kind::kSequence, "rules")) {
      for (const auto& r : rules->items) ParseRule(tenant, r);
    }
  }
  if (const DocNode* tests = Field(root, "tests")) {
    if (ExpectKind(*tests, DocNode::Kind::kSequence, "tests")) {
      for (const auto& t : tests->items) ParseTest(t);
    }
  }
}

void Builder::ParseLimits(const DocNode& n, LimitSpec& out) {
  if (const DocNode* rps = Field(n, "max_requests_per_second")) {
    double v;
    if (GetNumber(*rps, v, "max_requests_per_second")) {
      if (!(v > 0 && v <= 1e6)) {
        d_.Error(rps->location, "wrong-value",
                 "max_requests_per_second must be greater than 0 and at most 1000000");
      } else {
        out.max_requests_per_second = v;
      }
    }
  }
  if (const DocNode* burst = Field(n, "burst")) {
    int64_t v;
    if (GetInt(*burst, v, "burst")) {
      if (v < 1 || v > 1'000'000) {
        d_.Error(burst->location, "wrong-value", "burst must be between 1 and 1000000");
      } else {
        out.burst = v;
      }
    }
    if (!Field(n, "max_requests_per_second")) {
      d_.Error(burst->location, "missing-key", "burst needs max_requests_per_second");
    }
  }
  // One budget per window: a second one over the same window is refused where it is written.
  auto add_budget = [&](BudgetLimit budget, std::string_view window_text, const Location& at) {
    for (const BudgetLimit& other : out.budgets) {
      if (SameWindow(other, budget)) {
        d_.Error(at, "duplicate-id",
                 StrCat("another budget over the same window (", window_text, ") is set at ",
                        other.location.file, ":", other.location.line, ":", other.location.column));
        return;
      }
    }
    out.budgets.push_back(std::move(budget));
  };
  if (const DocNode* budget = Field(n, "max_daily_budget_usd")) {
    Micros m;
    if (GetUsd(*budget, m, "max_daily_budget_usd")) {
      add_budget({m, BudgetWindow::kDay, 0, budget->location}, "day", budget->location);
    }
  }
  if (const DocNode* budget = Field(n, "max_monthly_budget_usd")) {
    Micros m;
    if (GetUsd(*budget, m, "max_monthly_budget_usd")) {
      add_budget({m, BudgetWindow::kMonth, 0, budget->location}, "month", budget->location);
    }
  }
  if (const DocNode* budgets = Field(n, "budgets")) {
    if (ExpectKind(*budgets, DocNode::Kind::kSequence, "budgets")) {
      for (const auto& item : budgets->items) {
        BudgetLimit budget;
        std::string window_text;
        const DocNode* window_node = nullptr;
        if (ParseBudget(item, budget, window_text, window_node)) {
          add_budget(std::move(budget), window_text, window_node->location);
        }
      }
    }
  }
}

bool Builder::ParseBudget(const DocNode& n, BudgetLimit& out, std::string& window_text,
                          const DocNode*& window_node) {
  if (!ExpectKind(n, DocNode::Kind::kMap, "a budget")) return false;
  CheckKeys(n, {"usd", "window"}, "a budget");
  out.location = n.location;
  bool ok = true;
  const DocNode* usd = Field(n, "usd");
  if (!usd) {
    d_.Error(n.location, "missing-key", "a budget needs usd, its ceiling in dollars");
    ok = false;
  } else if (!GetUsd(*usd, out.usd, "a budget's usd")) {
    ok = false;
  }
  window_node = Field(n, "window");
  if (!window_node) {
    d_.Error(n.location, "missing-key",
             "a budget needs a window: day, month or a duration such as 1h");
    return false;
  }
  if (!GetString(*window_node, window_text, "a budget's window")) return false;
  int64_t seconds = 0;
  if (window_text == "day") {
    out.window = BudgetWindow::kDay;
  } else if (window_text == "month") {
    out.window = BudgetWindow::kMonth;
  } else if (!ParseDurationSeconds(window_text, seconds)) {
    d_.Error(window_node->location, "wrong-value",
             StrCat("a budget's window must be day, month or a duration such as 90s, 30m, 1h "
                    "or 7d, not \"",
                    window_text, "\""));
    return false;
  } else if (seconds > 366 * kDaySeconds) {
    d_.Error(window_node->location, "wrong-value", "a budget's window may be at most 366d");
    return false;
  } else {
    out.window = BudgetWindow::kDuration;
    out.duration_nanos = seconds * kNanosPerSecond;
  }
  return ok;
}

void Builder::ParseCost(const DocNode& n, std::optional<Micros>& constant,
                        std::shared_ptr<const CostExpression>& expression,
                        const std::string& owner) {
  Json typed;
  Diagnostics scratch;
  bool is_text = n.kind == DocNode::Kind::kScalar &&
                 (n.quoted || (ToJson(n, typed, scratch) && typed.is_string()));
  if (!is_text) {
    Micros m;
    if (GetUsd(n, m, "cost_usd")) constant = m;
    return;
  }
  if (n.scalar.empty()) {
    d_.Error(n.location, "wrong-value",
             StrCat("cost_usd of ", owner, " is empty: write an amount or an expression"));
    return;
  }
  expr::CompileResult result = expr::Compile(n.scalar, cost_env_);
  for (const auto& e : result.errors) {
    std::string_view message = e.message;
    if (e.code == "expr-undeclared" && message == "undeclared reference to 'cost_usd'") {
      message = "a cost expression cannot read cost_usd, the cost it computes";
    }
    d_.Error(ExprLocation(n, n.scalar, e.offset), e.code,
             StrCat("cost_usd of ", owner, ": ", message));
  }
  if (!result.program) return;
  std::string type = result.program->ResultType();
  if (type != "int" && type != "uint" && type != "double" && type != "dyn") {
    d_.Error(n.location, "expr-type",
             StrCat("cost_usd of ", owner, ": the expression has type ", type,
                    "; it must be a number of dollars (int, uint or double)"));
    return;
  }
  expression = std::make_shared<const CostExpression>(
      CostExpression{n.scalar, std::move(result.program), n.location});
}

void Builder::ParseTool(const std::string& tenant, const DocNode& key, const DocNode& n) {
  Tool tool;
  if (!GetName(key, tool.name, "tool name")) return;
  tool.location = key.location;
  Scope& scope = p_.scopes[tenant];
  if (scope.tools.count(tool.name) ||
      (!tenant.empty() && p_.scopes[""].tools.count(tool.name))) {
    d_.Error(key.location, "duplicate-id", StrCat("tool \"", tool.name, "\" is defined twice"));
    return;
  }
  if (tenant.empty()) global_tool_names_[tool.name] = key.location;
  if (n.kind == DocNode::Kind::kNull) {
    scope.tools.emplace(tool.name, std::move(tool));
    return;
  }
  if (!ExpectKind(n, DocNode::Kind::kMap, StrCat("tool ", tool.name))) return;
  CheckKeys(n,
            {"hosts", "actions", "cost_usd", "description", "max_requests_per_second", "burst",
             "max_daily_budget_usd", "max_monthly_budget_usd", "budgets"},
            StrCat("tool ", tool.name));
  ParseLimits(n, tool.limits);
  if (const DocNode* hosts = Field(n, "hosts")) {
    std::vector<std::pair<std::string, Location>> list;
    GetStringList(*hosts, list, "hosts");
    for (auto& [h, at] : list) {
      HostPattern pattern;
      std::string error;
      if (!HostPattern::Parse(h, pattern, error)) {
        d_.Error(at, "invalid-host", StrCat("host \"", h, "\": ", error));
      } else {
        tool.hosts.push_back(std::move(pattern));
      }
    }
  }
  if (const DocNode* c = Field(n, "cost_usd")) {
    ParseCost(*c, tool.cost, tool.cost_expr, StrCat("tool ", tool.name));
  }
  if (const DocNode* actions = Field(n, "actions")) {
    if (ExpectKind(*actions, DocNode::Kind::kMap, "actions")) {
      for (const auto& [ak, av] : actions->members) {
        Action a;
        if (!GetName(ak, a.name, "action name")) continue;
        if (tool.FindAction(a.name)) {
          d_.Error(ak.location, "duplicate-id", StrCat("action \"", a.name, "\" is defined twice"));
          continue;
        }
        if (av.kind != DocNode::Kind::kNull) {
          if (!ExpectKind(av, DocNode::Kind::kMap, StrCat("action ", a.name))) continue;
          CheckKeys(av, {"method", "path", "cost_usd", "description"}, StrCat("action ", a.name));
          if (const DocNode* m = Field(av, "method")) {
            if (GetString(*m, a.method, "method")) {
              static const std::set<std::string> kMethods = {
                  "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
              std::string upper = a.method;
              for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
              if (!kMethods.count(upper)) {
                d_.Error(m->location, "wrong-value",
                         StrCat("method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, "
                                "OPTIONS, not \"", a.method, "\""));
              }
              a.method = upper;
            }
          }
          if (const DocNode* path = Field(av, "path")) {
            std::string text, error;
            if (GetString(*path, text, "path") && !PathPattern::Parse(text, a.path, error)) {
              d_.Error(path->location, "invalid-path", error);
            }
          }
          if (const DocNode* c = Field(av, "cost_usd")) {
            ParseCost(*c, a.cost, a.cost_expr, StrCat("action ", a.name, " of tool ", tool.name));
          }
        }
        tool.actions.push_back(std::move(a));
      }
    }
  }
  scope.tools.emplace(tool.name, std::move(tool));
}

void Builder::ParseAgent(const std::string& tenant, const DocNode& key, const DocNode& n) {
  AgentProfile agent;
  if (!GetName(key, agent.name, "agent name")) return;
  agent.location = key.location;
  Scope& scope = p_.scopes[tenant];
  if (scope.agents.count(agent.name)) {
    d_.Error(key.location, "duplicate-id", StrCat("agent \"", agent.name, "\" is defined twice"));
    return;
  }
  AgentSource source{nullptr, tenant, {}};
  if (n.kind != DocNode::Kind::kNull && ExpectKind(n, DocNode::Kind::kMap, "an agent profile")) {
    CheckKeys(n,
              {"tools", "allowed_domains", "max_requests_per_second", "burst",
               "max_daily_budget_usd", "max_monthly_budget_usd", "budgets", "description"},
              StrCat("agent ", agent.name));
    if (const DocNode* tools = Field(n, "tools")) {
      GetStringList(*tools, source.tool_refs, "tools");
      for (auto& [t, at] : source.tool_refs) {
        if (!IsValidNamePattern(t)) {
          d_.Error(at, "invalid-name", StrCat("tool pattern \"", t, "\" is not a valid name"));
        }
        agent.tools.emplace_back(t);
      }
    }
    if (const DocNode* domains = Field(n, "allowed_domains")) {
      std::vector<std::pair<std::string, Location>> list;
      GetStringList(*domains, list, "allowed_domains");
      agent.has_domain_scope = true;
      for (auto& [h, at] : list) {
        HostPattern pattern;
        std::string error;
        if (!HostPattern::Parse(h, pattern, error)) {
          d_.Error(at, "invalid-host", StrCat("allowed domain \"", h, "\": ", error));
          continue;
        }
        agent.allowed_domains.push_back(std::move(pattern));
      }
    }
    ParseLimits(n, agent.limits);
  }
  auto [it, inserted] = scope.agents.emplace(agent.name, std::move(agent));
  source.agent = &it->second;
  agent_sources_.push_back(std::move(source));
}

bool Builder::ParseMatcher(const DocNode& n, Matcher& m,
                           std::vector<std::pair<std::string, Location>>& refs,
                           std::string_view what) {
  std::vector<std::pair<std::string, Location>> list;
  if (!GetStringList(n, list, what)) return false;
  if (list.empty()) {
    d_.Error(n.location, "wrong-value",
             StrCat(what, " is empty, so the rule matches nothing; omit it to match any"));
    return false;
  }
  m.any = false;
  for (auto& [s, at] : list) {
    if (s == "*") {
      m.any = true;
      continue;
    }
    if (!IsValidNamePattern(s)) {
      d_.Error(at, "invalid-name", StrCat(what, " entry \"", s, "\" is not a valid name or glob"));
      continue;
    }
    m.patterns.emplace_back(s);
    refs.emplace_back(s, at);
  }
  if (m.any) m.patterns.clear();
  return true;
}

void Builder::ParseRule(const std::string& tenant, const DocNode& n) {
  if (!ExpectKind(n, DocNode::Kind::kMap, "a rule")) return;
  CheckKeys(n,
            {"id", "description", "match", "if", "effect", "message", "redact", "approval",
             "limits"},
            "a rule");
  auto rule = std::make_unique<Rule>();
  rule->tenant = tenant;
  rule->location = n.location;
  rule->order = order_++;
  RuleSource src;
  src.rule = rule.get();
  src.node = &n;

  const DocNode* id = Field(n, "id");
  if (!id) {
    d_.Error(n.location, "missing-key", "a rule needs an id");
  } else if (GetName(*id, rule->id, "rule id")) {
    auto [it, inserted] = rule_ids_.emplace(rule->id, id->location);
    if (!inserted) {
      d_.Error(id->location, "duplicate-id",
               StrCat("rule id \"", rule->id, "\" is already used at ", it->second.file, ":",
                      it->second.line, ":", it->second.column));
    }
  }
  const DocNode* effect = Field(n, "effect");
  if (!effect) {
    d_.Error(n.location, "missing-key", StrCat("rule ", rule->id, " needs an effect"));
  } else {
    std::string s;
    if (GetString(*effect, s, "effect")) {
      auto e = ParseEffect(s);
      if (!e) {
        d_.Error(effect->location, "wrong-value",
                 StrCat("effect must be allow, deny, sanitize or approval_needed, not \"", s,
                        "\""));
      } else {
        rule->effect = *e;
      }
    }
  }
  if (const DocNode* match = Field(n, "match")) {
    if (ExpectKind(*match, DocNode::Kind::kMap, "match")) {
      CheckKeys(*match, {"tenants", "agents", "tools", "actions"}, "match");
      if (const DocNode* t = Field(*match, "tenants")) {
        std::vector<std::pair<std::string, Location>> unused;
        if (!tenant.empty()) {
          d_.Error(t->location, "tenant-scope",
                   StrCat("this file belongs to tenant ", tenant,
                          "; its rules cannot match other tenants"));
        } else {
          ParseMatcher(*t, rule->tenants, unused, "match.tenants");
        }
      }
      if (const DocNode* a = Field(*match, "agents")) {
        src.agents_node = a;
        ParseMatcher(*a, rule->agents, src.agent_refs, "match.agents");
      }
      if (const DocNode* t = Field(*match, "tools")) {
        src.tools_node = t;
        ParseMatcher(*t, rule->tools, src.tool_refs, "match.tools");
      }
      if (const DocNode* a = Field(*match, "actions")) {
        src.actions_node = a;
        ParseMatcher(*a, rule->actions, src.action_refs, "match.actions");
      }
    }
  }
  if (const DocNode* cond = Field(n, "if")) {
    if (GetString(*cond, rule->condition_source, "if")) src.if_node = cond;
    if (rule->condition_source.empty()) {
      d_.Error(cond->location, "wrong-value", "if is empty; omit it for an unconditional rule");
    }
  }
  if (const DocNode* msg = Field(n, "message")) GetString(*msg, rule->message, "message");
  const DocNode* redact = Field(n, "redact");
  if (redact && ExpectKind(*redact, DocNode::Kind::kMap, "redact")) {
    CheckKeys(*redact, {"fields", "detectors", "style"}, "redact");
    std::vector<std::pair<std::string, Location>> list;
    if (const DocNode* f = Field(*redact, "fields")) {
      GetStringList(*f, list, "redact.fields");
      for (auto& [path, at] : list) {
        if (common::Status st = redact::ValidateFieldPath(path); !st.ok()) {
          d_.Error(at, "invalid-path", StrCat("redact field \"", path, "\": ", st.message()));
        }
        rule->redact.fields.push_back(path);
      }
    }
    list.clear();
    if (const DocNode* det = Field(*redact, "detectors")) {
      static const std::set<std::string> kDetectors = {"ssn",  "dob", "email",  "phone", "card",
                                                       "iban", "ip",  "secret", "jwt",   "all"};
      GetStringList(*det, list, "redact.detectors");
      for (auto& [name, at] : list) {
        if (!kDetectors.count(name)) {
          d_.Error(at, "unknown-detector",
                   StrCat("unknown detector \"", name,
                          "\" (known: ssn, dob, email, phone, card, iban, ip, secret, jwt, all)"));
        }
        rule->redact.detectors.push_back(name);
      }
    }
    rule->redact.style = "mask";
    if (const DocNode* st = Field(*redact, "style")) {
      if (GetString(*st, rule->redact.style, "redact.style") && rule->redact.style != "mask" &&
          rule->redact.style != "partial" && rule->redact.style != "hash") {
        d_.Error(st->location, "wrong-value", "redact.style must be mask, partial or hash");
      }
    }
    if (rule->redact.fields.empty() && rule->redact.detectors.empty()) {
      d_.Error(redact->location, "wrong-value", "redact needs fields, detectors, or both");
    }
  }
  if (rule->effect == Effect::kSanitize && !redact && effect) {
    d_.Error(effect->location, "missing-key", "a sanitize rule needs a redact block");
  }
  if (redact && rule->effect != Effect::kSanitize && effect) {
    d_.Error(redact->location, "wrong-value", "redact only applies to sanitize rules");
  }
  if (const DocNode* limits = Field(n, "limits")) {
    if (effect && rule->effect != Effect::kAllow && rule->effect != Effect::kSanitize) {
      d_.Error(limits->location, "wrong-value",
               "limits apply to the calls a rule lets happen: allow and sanitize rules only");
    } else if (ExpectKind(*limits, DocNode::Kind::kMap, "limits")) {
      CheckKeys(*limits,
                {"max_requests_per_second", "burst", "max_daily_budget_usd",
                 "max_monthly_budget_usd", "budgets"},
                "limits");
      ParseLimits(*limits, rule->limits);
    }
  }
  const DocNode* approval = Field(n, "approval");
  if (approval && ExpectKind(*approval, DocNode::Kind::kMap, "approval")) {
    CheckKeys(*approval, {"quorum", "ttl", "notify"}, "approval");
    if (const DocNode* q = Field(*approval, "quorum")) {
      int64_t v;
      if (GetInt(*q, v, "approval.quorum")) {
        if (v < 1 || v > 10) {
          d_.Error(q->location, "wrong-value", "approval.quorum must be between 1 and 10");
        } else {
          rule->approval.quorum = static_cast<int>(v);
        }
      }
    }
    if (const DocNode* ttl = Field(*approval, "ttl")) {
      int64_t secs;
      if (!ttl->is_scalar() || !ParseDurationSeconds(ttl->scalar, secs)) {
        d_.Error(ttl->location, "wrong-value",
                 "approval.ttl must be a duration such as 90s, 15m, 1h or 1h30m");
      } else if (secs > 7 * 86400) {
        d_.Error(ttl->location, "wrong-value", "approval.ttl may be at most 7d");
      } else {
        rule->approval.ttl_seconds = secs;
      }
    }
    if (const DocNode* notify = Field(*approval, "notify")) {
      std::vector<std::pair<std::string, Location>> list;
      GetStringList(*notify, list, "approval.notify");
      for (auto& [name, at] : list) {
        if (!IsValidName(name)) {
          d_.Error(at, "invalid-name", StrCat("notifier name \"", name, "\" is not valid"));
        }
        rule->approval.notify.push_back(name);
      }
    }
  }
  if (approval && rule->effect != Effect::kApprovalNeeded && effect) {
    d_.Error(approval->location, "wrong-value", "approval only applies to approval_needed rules");
  }
  rule_sources_.push_back(std::move(src));
  p_.rules.push_back(std::move(rule));
}

void Builder::ParseTest(const DocNode& n) {
  if (!ExpectKind(n, DocNode::Kind::kMap, "a test")) return;
  CheckKeys(n, {"name", "input", "expect"}, "a test");
  PolicyTest test;
  test.location = n.location;
  const DocNode* name = Field(n, "name");
  if (!name) {
    d_.Error(n.location, "missing-key", "a test needs a name");
  } else {
    GetString(*name, test.name, "test name");
  }
  const DocNode* input = Field(n, "input");
  if (!input) {
    d_.Error(n.location, "missing-key", "a test needs an input (the call to decide)");
  } else if (ExpectKind(*input, DocNode::Kind::kMap, "test input")) {
    ToJson(*input, test.input, d_);
  }
  const DocNode* expect = Field(n, "expect");
  if (!expect) {
    d_.Error(n.location, "missing-key", "a test needs an expect block");
  } else if (ExpectKind(*expect, DocNode::Kind::kMap, "expect")) {
    CheckKeys(*expect, {"decision", "rule", "reason"}, "expect");
    const DocNode* decision = Field(*expect, "decision");
    std::string s;
    if (!decision) {
      d_.Error(expect->location, "missing-key", "expect needs a decision");
    } else if (GetString(*decision, s, "expect.decision")) {
      auto e = ParseEffect(s);
      if (!e) {
        d_.Error(decision->location, "wrong-value",
                 "expect.decision must be allow, deny, sanitize or approval_needed");
      } else {
        test.expect_decision = *e;
      }
    }
    if (const DocNode* r = Field(*expect, "rule")) {
      if (GetString(*r, test.expect_rule, "expect.rule")) {
        // Checked against rule ids once all files are read.
      }
    }
    if (const DocNode* r = Field(*expect, "reason")) GetString(*r, test.expect_reason, "reason");
  }
  p_.tests.push_back(std::move(test));
}

std::vector<const Tool*> Builder::VisibleTools(const std::string& tenant) const {
  std::vector<const Tool*> out;
  for (const auto& [t, scope] : p_.scopes) {
    if (!tenant.empty() && !t.empty() && t != tenant) continue;
    for (const auto& [name, tool] : scope.tools) out.push_back(&tool);
  }
  return out;
}

std::vector<const AgentProfile*> Builder::VisibleAgents(const std::string& tenant) const {
  std::vector<const AgentProfile*> out;
  for (const auto& [t, scope] : p_.scopes) {
    if (!tenant.empty() && !t.empty() && t != tenant) continue;
    for (const auto& [name, agent] : scope.agents) out.push_back(&agent);
  }
  return out;
}

void Builder::ResolveReferences() {
  // Tenant tools may not shadow global ones (checked again here: the global file may come later).
  for (const auto& [t, scope] : p_.scopes) {
    if (t.empty()) continue;
    for (const auto& [name, tool] : scope.tools) {
      auto g = global_tool_names_.find(name);
      if (g != global_tool_names_.end()) {
        d_.Error(tool.location, "duplicate-id",
                 StrCat("tool \"", name, "\" is already defined for every tenant at ",
                        g->second.file, ":", g->second.line));
      }
    }
  }
  for (const auto& src : agent_sources_) {
    auto tools = VisibleTools(src.tenant);
    for (const auto& [ref, at] : src.tool_refs) {
      NamePattern pattern(ref);
      bool found = std::any_of(tools.begin(), tools.end(),
                               [&](const Tool* t) { return pattern.Matches(t->name); });
      if (!found) {
        d_.Error(at, pattern.is_glob() ? "unreachable-rule" : "unknown-tool",
                 pattern.is_glob() ? StrCat("tool pattern \"", ref, "\" matches no declared tool")
                                   : StrCat("agent ", src.agent->name, " names tool \"", ref,
                                            "\", which the tools catalog does not declare"));
      }
    }
  }
  for (const auto& src : rule_sources_) {
    const Rule& r = *src.rule;
    auto tools = VisibleTools(r.tenant);
    auto agents = VisibleAgents(r.tenant);
    for (const auto& [ref, at] : src.tool_refs) {
      NamePattern pattern(ref);
      if (std::none_of(tools.begin(), tools.end(),
                       [&](const Tool* t) { return pattern.Matches(t->name); })) {
        d_.Error(at, pattern.is_glob() ? "unreachable-rule" : "unknown-tool",
                 pattern.is_glob()
                     ? StrCat("rule ", r.id, ": tool pattern \"", ref, "\" matches no declared tool")
                     : StrCat("rule ", r.id, " names tool \"", ref,
                              "\", which the tools catalog does not declare"));
      }
    }
    for (const auto& [ref, at] : src.agent_refs) {
      NamePattern pattern(ref);
      if (std::none_of(agents.begin(), agents.end(),
                       [&](const AgentProfile* a) { return pattern.Matches(a->name); })) {
        d_.Error(at, pattern.is_glob() ? "unreachable-rule" : "unknown-agent",
                 pattern.is_glob()
                     ? StrCat("rule ", r.id, ": agent pattern \"", ref, "\" matches no agent")
                     : StrCat("rule ", r.id, " names agent \"", ref,
                              "\", which no agents section declares"));
      }
    }
    for (const auto& [ref, at] : src.action_refs) {
      NamePattern pattern(ref);
      bool possible = false;
      for (const Tool* t : tools) {
        if (!r.tools.Matches(t->name)) continue;
        if (t->actions.empty()) possible = true;
        for (const auto& a : t->actions) possible = possible || pattern.Matches(a.name);
      }
      if (!possible) {
        d_.Error(at, pattern.is_glob() ? "unreachable-rule" : "unknown-action",
                 StrCat("rule ", r.id, ": no tool it matches declares action \"", ref, "\""));
      }
    }
  }
  std::set<std::string> ids;
  for (const auto& r : p_.rules) ids.insert(r->id);
  for (const auto& t : p_.tests) {
    if (!t.expect_rule.empty() && !ids.count(t.expect_rule)) {
      d_.Error(t.location, "unknown-rule",
               StrCat("test \"", t.name, "\" expects rule \"", t.expect_rule,
                      "\", which the bundle does not define"));
    }
  }
}

void Builder::CompileConditions() {
  for (const auto& src : rule_sources_) {
    Rule& r = *src.rule;
    if (!src.if_node || r.condition_source.empty()) continue;
    expr::CompileResult result = expr::Compile(r.condition_source, p_.env);
    const DocNode& n = *src.if_node;
    for (const auto& e : result.errors) {
      d_.Error(ExprLocation(n, r.condition_source, e.offset), e.code,
               StrCat("rule ", r.id, ": ", e.message));
    }
    if (!result.program) continue;
    std::string type = result.program->ResultType();
    if (type != "bool" && type != "dyn") {
      d_.Error(n.location, "expr-type",
               StrCat("rule ", r.id, ": condition has type ", type, "; it must be bool"));
      continue;
    }
    r.condition = std::move(result.program);
  }
}

// True when every name `inner` can match, `outer` matches too. Conservative: globs in `inner`
// are only covered by an any-matcher or an identical pattern.
bool Covers(const Matcher& outer, const Matcher& inner) {
  if (outer.any) return true;
  if (inner.any) return false;
  for (const auto& p : inner.patterns) {
    bool covered = std::any_of(outer.patterns.begin(), outer.patterns.end(), [&](const auto& o) {
      return p.is_glob() ? o.text() == p.text() : o.Matches(p.text());
    });
    if (!covered) return false;
  }
  return true;
}

void Builder::FindUnreachableRules() {
  struct Visible {
    std::vector<const AgentProfile*> agents;
    std::vector<const Tool*> tools;
  };
  std::map<std::string, Visible> visible;  // by tenant, built once
  std::vector<const Rule*> unconditional_denies;
  for (const auto& rule : p_.rules) {
    if (rule->effect == Effect::kDeny && rule->condition_source.empty()) {
      unconditional_denies.push_back(rule.get());
    }
  }
  for (const auto& src : rule_sources_) {
    const Rule& r = *src.rule;
    // Scope: some agent the rule names must be allowed some tool it names, or the scope stage
    // refuses every such call before rules run.
    auto it = visible.find(r.tenant);
    if (it == visible.end()) {
      it = visible.emplace(r.tenant, Visible{VisibleAgents(r.tenant), VisibleTools(r.tenant)})
               .first;
    }
    const auto& agents = it->second.agents;
    const auto& tools = it->second.tools;
    std::vector<const Tool*> rule_tools;
    for (const Tool* t : tools) {
      if (r.tools.Matches(t->name)) rule_tools.push_back(t);
    }
    bool reachable = false;
    for (size_t i = 0; i < agents.size() && !reachable; ++i) {
      if (!r.agents.Matches(agents[i]->name)) continue;
      for (const Tool* t : rule_tools) {
        if (agents[i]->MayUseTool(t->name) && agents[i]->MayReachTool(*t)) {
          reachable = true;
          break;
        }
      }
    }
    if (!reachable && !agents.empty() && !tools.empty()) {
      d_.Error(r.location, "unreachable-rule",
               StrCat("rule ", r.id,
                      " can never apply: no agent it matches may use (or reach the hosts of) any "
                      "tool it matches, so the scope check denies those calls first"));
      continue;
    }
    // Shadowing: an unconditional deny rule covering this rule's whole match means this rule
    // can never change a decision.
    if (r.effect == Effect::kDeny) continue;
    for (const Rule* deny : unconditional_denies) {
      const Rule& d = *deny;
      if (!d.tenant.empty() && d.tenant != r.tenant) continue;
      if (Covers(d.tenants, r.tenants) && Covers(d.agents, r.agents) &&
          Covers(d.tools, r.tools) && Covers(d.actions, r.actions)) {
        d_.Error(r.location, "unreachable-rule",
                 StrCat("rule ", r.id, " can never take effect: unconditional deny rule ", d.id,
                        " (", d.location.file, ":", d.location.line,
                        ") matches every call it matches"));
        break;
      }
    }
  }
}

void Builder::BuildIndex() {
  for (const auto& rule : p_.rules) {
    const Rule& r = *rule;
    for (const Tool* t : VisibleTools(r.tenant)) {
      if (!r.tools.Matches(t->name)) continue;
      if (t->actions.empty()) {
        p_.index.Add(r.tenant, t->name, "*", &r);
        continue;
      }
      for (const auto& a : t->actions) {
        if (r.actions.Matches(a.name)) p_.index.Add(r.tenant, t->name, a.name, &r);
      }
    }
  }
  p_.index.Finish();
}

}  // namespace

CompileOutput CompileFiles(const std::vector<SourceFile>& files, std::string_view bundle_name,
                           const BundleLimits& limits) {
  CompileOutput out;
  auto policy = std::make_shared<CompiledPolicy>();
  DeclareVariables(*policy);
  policy->scopes[""].tenant = "";
  Builder builder(*policy, out.diagnostics);

  // Stage: parse documents; the canonical JSON of each feeds the version hash.
  // The builder keeps pointers into the documents until the last stage, so they live here.
  std::vector<std::unique_ptr<DocNode>> documents;
  std::string canonical;
  for (const auto& f : files) {
    documents.push_back(std::make_unique<DocNode>());
    DocNode& root = *documents.back();
    if (!ParseDocument(f.name, f.text, limits.document, root, out.diagnostics)) continue;
    Json as_json;
    Diagnostics json_diags;
    if (ToJson(root, as_json, json_diags)) {
      canonical += f.relative.empty() ? f.name : f.relative;
      canonical.push_back('\0');
      as_json.AppendCanonical(canonical);
      canonical.push_back('\0');
    }
    for (const auto& d : json_diags.all()) {
      out.diagnostics.Error(d.location, d.code, d.message);
    }
    builder.AddDocument(f, root);
  }
  builder.ResolveReferences();
  builder.CompileConditions();
  if (!out.diagnostics.has_errors()) builder.FindUnreachableRules();
  if (out.diagnostics.has_errors()) return out;
  builder.BuildIndex();
  if (policy->name.empty()) policy->name = std::string(bundle_name);
  policy->version = common::Sha256Hex(canonical).substr(0, 16);
  out.policy = std::move(policy);
  return out;
}

CompileOutput CompileBundle(const std::string& dir, const BundleLimits& limits) {
  CompileOutput out;
  auto files = ReadBundleDir(dir, limits, out.diagnostics);
  if (out.diagnostics.has_errors()) return out;
  std::string name = fs::path(dir).lexically_normal().filename().string();
  if (fs::is_regular_file(dir)) name = fs::path(dir).stem().string();
  if (name.empty()) name = fs::path(dir).lexically_normal().parent_path().filename().string();
  return CompileFiles(files, name, limits);
}

}  // namespace aegis::policy
