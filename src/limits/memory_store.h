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

#include "limits/limits.h"

namespace aegis::limits {

class MemoryLimitStore : public LimitStore {
 public:
  explicit MemoryLimitStore(int64_t reservation_ttl_nanos = 3600LL * 1'000'000'000);

  Outcome Admit(const Charge& charge) override;
  common::Status Settle(std::string_view reservation_id, Micros actual,
                        int64_t now_unix_nanos) override;
  std::vector<SpendRow> Spend(std::string_view prefix, int64_t now_unix_nanos) override;

 private:
  static constexpr size_t kShards = 16;
  struct RateState {
    int64_t tat = 0;  // GCRA theoretical arrival time
  };
  struct BudgetState {
    Window window;
    int64_t window_start = 0;
    Micros spent = 0;
    Micros limit = 0;
  };
  struct Reservation {
    std::vector<std::pair<std::string, int64_t>> budgets;  // key, window start
    Micros amount = 0;
    int64_t expires = 0;
    bool settled = false;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, RateState> rates;
    std::unordered_map<std::string, BudgetState> budgets;
  };
  static size_t ShardOf(std::string_view key);

  int64_t reservation_ttl_;
  std::array<Shard, kShards> shards_;
  std::mutex reservations_mu_;
  std::unordered_map<std::string, Reservation> reservations_;
  int64_t next_purge_ = 0;
};

}  // namespace aegis::limits

#endif  // AEGIS_LIMITS_MEMORY_STORE_H_
