// PolicyStore: the compiled policy versions a server holds, and which one is active.
//
// Reload() compiles the bundle off the hot path and swaps the active version atomically; a bundle
// with errors is refused, the active version keeps serving, and the errors are kept for
// GET /v1/policy. The last `keep` compiled versions stay in memory for rollback. Active() is
// lock-free for readers in the sense that matters: one atomic shared_ptr load per decision.
#ifndef AEGIS_SERVICE_POLICY_STORE_H_
#define AEGIS_SERVICE_POLICY_STORE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"

namespace aegis::service {

// One compiled version and its engine.
struct PolicyVersion {
  std::shared_ptr<const engine::Engine> engine;
  int64_t loaded_unix_nanos = 0;
  const policy::CompiledPolicy& policy() const { return *engine->policy(); }
};

class PolicyStore {
 public:
  // `limits` and `overrides` (optional, not owned) are handed to every version's engine, so
  // rate limits, budgets and used override tokens carry over reloads.
  // `redaction_key` keys sanitize rules' hash-style fingerprints.
  explicit PolicyStore(std::string bundle_path, size_t keep = 10,
                       limits::LimitStore* limits = nullptr,
                       engine::OverrideRedeemer* overrides = nullptr,
                       std::string redaction_key = "");

  // Compiles the bundle. On success activates the result (and remembers it) and returns OK;
  // recompiling identical content keeps the same version active. On failure returns
  // InvalidArgument with the diagnostics, one per line, and the active version keeps serving.
  // Serialised: concurrent calls run one after another. Never blocks readers.
  common::Status Reload();

  // Activates an earlier version still in memory. NotFound if `version` is not one of them.
  common::Status Rollback(std::string_view version);

  // The active version; null only before the first successful Reload.
  std::shared_ptr<const PolicyVersion> Active() const { return active_.load(); }

  struct ReloadState {
    int64_t reloads_ok = 0;
    int64_t reloads_failed = 0;
    std::string last_error;            // empty after a successful reload
    int64_t last_error_unix_nanos = 0;
  };
  ReloadState reload_state() const;
  // Versions in memory, newest first.
  std::vector<std::shared_ptr<const PolicyVersion>> Versions() const;
  const std::string& bundle_path() const { return bundle_path_; }
  limits::LimitStore* limits() const { return limits_; }

 private:
  std::string bundle_path_;
  size_t keep_;
  limits::LimitStore* limits_;
  engine::OverrideRedeemer* overrides_;
  std::string redaction_key_;
  std::atomic<std::shared_ptr<const PolicyVersion>> active_;
  mutable std::mutex mu_;  // guards everything below, and serialises Reload/Rollback
  std::deque<std::shared_ptr<const PolicyVersion>> versions_;
  ReloadState state_;
};

}  // namespace aegis::service

#endif  // AEGIS_SERVICE_POLICY_STORE_H_
