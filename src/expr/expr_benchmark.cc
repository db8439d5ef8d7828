// Evaluation cost of typical conditions. The reference is a hand-written C++ check of the same
// condition against the same JSON, so the ratio shows the interpreter's overhead.
#include <benchmark/benchmark.h>

#include "common/json.h"
#include "expr/expr.h"

namespace aegis::expr {
namespace {

struct Fixture {
  Fixture() {
    params = *common::ParseJson(R"({"amount": 7000, "currency": "usd", "memo": "invoice 42"})");
    env.Declare("agent", "string");
    env.Declare("params", "map(string, dyn)");
    activation.slots = {Value::String("finance-agent"), Value::FromJson(params)};
  }
  common::Json params;
  Environment env;
  Activation activation;
};

void RunCondition(benchmark::State& state, const char* source) {
  Fixture f;
  CompileResult r = Compile(source, f.env);
  if (r.program == nullptr) {
    state.SkipWithError("did not compile");
    return;
  }
  EvalScratch scratch;
  for (auto _ : state) {
    Value v = r.program->Evaluate(f.activation, scratch);
    benchmark::DoNotOptimize(v);
  }
}

void BM_AmountAbove(benchmark::State& state) { RunCondition(state, "params.amount > 5000"); }
BENCHMARK(BM_AmountAbove);

void BM_InConstantList(benchmark::State& state) {
  RunCondition(state, "params.currency in ['usd', 'eur', 'gbp', 'chf', 'jpy', 'cad']");
}
BENCHMARK(BM_InConstantList);

void BM_Compound(benchmark::State& state) {
  RunCondition(state,
               "agent.startsWith('finance-') && params.amount > 5000 && "
               "params.memo.matches('^invoice [0-9]+$')");
}
BENCHMARK(BM_Compound);

void BM_ReferenceHandWritten(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) {
    const common::Json* amount = f.params.Find("amount");
    bool v = amount != nullptr && amount->is_int() && amount->as_int() > 5000;
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_ReferenceHandWritten);

}  // namespace
}  // namespace aegis::expr
