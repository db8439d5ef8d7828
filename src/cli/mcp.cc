#include "cli/mcp.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "frontdoors/proxy/mcp_stdio.h"

namespace aegis::cli {

namespace {

constexpr int kUsage = 2;

int Usage(const std::string& why) {
  std::cerr << "aegis: mcp: " << why << "\n"
            << "usage: aegis mcp wrap [--agent A] [--tenant T] [--tool NAME] [--server URL] "
               "-- COMMAND [ARGS...]\n";
  return kUsage;
}

}  // namespace

int Mcp(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "wrap") return Usage("the only subcommand is wrap");
  proxy::StdioGatewayOptions options;
  options.tool = "mcp";
  if (const char* url = std::getenv("AEGIS_URL"); url && *url) options.aegis_url = url;
  if (const char* token = std::getenv("AEGIS_AGENT_TOKEN"); token && *token) options.token = token;
  size_t i = 1;
  for (; i < args.size() && args[i] != "--"; ++i) {
    if (i + 1 >= args.size()) return Usage(args[i] + " needs a value");
    const std::string& value = args[++i];
    if (args[i - 1] == "--agent") {
      options.agent = value;
    } else if (args[i - 1] == "--tenant") {
      options.tenant = value;
    } else if (args[i - 1] == "--tool") {
      options.tool = value;
    } else if (args[i - 1] == "--server") {
      options.aegis_url = value;
    } else {
      return Usage("unknown argument " + args[i - 1]);
    }
  }
  if (i >= args.size() || i + 1 >= args.size()) return Usage("give the server's command after --");
  if (options.agent.empty() && options.token.empty()) {
    return Usage("name the agent with --agent, or give its token in AEGIS_AGENT_TOKEN");
  }
  while (!options.aegis_url.empty() && options.aegis_url.back() == '/') options.aegis_url.pop_back();
  std::vector<std::string> command(args.begin() + static_cast<long>(i) + 1, args.end());
  return proxy::RunStdioGateway(options, command, STDIN_FILENO, STDOUT_FILENO,
                                [](const std::string& line) { std::cerr << line << std::endl; });
}

}  // namespace aegis::cli
