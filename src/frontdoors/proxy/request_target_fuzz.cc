// Fuzz target for the proxy's request-target parser. Input: the method on the first line, the
// request-target on the second, then one Host header value per line. Whatever the bytes, the
// parser returns; an accepted target must hold the invariants below, or the fuzzer aborts (abort,
// not assert, so release builds of the corpus replay check them too). The same bytes also go
// through common::NormalizeHost, which must be idempotent.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/host.h"
#include "frontdoors/proxy/request_target.h"

namespace {

void Require(bool invariant) {
  if (!invariant) std::abort();
}

bool HasForbiddenByte(std::string_view s, std::string_view also) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '#' ||
        also.find(static_cast<char>(c)) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

void CheckNormalizeHost(std::string_view text) {
  int port = -1;
  auto host = aegis::common::NormalizeHost(text, &port);
  if (!host.ok()) return;
  Require(port >= 0 && port <= 65535);
  auto again = aegis::common::NormalizeHost(*host);
  Require(again.ok() && *again == *host);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos <= input.size()) {
    size_t end = input.find('\n', pos);
    if (end == std::string_view::npos) end = input.size();
    lines.push_back(input.substr(pos, end - pos));
    pos = end + 1;
  }
  std::string_view method = lines.size() > 0 ? lines[0] : std::string_view();
  std::string_view target = lines.size() > 1 ? lines[1] : std::string_view();
  std::vector<std::string_view> hosts;
  for (size_t i = 2; i < lines.size(); ++i) hosts.push_back(lines[i]);

  CheckNormalizeHost(target);
  for (std::string_view h : hosts) CheckNormalizeHost(h);

  using aegis::proxy::RequestTarget;
  auto got = aegis::proxy::ParseRequestTarget(method, target, hosts);
  if (!got.ok()) {
    Require(got.status().code() == aegis::common::StatusCode::kInvalidArgument);
    Require(!got.status().message().empty() && got.status().message().size() <= 200);
    return 0;
  }
  const RequestTarget& t = *got;
  // The host re-normalises to itself and holds nothing that could change its meaning.
  auto again = aegis::common::NormalizeHost(t.host);
  Require(again.ok() && *again == t.host);
  Require(!t.host.empty() && !HasForbiddenByte(t.host, "@%/?ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
  if (t.host[0] == '[') {
    Require(t.host.back() == ']');
  } else {
    Require(t.host.find_first_of(":[]") == std::string::npos && t.host.back() != '.');
  }
  Require(t.port >= 1 && t.port <= 65535);
  Require(hosts.size() == 1);
  Require(!HasForbiddenByte(t.path, "") && !HasForbiddenByte(t.query, ""));
  Require(t.has_query || t.query.empty());
  switch (t.form) {
    case RequestTarget::Form::kAuthority:
      Require(method == "CONNECT" && t.explicit_port && t.path.empty() && !t.has_query && !t.tls);
      break;
    case RequestTarget::Form::kOrigin:
      Require(!t.tls && t.path.size() >= 1 && t.path[0] == '/');
      Require(t.path.size() < 2 || t.path[1] != '/');
      break;
    case RequestTarget::Form::kAbsolute:
      Require(method != "CONNECT" && t.path.size() >= 1 && t.path[0] == '/');
      break;
  }
  Require(t.explicit_port || t.port == (t.tls ? 443 : 80));
  // Parsing is a function of its input.
  auto twice = aegis::proxy::ParseRequestTarget(method, target, hosts);
  Require(twice.ok() && twice->host == t.host && twice->port == t.port && twice->path == t.path &&
          twice->query == t.query);
  return 0;
}
