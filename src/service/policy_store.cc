#include "service/policy_store.h"

#include <algorithm>

#include "common/strings.h"
#include "policy/compiler.h"
#include "service/decider.h"

namespace aegis::service {

PolicyStore::PolicyStore(std::string bundle_path, size_t keep, limits::LimitStore* limits,
                         engine::OverrideRedeemer* overrides, std::string redaction_key)
    : bundle_path_(std::move(bundle_path)),
      keep_(std::max<size_t>(keep, 1)),
      limits_(limits),
      overrides_(overrides),
      redaction_key_(std::move(redaction_key)) {}

common::Status PolicyStore::Reload() {
  // Compile outside the lock: readers never wait, and a second reload waits only for the swap.
  policy::CompileOutput out = policy::CompileBundle(bundle_path_);
  int64_t now = Decider::NowUnixNanos();
  std::lock_guard<std::mutex> lock(mu_);
  if (!out.policy) {
    std::string errors;
    for (const auto& d : out.diagnostics.Sorted()) {
      if (!errors.empty()) errors.push_back('\n');
      errors += d.ToString();
    }
    ++state_.reloads_failed;
    state_.last_error = errors;
    state_.last_error_unix_nanos = now;
    return common::InvalidArgumentError(errors);
  }
  ++state_.reloads_ok;
  state_.last_error.clear();
  auto active = active_.load();
  if (active && active->policy().version == out.policy->version) return common::OkStatus();
  // The same content compiled before: reactivate that version rather than keeping two copies.
  for (auto it = versions_.begin(); it != versions_.end(); ++it) {
    if ((*it)->policy().version == out.policy->version) {
      auto again = *it;
      versions_.erase(it);
      versions_.push_front(again);
      active_.store(again);
      return common::OkStatus();
    }
  }
  auto version = std::make_shared<PolicyVersion>();
  version->engine =
      std::make_shared<const engine::Engine>(out.policy, limits_, overrides_, redaction_key_);
  version->loaded_unix_nanos = now;
  std::shared_ptr<const PolicyVersion> frozen = version;
  versions_.push_front(frozen);
  while (versions_.size() > keep_) versions_.pop_back();
  active_.store(frozen);
  return common::OkStatus();
}

common::Status PolicyStore::Rollback(std::string_view version) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& v : versions_) {
    if (v->policy().version == version) {
      active_.store(v);
      return common::OkStatus();
    }
  }
  return common::NotFoundError(
      common::StrCat("version ", version, " is not among the versions in memory"));
}

PolicyStore::ReloadState PolicyStore::reload_state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

std::vector<std::shared_ptr<const PolicyVersion>> PolicyStore::Versions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {versions_.begin(), versions_.end()};
}

}  // namespace aegis::service
