#include "limits/redis_store.h"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <tuple>

#include "common/strings.h"

namespace aegis::limits {

namespace {

// KEYS: the call's rate keys (nr), budget counters (nb), then its reservation (optional).
// ARGV: now (µs), nr, nb, cost (µ$), reservation TTL (ms), owner; then interval (µs) and burst
// per rate key; then limit (µ$) and window end (µs) per budget counter.
// Answers {0} admitted, {1, i, retry after µs} rate key i refused, {2, j, remaining µ$} budget
// counter j refused. A reservation that exists already means this call was admitted before
// (a retry after a lost reply): it is admitted again without charging anything.
// Lua numbers are doubles: µs and µ$ stay below 2^53, and are formatted with %.0f.
constexpr std::string_view kAdmitScript = R"lua(
local now = tonumber(ARGV[1])
local nr, nb = tonumber(ARGV[2]), tonumber(ARGV[3])
local cost = ARGV[4]
local ttl = tonumber(ARGV[5])
local res = KEYS[nr + nb + 1]
if res ~= nil and redis.call('EXISTS', res) == 1 then return {0} end
local a = 7
local tats = {}
for i = 1, nr do
  local interval, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local ahead = (burst - 1) * interval
  if tat - now > ahead then return {1, i, string.format('%.0f', tat - now - ahead)} end
  tats[i] = tat + interval
end
local limits, ends, fresh = {}, {}, {}
for j = 1, nb do
  limits[j], ends[j] = ARGV[a], ARGV[a + 1]
  a = a + 2
  local h = redis.call('HMGET', KEYS[nr + j], 'spent', 'limit')
  local spent = tonumber(h[1] or 0)
  if spent + tonumber(cost) > tonumber(limits[j]) then
    return {2, j, string.format('%.0f', tonumber(limits[j]) - spent)}
  end
  -- 1: a new window (set limit, end and expiry); 2: the policy changed the limit
  fresh[j] = (not h[1] and 1) or (h[2] ~= limits[j] and 2) or 0
end
for i = 1, nr do
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX',
             string.format('%.0f', math.ceil((tats[i] - now) / 1000) + 1))
end
local counters = {}
for j = 1, nb do
  local k = KEYS[nr + j]
  redis.call('HINCRBY', k, 'spent', cost)
  if fresh[j] == 1 then
    redis.call('HSET', k, 'limit', limits[j], 'end', ends[j])
    redis.call('PEXPIRE', k, string.format('%.0f', math.ceil((tonumber(ends[j]) - now) / 1000) + ttl))
  elseif fresh[j] == 2 then
    redis.call('HSET', k, 'limit', limits[j])
  end
  counters[j] = k
end
if res ~= nil and nb > 0 then
  redis.call('HSET', res, 'amount', cost, 'owner', ARGV[6], 'settled', '0', 'budgets',
             table.concat(counters, '\n'))
  redis.call('PEXPIRE', res, ttl)
end
return {0}
)lua";

// KEYS[1]: the reservation. ARGV: actual cost (µ$), owner (empty: any).
// Answers 0 settled, 1 no such reservation (or another owner's), 2 settled already.
constexpr std::string_view kSettleScript = R"lua(
local r = redis.call('HMGET', KEYS[1], 'amount', 'owner', 'settled', 'budgets')
if not r[1] then return 1 end
if ARGV[2] ~= '' and r[2] ~= ARGV[2] then return 1 end
if r[3] == '1' then return 2 end
redis.call('HSET', KEYS[1], 'settled', '1')
local delta = tonumber(ARGV[1]) - tonumber(r[1])
if delta ~= 0 then
  for k in string.gmatch(r[4], '[^\n]+') do
    if redis.call('EXISTS', k) == 1 then
      if redis.call('HINCRBY', k, 'spent', string.format('%.0f', delta)) < 0 then
        redis.call('HSET', k, 'spent', '0')
      end
    end
  end
end
return 0
)lua";

std::string Sha1Hex(std::string_view s) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

bool ParseInt(std::string_view s, int64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// A reply's integer, from an integer or a numeric string reply.
bool ReplyInt(const redisReply* r, int64_t& out) {
  if (!r) return false;
  if (r->type == REDIS_REPLY_INTEGER) {
    out = r->integer;
    return true;
  }
  if (r->type == REDIS_REPLY_STRING) return ParseInt(std::string_view(r->str, r->len), out);
  return false;
}

// Percent-decodes a URL component; false on a malformed escape or a NUL byte.
bool PercentDecode(std::string_view in, std::string& out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

// Escapes Redis glob characters so `prefix` matches only itself.
std::string GlobEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

common::StatusOr<RedisAddress> ParseRedisUrl(std::string_view url) {
  RedisAddress a;
  auto bad = [&](std::string_view why) {
    return common::InvalidArgumentError(common::StrCat("redis url \"", url, "\": ", why));
  };
  if (url.find_first_of(std::string_view("\0\r\n \t", 5)) != std::string_view::npos) {
    return bad("contains whitespace or control characters");
  }
  std::string_view rest;
  if (url.starts_with("unix://")) {
    rest = url.substr(7);
    std::string_view query;
    if (size_t q = rest.find('?'); q != std::string_view::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    if (rest.empty() || rest[0] != '/') return bad("a unix socket needs an absolute path");
    a.socket_path = std::string(rest);
    if (!query.empty()) {
      int64_t db;
      if (!query.starts_with("db=") || !ParseInt(query.substr(3), db) || db < 0 || db > 10000) {
        return bad("the only query parameter is db=N");
      }
      a.db = static_cast<int>(db);
    }
    return a;
  }
  if (url.starts_with("rediss://")) return bad("TLS (rediss://) is not supported; use a local TLS tunnel");
  if (!url.starts_with("redis://")) return bad("must start with redis:// or unix://");
  rest = url.substr(8);
  std::string_view path;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    std::string_view user = userinfo, password;
    if (size_t colon = userinfo.find(':'); colon != std::string_view::npos) {
      user = userinfo.substr(0, colon);
      password = userinfo.substr(colon + 1);
    } else {
      return bad("credentials are user:password or :password");
    }
    if (!PercentDecode(user, a.user) || !PercentDecode(password, a.password)) {
      return bad("malformed percent-encoding in the credentials");
    }
  }
  std::string_view host = rest, port;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6] host");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("expected :port after the [IPv6] host");
      port = after.substr(1);
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return bad("no host");
  a.host = std::string(host);
  if (!port.empty()) {
    int64_t p;
    if (!ParseInt(port, p) || p < 1 || p > 65535) return bad("the port must be 1-65535");
    a.port = static_cast<int>(p);
  }
  if (!path.empty()) {
    int64_t db;
    if (!ParseInt(path, db) || db < 0 || db > 10000) return bad("the path must be a database number");
    a.db = static_cast<int>(db);
  }
  return a;
}

common::StatusOr<std::unique_ptr<RedisLimitStore>> RedisLimitStore::Create(RedisOptions options) {
  auto address = ParseRedisUrl(options.url);
  if (!address.ok()) return address.status();
  if (options.pool_size < 1 || options.pool_size > 1024) {
    return common::InvalidArgumentError("the redis pool size must be between 1 and 1024");
  }
  if (options.timeout.count() < 1) {
    return common::InvalidArgumentError("the redis timeout must be at least 1 ms");
  }
  // hiredis writes with write(2): a Redis that went away must be an error, not a SIGPIPE that
  // kills the gateway.
  signal(SIGPIPE, SIG_IGN);
  return std::unique_ptr<RedisLimitStore>(
      new RedisLimitStore(std::move(options), std::move(*address)));
}

RedisLimitStore::RedisLimitStore(RedisOptions options, RedisAddress address)
    : options_(std::move(options)),
      address_(std::move(address)),
      admit_sha_(Sha1Hex(kAdmitScript)),
      settle_sha_(Sha1Hex(kSettleScript)),
      fallback_(options_.reservation_ttl_nanos) {}

RedisLimitStore::~RedisLimitStore() {
  std::lock_guard<std::mutex> lock(pool_mu_);
  for (redisContext* c : idle_) redisFree(c);
}

common::StatusOr<redisContext*> RedisLimitStore::Connect() {
  timeval tv = ToTimeval(options_.timeout);
  redisContext* c = address_.socket_path.empty()
                        ? redisConnectWithTimeout(address_.host.c_str(), address_.port, tv)
                        : redisConnectUnixWithTimeout(address_.socket_path.c_str(), tv);
  if (!c) return common::UnavailableError("redis: cannot allocate a connection");
  auto fail = [&](std::string why) {
    redisFree(c);
    return common::UnavailableError(common::StrCat("redis: ", why));
  };
  if (c->err) return fail(c->errstr);
  if (redisSetTimeout(c, tv) != REDIS_OK) return fail("cannot set the command timeout");
  if (address_.socket_path.empty()) (void)redisEnableKeepAlive(c);
  auto simple = [&](std::vector<std::string> argv) -> std::string {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
    if (!r) return c->errstr[0] ? c->errstr : "no reply";
    std::string error = r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "";
    freeReplyObject(r);
    return error;
  };
  if (!address_.password.empty()) {
    std::string e = address_.user.empty() ? simple({"AUTH", address_.password})
                                          : simple({"AUTH", address_.user, address_.password});
    if (!e.empty()) return fail(common::StrCat("AUTH failed: ", e));
  }
  if (address_.db != 0) {
    std::string e = simple({"SELECT", std::to_string(address_.db)});
    if (!e.empty()) return fail(common::StrCat("SELECT failed: ", e));
  }
  return c;
}

common::StatusOr<redisContext*> RedisLimitStore::Acquire(bool& reused) {
  auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  std::unique_lock<std::mutex> lock(pool_mu_);
  while (true) {
    if (!idle_.empty()) {
      redisContext* c = idle_.back();
      idle_.pop_back();
      reused = true;
      return c;
    }
    if (open_ < options_.pool_size) {
      ++open_;
      lock.unlock();
      auto c = Connect();
      if (!c.ok()) {
        lock.lock();
        --open_;
        pool_cv_.notify_one();
        return c.status();
      }
      reused = false;
      return *c;
    }
    if (pool_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return common::ResourceExhaustedError(common::StrCat(
          "redis: all ", options_.pool_size, " connections stayed busy for ",
          options_.timeout.count(), " ms"));
    }
  }
}

void RedisLimitStore::Release(redisContext* c, bool healthy) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  if (healthy) {
    idle_.push_back(c);
  } else {
    redisFree(c);
    --open_;
    // The others were opened to the same server and have probably failed with it.
    for (redisContext* other : idle_) redisFree(other);
    open_ -= idle_.size();
    idle_.clear();
  }
  pool_cv_.notify_one();
}

void RedisLimitStore::MarkDown(const std::string& why) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  int64_t backoff = std::clamp<int64_t>(backoff_nanos_.load() * 2, 100'000'000, 2'000'000'000);
  backoff_nanos_.store(backoff);
  bool was_up = down_until_.exchange(SteadyNanos() + backoff) == 0;
  {
    std::lock_guard<std::mutex> lock(log_mu_);
    last_error_ = why;
  }
  if (was_up && options_.log) {
    options_.log("error", common::StrCat("limits: ", why, "; ",
                                         options_.fail_mode == FailMode::kFailOpen
                                             ? "fail_open: local limits apply"
                                             : "fail_closed: limited calls are refused"));
  }
}

void RedisLimitStore::MarkUp() {
  if (down_until_.load(std::memory_order_relaxed) == 0) return;
  if (down_until_.exchange(0) != 0) {
    backoff_nanos_.store(0);
    if (options_.log) options_.log("info", "limits: redis is reachable again");
  }
}

common::StatusOr<RedisLimitStore::Reply> RedisLimitStore::Command(
    const std::vector<std::string>& argv) {
  int64_t down = down_until_.load(std::memory_order_relaxed);
  if (down != 0 && SteadyNanos() < down) {
    std::lock_guard<std::mutex> lock(log_mu_);
    return common::UnavailableError(common::StrCat("redis unreachable: ", last_error_));
  }
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    auto c = Acquire(reused);
    if (!c.ok()) {
      if (c.status().code() == common::StatusCode::kUnavailable) MarkDown(c.status().message());
      return common::UnavailableError(c.status().message());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(*c, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
    if (r) {
      Release(*c, true);
      MarkUp();
      return Reply(r, freeReplyObject);
    }
    std::string why = common::StrCat("redis: ", (*c)->errstr[0] ? (*c)->errstr : "no reply");
    Release(*c, false);
    // A connection that had served before may have gone stale (Redis restarted): one retry
    // on a fresh connection. The scripts make a repeated call harmless.
    if (reused && attempt == 0) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    MarkDown(why);
    return common::UnavailableError(why);
  }
}

common::StatusOr<RedisLimitStore::Reply> RedisLimitStore::Script(
    const std::string& source, const std::string& sha, const std::vector<std::string>& keys,
    const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"EVALSHA", sha, std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = Command(argv);
  if (r.ok() && (*r)->type == REDIS_REPLY_ERROR &&
      std::string_view((*r)->str, (*r)->len).starts_with("NOSCRIPT")) {
    argv[0] = "EVAL";
    argv[1] = source;
    r = Command(argv);
  }
  if (r.ok() && (*r)->type == REDIS_REPLY_ERROR) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    return common::UnavailableError(
        common::StrCat("redis: ", std::string_view((*r)->str, (*r)->len)));
  }
  return r;
}

Outcome RedisLimitStore::Admit(const Charge& c) {
  const std::string& p = options_.key_prefix;
  const int64_t now_us = c.now_unix_nanos / 1000;
  std::vector<std::string> keys, args = {std::to_string(now_us), "", "", std::to_string(c.cost),
                                         std::to_string(options_.reservation_ttl_nanos / 1'000'000),
                                         c.owner};
  std::vector<const RateLimit*> rates;
  std::vector<const Budget*> budgets;
  std::set<std::string> seen;
  for (const auto& r : c.rates) {
    if (!seen.insert(common::StrCat("r:", r.key)).second) continue;
    rates.push_back(&r);
    keys.push_back(common::StrCat(p, "r:", r.key));
    double per_second = r.spec.per_second > 0 ? r.spec.per_second : 1e-9;
    args.push_back(std::to_string(static_cast<int64_t>(std::ceil(1e6 / per_second))));
    args.push_back(std::to_string(std::max<int64_t>(r.spec.burst, 1)));
  }
  for (const auto& b : c.budgets) {
    std::string id = CounterId(b);
    if (!seen.insert(common::StrCat("b:", id)).second) continue;
    budgets.push_back(&b);
    keys.push_back(common::StrCat(p, "b:", id, ":", b.spec.window.Start(c.now_unix_nanos) / 1000));
    args.push_back(std::to_string(b.spec.limit));
    args.push_back(std::to_string(b.spec.window.End(c.now_unix_nanos) / 1000));
  }
  args[1] = std::to_string(rates.size());
  args[2] = std::to_string(budgets.size());
  if (!c.reservation_id.empty() && !budgets.empty()) {
    keys.push_back(common::StrCat(p, "res:", c.reservation_id));
  }

  auto reply = Script(std::string(kAdmitScript), admit_sha_, keys, args);
  int64_t code = -1, index = 0, value = 0;
  if (reply.ok()) {
    const redisReply* r = reply->get();
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !ReplyInt(r->element[0], code) ||
        (code != 0 && (r->elements != 3 || !ReplyInt(r->element[1], index) ||
                       !ReplyInt(r->element[2], value)))) {
      code = -1;
    }
  }
  Outcome o;
  if (code == 0) return o;
  if (code == 1 && index >= 1 && static_cast<size_t>(index) <= rates.size()) {
    o.result = Outcome::Result::kRateLimited;
    o.key = rates[index - 1]->key;
    o.retry_after_nanos = value * 1000;
    return o;
  }
  if (code == 2 && index >= 1 && static_cast<size_t>(index) <= budgets.size()) {
    o.result = Outcome::Result::kBudgetExceeded;
    o.key = budgets[index - 1]->key;
    o.remaining = std::max<Micros>(value, 0);
    o.window_reset_unix_nanos = budgets[index - 1]->spec.window.End(c.now_unix_nanos);
    return o;
  }
  if (reply.ok()) MarkDown("redis: unexpected answer from the admit script");
  if (options_.fail_mode == FailMode::kFailOpen) {
    fail_open_.fetch_add(1, std::memory_order_relaxed);
    o = fallback_.Admit(c);
    o.fail_open = true;
    return o;
  }
  unavailable_.fetch_add(1, std::memory_order_relaxed);
  o.result = Outcome::Result::kUnavailable;
  return o;
}

common::Status RedisLimitStore::Settle(std::string_view id, Micros actual, int64_t now,
                                       std::string_view owner) {
  if (actual < 0) return common::InvalidArgumentError("the actual cost may not be negative");
  auto reply = Script(std::string(kSettleScript), settle_sha_,
                      {common::StrCat(options_.key_prefix, "res:", id)},
                      {std::to_string(actual), std::string(owner)});
  int64_t code = -1;
  if (reply.ok() && !ReplyInt(reply->get(), code)) {
    return common::InternalError("redis: unexpected answer from the settle script");
  }
  if (code == 0) return common::OkStatus();
  if (code == 2) {
    return common::FailedPreconditionError(common::StrCat("decision ", id, " was settled already"));
  }
  // Not in Redis (or Redis down): the reservation may have been made by the local fallback
  // while Redis was unreachable.
  common::Status local = fallback_.Settle(id, actual, now, owner);
  if (local.code() != common::StatusCode::kNotFound || reply.ok()) return local;
  return reply.status();
}

common::StatusOr<std::vector<SpendRow>> RedisLimitStore::Spend(std::string_view prefix,
                                                               int64_t now) {
  const std::string base = common::StrCat(options_.key_prefix, "b:");
  const std::string pattern = common::StrCat(GlobEscape(base), GlobEscape(prefix), "*");
  std::vector<std::string> names;
  std::string cursor = "0";
  do {
    auto r = Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (!r.ok()) return r.status();
    const redisReply* reply = r->get();
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
      return common::InternalError("redis: unexpected SCAN answer");
    }
    cursor.assign(reply->element[0]->str, reply->element[0]->len);
    for (size_t i = 0; i < reply->element[1]->elements; ++i) {
      const redisReply* e = reply->element[1]->element[i];
      if (e->type == REDIS_REPLY_STRING) names.emplace_back(e->str, e->len);
    }
    if (names.size() > 1'000'000) return common::ResourceExhaustedError("too many budget keys");
  } while (cursor != "0");
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());

  // One pipelined round of HMGETs on one connection.
  std::vector<SpendRow> rows;
  if (names.empty()) return rows;
  bool reused = false;
  auto c = Acquire(reused);
  if (!c.ok()) return common::UnavailableError(c.status().message());
  for (const auto& n : names) {
    const char* argv[] = {"HMGET", n.data(), "spent", "limit", "end"};
    size_t lens[] = {5, n.size(), 5, 5, 3};
    redisAppendCommandArgv(*c, 5, argv, lens);
  }
  const int64_t now_us = now / 1000;
  for (const auto& n : names) {
    void* raw = nullptr;
    if (redisGetReply(*c, &raw) != REDIS_OK || !raw) {
      std::string why = common::StrCat("redis: ", (*c)->errstr);
      Release(*c, false);
      MarkDown(why);
      return common::UnavailableError(why);
    }
    Reply r(static_cast<redisReply*>(raw), freeReplyObject);
    // <prefix>b:<key>@<window>:<start µs>
    std::string_view name(n);
    name.remove_prefix(base.size());
    size_t colon = name.rfind(':'), at = name.rfind('@', colon);
    int64_t start = 0, spent = 0, limit = 0, end = 0;
    if (colon == std::string_view::npos || at == std::string_view::npos ||
        !ParseInt(name.substr(colon + 1), start) || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 3 || !ReplyInt(r->element[0], spent) || !ReplyInt(r->element[1], limit) ||
        !ReplyInt(r->element[2], end)) {
      continue;  // expired meanwhile, or not ours
    }
    if (start > now_us || now_us >= end) continue;  // not the current window
    rows.push_back({std::string(name.substr(0, at)), std::string(name.substr(at + 1, colon - at - 1)),
                    start * 1000, spent, limit});
  }
  Release(*c, true);
  std::sort(rows.begin(), rows.end(), [](const SpendRow& a, const SpendRow& b) {
    return std::tie(a.key, a.window) < std::tie(b.key, b.window);
  });
  return rows;
}

common::StatusOr<bool> RedisLimitStore::ConsumeOnce(std::string_view id, int64_t expires,
                                                    int64_t now) {
  int64_t ttl_ms = std::max<int64_t>((expires - now + 999'999) / 1'000'000, 1);
  auto r = Command({"SET", common::StrCat(options_.key_prefix, "once:", id), "1", "NX", "PX",
                    std::to_string(ttl_ms)});
  if (r.ok()) {
    if ((*r)->type == REDIS_REPLY_STATUS) return true;  // OK: set now
    if ((*r)->type == REDIS_REPLY_NIL) return false;    // there already
    errors_.fetch_add(1, std::memory_order_relaxed);
    return common::UnavailableError("redis: unexpected answer to SET NX");
  }
  if (options_.fail_mode == FailMode::kFailOpen) {
    fail_open_.fetch_add(1, std::memory_order_relaxed);
    return fallback_.ConsumeOnce(id, expires, now);
  }
  return r.status();
}

void RedisLimitStore::Unconsume(std::string_view id) {
  (void)Command({"DEL", common::StrCat(options_.key_prefix, "once:", id)});
  fallback_.Unconsume(id);
}

common::Status RedisLimitStore::Ping() {
  auto r = Command({"PING"});
  if (!r.ok()) return r.status();
  if ((*r)->type != REDIS_REPLY_STATUS) return common::UnavailableError("redis: PING failed");
  return common::OkStatus();
}

void RedisLimitStore::AppendMetrics(std::string& out) const {
  out += "# HELP aegis_limits_store_up Whether the shared limits store (Redis) answered last time.\n"
         "# TYPE aegis_limits_store_up gauge\n";
  out += common::StrCat("aegis_limits_store_up{store=\"redis\"} ",
                        down_until_.load(std::memory_order_relaxed) == 0 ? 1 : 0, "\n");
  out += "# HELP aegis_limits_store_errors_total Failed round trips to the limits store.\n"
         "# TYPE aegis_limits_store_errors_total counter\n";
  out += common::StrCat("aegis_limits_store_errors_total{store=\"redis\"} ",
                        errors_.load(std::memory_order_relaxed), "\n");
  out += "# HELP aegis_limits_fail_open_total Calls admitted or refused by the local fallback "
         "because the limits store was unreachable (fail_open).\n"
         "# TYPE aegis_limits_fail_open_total counter\n";
  out += common::StrCat("aegis_limits_fail_open_total ",
                        fail_open_.load(std::memory_order_relaxed), "\n");
  out += "# HELP aegis_limits_unavailable_total Calls refused because the limits store was "
         "unreachable (fail_closed).\n"
         "# TYPE aegis_limits_unavailable_total counter\n";
  out += common::StrCat("aegis_limits_unavailable_total ",
                        unavailable_.load(std::memory_order_relaxed), "\n");
}

}  // namespace aegis::limits
