// `aegis audit verify|show` (docs/audit.md).
#ifndef AEGIS_CLI_AUDIT_H_
#define AEGIS_CLI_AUDIT_H_

#include <string>
#include <vector>

namespace aegis::cli {

// audit verify [DIR] [--key-id K] | audit show [DIR] [--agent A] [--tool T] [--decision D]
//   [--since RFC3339] [--until RFC3339] [--limit N]; DIR defaults to <data_dir>/audit.
int Audit(const std::vector<std::string>& args);

}  // namespace aegis::cli

#endif  // AEGIS_CLI_AUDIT_H_
