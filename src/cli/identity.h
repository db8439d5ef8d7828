// `aegis token ...` and `aegis approvals ...` (docs/identity.md, docs/approvals.md).
#ifndef AEGIS_CLI_IDENTITY_H_
#define AEGIS_CLI_IDENTITY_H_

#include <string>
#include <vector>

namespace aegis::cli {

// token issue --agent A [--tenant T] [--ttl SECONDS] [--data-dir D] [--config F]
// token rotate [--data-dir D] | token jwks [--data-dir D] | token hash (a secret on stdin)
int Token(const std::vector<std::string>& args);

// approvals list [--state S] [--tenant T] [--agent A] | show ID | approve ID [--comment C] |
// deny ID [--comment C]; [--server HOST:PORT] [--json]; the approver credential from
// AEGIS_CREDENTIAL.
int Approvals(const std::vector<std::string>& args);

}  // namespace aegis::cli

#endif  // AEGIS_CLI_IDENTITY_H_
