// Runs a bundle's own tests (the `tests:` sections) through the engine, like `opa test`.
#ifndef AEGIS_ENGINE_POLICY_TESTS_H_
#define AEGIS_ENGINE_POLICY_TESTS_H_

#include <string>
#include <vector>

#include "engine/engine.h"

namespace aegis::engine {

struct PolicyTestResult {
  const policy::PolicyTest* test;
  bool passed = false;
  std::string failure;  // why it failed, one line
};

struct PolicyTestReport {
  std::vector<PolicyTestResult> results;
  // Rules that matched in no test, in bundle order.
  std::vector<const policy::Rule*> unexercised;
  int passed() const;
  int failed() const;
};

// Runs every test of `engine`'s policy at time `now_unix_nanos`.
PolicyTestReport RunPolicyTests(const Engine& engine, int64_t now_unix_nanos);

}  // namespace aegis::engine

#endif  // AEGIS_ENGINE_POLICY_TESTS_H_
