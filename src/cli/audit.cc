#include "cli/audit.h"

#include <cstdlib>
#include <iostream>
#include <map>

#include "audit/show.h"
#include "audit/verify.h"
#include "expr/time_util.h"

namespace aegis::cli {

int Audit(const std::vector<std::string>& args) {
  static constexpr const char* kUsageText =
      "usage: aegis audit verify [DIR] [--key-id K]\n"
      "       aegis audit show [DIR] [--agent A] [--tool T] [--decision D] [--since TIME]\n"
      "                        [--until TIME] [--limit N]\n"
      "   DIR: the trail (default: $AEGIS_DATA_DIR/audit, else data/audit); TIME: RFC 3339\n";
  if (args.empty() || (args[0] != "verify" && args[0] != "show")) {
    std::cerr << kUsageText;
    return 2;
  }
  std::map<std::string, std::string> flags;
  std::string dir;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) == 0) {
      static const char* kFlags[] = {"--key-id", "--agent", "--tool", "--decision",
                                     "--since",  "--until", "--limit"};
      bool known = false;
      for (const char* f : kFlags) known = known || a == f;
      if (!known || i + 1 >= args.size()) {
        std::cerr << "aegis: audit: bad argument " << a << "\n" << kUsageText;
        return 2;
      }
      flags[a] = args[++i];
    } else if (dir.empty()) {
      dir = a;
    } else {
      std::cerr << "aegis: audit: one directory\n" << kUsageText;
      return 2;
    }
  }
  if (dir.empty()) {
    const char* data = std::getenv("AEGIS_DATA_DIR");
    dir = std::string(data && *data ? data : "data") + "/audit";
  }
  if (args[0] == "verify") {
    audit::VerifyOptions options;
    if (flags.count("--key-id")) options.expected_key_id = flags["--key-id"];
    audit::VerifyReport r = audit::Verify(dir, options);
    for (const auto& w : r.warnings) std::cerr << "aegis: audit: warning: " << w << "\n";
    if (!r.ok) {
      std::cout << "TAMPERED or damaged: " << r.error << "\n";
      if (r.first_bad_record) std::cout << "first bad record: " << r.first_bad_record << "\n";
      return 1;
    }
    std::cout << "ok: " << r.records << " records in " << r.segments << " segments, "
              << r.checkpoints << " signed checkpoints; chain " << r.chain_id << ", key "
              << r.key_id << (r.closed_cleanly ? "" : " (not closed: a writer is live or crashed)")
              << "\n";
    return 0;
  }
  audit::ShowFilter filter;
  filter.agent = flags["--agent"];
  filter.tool = flags["--tool"];
  filter.decision = flags["--decision"];
  for (auto [flag, out] : {std::pair{"--since", &filter.since_unix_nanos},
                           {"--until", &filter.until_unix_nanos}}) {
    if (!flags.count(flag)) continue;
    if (!expr::internal::ParseTimestamp(flags[flag], out)) {
      std::cerr << "aegis: audit: " << flag << " is an RFC 3339 time (2026-05-01T09:30:00Z)\n";
      return 2;
    }
  }
  if (flags.count("--limit")) {
    char* end = nullptr;
    long n = std::strtol(flags["--limit"].c_str(), &end, 10);
    if (!end || *end || n < 0) {
      std::cerr << "aegis: audit: --limit is a number (0: all)\n";
      return 2;
    }
    filter.limit = static_cast<size_t>(n);
  }
  auto lines = audit::Show(dir, filter);
  if (!lines.ok()) {
    std::cerr << "aegis: audit: " << lines.status().message() << "\n";
    return 1;
  }
  for (const auto& line : *lines) std::cout << line << "\n";
  return 0;
}

}  // namespace aegis::cli
