// Identity: the gateway's side of agent tokens and override tokens (DESIGN.md section 6,
// docs/identity.md), and the static credentials of the people and systems that administer it.
//
// - Front doors hand it what a caller presented (an agent token, an override token); it
//   verifies the agent token and binds the call to the token's agent and tenant.
// - It issues agent tokens (POST /v1/tokens, `aegis token issue`) and override tokens (for an
//   approved approval).
// - It is the engine's OverrideRedeemer: an override token is checked (signature, kind, issuer,
//   times, bound to this call's digest and agent) and consumed once, in the limit store —
//   memory, or Redis shared by every replica.
#ifndef AEGIS_SERVICE_IDENTITY_H_
#define AEGIS_SERVICE_IDENTITY_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "approvals/approval.h"
#include "engine/call_context.h"
#include "engine/overrides.h"
#include "identity/keyring.h"
#include "limits/limits.h"
#include "limits/memory_store.h"

namespace aegis::service {

// A static credential from the configuration: a bearer secret, stored as its SHA-256.
struct Credential {
  std::string name;          // recorded as the approver, logged
  std::string token_sha256;  // lower-case hex SHA-256 of the secret
  std::vector<std::string> roles;  // admin (everything), issuer (agent tokens), approver
};

struct IdentityOptions {
  std::string issuer = "aegis";
  std::string audience = "aegis";       // aud of agent tokens
  int64_t default_ttl_seconds = 900;    // agent tokens, when the request names none
  int64_t max_ttl_seconds = 3600;       // agent tokens: longer is refused
  int64_t override_ttl_seconds = 300;   // override tokens
  int64_t leeway_seconds = 30;
  bool require_agent_token = false;     // on the decision listeners (HTTP and gRPC)
  std::vector<Credential> credentials;
};

// The audience of override tokens: never the agent tokens' audience.
inline constexpr std::string_view kOverrideAudience = "aegis-override";

class Identity : public engine::OverrideRedeemer {
 public:
  using Log = std::function<void(std::string_view level, const std::string& message)>;
  // `once` (optional, not owned) keeps used override-token ids; without it, this process does.
  // Refused tokens and credentials are logged through `log` (warn), never the secrets.
  Identity(std::unique_ptr<identity::Keyring> keyring, IdentityOptions options,
           limits::LimitStore* once, Log log);

  // What a caller presented, applied to `call`: `token` (the x-aegis-token header, or the
  // Authorization header's Bearer value) is verified as an agent token and binds the call to
  // its agent and tenant — filling them when the call names none; `override_token` becomes the
  // call's override token. Unauthenticated (HTTP 401) for an invalid token, or for none when the
  // listener requires one; InvalidArgument when neither the call nor a token names the agent.
  common::Status ApplyCaller(std::string_view token, std::string_view override_token,
                             engine::CallContext& call) const;

  common::StatusOr<identity::Claims> VerifyAgentToken(std::string_view token,
                                                      int64_t now_seconds) const;
  // InvalidArgument for a lifetime over the maximum (or not positive).
  common::StatusOr<std::string> IssueAgentToken(std::string_view agent, std::string_view tenant,
                                                int64_t ttl_seconds, int64_t now_seconds,
                                                identity::Claims* issued = nullptr) const;
  // For an approved approval: single use (jti "ovr_" + approval id), bound to its call.
  common::StatusOr<std::string> IssueOverrideToken(const approvals::Approval& a,
                                                   int64_t now_seconds) const;

  // The name of the credential `secret` is, when it holds `role` (admin holds every role).
  std::optional<std::string> Authenticate(std::string_view secret, std::string_view role) const;

  Result Redeem(std::string_view token, std::string_view call_digest, std::string_view tenant,
                std::string_view agent, int64_t now_unix_nanos) override;
  void Release(std::string_view jti) override;

  identity::Keyring& keyring() const { return *keyring_; }
  const IdentityOptions& options() const { return options_; }

  // "Bearer X" → X; anything else → empty.
  static std::string_view BearerToken(std::string_view authorization);

 private:
  std::unique_ptr<identity::Keyring> keyring_;
  IdentityOptions options_;
  limits::MemoryLimitStore own_once_;
  limits::LimitStore* once_;
  Log log_;
};

}  // namespace aegis::service

#endif  // AEGIS_SERVICE_IDENTITY_H_
