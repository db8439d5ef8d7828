// The policy compiler: a bundle directory (or in-memory files) in, a CompiledPolicy or a list of
// diagnostics out. It runs as named stages, each testable on its own:
//
//   read files > parse documents > build model (schema) > resolve references >
//   compile conditions > find unreachable rules > index rules > hash version
//
// Every stage reports into one Diagnostics list and later stages still run where they can, so
// an author sees every mistake at once. A bundle with any error never yields a policy.
#ifndef AEGIS_POLICY_COMPILER_H_
#define AEGIS_POLICY_COMPILER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/diagnostic.h"
#include "policy/document.h"
#include "policy/policy.h"

namespace aegis::policy {

struct SourceFile {
  std::string name;      // path as shown in diagnostics
  std::string text;
  std::string relative = {};  // path inside the bundle, for the version hash; empty = name
};

struct BundleLimits {
  size_t max_files = 1000;
  size_t max_total_bytes = 64 << 20;
  DocumentLimits document;
};

struct CompileOutput {
  std::shared_ptr<const CompiledPolicy> policy;  // null when diagnostics has errors
  Diagnostics diagnostics;
};

// Reads every *.yaml, *.yml and *.json file under `dir` (recursively, sorted by path), or the one
// file `dir` names. Reports unreadable files, too many files or bytes, and an empty bundle.
std::vector<SourceFile> ReadBundleDir(const std::string& dir, const BundleLimits& limits,
                                      Diagnostics& diags);

// Compiles in-memory files. `bundle_name` names the policy when no file sets metadata.name.
CompileOutput CompileFiles(const std::vector<SourceFile>& files, std::string_view bundle_name,
                           const BundleLimits& limits = {});

// ReadBundleDir + CompileFiles.
CompileOutput CompileBundle(const std::string& dir, const BundleLimits& limits = {});

// Parses a dollar amount written as a decimal ("0.002", "50", 5000) into micro-dollars without
// floating point. Refuses negatives, more than six decimals, and amounts over $1e12.
bool ParseUsdMicros(std::string_view text, Micros& out);

// The exact decimal text of an amount ("0.002", "50", "-1.5"): no floating point on the way.
std::string FormatUsdMicros(Micros m);

}  // namespace aegis::policy

#endif  // AEGIS_POLICY_COMPILER_H_
