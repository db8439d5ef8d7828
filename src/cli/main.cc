// The `aegis` command: subcommand wiring only; the work lives in the libraries.
//
// Exit codes, for CI: 0 success; 1 the bundle, the input or a policy test failed; 2 usage error.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/call_context.h"
#include "engine/engine.h"
#include "engine/policy_tests.h"
#include "cli/audit.h"
#include "cli/identity.h"
#include "cli/mcp.h"
#include "cli/redact.h"
#include "cli/serve.h"
#include "cli/spend.h"
#include "policy/compiler.h"

#ifndef AEGIS_VERSION
#define AEGIS_VERSION "dev"
#endif

namespace aegis::cli {
namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

const char* const kUsageText =
    "usage: aegis <command> [arguments]\n"
    "\n"
    "commands:\n"
    "  check <bundle-dir>                   validate a policy bundle (a directory, or one file);\n"
    "                                       print every error\n"
    "  test  <bundle-dir> [--verbose] [--require-tested]\n"
    "                                       run the bundle's policy tests; list rules no test\n"
    "                                       exercised (a failure with --require-tested)\n"
    "  eval  <bundle-dir> --input <file|-> [--explain]\n"
    "                                       decide one call (decide-API JSON); print the decision\n"
    "                                       (--explain: every rule that matched, on stderr)\n"
    "  serve [--config FILE] [--bundle DIR] [--http ADDR] [--grpc ADDR] [--redis URL]\n"
    "                                       run the decision service (docs/serve.md)\n"
    "  spend [--server HOST:PORT] [--prefix P] [--tenant T] [--agent A] [--tool T]\n"
    "        [--window W] [--json]          spend per budget and window, from a running server\n"
    "  token issue --agent A [--tenant T] [--ttl S] | rotate | jwks | hash\n"
    "                                       agent tokens and signing keys (docs/identity.md)\n"
    "  approvals list | show ID | approve ID | deny ID [--server HOST:PORT]\n"
    "                                       human approvals on a running server\n"
    "  redact [--detectors D,...] [--style S] [--json [--fields P,...]] [FILE...]\n"
    "                                       redact PII in text or JSON (docs/redaction.md)\n"
    "  audit verify [DIR] | show [DIR] [--agent A] [--tool T] [--decision D] [--since T]\n"
    "                                       check or read the audit trail (docs/audit.md)\n"
    "  mcp wrap [--agent A] [--tool NAME] [--server URL] -- COMMAND [ARGS...]\n"
    "                                       run a stdio MCP server governed by a running server\n"
    "                                       (docs/mcp.md; agent token in AEGIS_AGENT_TOKEN)\n"
    "  version                              print the version\n"
    "\n"
    "exit codes: 0 ok, 1 errors in the bundle or input or failing tests, 2 usage\n";

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int Usage(const std::string& message) {
  if (!message.empty()) std::cerr << "aegis: " << message << "\n\n";
  std::cerr << kUsageText;
  return kUsage;
}

// Compiles the bundle; prints diagnostics to stderr. Null on errors.
std::shared_ptr<const policy::CompiledPolicy> Compile(const std::string& dir) {
  policy::CompileOutput out = policy::CompileBundle(dir);
  for (const auto& d : out.diagnostics.Sorted()) std::cerr << d.ToString() << "\n";
  if (!out.policy) {
    std::cerr << "aegis: " << dir << ": " << out.diagnostics.error_count() << " error"
              << (out.diagnostics.error_count() == 1 ? "" : "s") << "\n";
  }
  return out.policy;
}

int Check(const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("check takes one bundle directory");
  auto p = Compile(args[0]);
  if (!p) return kFailed;
  std::cout << "ok: " << p->name << " version " << p->version << ": " << p->rules.size()
            << " rules, " << p->tests.size() << " tests\n";
  return kOk;
}

int Test(const std::vector<std::string>& args) {
  std::string dir;
  bool verbose = false;
  bool require_tested = false;
  for (const auto& a : args) {
    if (a == "--verbose" || a == "-v") {
      verbose = true;
    } else if (a == "--require-tested") {
      require_tested = true;
    } else if (!a.empty() && a[0] == '-') {
      return Usage("unknown option " + a);
    } else if (dir.empty()) {
      dir = a;
    } else {
      return Usage("test takes one bundle directory");
    }
  }
  if (dir.empty()) return Usage("test needs a bundle directory");
  auto p = Compile(dir);
  if (!p) return kFailed;
  engine::Engine engine(p);
  engine::PolicyTestReport report = engine::RunPolicyTests(engine, NowNanos());
  for (const auto& r : report.results) {
    const auto& loc = r.test->location;
    if (!r.passed) {
      std::cout << "FAIL " << loc.file << ":" << loc.line << ": " << r.test->name << ": "
                << r.failure << "\n";
    } else if (verbose) {
      std::cout << "PASS " << r.test->name << "\n";
    }
  }
  for (const auto* rule : report.unexercised) {
    std::cout << "untested: " << rule->location.file << ":" << rule->location.line << ": rule "
              << rule->id << " is not exercised by any test\n";
  }
  std::cout << p->name << ": " << report.passed() << " passed, " << report.failed()
            << " failed\n";
  if (report.results.empty()) {
    std::cout << p->name << ": the bundle has no tests\n";
  }
  if (require_tested && !report.unexercised.empty()) {
    std::cout << p->name << ": " << report.unexercised.size()
              << " rules not exercised by any test (--require-tested)\n";
    return kFailed;
  }
  return report.failed() == 0 ? kOk : kFailed;
}

int Eval(const std::vector<std::string>& args) {
  std::string dir, input;
  bool explain = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--explain") {
      explain = true;
    } else if (args[i] == "--input" || args[i] == "-i") {
      if (i + 1 >= args.size()) return Usage("--input needs a file name or -");
      input = args[++i];
    } else if (!args[i].empty() && args[i][0] == '-') {
      return Usage("unknown option " + args[i]);
    } else if (dir.empty()) {
      dir = args[i];
    } else {
      return Usage("eval takes one bundle directory");
    }
  }
  if (dir.empty() || input.empty()) return Usage("eval needs a bundle directory and --input");
  std::string text;
  if (input == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(input, std::ios::binary);
    if (!in) {
      std::cerr << "aegis: cannot read " << input << "\n";
      return kFailed;
    }
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto p = Compile(dir);
  if (!p) return kFailed;
  engine::CallParseOptions options;
  options.trusted = true;
  auto call = engine::ParseCall(text, NowNanos(), options);
  if (!call.ok()) {
    std::cerr << "aegis: " << input << ": invalid call: " << call.status().message() << "\n";
    return kFailed;
  }
  engine::Engine engine(p);
  engine::DecideTrace trace;
  engine::Decision decision = engine.Decide(*call, explain ? &trace : nullptr);
  std::cout << decision.ToJson() << "\n";
  for (const auto* rule : trace.matched) {
    std::cerr << "matched: " << rule->location.file << ":" << rule->location.line << ": rule "
              << rule->id << " (" << policy::EffectName(rule->effect) << ")"
              << (rule == decision.deciding_rule ? " decides" : "") << "\n";
  }
  return kOk;
}

}  // namespace
}  // namespace aegis::cli

int main(int argc, char** argv) {
  using namespace aegis::cli;
  if (argc < 2) return Usage("");
  std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "check") return Check(args);
  if (command == "test") return Test(args);
  if (command == "eval") return Eval(args);
  if (command == "serve") return Serve(args);
  if (command == "spend") return Spend(args);
  if (command == "token") return Token(args);
  if (command == "approvals") return Approvals(args);
  if (command == "redact") return Redact(args);
  if (command == "audit") return Audit(args);
  if (command == "mcp") return Mcp(args);
  if (command == "version" || command == "--version") {
    std::cout << "aegis " << AEGIS_VERSION << "\n";
    return kOk;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kUsageText;
    return kOk;
  }
  return Usage("unknown command " + command);
}
