// `aegis serve`: wires the configuration, the policy store, the watcher and the listeners
// together and runs until SIGTERM or SIGINT (docs/serve.md).
#ifndef AEGIS_CLI_SERVE_H_
#define AEGIS_CLI_SERVE_H_

#include <string>
#include <vector>

namespace aegis::cli {

// Returns the process exit code.
int Serve(const std::vector<std::string>& args);

}  // namespace aegis::cli

#endif  // AEGIS_CLI_SERVE_H_
