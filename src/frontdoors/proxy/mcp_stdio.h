// The MCP gateway for the stdio transport (`aegis mcp wrap`, docs/mcp.md): runs an MCP server as
// a child process and sits on its standard input and output, for desktop agents and IDEs that
// start MCP servers themselves. Each `tools/call` from the client is decided by a running
// `aegis serve` (POST /v1/decide) before the server sees it; each `tools/list` answer is
// filtered with POST /v1/offers. The same rules, audit trail, limits and approvals as every other
// front door apply, since the decision is the server's.
#ifndef AEGIS_FRONTDOORS_PROXY_MCP_STDIO_H_
#define AEGIS_FRONTDOORS_PROXY_MCP_STDIO_H_

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace aegis::proxy {

struct StdioGatewayOptions {
  std::string aegis_url = "http://127.0.0.1:8181";  // a running `aegis serve`'s HTTP API
  std::string agent;   // may be empty when `token` names the agent
  std::string tenant;
  std::string tool;    // the policy's tool this server is
  std::string token;   // an agent token, sent as x-aegis-token
  std::chrono::milliseconds timeout{5000};  // per call to Aegis
  size_t max_line_bytes = 16 << 20;         // longer JSON-RPC lines are refused
};

// Starts `command` (argv; looked up in PATH) with piped standard input and output (its standard
// error is ours) and relays newline-delimited JSON-RPC between `in_fd`/`out_fd` and it until
// either side ends. Fails closed: when Aegis cannot be asked, tools/call is refused and
// tools/list comes back empty. Log lines (`log`) go to standard error in `aegis mcp wrap`.
// Returns the child's exit code (128 + signal when killed), or 127 when it could not start.
int RunStdioGateway(const StdioGatewayOptions& options, const std::vector<std::string>& command,
                    int in_fd, int out_fd, const std::function<void(const std::string&)>& log);

}  // namespace aegis::proxy

#endif  // AEGIS_FRONTDOORS_PROXY_MCP_STDIO_H_
