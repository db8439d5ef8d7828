// MemoryLimitStore: limit state in this process, for one gateway (the embedded default).
//
// State is split over shards by key hash, each with its own mutex, so unrelated calls do not
// contend; a call locks the shards of its keys in shard order (no deadlock), checks everything,
// then applies everything, which makes its multi-key step atomic. Reservations expire after
// `reservation_ttl`: the estimate stays charged and Settle() answers NotFound.
#ifndef AEGIS_LIMITS_MEMORY_STORE_H_
#define AEGIS_LIMITS_MEMORY_STORE_H_

#include <array>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "limits/limits.h"

namespace aegis::limits {

class MemoryLimitStore : public LimitStore {
 public:
  explicit MemoryLimitStore(int64_t reservation_ttl_nanos = 3600LL * 1'000'000'000);

  Outcome Admit(const Charge& charge) override;
  common::Status Settle(std::string_view reservation_id, Micros actual, int64_t now_unix_nanos,
                        std::string_view owner = {}) override;
  common::StatusOr<std::vector<SpendRow>> Spend(std::string_view prefix,
                                                int64_t now_unix_nanos) override;
  common::StatusOr<bool> ConsumeOnce(std::string_view id, int64_t expires_unix_nanos,
                                     int64_t now_unix_nanos) override;
  void Unconsume(std::string_view id) override;

 private:
  static constexpr size_t kShards = 16;

  // Keys are hashed once per call: the hash picks the shard and is reused by the map lookup.
  struct KeyRef {
    std::string_view key;
    size_t hash;
  };
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view k) const { return std::hash<std::string_view>{}(k); }
    size_t operator()(const KeyRef& k) const { return k.hash; }
  };
  struct KeyEq {
    using is_transparent = void;
    static std::string_view View(std::string_view k) { return k; }
    static std::string_view View(const KeyRef& k) { return k.key; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const { return View(a) == View(b); }
  };
  template <typename V>
  using KeyMap = std::unordered_map<std::string, V, KeyHash, KeyEq>;

  struct RateState {
    int64_t tat = 0;  // GCRA theoretical arrival time
  };
  // One counter per window of a key.
  struct BudgetState {
    Window window;
    int64_t window_start = 0;
    Micros spent = 0;
    Micros limit = 0;
  };
  struct Reservation {
    struct Counter {
      std::string key;
      Window window;
      int64_t window_start = 0;
    };
    std::vector<Counter> budgets;
    Micros amount = 0;
    std::string owner;
    int64_t expires = 0;
    bool settled = false;
  };
  struct Shard {
    std::mutex mu;
    KeyMap<RateState> rates;
    KeyMap<std::vector<BudgetState>> budgets;
  };
  // Reservations are sharded too: a growing map rehashes, and a rehash of one big map under one
  // lock stalled every decision for tens of milliseconds.
  struct ReservationShard {
    std::mutex mu;
    std::unordered_map<std::string, Reservation> map;
    int64_t next_purge = 0;
    std::unordered_map<std::string, int64_t> used_once;  // ConsumeOnce: id → expiry
    int64_t next_once_purge = 0;
  };
  static KeyRef Ref(std::string_view key) { return {key, KeyHash{}(key)}; }
  static size_t ShardOf(const KeyRef& k) { return k.hash % kShards; }
  static BudgetState* FindWindow(std::vector<BudgetState>& windows, const Window& w);

  int64_t reservation_ttl_;
  std::array<Shard, kShards> shards_;
  std::array<ReservationShard, kShards> reservations_;
};

}  // namespace aegis::limits

#endif  // AEGIS_LIMITS_MEMORY_STORE_H_
