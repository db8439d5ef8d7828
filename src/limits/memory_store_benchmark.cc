// The in-memory limits' cost per call (issue target: <= 200 ns added per decision): one Admit
// with an agent rate limit, an agent budget and a tenant budget, the shape a decision will ask.
#include <benchmark/benchmark.h>

#include "limits/memory_store.h"

namespace aegis::limits {
namespace {

void BM_AdmitThreeKeys(benchmark::State& state) {
  MemoryLimitStore store;
  Charge c;
  c.rates = {{"agent/acme/finance-agent", {1e9, 1'000'000}}};
  c.budgets = {{"agent/acme/finance-agent", {INT64_MAX / 4, {}}},
               {"tenant/acme", {INT64_MAX / 4, {}}}};
  c.cost = 2000;
  c.now_unix_nanos = 1'779'969'600LL * 1'000'000'000;
  for (auto _ : state) {
    c.now_unix_nanos += 1000;
    benchmark::DoNotOptimize(store.Admit(c));
  }
}
BENCHMARK(BM_AdmitThreeKeys);

void BM_AdmitThreeKeysWithReservation(benchmark::State& state) {
  MemoryLimitStore store(/*reservation_ttl_nanos=*/1'000'000);
  Charge c;
  c.rates = {{"agent/acme/finance-agent", {1e9, 1'000'000}}};
  c.budgets = {{"agent/acme/finance-agent", {INT64_MAX / 4, {}}},
               {"tenant/acme", {INT64_MAX / 4, {}}}};
  c.cost = 2000;
  c.now_unix_nanos = 1'779'969'600LL * 1'000'000'000;
  c.reservation_id = "01a21a1c-0286-780b-9243-bdbbcb48406c";
  for (auto _ : state) {
    c.now_unix_nanos += 1000;
    c.reservation_id[35] = static_cast<char>('a' + (c.now_unix_nanos / 1000) % 26);
    benchmark::DoNotOptimize(store.Admit(c));
  }
}
BENCHMARK(BM_AdmitThreeKeysWithReservation);

}  // namespace
}  // namespace aegis::limits

BENCHMARK_MAIN();
