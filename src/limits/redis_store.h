// RedisLimitStore: limit state in Redis, shared by every gateway replica that uses the same
// Redis (DESIGN.md section 2).
//
// One decision is one round trip: a Lua script (EVALSHA, EVAL when Redis lost its script
// cache) checks every rate limit and budget of the call and, only if all admit, charges them
// all and records the reservation, atomically. Every key the script writes gets its TTL in the
// same script, so nothing outlives its window. Time comes from the caller in microseconds,
// so replicas need synchronised clocks (NTP), as for any shared rate limiter.
//
// Connections come from a pool (at most `pool_size`, each used by one call at a time) and are
// replaced when they fail. A call that fails on a connection that had served before is retried
// once on a fresh one: the script recognises a reservation it already made, so a retry never
// charges twice. When Redis cannot be reached the fail mode applies: fail_closed answers
// kUnavailable (the engine denies with `limits_unavailable`); fail_open asks a local
// MemoryLimitStore with the same limits (per replica) and marks the outcome. After a failure
// Redis is not asked again for a short, growing pause (100 ms to 2 s), so an outage costs
// every decision at most one timeout per pause; the first success ends it.
#ifndef AEGIS_LIMITS_REDIS_STORE_H_
#define AEGIS_LIMITS_REDIS_STORE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "limits/limits.h"
#include "limits/memory_store.h"

struct redisContext;
struct redisReply;

namespace aegis::limits {

enum class FailMode { kFailClosed, kFailOpen };

struct RedisOptions {
  // redis://[[user]:password@]host[:port][/db] or unix:///path/to/redis.sock[?db=N]
  std::string url = "redis://127.0.0.1:6379";
  std::string key_prefix = "aegis:";
  size_t pool_size = 16;
  std::chrono::milliseconds timeout{250};  // connect, each command, waiting for a connection
  FailMode fail_mode = FailMode::kFailClosed;
  int64_t reservation_ttl_nanos = 3600LL * 1'000'000'000;
  // Told when Redis becomes unreachable ("error") and reachable again ("info").
  std::function<void(std::string_view level, const std::string& message)> log;
};

// Where a URL points: host and port, or a socket path; credentials and database.
struct RedisAddress {
  std::string host;
  int port = 6379;
  std::string socket_path;  // set for unix://
  std::string user, password;
  int db = 0;
};
common::StatusOr<RedisAddress> ParseRedisUrl(std::string_view url);

class RedisLimitStore : public LimitStore {
 public:
  // Validates the options; connects lazily (a Redis that is down at start is an outage like
  // any other, handled by the fail mode).
  static common::StatusOr<std::unique_ptr<RedisLimitStore>> Create(RedisOptions options);
  ~RedisLimitStore() override;

  Outcome Admit(const Charge& charge) override;
  common::Status Settle(std::string_view reservation_id, Micros actual, int64_t now_unix_nanos,
                        std::string_view owner = {}) override;
  common::StatusOr<std::vector<SpendRow>> Spend(std::string_view prefix,
                                                int64_t now_unix_nanos) override;
  common::StatusOr<bool> ConsumeOnce(std::string_view id, int64_t expires_unix_nanos,
                                     int64_t now_unix_nanos) override;
  void Unconsume(std::string_view id) override;
  void AppendMetrics(std::string& out) const override;

  // Asks Redis to PING; for readiness and tests.
  common::Status Ping();

 private:
  using Reply = std::shared_ptr<redisReply>;
  RedisLimitStore(RedisOptions options, RedisAddress address);

  // Runs one command (argv) on a pooled connection, retrying once on a fresh connection when a
  // reused one fails. Unavailable when Redis cannot be asked (or is in its pause).
  common::StatusOr<Reply> Command(const std::vector<std::string>& argv);
  // EVALSHA, then EVAL if Redis does not have the script.
  common::StatusOr<Reply> Script(const std::string& source, const std::string& sha,
                                 const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args);
  common::StatusOr<redisContext*> Connect();
  common::StatusOr<redisContext*> Acquire(bool& reused);
  void Release(redisContext* c, bool healthy);
  void MarkDown(const std::string& why);
  void MarkUp();

  RedisOptions options_;
  RedisAddress address_;
  std::string admit_sha_, settle_sha_;
  MemoryLimitStore fallback_;

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<redisContext*> idle_;
  size_t open_ = 0;  // connections idle or leased

  std::atomic<int64_t> down_until_{0};  // steady-clock nanos; 0: up
  std::atomic<int64_t> backoff_nanos_{0};
  std::atomic<int64_t> errors_{0};
  std::atomic<int64_t> fail_open_{0};
  std::atomic<int64_t> unavailable_{0};
  std::mutex log_mu_;
  std::string last_error_;
};

}  // namespace aegis::limits

#endif  // AEGIS_LIMITS_REDIS_STORE_H_
