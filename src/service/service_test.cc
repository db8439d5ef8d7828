#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config.h"
#include "service/decider.h"
#include "service/metrics.h"
#include "service/policy_store.h"
#include "service/watcher.h"

namespace aegis::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

std::string Bundle(std::string_view effect) {
  return std::string(R"(apiVersion: aegis/v1
kind: Policy
metadata: {name: svc}
tools:
  stripe: {}
agents:
  a: {tools: [stripe]}
rules:
  - {id: r, match: {tools: [stripe]}, effect: )") +
         std::string(effect) + "}\n";
}

class TempBundle {
 public:
  TempBundle() {
    dir_ = fs::temp_directory_path() /
           ("aegis-svc-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(dir_);
  }
  ~TempBundle() { fs::remove_all(dir_); }
  void Write(const std::string& text) {
    std::ofstream(dir_ / "p.yaml.tmp") << text;
    fs::rename(dir_ / "p.yaml.tmp", dir_ / "p.yaml");  // atomic, as editors and deployers do
  }
  std::string path() const { return dir_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
};

engine::CallContext Call() {
  auto call = engine::ParseCall(R"({"agent":"a","tool":"stripe"})", 0);
  EXPECT_TRUE(call.ok());
  return *call;
}

TEST(PolicyStoreTest, ReloadSwapsRefusesBrokenBundlesAndRollsBack) {
  TempBundle bundle;
  bundle.Write(Bundle("allow"));
  PolicyStore store(bundle.path(), 3);
  ASSERT_TRUE(store.Reload().ok());
  Metrics metrics;
  Decider decider(store, metrics);
  std::string v1 = store.Active()->policy().version;
  EXPECT_EQ(decider.Decide(Call(), FrontDoor::kCli).outcome, policy::Effect::kAllow);

  bundle.Write(Bundle("deny"));
  ASSERT_TRUE(store.Reload().ok());
  std::string v2 = store.Active()->policy().version;
  EXPECT_NE(v1, v2);
  engine::Decision d = decider.Decide(Call(), FrontDoor::kCli);
  EXPECT_EQ(d.outcome, policy::Effect::kDeny);
  EXPECT_EQ(d.policy->version, v2);

  bundle.Write(Bundle("maybe"));  // broken: refused, v2 keeps serving
  common::Status st = store.Reload();
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("error[wrong-value]"));
  EXPECT_EQ(store.Active()->policy().version, v2);
  EXPECT_THAT(store.reload_state().last_error, HasSubstr("effect must be"));
  EXPECT_EQ(store.reload_state().reloads_failed, 1);

  ASSERT_TRUE(store.Rollback(v1).ok());
  EXPECT_EQ(decider.Decide(Call(), FrontDoor::kCli).outcome, policy::Effect::kAllow);
  EXPECT_EQ(store.Rollback("nope").code(), common::StatusCode::kNotFound);
  EXPECT_EQ(store.Versions().size(), 2u);

  // Identical content does not make a new version.
  bundle.Write(Bundle("deny"));
  ASSERT_TRUE(store.Reload().ok());
  EXPECT_EQ(store.Active()->policy().version, v2);
  EXPECT_EQ(store.Versions().size(), 2u);
  EXPECT_TRUE(store.reload_state().last_error.empty());
}

TEST(PolicyStoreTest, DecisionsDuringReloadsAlwaysNameOneValidVersion) {
  TempBundle bundle;
  bundle.Write(Bundle("allow"));
  PolicyStore store(bundle.path());
  ASSERT_TRUE(store.Reload().ok());
  Metrics metrics;
  Decider decider(store, metrics);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      auto call = Call();
      while (!stop.load()) {
        engine::Decision d = decider.Decide(call, FrontDoor::kCli);
        // allow comes only from the allow version and deny only from the deny version.
        bool allow_version = d.policy->rules[0]->effect == policy::Effect::kAllow;
        if ((d.outcome == policy::Effect::kAllow) != allow_version) bad.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 40; ++i) {
    bundle.Write(Bundle(i % 3 == 2 ? "broken" : (i % 2 ? "deny" : "allow")));
    (void)store.Reload();
  }
  stop.store(true);
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(ConfigTest, ReadsEveryKeyAndReportsMistakesAtOnce) {
  TempBundle dir;
  std::string path = dir.path() + "/aegis.yaml";
  std::ofstream(path) << R"(bundle: policies
listeners: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
limits: {max_body_bytes: 2048, idle_timeout_ms: 500}
policy: {keep_versions: 3, watch: false}
)";
  Config c;
  ASSERT_TRUE(LoadConfigFile(path, c).ok());
  EXPECT_EQ(c.bundle, "policies");
  EXPECT_EQ(c.http_listen, "127.0.0.1:0");
  EXPECT_EQ(c.max_body_bytes, 2048u);
  EXPECT_EQ(c.idle_timeout.count(), 500);
  EXPECT_EQ(c.keep_versions, 3u);
  EXPECT_FALSE(c.watch);

  std::ofstream(path) << "bundel: x\nlimits: {max_body_bytes: -1, colour: red}\nlog_level: loud\n";
  common::Status st = LoadConfigFile(path, c);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("aegis.yaml:1:1: error[unknown-key]: unknown key \"bundel\""));
  EXPECT_THAT(st.message(), HasSubstr("error[wrong-value]: expected an integer from 1024"));
  EXPECT_THAT(st.message(), HasSubstr("unknown key \"colour\" in limits"));
  EXPECT_THAT(st.message(), HasSubstr("log_level must be"));

  ApplyEnvironment({{"AEGIS_BUNDLE", "/etc/aegis"}, {"AEGIS_HTTP_LISTEN", "0.0.0.0:8080"}}, c);
  EXPECT_EQ(c.bundle, "/etc/aegis");
  EXPECT_EQ(c.http_listen, "0.0.0.0:8080");
}

TEST(ConfigTest, LimitStoreSection) {
  TempBundle dir;
  std::string path = dir.path() + "/aegis.yaml";
  std::ofstream(path) << R"(limit_store:
  store: redis
  redis_url: redis://cache:6380/1
  redis_pool_size: 4
  redis_timeout_ms: 50
  key_prefix: "prod:"
  fail_mode: fail_open
listeners: {http_threads: 12}
)";
  Config c;
  EXPECT_EQ(c.limit_store, "memory");
  EXPECT_EQ(c.limits_fail_mode, "fail_closed");
  ASSERT_TRUE(LoadConfigFile(path, c).ok());
  EXPECT_EQ(c.limit_store, "redis");
  EXPECT_EQ(c.redis_url, "redis://cache:6380/1");
  EXPECT_EQ(c.redis_pool_size, 4u);
  EXPECT_EQ(c.redis_timeout.count(), 50);
  EXPECT_EQ(c.redis_key_prefix, "prod:");
  EXPECT_EQ(c.limits_fail_mode, "fail_open");
  EXPECT_EQ(c.http_threads, 12u);

  std::ofstream(path) << "limit_store: {store: memcached, fail_mode: open, redis_timeout_ms: 0,"
                         " redis_pool_size: 0, redis: x}\n";
  common::Status st = LoadConfigFile(path, c);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("aegis.yaml:1:22: error[wrong-value]: expected memory or redis"));
  EXPECT_THAT(st.message(), HasSubstr("expected fail_closed or fail_open"));
  EXPECT_THAT(st.message(), HasSubstr("expected at least 1 ms"));
  EXPECT_THAT(st.message(), HasSubstr("expected an integer from 1 to 1024"));
  EXPECT_THAT(st.message(), HasSubstr("unknown key \"redis\" in limit_store"));

  Config e;
  ApplyEnvironment({{"AEGIS_REDIS_URL", "unix:///run/redis.sock"},
                    {"AEGIS_LIMITS_FAIL_MODE", "fail_open"}}, e);
  EXPECT_EQ(e.limit_store, "redis");
  EXPECT_EQ(e.redis_url, "unix:///run/redis.sock");
  EXPECT_EQ(e.limits_fail_mode, "fail_open");
}

TEST(WatcherTest, ReloadsOnceAfterABurstOfWrites) {
  TempBundle bundle;
  bundle.Write(Bundle("allow"));
  std::atomic<int> changes{0};
  BundleWatcher watcher(bundle.path(), std::chrono::milliseconds(100), [&] { changes++; });
  ASSERT_TRUE(watcher.Start().ok());
  for (int i = 0; i < 5; ++i) bundle.Write(Bundle(i % 2 ? "deny" : "allow"));
  for (int i = 0; i < 100 && changes.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  watcher.Stop();
  EXPECT_EQ(changes.load(), 1);
}

// Files that cannot be part of the bundle — the data dir's audit segments, approvals database,
// an editor's swap file, next to a single-file bundle — never trigger a reload; the file does.
TEST(WatcherTest, IgnoresWritesBesideTheBundle) {
  TempBundle bundle;
  bundle.Write(Bundle("allow"));
  std::string file = bundle.path() + "/p.yaml";
  std::atomic<int> changes{0};
  BundleWatcher watcher(file, std::chrono::milliseconds(50), [&] { changes++; });
  ASSERT_TRUE(watcher.Start().ok());
  fs::create_directories(bundle.path() + "/data/audit");
  for (int i = 0; i < 20; ++i) {
    std::ofstream(bundle.path() + "/data/audit/000001.log", std::ios::app) << "line\n";
    std::ofstream(bundle.path() + "/other.txt", std::ios::app) << "x";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(changes.load(), 0);
  bundle.Write(Bundle("deny"));
  for (int i = 0; i < 100 && changes.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  watcher.Stop();
  EXPECT_EQ(changes.load(), 1);
}

TEST(MetricsTest, DecisionSeriesAreBoundedAndConcurrent) {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        m.RecordDecision(0, policy::Effect::kAllow, true, {"", "a", "t"}, 100);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_THAT(m.Render(), HasSubstr("tenant=\"\",agent=\"a\",tool=\"t\"} 4000\n"));
  // Past the cap, new agents are counted as _other.
  for (int i = 0; i < 10'050; ++i) {
    m.RecordDecision(0, policy::Effect::kDeny, true, {"", "agent" + std::to_string(i), "t"}, 1);
  }
  std::string text = m.Render();
  EXPECT_THAT(text, HasSubstr("agent=\"_other\",tool=\"t\"} 51\n"));
  EXPECT_THAT(text, Not(HasSubstr("agent=\"agent10049\"")));
}

TEST(MetricsTest, RendersPrometheusText) {
  Metrics m;
  Metrics::Subject who{"acme", "finance-agent", "stripe"};
  m.RecordDecision(static_cast<int>(FrontDoor::kDecideApi), policy::Effect::kDeny, true, who, 1500);
  m.RecordDecision(static_cast<int>(FrontDoor::kDecideApi), policy::Effect::kDeny, true, who, 3000);
  m.RecordBadRequest(static_cast<int>(FrontDoor::kAuthzHttp));
  m.RecordReload(false);
  std::string text = m.Render();
  EXPECT_THAT(text, HasSubstr("aegis_decisions_total{front_door=\"decide_api\",decision=\"deny\","
                              "enforced=\"true\",tenant=\"acme\",agent=\"finance-agent\","
                              "tool=\"stripe\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("aegis_decision_duration_seconds_bucket{front_door=\"decide_api\","
                              "le=\"2.5e-06\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("aegis_decision_duration_seconds_count{front_door=\"decide_api\"} 2"));
  EXPECT_THAT(text, HasSubstr("aegis_bad_requests_total{front_door=\"authz_http\"} 1"));
  EXPECT_THAT(text, HasSubstr("aegis_policy_reloads_total{result=\"error\"} 1"));
}

}  // namespace
}  // namespace aegis::service
