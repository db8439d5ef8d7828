// Engine benchmarks (DESIGN.md section 8): Engine::Decide on the fintech example and on generated
// 50 / 1,000 / 10,000-rule policies, and single condition evaluation.
//
// Two kinds of measurement in one binary:
//   1. Google Benchmark (mean time per Decide / per condition), as usual.
//   2. Its own latency distribution: many individually timed Decide calls, sorted, giving p50,
//      p99 and p99.9, plus decisions/s on one thread, each repeated --reps times and reported as
//      the median of the repetitions. These are the figures the targets are stated in.
//
// Policies and calls come from bench/peers/gen.mjs (the same files the Cedar peer runs), so the
// numbers line up with bench/peers/run.mjs; scripts/bench.sh runs both and prints the ratios.
//
//   engine_benchmark --data DIR [--fintech DIR] [--reps 5] [--samples 200000]
//                    [--results FILE] [--no-gbench] [--benchmark_* flags]
//
// Timing is never asserted here; this only measures and prints.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/json.h"
#include "engine/call_context.h"
#include "engine/engine.h"
#include "expr/expr.h"
#include "policy/compiler.h"
#include "policy/policy.h"

namespace {

namespace fs = std::filesystem;
using aegis::common::Json;
using aegis::engine::CallContext;
using aegis::engine::Engine;
using Clock = std::chrono::steady_clock;

// Every call is stamped with the same instant so runs are reproducible.
constexpr int64_t kNowNanos = 1'750'000'000'000'000'000;

struct Options {
  std::string data_dir = "build/bench-data";
  std::string fintech_dir = "examples/fintech";
  std::string results_file;
  int reps = 5;
  size_t samples = 200'000;
  bool gbench = true;
};

struct PolicyCase {
  std::string name;  // rules-50, fintech, ...
  std::string dir;   // where decisions are written (generated sets only)
  std::shared_ptr<const aegis::policy::CompiledPolicy> policy;
  std::unique_ptr<Engine> engine;
  std::vector<CallContext> calls;
  std::vector<std::string> raw_calls;  // the call JSON, for the parse+decide benchmark
  double compile_ms = 0;
  double heap_mib = 0;  // heap still in use after compiling: what the policy costs in memory
};

struct ConditionCase {
  std::string name;
  std::string source;
  Json params;
  aegis::expr::Environment env;
  int params_slot = -1;
  std::unique_ptr<aegis::expr::Program> program;
  aegis::expr::Activation activation;
  std::string result;  // the value, as text, to compare with cel-js
};

// Median-of-repetitions figures for one policy.
struct DecideStats {
  double p50_ns = 0, p90_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0, mean_ns = 0;
  double decisions_per_s = 0;
};

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t HeapInUse() { return mallinfo2().uordblks; }

std::string_view OutcomeName(const aegis::engine::Decision& d) {
  return aegis::policy::EffectName(d.outcome);
}

bool Compile(PolicyCase& c, const std::string& bundle_dir) {
  size_t heap_before = HeapInUse();
  auto t0 = Clock::now();
  auto out = aegis::policy::CompileBundle(bundle_dir);
  c.compile_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (!out.policy) {
    std::cerr << "engine_benchmark: " << bundle_dir << " does not compile:\n";
    size_t shown = 0;
    for (const auto& d : out.diagnostics.all()) {
      if (shown++ == 10) break;
      std::cerr << "  " << d.location.file << ":" << d.location.line << ": " << d.code << ": "
                << d.message << "\n";
    }
    return false;
  }
  c.policy = out.policy;
  out = {};
  c.heap_mib = static_cast<double>(HeapInUse() - std::min(HeapInUse(), heap_before)) / (1 << 20);
  c.engine = std::make_unique<Engine>(c.policy);
  return true;
}

// A generated set: DIR/bundle/ and DIR/calls.jsonl (bench/peers/gen.mjs).
std::optional<PolicyCase> LoadGenerated(const fs::path& dir) {
  PolicyCase c;
  c.name = dir.filename().string();
  c.dir = dir.string();
  auto calls = ReadFile((dir / "calls.jsonl").string());
  if (!calls) {
    std::cerr << "engine_benchmark: " << (dir / "calls.jsonl") << " is missing\n";
    return std::nullopt;
  }
  if (!Compile(c, (dir / "bundle").string())) return std::nullopt;
  std::istringstream lines(*calls);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    auto call = aegis::engine::ParseCall(line, kNowNanos);
    if (!call.ok()) {
      std::cerr << "engine_benchmark: bad call in " << c.name << ": " << call.status().message()
                << "\n";
      return std::nullopt;
    }
    c.calls.push_back(std::move(*call));
    c.raw_calls.push_back(line);
  }
  if (c.calls.empty()) return std::nullopt;
  return c;
}

// A hand-written bundle: its policy tests' inputs are the representative calls.
std::optional<PolicyCase> LoadExample(const std::string& name, const std::string& dir) {
  if (!fs::is_directory(dir) || fs::is_empty(dir)) {
    std::cout << "note: " << dir << " does not exist yet; skipping the " << name
              << " benchmark\n";
    return std::nullopt;
  }
  PolicyCase c;
  c.name = name;
  if (!Compile(c, dir)) return std::nullopt;
  aegis::engine::CallParseOptions opts;
  opts.trusted = true;
  for (const auto& t : c.policy->tests) {
    auto call = aegis::engine::CallFromJson(t.input, kNowNanos, opts);
    if (!call.ok()) continue;
    c.calls.push_back(std::move(*call));
    c.raw_calls.push_back(t.input.Canonical());
  }
  if (c.calls.empty()) {
    std::cout << "note: " << dir << " has no policy tests to use as calls; skipping\n";
    return std::nullopt;
  }
  return c;
}

std::string ValueText(const aegis::expr::Value& v) {
  using K = aegis::expr::Value::Kind;
  switch (v.kind()) {
    case K::kBool:
      return v.bool_value() ? "true" : "false";
    case K::kInt:
      return std::to_string(v.int_value());
    case K::kError:
      return "error: " + std::string(v.string_value());
    default:
      return "other";
  }
}

std::vector<std::unique_ptr<ConditionCase>> LoadConditions(const std::string& data_dir) {
  std::vector<std::unique_ptr<ConditionCase>> out;
  auto text = ReadFile(data_dir + "/conditions.json");
  Json list;
  if (text) {
    auto parsed = aegis::common::ParseJson(*text);
    if (parsed.ok() && parsed->is_array()) list = std::move(*parsed);
  }
  if (!list.is_array()) {
    // Without generated data: the condition of DESIGN.md's fintech example.
    auto parsed = aegis::common::ParseJson(
        R"([{"name":"amount_gt","expr":"params.amount > 5000","params":{"amount":7000}}])");
    list = std::move(*parsed);
  }
  for (const auto& item : list.as_array()) {
    auto c = std::make_unique<ConditionCase>();
    c->name = item.Find("name")->as_string();
    c->source = item.Find("expr")->as_string();
    c->params = *item.Find("params");
    c->params_slot = c->env.Declare("params", "map(string, dyn)");
    auto compiled = aegis::expr::Compile(c->source, c->env);
    if (!compiled.program) {
      std::cerr << "engine_benchmark: condition " << c->name << " does not compile: "
                << compiled.errors.front().message << "\n";
      continue;
    }
    c->program = std::move(compiled.program);
    c->activation.slots.resize(static_cast<size_t>(c->env.size()));
    c->activation.slots[c->params_slot] = aegis::expr::Value::FromJson(c->params);
    aegis::expr::EvalScratch scratch;
    c->result = ValueText(c->program->Evaluate(c->activation, scratch));
    out.push_back(std::move(c));
  }
  return out;
}

// ---- Google Benchmark registrations -------------------------------------------------------

void RegisterGoogleBenchmarks(std::vector<PolicyCase>& cases,
                              std::vector<std::unique_ptr<ConditionCase>>& conds) {
  for (auto& c : cases) {
    PolicyCase* pc = &c;
    benchmark::RegisterBenchmark(("Decide/" + c.name).c_str(), [pc](benchmark::State& st) {
      size_t i = 0;
      for (auto _ : st) {
        auto d = pc->engine->Decide(pc->calls[i]);
        benchmark::DoNotOptimize(d);
        if (++i == pc->calls.size()) i = 0;
      }
      st.SetItemsProcessed(st.iterations());
    });
  }
  // The decide API's in-process cost: strict JSON parse of the call, then Decide.
  for (auto& c : cases) {
    if (c.name != "rules-50") continue;
    PolicyCase* pc = &c;
    benchmark::RegisterBenchmark(("ParseCallAndDecide/" + c.name).c_str(),
                                 [pc](benchmark::State& st) {
                                   size_t i = 0;
                                   for (auto _ : st) {
                                     auto call = aegis::engine::ParseCall(pc->raw_calls[i],
                                                                          kNowNanos);
                                     auto d = pc->engine->Decide(*call);
                                     benchmark::DoNotOptimize(d);
                                     if (++i == pc->raw_calls.size()) i = 0;
                                   }
                                   st.SetItemsProcessed(st.iterations());
                                 });
  }
  for (auto& c : conds) {
    ConditionCase* cc = c.get();
    benchmark::RegisterBenchmark(("Condition/" + c->name).c_str(), [cc](benchmark::State& st) {
      aegis::expr::EvalScratch scratch;
      for (auto _ : st) {
        aegis::expr::Value v = cc->program->Evaluate(cc->activation, scratch);
        benchmark::DoNotOptimize(v);
      }
      st.SetItemsProcessed(st.iterations());
    });
  }
}

// ---- Own latency distribution -------------------------------------------------------------

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t idx = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(idx, sorted.size() - 1)];
}

// The cost of reading the clock twice, subtracted from each sample.
double TimerOverheadNs() {
  std::vector<double> d(20'000);
  for (auto& x : d) {
    auto a = Clock::now();
    auto b = Clock::now();
    x = std::chrono::duration<double, std::nano>(b - a).count();
  }
  return Median(d);
}

// Calls in a fixed shuffled order, so consecutive calls hit different rules and tools the way
// mixed traffic does (and branch predictors cannot learn one call).
std::vector<uint32_t> CallOrder(size_t n_calls, size_t length) {
  std::vector<uint32_t> order(length);
  std::mt19937 rng(12345);
  std::uniform_int_distribution<uint32_t> pick(0, static_cast<uint32_t>(n_calls - 1));
  for (auto& o : order) o = pick(rng);
  return order;
}

DecideStats MeasureDecide(const PolicyCase& c, const Options& opt, double timer_ns) {
  const Engine& engine = *c.engine;
  std::vector<uint32_t> order = CallOrder(c.calls.size(), opt.samples);
  // Warm-up: caches, branch predictors, thread-local scratch.
  for (size_t i = 0; i < std::min<size_t>(opt.samples, 20'000); ++i) {
    auto d = engine.Decide(c.calls[order[i]]);
    benchmark::DoNotOptimize(d);
  }
  std::vector<double> p50, p90, p99, p999, mx, mean, tput;
  std::vector<double> samples(opt.samples);
  for (int rep = 0; rep < opt.reps; ++rep) {
    for (size_t i = 0; i < opt.samples; ++i) {
      const CallContext& call = c.calls[order[i]];
      auto t0 = Clock::now();
      {
        auto d = engine.Decide(call);  // destroyed inside the timed region: part of the cost
        benchmark::DoNotOptimize(d);
      }
      auto t1 = Clock::now();
      samples[i] = std::max(0.0, std::chrono::duration<double, std::nano>(t1 - t0).count() -
                                     timer_ns);
    }
    std::vector<double> sorted = samples;
    std::sort(sorted.begin(), sorted.end());
    p50.push_back(Percentile(sorted, 0.50));
    p90.push_back(Percentile(sorted, 0.90));
    p99.push_back(Percentile(sorted, 0.99));
    p999.push_back(Percentile(sorted, 0.999));
    mx.push_back(sorted.back());

    // Throughput: back-to-back decisions on this one thread, no per-call clock reads.
    size_t n = 0;
    auto start = Clock::now();
    double elapsed = 0;
    do {
      for (size_t i = 0; i < opt.samples; ++i) {
        auto d = engine.Decide(c.calls[order[i]]);
        benchmark::DoNotOptimize(d);
      }
      n += opt.samples;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    } while (elapsed < 0.3);
    tput.push_back(static_cast<double>(n) / elapsed);
    mean.push_back(elapsed * 1e9 / static_cast<double>(n));
  }
  return {Median(p50), Median(p90), Median(p99), Median(p999), Median(mx), Median(mean),
          Median(tput)};
}

double MeasureCondition(ConditionCase& c, const Options& opt) {
  aegis::expr::EvalScratch scratch;
  constexpr size_t kBatch = 1'000'000;
  std::vector<double> per;
  for (int rep = 0; rep < opt.reps; ++rep) {
    auto t0 = Clock::now();
    for (size_t i = 0; i < kBatch; ++i) {
      aegis::expr::Value v = c.program->Evaluate(c.activation, scratch);
      benchmark::DoNotOptimize(v);
    }
    per.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                  static_cast<double>(kBatch));
  }
  return Median(per);
}

// Writes each call's outcome, one per line in calls.jsonl order, for the Cedar comparison.
void WriteDecisions(const PolicyCase& c) {
  if (c.dir.empty()) return;
  std::ofstream out(c.dir + "/aegis-decisions.txt");
  for (const auto& call : c.calls) out << OutcomeName(c.engine->Decide(call)) << "\n";
}

std::string Fmt(double v, int prec = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

std::string FmtNs(double ns) { return ns >= 1000 ? Fmt(ns / 1000, 2) + " µs" : Fmt(ns) + " ns"; }

std::string Verdict(bool ok) { return ok ? "ok" : "MISSED"; }

size_t RuleCountOf(const PolicyCase& c) { return c.policy->RuleCount(); }

int Run(int argc, char** argv) {
  Options opt;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--data") {
      opt.data_dir = value();
    } else if (a == "--fintech") {
      opt.fintech_dir = value();
    } else if (a == "--results") {
      opt.results_file = value();
    } else if (a == "--reps") {
      opt.reps = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--samples") {
      opt.samples = std::max<size_t>(1000, std::strtoull(value().c_str(), nullptr, 10));
    } else if (a == "--no-gbench") {
      opt.gbench = false;
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: engine_benchmark [--data DIR] [--fintech DIR] [--reps N] "
                   "[--samples N] [--results FILE] [--no-gbench] [--benchmark_* ...]\n";
      return 0;
    } else {
      rest.push_back(argv[i]);
    }
  }
  int gargc = static_cast<int>(rest.size());
  benchmark::Initialize(&gargc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(gargc, rest.data())) return 2;

  // Load: the fintech example (if written yet), then every generated set, smallest first.
  std::vector<PolicyCase> cases;
  if (auto c = LoadExample("fintech", opt.fintech_dir)) cases.push_back(std::move(*c));
  std::vector<std::pair<size_t, fs::path>> generated;
  if (fs::is_directory(opt.data_dir)) {
    for (const auto& e : fs::directory_iterator(opt.data_dir)) {
      std::string n = e.path().filename().string();
      if (e.is_directory() && n.rfind("rules-", 0) == 0) {
        generated.emplace_back(std::strtoull(n.c_str() + 6, nullptr, 10), e.path());
      }
    }
  }
  std::sort(generated.begin(), generated.end());
  if (generated.empty()) {
    std::cout << "note: no generated policies in " << opt.data_dir
              << "; run `node bench/peers/gen.mjs --out " << opt.data_dir
              << "` (scripts/bench.sh does)\n";
  }
  for (const auto& [n, dir] : generated) {
    if (auto c = LoadGenerated(dir)) cases.push_back(std::move(*c));
  }
  auto conds = LoadConditions(opt.data_dir);
  for (const auto& c : cases) {
    std::cout << "loaded " << c.name << ": " << RuleCountOf(c) << " rules, " << c.calls.size()
              << " calls, compiled in " << Fmt(c.compile_ms, 1) << " ms, policy heap "
              << Fmt(c.heap_mib, 1) << " MiB\n";
    WriteDecisions(c);
  }

  if (opt.gbench) {
    RegisterGoogleBenchmarks(cases, conds);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  }

  double timer_ns = TimerOverheadNs();
  std::cout << "\nLatency distribution: " << opt.samples << " individually timed Decide calls "
            << "x " << opt.reps << " reps (median of reps), clock overhead " << Fmt(timer_ns, 1)
            << " ns subtracted; decisions/s: back-to-back on one thread\n\n";
  std::vector<std::pair<const PolicyCase*, DecideStats>> stats;
  for (const auto& c : cases) stats.emplace_back(&c, MeasureDecide(c, opt, timer_ns));
  std::vector<double> cond_ns;
  for (auto& c : conds) cond_ns.push_back(MeasureCondition(*c, opt));

  std::printf("%-12s %7s %10s %10s %10s %10s %10s %14s\n", "policy", "rules", "p50", "p90",
              "p99", "p99.9", "mean", "decisions/s");
  for (const auto& [c, s] : stats) {
    std::printf("%-12s %7zu %10s %10s %10s %10s %10s %14s\n", c->name.c_str(), RuleCountOf(*c),
                FmtNs(s.p50_ns).c_str(), FmtNs(s.p90_ns).c_str(), FmtNs(s.p99_ns).c_str(),
                FmtNs(s.p999_ns).c_str(), FmtNs(s.mean_ns).c_str(),
                Fmt(s.decisions_per_s).c_str());
  }
  std::printf("\n%-14s %10s  %s\n", "condition", "per eval", "expression = result");
  for (size_t i = 0; i < conds.size(); ++i) {
    std::printf("%-14s %10s  %s = %s\n", conds[i]->name.c_str(), FmtNs(cond_ns[i]).c_str(),
                conds[i]->source.c_str(), conds[i]->result.c_str());
  }

  // Targets of DESIGN.md section 8 that this binary can check on its own.
  std::printf("\n%-44s %-14s %-12s %s\n", "target (DESIGN.md section 8)", "measured", "target",
              "");
  auto row = [](const std::string& what, const std::string& measured, const std::string& target,
                bool ok) {
    std::printf("%-44s %-14s %-12s %s\n", what.c_str(), measured.c_str(), target.c_str(),
                Verdict(ok).c_str());
  };
  for (const auto& [c, s] : stats) {
    size_t rules = RuleCountOf(*c);
    if (c->name == "rules-50" || c->name == "fintech") {
      std::string n = c->name + " (" + std::to_string(rules) + " rules)";
      row(n + " p50", FmtNs(s.p50_ns), "<= 1 µs", s.p50_ns <= 1000);
      row(n + " p99", FmtNs(s.p99_ns), "<= 5 µs", s.p99_ns <= 5000);
      row(n + " decisions/s, 1 core", Fmt(s.decisions_per_s / 1e6, 2) + " M/s", ">= 1 M/s",
          s.decisions_per_s >= 1e6);
    }
    if (rules >= 10'000) {
      row(c->name + " p99", FmtNs(s.p99_ns), "<= 10 µs", s.p99_ns <= 10'000);
    }
  }
  for (size_t i = 0; i < conds.size(); ++i) {
    row("condition " + conds[i]->name, FmtNs(cond_ns[i]), "<= 50 ns", cond_ns[i] <= 50);
  }

  if (!opt.results_file.empty()) {
    std::string j = "{\"timer_overhead_ns\":" + Fmt(timer_ns, 1) + ",\"reps\":" +
                    std::to_string(opt.reps) + ",\"samples\":" + std::to_string(opt.samples) +
                    ",\"policies\":[";
    for (size_t i = 0; i < stats.size(); ++i) {
      const auto& [c, s] = stats[i];
      if (i) j += ",";
      j += "{\"name\":\"" + c->name + "\",\"rules\":" + std::to_string(RuleCountOf(*c)) +
           ",\"calls\":" + std::to_string(c->calls.size()) +
           ",\"compile_ms\":" + Fmt(c->compile_ms, 1) + ",\"heap_mib\":" + Fmt(c->heap_mib, 2) +
           ",\"p50_ns\":" + Fmt(s.p50_ns, 1) + ",\"p90_ns\":" + Fmt(s.p90_ns, 1) +
           ",\"p99_ns\":" + Fmt(s.p99_ns, 1) + ",\"p999_ns\":" + Fmt(s.p999_ns, 1) +
           ",\"max_ns\":" + Fmt(s.max_ns, 1) + ",\"mean_ns\":" + Fmt(s.mean_ns, 1) +
           ",\"decisions_per_s\":" + Fmt(s.decisions_per_s) + "}";
    }
    j += "],\"conditions\":[";
    for (size_t i = 0; i < conds.size(); ++i) {
      if (i) j += ",";
      j += "{\"name\":";
      aegis::common::AppendJsonString(j, conds[i]->name);
      j += ",\"ns\":" + Fmt(cond_ns[i], 2) + ",\"result\":";
      aegis::common::AppendJsonString(j, conds[i]->result);
      j += "}";
    }
    j += "]}\n";
    std::ofstream(opt.results_file) << j;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
