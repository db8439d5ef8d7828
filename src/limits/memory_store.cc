#include "limits/memory_store.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <tuple>

#include "common/strings.h"

namespace aegis::limits {

MemoryLimitStore::MemoryLimitStore(int64_t reservation_ttl_nanos)
    : reservation_ttl_(reservation_ttl_nanos) {}

MemoryLimitStore::BudgetState* MemoryLimitStore::FindWindow(std::vector<BudgetState>& windows,
                                                            const Window& w) {
  for (BudgetState& s : windows) {
    if (s.window == w) return &s;
  }
  return nullptr;
}

Outcome MemoryLimitStore::Admit(const Charge& c) {
  const int64_t now = c.now_unix_nanos;
  // Per-thread scratch, so a call allocates nothing here once a thread has warmed up.
  struct RateCheck {
    const RateLimit* limit;
    KeyRef ref;
    int64_t new_tat;
  };
  struct BudgetCheck {
    const Budget* budget;
    KeyRef ref;
    int64_t start;
  };
  thread_local std::vector<RateCheck> rates;
  thread_local std::vector<BudgetCheck> budgets;
  rates.clear();
  budgets.clear();
  // Each key (each key and window, for budgets) counts once, whatever the caller listed twice.
  for (const auto& r : c.rates) {
    if (std::none_of(rates.begin(), rates.end(),
                     [&](const RateCheck& x) { return x.limit->key == r.key; })) {
      rates.push_back({&r, Ref(r.key), 0});
    }
  }
  for (const auto& b : c.budgets) {
    if (std::none_of(budgets.begin(), budgets.end(), [&](const BudgetCheck& x) {
          return x.budget->key == b.key && x.budget->spec.window == b.spec.window;
        })) {
      budgets.push_back({&b, Ref(b.key), b.spec.window.Start(now)});
    }
  }

  // Lock every shard involved, in shard order.
  std::array<bool, kShards> involved{};
  for (const auto& r : rates) involved[ShardOf(r.ref)] = true;
  for (const auto& b : budgets) involved[ShardOf(b.ref)] = true;
  std::array<std::unique_lock<std::mutex>, kShards> locks;
  for (size_t i = 0; i < kShards; ++i) {
    if (involved[i]) locks[i] = std::unique_lock<std::mutex>(shards_[i].mu);
  }

  // Check everything first: rate limits, then budgets.
  for (auto& r : rates) {
    const RateSpec& spec = r.limit->spec;
    double per_second = spec.per_second > 0 ? spec.per_second : 1e-9;
    auto interval = static_cast<int64_t>(std::ceil(1e9 / per_second));
    int64_t burst = std::max<int64_t>(spec.burst, 1);
    Shard& shard = shards_[ShardOf(r.ref)];
    auto it = shard.rates.find(r.ref);
    int64_t tat = std::max(it == shard.rates.end() ? now : it->second.tat, now);
    int64_t allowed_ahead = (burst - 1) * interval;
    if (tat - now > allowed_ahead) {
      Outcome o;
      o.result = Outcome::Result::kRateLimited;
      o.key = r.limit->key;
      o.retry_after_nanos = tat - now - allowed_ahead;
      return o;
    }
    r.new_tat = tat + interval;
  }
  for (const auto& b : budgets) {
    Shard& shard = shards_[ShardOf(b.ref)];
    auto it = shard.budgets.find(b.ref);
    const BudgetState* s =
        it == shard.budgets.end() ? nullptr : FindWindow(it->second, b.budget->spec.window);
    Micros spent = s && s->window_start == b.start ? s->spent : 0;
    if (spent + c.cost > b.budget->spec.limit) {
      Outcome o;
      o.result = Outcome::Result::kBudgetExceeded;
      o.key = b.budget->key;
      o.remaining = std::max<Micros>(b.budget->spec.limit - spent, 0);
      o.window_reset_unix_nanos = b.budget->spec.window.End(now);
      return o;
    }
  }

  // Everything admits: apply everything.
  for (const auto& r : rates) {
    Shard& shard = shards_[ShardOf(r.ref)];
    auto it = shard.rates.find(r.ref);
    if (it == shard.rates.end()) it = shard.rates.emplace(r.limit->key, RateState{}).first;
    it->second.tat = r.new_tat;
  }
  const bool reserve = !c.reservation_id.empty() && !budgets.empty();
  Reservation reservation;
  for (const auto& b : budgets) {
    Shard& shard = shards_[ShardOf(b.ref)];
    auto it = shard.budgets.find(b.ref);
    if (it == shard.budgets.end()) {
      it = shard.budgets.emplace(b.budget->key, std::vector<BudgetState>{}).first;
    }
    BudgetState* s = FindWindow(it->second, b.budget->spec.window);
    if (!s) s = &it->second.emplace_back(BudgetState{b.budget->spec.window, b.start, 0, 0});
    if (s->window_start != b.start) {
      s->window_start = b.start;
      s->spent = 0;
    }
    s->spent += c.cost;
    s->limit = b.budget->spec.limit;
    if (reserve) reservation.budgets.push_back({b.budget->key, s->window, b.start});
  }
  for (auto& l : locks) {
    if (l.owns_lock()) l.unlock();
  }

  // Record the reservation after the shards are released: Settle takes the locks in the
  // other order.
  if (reserve) {
    reservation.amount = c.cost;
    reservation.owner = c.owner;
    reservation.expires = now + reservation_ttl_;
    ReservationShard& shard = reservations_[ShardOf(Ref(c.reservation_id))];
    std::lock_guard<std::mutex> lock(shard.mu);
    if (now >= shard.next_purge) {
      std::erase_if(shard.map, [&](const auto& kv) { return kv.second.expires <= now; });
      shard.next_purge = now + std::max<int64_t>(reservation_ttl_ / 4, 1);
    }
    shard.map[c.reservation_id] = std::move(reservation);
  }
  return Outcome{};
}

common::Status MemoryLimitStore::Settle(std::string_view id, Micros actual, int64_t now,
                                        std::string_view owner) {
  if (actual < 0) return common::InvalidArgumentError("the actual cost may not be negative");
  Reservation r;
  {
    ReservationShard& shard = reservations_[ShardOf(Ref(id))];
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(std::string(id));
    if (it == shard.map.end() || it->second.expires <= now ||
        (!owner.empty() && it->second.owner != owner)) {
      return common::NotFoundError(
          common::StrCat("no open reservation for decision ", id, " (unknown or expired)"));
    }
    if (it->second.settled) {
      return common::FailedPreconditionError(
          common::StrCat("decision ", id, " was settled already"));
    }
    it->second.settled = true;
    r = it->second;
  }
  Micros delta = actual - r.amount;
  for (const auto& counter : r.budgets) {
    KeyRef ref = Ref(counter.key);
    Shard& shard = shards_[ShardOf(ref)];
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.budgets.find(ref);
    BudgetState* s = it == shard.budgets.end() ? nullptr : FindWindow(it->second, counter.window);
    // A window that has rolled over since is not reopened.
    if (!s || s->window_start != counter.window_start) continue;
    s->spent = std::max<Micros>(s->spent + delta, 0);
  }
  return common::OkStatus();
}

common::StatusOr<bool> MemoryLimitStore::ConsumeOnce(std::string_view id, int64_t expires,
                                                     int64_t now) {
  ReservationShard& shard = reservations_[ShardOf(Ref(id))];
  std::lock_guard<std::mutex> lock(shard.mu);
  if (now >= shard.next_once_purge) {
    std::erase_if(shard.used_once, [&](const auto& kv) { return kv.second <= now; });
    shard.next_once_purge = now + 60'000'000'000;
  }
  auto [it, inserted] = shard.used_once.try_emplace(std::string(id), expires);
  if (inserted) return true;
  if (it->second > now) return false;
  it->second = expires;  // expired meanwhile: a new use
  return true;
}

void MemoryLimitStore::Unconsume(std::string_view id) {
  ReservationShard& shard = reservations_[ShardOf(Ref(id))];
  std::lock_guard<std::mutex> lock(shard.mu);
  shard.used_once.erase(std::string(id));
}

common::StatusOr<std::vector<SpendRow>> MemoryLimitStore::Spend(std::string_view prefix,
                                                                 int64_t now) {
  std::vector<SpendRow> rows;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    for (const auto& [key, windows] : shard.budgets) {
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      for (const BudgetState& s : windows) {
        int64_t start = s.window.Start(now);
        rows.push_back(
            {key, s.window.Label(), start, s.window_start == start ? s.spent : 0, s.limit});
      }
    }
  }
  std::sort(rows.begin(), rows.end(), [](const SpendRow& a, const SpendRow& b) {
    return std::tie(a.key, a.window) < std::tie(b.key, b.window);
  });
  return rows;
}

}  // namespace aegis::limits
