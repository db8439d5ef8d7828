// The behaviour every limit store must have, run against the in-memory store and against a
// real Redis; then what only the Redis store does (fail modes, reconnects, scripts).
#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "limits/memory_store.h"
#include "limits/redis_store.h"
#include "limits/testing/redis_server.h"

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

std::vector<SpendRow> Rows(LimitStore& store, std::string_view prefix, int64_t now = kNoon) {
  auto rows = store.Spend(prefix, now);
  EXPECT_TRUE(rows.ok()) << rows.status();
  return rows.ok() ? *rows : std::vector<SpendRow>{};
}

// One Redis for the whole program; each store gets its own key prefix, so tests and rounds
// never see each other's counters.
testing::RedisServer& SharedRedis() {
  static testing::RedisServer server;  // stopped when the program exits
  static bool started = [] {
    bool ok = server.Start();
    if (!ok) ADD_FAILURE() << "redis-server did not start (scripts/install-deps.sh installs it)";
    return ok;
  }();
  (void)started;
  return server;
}

std::unique_ptr<RedisLimitStore> NewRedisStore(const std::string& url,
                                               FailMode mode = FailMode::kFailClosed,
                                               int64_t reservation_ttl_nanos = 3600 * kSecond) {
  static std::atomic<int> n{0};
  RedisOptions o;
  o.url = url;
  o.key_prefix = "test" + std::to_string(getpid()) + "." + std::to_string(n.fetch_add(1)) + ":";
  o.fail_mode = mode;
  o.reservation_ttl_nanos = reservation_ttl_nanos;
  o.pool_size = 8;
  auto store = RedisLimitStore::Create(o);
  EXPECT_TRUE(store.ok()) << store.status();
  return std::move(*store);
}

// The stores under test, by name; reservation TTLs in real time for Redis (it expires keys on
// its own clock), in call time for memory.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<LimitStore> NewStore(int64_t reservation_ttl_nanos = 3600 * kSecond) {
    if (GetParam() == "memory") return std::make_unique<MemoryLimitStore>(reservation_ttl_nanos);
    return NewRedisStore(SharedRedis().url(), FailMode::kFailClosed, reservation_ttl_nanos);
  }
  bool redis() const { return GetParam() == "redis"; }
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values("memory", "redis"),
                         [](const auto& info) { return info.param; });

TEST_P(StoreTest, ExactlyTheBudgetIsAdmittedUnderConcurrency) {
  for (int round = 0; round < 20; ++round) {
    auto owned = NewStore();
    LimitStore& store = *owned;
    Charge c = Cost(1, {Daily("agent/a", 100), Daily("tenant/t", 1'000'000)});
    EXPECT_EQ(AdmitConcurrently(store, c, 1000, 8), 100) << "round " << round;
    auto rows = Rows(store, "");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].spent, 100);  // agent/a
    EXPECT_EQ(rows[1].spent, 100);  // tenant/t: charged only for admitted calls
  }
}

TEST_P(StoreTest, ExactlyTheBurstIsAdmittedAtOneInstant) {
  for (int round = 0; round < 20; ++round) {
    auto owned = NewStore();
    LimitStore& store = *owned;
    Charge c = Cost(0, {}, {{"agent/a", {1.0, 10}}});
    EXPECT_EQ(AdmitConcurrently(store, c, 1000, 8), 10) << "round " << round;
  }
  // Retry-after is computed: at 5/s with burst 2, the third call at the same instant waits
  // exactly one interval (200 ms); after it, it is admitted.
  auto owned = NewStore();
  LimitStore& store = *owned;
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

TEST_P(StoreTest, WhenOneLimitRefusesNoneIsCharged) {
  auto owned = NewStore();
  LimitStore& store = *owned;
  ASSERT_EQ(store.Admit(Cost(5, {Daily("tool/x", 5)})).result, Outcome::Result::kAdmitted);
  // The agent budget has room, the tool budget does not: nothing is charged anywhere, and the
  // rate limit's single slot is not used up.
  Charge both = Cost(1, {Daily("agent/a", 100), Daily("tool/x", 5)}, {{"rate/a", {1.0, 1}}});
  Outcome o = store.Admit(both);
  EXPECT_EQ(o.result, Outcome::Result::kBudgetExceeded);
  EXPECT_EQ(o.key, "tool/x");
  EXPECT_EQ(o.remaining, 0);
  EXPECT_EQ(o.window_reset_unix_nanos, (kNoon / kDay + 1) * kDay);
  EXPECT_TRUE(Rows(store, "agent/").empty());
  EXPECT_EQ(store.Admit(Cost(1, {Daily("agent/a", 100)}, {{"rate/a", {1.0, 1}}})).result,
            Outcome::Result::kAdmitted);
}

TEST_P(StoreTest, SettleRefundsChargesAndRefusesReplays) {
  auto owned = NewStore(/*reservation_ttl_nanos=*/redis() ? kSecond : 60 * kSecond);
  LimitStore& store = *owned;
  ASSERT_EQ(store.Admit(Cost(40, {Daily("agent/a", 100)}, {}, "d1")).result,
            Outcome::Result::kAdmitted);
  EXPECT_TRUE(store.Settle("d1", 10, kNoon).ok());  // refund 30
  EXPECT_EQ(Rows(store, "agent/a")[0].spent, 10);
  EXPECT_EQ(store.Settle("d1", 10, kNoon).code(), common::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.Settle("nope", 10, kNoon).code(), common::StatusCode::kNotFound);
  ASSERT_EQ(store.Admit(Cost(20, {Daily("agent/a", 100)}, {}, "d2")).result,
            Outcome::Result::kAdmitted);
  EXPECT_EQ(store.Settle("d2", -1, kNoon).code(), common::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store.Settle("d2", 50, kNoon).ok());  // overage of 30
  EXPECT_EQ(Rows(store, "agent/a")[0].spent, 60);
  // A reservation never settled stays charged at its estimate, and expires.
  ASSERT_EQ(store.Admit(Cost(25, {Daily("agent/a", 100)}, {}, "d3")).result,
            Outcome::Result::kAdmitted);
  if (redis()) std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(store.Settle("d3", 0, kNoon + 61 * kSecond).code(), common::StatusCode::kNotFound);
  EXPECT_EQ(Rows(store, "agent/a")[0].spent, 85);
}

TEST_P(StoreTest, BudgetsRollOverWithTheirWindow) {
  auto owned = NewStore();
  LimitStore& store = *owned;
  int64_t before_midnight = (kNoon / kDay + 1) * kDay - 1;
  Budget day = Daily("agent/a", 10);
  ASSERT_EQ(store.Admit(Cost(10, {day}, {}, "", before_midnight)).result,
            Outcome::Result::kAdmitted);
  EXPECT_EQ(store.Admit(Cost(1, {day}, {}, "", before_midnight)).result,
            Outcome::Result::kBudgetExceeded);
  EXPECT_EQ(store.Admit(Cost(1, {day}, {}, "", before_midnight + 1)).result,
            Outcome::Result::kAdmitted);
  EXPECT_EQ(Rows(store, "agent/a", before_midnight + 1)[0].spent, 1);
}

TEST_P(StoreTest, OneKeyCarriesADailyAMonthlyAndAnHourlyBudget) {
  auto owned = NewStore();
  LimitStore& store = *owned;
  Budget day = Daily("agent/acme/a", 50);
  Budget month{"agent/acme/a", {100, {Window::Kind::kMonth, 0}}};
  Budget hour{"agent/acme/a", {30, {Window::Kind::kDuration, 3600 * kSecond}}};
  // The hourly budget refuses first; nothing is charged to the other two.
  ASSERT_EQ(store.Admit(Cost(20, {day, month, hour})).result, Outcome::Result::kAdmitted);
  Outcome o = store.Admit(Cost(20, {day, month, hour}));
  EXPECT_EQ(o.result, Outcome::Result::kBudgetExceeded);
  EXPECT_EQ(o.remaining, 10);
  EXPECT_EQ(o.window_reset_unix_nanos, kNoon + 3600 * kSecond);
  // An hour later the hourly budget has room; the daily one refuses at 60 > 50.
  o = store.Admit(Cost(20, {day, month, hour}, {}, "", kNoon + 3600 * kSecond));
  ASSERT_EQ(o.result, Outcome::Result::kAdmitted);
  o = store.Admit(Cost(20, {day, month, hour}, {}, "", kNoon + 2 * 3600 * kSecond));
  EXPECT_EQ(o.result, Outcome::Result::kBudgetExceeded);
  EXPECT_EQ(o.remaining, 10);
  EXPECT_EQ(o.window_reset_unix_nanos, (kNoon / kDay + 1) * kDay);
  // The next day only the monthly budget remembers: 40 of 100.
  int64_t tomorrow = kNoon + kDay;
  ASSERT_EQ(store.Admit(Cost(60, {day, month}, {}, "", tomorrow)).result,
            Outcome::Result::kBudgetExceeded);
  ASSERT_EQ(store.Admit(Cost(50, {day, month}, {}, "", tomorrow)).result,
            Outcome::Result::kAdmitted);
  auto rows = Rows(store, "agent/acme/", tomorrow);
  ASSERT_EQ(rows.size(), redis() ? 2u : 3u);  // memory also lists the idle hourly window
  EXPECT_EQ(rows[0].window, redis() ? "day" : "3600s");
  EXPECT_EQ(rows.back().window, "month");
  EXPECT_EQ(rows.back().spent, 90);
  EXPECT_EQ(rows.back().limit, 100);
}

TEST_P(StoreTest, AnotherTenantCannotSettleADecision) {
  auto owned = NewStore();
  LimitStore& store = *owned;
  Charge c = Cost(40, {Daily("agent/acme/a", 100)}, {}, "d1");
  c.owner = "acme";
  ASSERT_EQ(store.Admit(c).result, Outcome::Result::kAdmitted);
  EXPECT_EQ(store.Settle("d1", 0, kNoon, "globex").code(), common::StatusCode::kNotFound);
  EXPECT_EQ(Rows(store, "agent/")[0].spent, 40);
  EXPECT_TRUE(store.Settle("d1", 0, kNoon, "acme").ok());
  EXPECT_EQ(Rows(store, "agent/")[0].spent, 0);
}

TEST_P(StoreTest, AnIdIsConsumedExactlyOnceUnderConcurrency) {
  auto owned = NewStore();
  LimitStore& store = *owned;
  for (int round = 0; round < 5; ++round) {
    std::string id = "jti-" + std::to_string(round);
    std::atomic<int> won{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 100; ++t) {
      threads.emplace_back([&] {
        auto r = store.ConsumeOnce(id, kNoon + 60 * kSecond, kNoon);
        ASSERT_TRUE(r.ok()) << r.status();
        if (*r) won.fetch_add(1);
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(won.load(), 1) << "round " << round;
  }
  // Given back, it can be used once more.
  store.Unconsume("jti-0");
  EXPECT_TRUE(*store.ConsumeOnce("jti-0", kNoon + 60 * kSecond, kNoon));
  EXPECT_FALSE(*store.ConsumeOnce("jti-0", kNoon + 60 * kSecond, kNoon));
}

TEST(WindowTest, MonthsAndDurations) {
  Window month{Window::Kind::kMonth, 0};
  int64_t jan31 = (20'484LL) * kDay + 3600 * kSecond;  // 2026-01-31T01:00:00Z
  EXPECT_EQ(month.Start(jan31), 20'454LL * kDay);      // 2026-01-01
  EXPECT_EQ(month.End(jan31), 20'485LL * kDay);        // 2026-02-01
  int64_t dec15 = 20'802LL * kDay;                     // 2026-12-15
  EXPECT_EQ(month.End(dec15), 20'819LL * kDay);        // 2027-01-01
  Window hour{Window::Kind::kDuration, 3600 * kSecond};
  EXPECT_EQ(hour.Start(kNoon + 5 * kSecond), kNoon);
  EXPECT_EQ(hour.Label(), "3600s");
}

TEST(RedisUrlTest, ParsesWhatRedisClientsAccept) {
  auto a = ParseRedisUrl("redis://:s%40cret@cache.internal:6380/2");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "cache.internal");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->password, "s@cret");
  EXPECT_EQ(a->user, "");
  EXPECT_EQ(a->db, 2);
  a = ParseRedisUrl("redis://gateway:pw@[::1]");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 6379);
  EXPECT_EQ(a->user, "gateway");
  a = ParseRedisUrl("unix:///run/redis.sock?db=3");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->socket_path, "/run/redis.sock");
  EXPECT_EQ(a->db, 3);
  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x",
                          "redis://pw@h", "redis://:%zz@h", "redis://:%00@h", "unix://rel.sock",
                          "unix:///s?db=x", "rediss://h", "redis://h\r\n:1", "redis://[::1"}) {
    EXPECT_FALSE(ParseRedisUrl(bad).ok()) << bad;
  }
}

// A Redis of its own, to stop and restart.
class RedisOutageTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.Start()) << "redis-server did not start"; }
  // Waits out the store's pause after a failure (at most 2 s) until `admitted` holds.
  template <typename F>
  bool Eventually(F f) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (f()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  testing::RedisServer redis_;
};

TEST_F(RedisOutageTest, FailClosedRefusesWhileDownAndRecoversWithoutDoubleCharge) {
  auto store = NewRedisStore(redis_.url(), FailMode::kFailClosed);
  Budget b = Daily("agent/acme/a", 100);
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(store->Admit(Cost(1, {b}, {}, "before" + std::to_string(i))).result,
              Outcome::Result::kAdmitted);
  }
  redis_.Stop(SIGKILL);
  Outcome o = store->Admit(Cost(1, {b}, {}, "during"));
  EXPECT_EQ(o.result, Outcome::Result::kUnavailable);
  EXPECT_FALSE(o.fail_open);
  EXPECT_EQ(store->Settle("before0", 0, kNoon).code(), common::StatusCode::kUnavailable);
  EXPECT_EQ(store->Spend("", kNoon).status().code(), common::StatusCode::kUnavailable);
  std::string metrics;
  store->AppendMetrics(metrics);
  EXPECT_THAT(metrics, ::testing::HasSubstr("aegis_limits_store_up{store=\"redis\"} 0"));
  EXPECT_THAT(metrics, ::testing::HasSubstr("aegis_limits_unavailable_total 1"));

  // Restarted (its append-only file kept every acknowledged charge): the same store recovers
  // on its own, with the 30 charges made before the outage and none made during it.
  ASSERT_TRUE(redis_.Start());
  EXPECT_TRUE(Eventually([&] {
    return store->Admit(Cost(1, {b}, {}, "after")).result == Outcome::Result::kAdmitted;
  }));
  EXPECT_EQ(Rows(*store, "agent/")[0].spent, 31);
  EXPECT_TRUE(store->Settle("before0", 0, kNoon).ok());
  EXPECT_EQ(Rows(*store, "agent/")[0].spent, 30);
  metrics.clear();
  store->AppendMetrics(metrics);
  EXPECT_THAT(metrics, ::testing::HasSubstr("aegis_limits_store_up{store=\"redis\"} 1"));
}

TEST_F(RedisOutageTest, FailOpenUsesLocalLimitsAndMarksEveryAnswer) {
  auto store = NewRedisStore(redis_.url(), FailMode::kFailOpen);
  Budget b = Daily("agent/acme/a", 10);
  ASSERT_EQ(store->Admit(Cost(4, {b})).result, Outcome::Result::kAdmitted);
  redis_.Stop(SIGKILL);
  // The local fallback knows nothing of Redis's 4: it enforces the same limit on its own.
  Outcome o = store->Admit(Cost(5, {b}, {}, "local1"));
  EXPECT_EQ(o.result, Outcome::Result::kAdmitted);
  EXPECT_TRUE(o.fail_open);
  o = store->Admit(Cost(5, {b}, {}, "local2"));
  EXPECT_EQ(o.result, Outcome::Result::kAdmitted);
  o = store->Admit(Cost(5, {b}));
  EXPECT_EQ(o.result, Outcome::Result::kBudgetExceeded);
  EXPECT_TRUE(o.fail_open);
  // Rate limits hold locally too.
  Charge rated = Cost(0, {}, {{"agent/acme/a", {1.0, 1}}});
  EXPECT_EQ(store->Admit(rated).result, Outcome::Result::kAdmitted);
  EXPECT_EQ(store->Admit(rated).result, Outcome::Result::kRateLimited);
  // A reservation made locally settles locally.
  EXPECT_TRUE(store->Settle("local1", 1, kNoon).ok());
  std::string metrics;
  store->AppendMetrics(metrics);
  EXPECT_THAT(metrics, ::testing::HasSubstr("aegis_limits_fail_open_total 5"));

  ASSERT_TRUE(redis_.Start());
  EXPECT_TRUE(Eventually([&] {
    Outcome after = store->Admit(Cost(1, {b}));
    return after.result == Outcome::Result::kAdmitted && !after.fail_open;
  }));
  EXPECT_EQ(Rows(*store, "agent/")[0].spent, 5);  // Redis's own count: 4 + 1
}

TEST_F(RedisOutageTest, ARetriedAdmitNeverChargesTwiceAndLostScriptsAreReloaded) {
  auto store = NewRedisStore(redis_.url());
  Budget b = Daily("agent/acme/a", 100);
  // The same decision admitted twice (a retry after a lost reply) is charged once.
  ASSERT_EQ(store->Admit(Cost(30, {b}, {}, "d1")).result, Outcome::Result::kAdmitted);
  ASSERT_EQ(store->Admit(Cost(30, {b}, {}, "d1")).result, Outcome::Result::kAdmitted);
  EXPECT_EQ(Rows(*store, "agent/")[0].spent, 30);
  // Redis forgot its scripts (SCRIPT FLUSH, or a restart without persistence): EVAL reloads.
  std::string flush = "redis-cli -s " + redis_.url().substr(7) + " SCRIPT FLUSH >/dev/null";
  ASSERT_EQ(std::system(flush.c_str()), 0);
  ASSERT_EQ(store->Admit(Cost(30, {b}, {}, "d2")).result, Outcome::Result::kAdmitted);
  EXPECT_EQ(Rows(*store, "agent/")[0].spent, 60);
  // Every key the store wrote carries a TTL.
  std::string ttls = "redis-cli -s " + redis_.url().substr(7) +
                     " --scan | while read k; do redis-cli -s " + redis_.url().substr(7) +
                     " PTTL \"$k\"; done | grep -qx -- -1";
  EXPECT_NE(std::system(ttls.c_str()), 0) << "a key without a TTL";
}

TEST_F(RedisOutageTest, AStoreStartedWhileRedisIsDownConnectsLater) {
  redis_.Stop();
  auto store = NewRedisStore(redis_.url(), FailMode::kFailClosed);
  EXPECT_FALSE(store->Ping().ok());
  EXPECT_EQ(store->Admit(Cost(1, {Daily("agent/acme/a", 10)})).result,
            Outcome::Result::kUnavailable);
  ASSERT_TRUE(redis_.Start());
  EXPECT_TRUE(Eventually([&] { return store->Ping().ok(); }));
}

}  // namespace
}  // namespace aegis::limits
