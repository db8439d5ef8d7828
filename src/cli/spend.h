// `aegis spend`: what each agent, tenant and agent×tool spent today, asked of a running
// `aegis serve` (GET /v1/spend).
#ifndef AEGIS_CLI_SPEND_H_
#define AEGIS_CLI_SPEND_H_

#include <string>
#include <vector>

namespace aegis::cli {

// Returns the process exit code: 0, 1 when the server cannot be reached or refuses, 2 usage.
int Spend(const std::vector<std::string>& args);

}  // namespace aegis::cli

#endif  // AEGIS_CLI_SPEND_H_
