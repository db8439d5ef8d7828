// `aegis mcp wrap`: an MCP server started over stdio, governed by a running `aegis serve`
// (docs/mcp.md).
#ifndef AEGIS_CLI_MCP_H_
#define AEGIS_CLI_MCP_H_

#include <string>
#include <vector>

namespace aegis::cli {

// mcp wrap [--agent A] [--tenant T] [--tool NAME] [--server URL] -- COMMAND [ARGS...]
// The agent token comes from AEGIS_AGENT_TOKEN; the server from --server or AEGIS_URL
// (default http://127.0.0.1:8181). Exits with the MCP server's exit code.
int Mcp(const std::vector<std::string>& args);

}  // namespace aegis::cli

#endif  // AEGIS_CLI_MCP_H_
