#include "limits/memory_store.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aegis::limits {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kDay = 86'400 * kSecond;
// 2026-05-28T12:00:00Z
constexpr int64_t kNoon = 1'779'969'600LL * kSecond;

Charge Cost(Micros cost, std::vector<Budget> budgets, std::vector<RateLimit> rates = {},
            std::string id = "", int64_t now = kNoon) {
  Charge c;
  c.cost = cost;
  c.budgets = std::move(budgets);
  c.rates = std::move(rates);
  c.reservation_id = std::move(id);
  c.now_unix_nanos = now;
  return c;
}

Budget Daily(std::string key, Micros limit) { return {std::move(key), {limit, {}}}; }

// Runs `calls` Admit calls from `threads` threads at once; returns how many were admitted.
int AdmitConcurrently(LimitStore& store, const Charge& charge, int calls, int threads) {
  std::atomic<int> admitted{0}, next{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      while (next.fetch_add(1) < calls) {
        if (store.Admit(charge).result == Outcome::Result::kAdmitted) admitted.fetch_add(1);
      }
    });
  }
  go.store(true);
  for (auto& t : pool) t.join();
  return admitted.load();
}

TEST(MemoryLimitStoreTest, ExactlyTheBudgetIsAdmittedUnderConcurrency) {
  for (int round = 0; round < 20; ++round) {
    MemoryLimitStore store;
    Charge c = Cost(1, {Daily("agent/a", 100), Daily("tenant/t", 1'000'000)});
    EXPECT_EQ(AdmitConcurrently(store, c, 1000, 8), 100) << "round " << round;
    auto rows = store.Spend("", kNoon);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].spent, 100);  // agent/a
    EXPECT_EQ(rows[1].spent, 100);  // tenant/t: charged only for admitted calls
  }
}

TEST(MemoryLimitStoreTest, ExactlyTheBurstIsAdmittedAtOneInstant) {
  for (int round = 0; round < 20; ++round) {
    MemoryLimitStore store;
    Charge c = Cost(0, {}, {{"agent/a", {1.0, 10}}});
    EXPECT_EQ(AdmitConcurrently(store, c, 1000, 8), 10) << "round " << round;
  }
  // Retry-after is computed: at 5/s with burst 2, the third call at the same instant waits
  // exactly one interval (200 ms); after it, it is admitted.
  MemoryLimitStore store;
  Charge c = Cost(0, {}, {{"agent/a", {5.0, 2}}});
  EXPECT_EQ(store.Admit(c).result, Outcome::Result::kAdmitted);
  EXPECT_EQ(store.Admit(c).result, Outcome::Result::kAdmitted);
  Outcome o = store.Admit(c);
  EXPECT_EQ(o.result, Outcome::Result::kRateLimited);
  EXPECT_EQ(o.key, "agent/a");
  EXPECT_EQ(o.retry_after_nanos, 200'000'000);
  c.now_unix_nanos += o.retry_after_nanos;
  EXPECT_EQ(store.Admit(c).result, Outcome::Result::kAdmitted);
}

TEST(MemoryLimitStoreTest, WhenOneLimitRefusesNoneIsCharged) {
  MemoryLimitStore store;
  ASSERT_EQ(store.Admit(Cost(5, {Daily("tool/x", 5)})).result, Outcome::Result::kAdmitted);
  // The agent budget has room, the tool budget does not: nothing is charged anywhere, and the
  // rate limit's single slot is not used up.
  Charge both = Cost(1, {Daily("agent/a", 100), Daily("tool/x", 5)}, {{"rate/a", {1.0, 1}}});
  Outcome o = store.Admit(both);
  EXPECT_EQ(o.result, Outcome::Result::kBudgetExceeded);
  EXPECT_EQ(o.key, "tool/x");
  EXPECT_EQ(o.remaining, 0);
  EXPECT_EQ(o.window_reset_unix_nanos, (kNoon / kDay + 1) * kDay);
  EXPECT_TRUE(store.Spend("agent/", kNoon).empty());
  EXPECT_EQ(store.Admit(Cost(1, {Daily("agent/a", 100)}, {{"rate/a", {1.0, 1}}})).result,
            Outcome::Result::kAdmitted);
}

TEST(MemoryLimitStoreTest, SettleRefundsChargesAndRefusesReplays) {
  MemoryLimitStore store(/*reservation_ttl_nanos=*/60 * kSecond);
  ASSERT_EQ(store.Admit(Cost(40, {Daily("agent/a", 100)}, {}, "d1")).result,
            Outcome::Result::kAdmitted);
  EXPECT_TRUE(store.Settle("d1", 10, kNoon).ok());  // refund 30
  EXPECT_EQ(store.Spend("agent/a", kNoon)[0].spent, 10);
  EXPECT_EQ(store.Settle("d1", 10, kNoon).code(), common::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.Settle("nope", 10, kNoon).code(), common::StatusCode::kNotFound);
  ASSERT_EQ(store.Admit(Cost(20, {Daily("agent/a", 100)}, {}, "d2")).result,
            Outcome::Result::kAdmitted);
  EXPECT_EQ(store.Settle("d2", -1, kNoon).code(), common::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store.Settle("d2", 50, kNoon).ok());  // overage of 30
  EXPECT_EQ(store.Spend("agent/a", kNoon)[0].spent, 60);
  // A reservation never settled stays charged at its estimate, and expires.
  ASSERT_EQ(store.Admit(Cost(25, {Daily("agent/a", 100)}, {}, "d3")).result,
            Outcome::Result::kAdmitted);
  EXPECT_EQ(store.Settle("d3", 0, kNoon + 61 * kSecond).code(), common::StatusCode::kNotFound);
  EXPECT_EQ(store.Spend("agent/a", kNoon)[0].spent, 85);
}

TEST(MemoryLimitStoreTest, BudgetsRollOverWithTheirWindow) {
  MemoryLimitStore store;
  int64_t before_midnight = (kNoon / kDay + 1) * kDay - 1;
  Budget day = Daily("agent/a", 10);
  ASSERT_EQ(store.Admit(Cost(10, {day}, {}, "", before_midnight)).result,
            Outcome::Result::kAdmitted);
  EXPECT_EQ(store.Admit(Cost(1, {day}, {}, "", before_midnight)).result,
            Outcome::Result::kBudgetExceeded);
  EXPECT_EQ(store.Admit(Cost(1, {day}, {}, "", before_midnight + 1)).result,
            Outcome::Result::kAdmitted);
  EXPECT_EQ(store.Spend("agent/a", before_midnight + 1)[0].spent, 1);

  Window month{Window::Kind::kMonth, 0};
  int64_t jan31 = (20'484LL) * kDay + 3600 * kSecond;  // 2026-01-31T01:00:00Z
  EXPECT_EQ(month.Start(jan31), 20'454LL * kDay);      // 2026-01-01
  EXPECT_EQ(month.End(jan31), 20'485LL * kDay);        // 2026-02-01
  int64_t dec15 = 20'802LL * kDay;                     // 2026-12-15
  EXPECT_EQ(month.End(dec15), 20'819LL * kDay);        // 2027-01-01
  Window hour{Window::Kind::kDuration, 3600 * kSecond};
  EXPECT_EQ(hour.Start(kNoon + 5 * kSecond), kNoon);
}

}  // namespace
}  // namespace aegis::limits
