// aegis_jwt_tool: a Keyring on the command line, for tests that check Aegis tokens against other
// implementations (tests/identity uses it with jose). A test tool: built, never installed.
//
//   aegis_jwt_tool init   DIR NOW                 opens (creates) the keyring; prints the kid
//   aegis_jwt_tool rotate DIR NOW                 prints the new kid
//   aegis_jwt_tool jwks   DIR                     prints the JWK set
//   aegis_jwt_tool sign   DIR agent|override      claims JSON on stdin; prints the token
//   aegis_jwt_tool verify DIR agent|override ISS AUD NOW [MAX_LIFETIME]
//                                                 token on stdin; prints the claims JSON
//
// Exit status: 0 done, 1 refused or failed (the status on stderr), 2 usage.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "common/json.h"
#include "identity/jwt.h"
#include "identity/keyring.h"

namespace aegis::identity {
namespace {

int Usage() {
  std::cerr << "usage: aegis_jwt_tool init|rotate DIR NOW | jwks DIR | sign DIR KIND\n"
               "       | verify DIR KIND ISS AUD NOW [MAX_LIFETIME]   (KIND: agent|override)\n";
  return 2;
}

int Fail(const common::Status& status) {
  std::cerr << status << "\n";
  return 1;
}

bool ParseInt(const std::string& text, int64_t* out) {
  try {
    size_t used = 0;
    *out = std::stoll(text, &used);
    return used == text.size();
  } catch (...) {
    return false;
  }
}

bool ParseKind(const std::string& text, TokenKind* kind) {
  if (text == "agent") {
    *kind = TokenKind::kAgent;
  } else if (text == "override") {
    *kind = TokenKind::kOverride;
  } else {
    return false;
  }
  return true;
}

std::string ReadStdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

common::StatusOr<Claims> ClaimsFromJson(std::string_view text) {
  auto json = common::ParseJson(text);
  if (!json.ok()) return json.status();
  if (!json->is_object()) return common::InvalidArgumentError("claims must be a JSON object");
  Claims c;
  for (const common::Json::Member& m : json->as_object()) {
    std::string* s = m.key == "iss"           ? &c.iss
                     : m.key == "sub"         ? &c.sub
                     : m.key == "aud"         ? &c.aud
                     : m.key == "jti"         ? &c.jti
                     : m.key == "tenant"      ? &c.tenant
                     : m.key == "approval_id" ? &c.approval_id
                     : m.key == "call_digest" ? &c.call_digest
                                              : nullptr;
    int64_t* t = m.key == "iat"   ? &c.iat
                 : m.key == "nbf" ? &c.nbf
                 : m.key == "exp" ? &c.exp
                                  : nullptr;
    if (s != nullptr && m.value.is_string()) {
      *s = m.value.as_string();
    } else if (t != nullptr && m.value.is_int()) {
      *t = m.value.as_int();
    } else {
      return common::InvalidArgumentError("claim " + m.key + " is unknown or of the wrong type");
    }
  }
  return c;
}

int Run(const std::vector<std::string>& args) {
  if (args.size() < 2) return Usage();
  const std::string& command = args[0];
  const std::string& dir = args[1];
  int64_t now = 0;
  TokenKind kind = TokenKind::kAgent;
  if (command == "init" || command == "rotate") {
    if (args.size() != 3 || !ParseInt(args[2], &now)) return Usage();
    auto keyring = Keyring::Open(dir, now);
    if (!keyring.ok()) return Fail(keyring.status());
    if (command == "init") {
      std::cout << (*keyring)->ActiveKid() << "\n";
      return 0;
    }
    auto kid = (*keyring)->Rotate(now);
    if (!kid.ok()) return Fail(kid.status());
    std::cout << *kid << "\n";
    return 0;
  }
  if (command == "jwks") {
    if (args.size() != 2) return Usage();
    auto keyring = Keyring::Open(dir, 0);
    if (!keyring.ok()) return Fail(keyring.status());
    std::cout << (*keyring)->JwksJson() << "\n";
    return 0;
  }
  if (command == "sign") {
    if (args.size() != 3 || !ParseKind(args[2], &kind)) return Usage();
    auto claims = ClaimsFromJson(ReadStdin());
    if (!claims.ok()) return Fail(claims.status());
    auto keyring = Keyring::Open(dir, claims->iat);
    if (!keyring.ok()) return Fail(keyring.status());
    auto token = (*keyring)->Sign(kind, *claims);
    if (!token.ok()) return Fail(token.status());
    std::cout << *token << "\n";
    return 0;
  }
  if (command == "verify") {
    VerifyOptions options;
    if ((args.size() != 6 && args.size() != 7) || !ParseKind(args[2], &kind) ||
        !ParseInt(args[5], &options.now_seconds) ||
        (args.size() == 7 && !ParseInt(args[6], &options.max_lifetime_seconds))) {
      return Usage();
    }
    options.issuer = args[3];
    options.audience = args[4];
    std::string token = ReadStdin();
    while (!token.empty() && token.back() == '\n') token.pop_back();
    auto keyring = Keyring::Open(dir, options.now_seconds);
    if (!keyring.ok()) return Fail(keyring.status());
    auto claims = (*keyring)->Verify(token, kind, options);
    if (!claims.ok()) return Fail(claims.status());
    std::cout << EncodePayload(kind, *claims) << "\n";
    return 0;
  }
  return Usage();
}

}  // namespace
}  // namespace aegis::identity

int main(int argc, char** argv) {
  return aegis::identity::Run(std::vector<std::string>(argv + 1, argv + argc));
}
