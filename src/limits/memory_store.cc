#include "limits/memory_store.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "common/strings.h"

namespace aegis::limits {

namespace {

constexpr int64_t kDayNanos = 86'400LL * 1'000'000'000;

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Days since 1970-01-01 of the first day of the month holding `days` (proleptic Gregorian),
// and of the month after (H. Hinnant's civil-from-days / days-from-civil).
void MonthBounds(int64_t days, int64_t& first, int64_t& next) {
  auto civil = [](int64_t z, int64_t& y, unsigned& m) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    auto doe = static_cast<unsigned>(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = static_cast<int64_t>(yoe) + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) ++y;
  };
  auto days_from = [](int64_t y, unsigned m) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    auto yoe = static_cast<unsigned>(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5;  // day 1 of month m
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
  };
  int64_t y;
  unsigned m;
  civil(days, y, m);
  first = days_from(y, m);
  next = m == 12 ? days_from(y + 1, 1) : days_from(y, m + 1);
}

}  // namespace

int64_t Window::Start(int64_t now) const {
  switch (kind) {
    case Kind::kDay:
      return FloorDiv(now, kDayNanos) * kDayNanos;
    case Kind::kMonth: {
      int64_t first, next;
      MonthBounds(FloorDiv(now, kDayNanos), first, next);
      return first * kDayNanos;
    }
    case Kind::kDuration:
      return duration_nanos > 0 ? FloorDiv(now, duration_nanos) * duration_nanos : 0;
  }
  return 0;
}

int64_t Window::End(int64_t now) const {
  switch (kind) {
    case Kind::kDay:
      return Start(now) + kDayNanos;
    case Kind::kMonth: {
      int64_t first, next;
      MonthBounds(FloorDiv(now, kDayNanos), first, next);
      return next * kDayNanos;
    }
    case Kind::kDuration:
      return Start(now) + duration_nanos;
  }
  return 0;
}

MemoryLimitStore::MemoryLimitStore(int64_t reservation_ttl_nanos)
    : reservation_ttl_(reservation_ttl_nanos) {}

size_t MemoryLimitStore::ShardOf(std::string_view key) {
  return std::hash<std::string_view>{}(key) % kShards;
}

Outcome MemoryLimitStore::Admit(const Charge& c) {
  const int64_t now = c.now_unix_nanos;
  // Each key counts once, whatever the caller listed twice.
  std::vector<const RateLimit*> rates;
  std::vector<const Budget*> budgets;
  std::set<std::string_view> seen;
  for (const auto& r : c.rates) {
    if (seen.insert(r.key).second) rates.push_back(&r);
  }
  seen.clear();
  for (const auto& b : c.budgets) {
    if (seen.insert(b.key).second) budgets.push_back(&b);
  }

  // Lock every shard involved, in shard order.
  std::array<bool, kShards> involved{};
  for (const auto* r : rates) involved[ShardOf(r->key)] = true;
  for (const auto* b : budgets) involved[ShardOf(b->key)] = true;
  std::array<std::unique_lock<std::mutex>, kShards> locks;
  for (size_t i = 0; i < kShards; ++i) {
    if (involved[i]) locks[i] = std::unique_lock<std::mutex>(shards_[i].mu);
  }

  // Check everything first: rate limits, then budgets.
  std::vector<int64_t> new_tats(rates.size());
  for (size_t i = 0; i < rates.size(); ++i) {
    const RateLimit& r = *rates[i];
    double per_second = r.spec.per_second > 0 ? r.spec.per_second : 1e-9;
    auto interval = static_cast<int64_t>(std::ceil(1e9 / per_second));
    int64_t burst = std::max<int64_t>(r.spec.burst, 1);
    Shard& shard = shards_[ShardOf(r.key)];
    auto it = shard.rates.find(r.key);
    int64_t tat = std::max(it == shard.rates.end() ? now : it->second.tat, now);
    int64_t allowed_ahead = (burst - 1) * interval;
    if (tat - now > allowed_ahead) {
      Outcome o;
      o.result = Outcome::Result::kRateLimited;
      o.key = r.key;
      o.retry_after_nanos = tat - now - allowed_ahead;
      return o;
    }
    new_tats[i] = tat + interval;
  }
  for (const auto* b : budgets) {
    Shard& shard = shards_[ShardOf(b->key)];
    auto it = shard.budgets.find(b->key);
    int64_t start = b->spec.window.Start(now);
    Micros spent = (it == shard.budgets.end() || it->second.window_start != start)
                       ? 0
                       : it->second.spent;
    if (spent + c.cost > b->spec.limit) {
      Outcome o;
      o.result = Outcome::Result::kBudgetExceeded;
      o.key = b->key;
      o.remaining = std::max<Micros>(b->spec.limit - spent, 0);
      o.window_reset_unix_nanos = b->spec.window.End(now);
      return o;
    }
  }

  // Everything admits: apply everything.
  for (size_t i = 0; i < rates.size(); ++i) {
    shards_[ShardOf(rates[i]->key)].rates[rates[i]->key].tat = new_tats[i];
  }
  Reservation reservation;
  for (const auto* b : budgets) {
    BudgetState& s = shards_[ShardOf(b->key)].budgets[b->key];
    int64_t start = b->spec.window.Start(now);
    if (s.window_start != start) {
      s.window_start = start;
      s.spent = 0;
    }
    s.spent += c.cost;
    s.limit = b->spec.limit;
    s.window = b->spec.window;
    reservation.budgets.emplace_back(b->key, start);
  }
  for (auto& l : locks) {
    if (l.owns_lock()) l.unlock();
  }

  // Record the reservation after the shards are released: Settle takes the locks in the
  // other order.
  if (!c.reservation_id.empty() && !reservation.budgets.empty()) {
    reservation.amount = c.cost;
    reservation.expires = now + reservation_ttl_;
    std::lock_guard<std::mutex> lock(reservations_mu_);
    if (now >= next_purge_) {
      std::erase_if(reservations_, [&](const auto& kv) { return kv.second.expires <= now; });
      next_purge_ = now + std::max<int64_t>(reservation_ttl_ / 4, 1);
    }
    reservations_[c.reservation_id] = std::move(reservation);
  }
  return Outcome{};
}

common::Status MemoryLimitStore::Settle(std::string_view id, Micros actual, int64_t now) {
  if (actual < 0) return common::InvalidArgumentError("the actual cost may not be negative");
  Reservation r;
  {
    std::lock_guard<std::mutex> lock(reservations_mu_);
    auto it = reservations_.find(std::string(id));
    if (it == reservations_.end() || it->second.expires <= now) {
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
  for (const auto& [key, window_start] : r.budgets) {
    Shard& shard = shards_[ShardOf(key)];
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.budgets.find(key);
    // A window that has rolled over since is not reopened.
    if (it == shard.budgets.end() || it->second.window_start != window_start) continue;
    it->second.spent = std::max<Micros>(it->second.spent + delta, 0);
  }
  return common::OkStatus();
}

std::vector<SpendRow> MemoryLimitStore::Spend(std::string_view prefix, int64_t now) {
  std::vector<SpendRow> rows;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    for (const auto& [key, s] : shard.budgets) {
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      int64_t start = s.window.Start(now);
      rows.push_back({key, start, s.window_start == start ? s.spent : 0, s.limit});
    }
  }
  std::sort(rows.begin(), rows.end(),
            [](const SpendRow& a, const SpendRow& b) { return a.key < b.key; });
  return rows;
}

}  // namespace aegis::limits
