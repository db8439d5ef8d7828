#include "service/identity.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>

#include "common/digest.h"
#include "common/strings.h"

namespace aegis::service {

using common::StrCat;

Identity::Identity(std::unique_ptr<identity::Keyring> keyring, IdentityOptions options,
                   limits::LimitStore* once, Log log)
    : keyring_(std::move(keyring)),
      options_(std::move(options)),
      once_(once ? once : &own_once_),
      log_(std::move(log)) {}

std::string_view Identity::BearerToken(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size()) return {};
  for (size_t i = 0; i < kBearer.size(); ++i) {  // the scheme is case-insensitive
    char a = authorization[i], b = kBearer[i];
    if (a != b && !(a >= 'a' && a <= 'z' && a - 'a' + 'A' == b) &&
        !(a >= 'A' && a <= 'Z' && a - 'A' + 'a' == b)) {
      return {};
    }
  }
  return authorization.substr(kBearer.size());
}

common::StatusOr<identity::Claims> Identity::VerifyAgentToken(std::string_view token,
                                                             int64_t now_seconds) const {
  identity::VerifyOptions o;
  o.issuer = options_.issuer;
  o.audience = options_.audience;
  o.now_seconds = now_seconds;
  o.leeway_seconds = options_.leeway_seconds;
  o.max_lifetime_seconds = options_.max_ttl_seconds;
  return keyring_->Verify(token, identity::TokenKind::kAgent, o);
}

common::Status Identity::ApplyCaller(std::string_view token, std::string_view override_token,
                                     engine::CallContext& call) const {
  if (!override_token.empty()) call.override_token = std::string(override_token);
  if (token.empty()) {
    if (options_.require_agent_token) {
      return common::UnauthenticatedError(
          "this listener requires an agent token (x-aegis-token or Authorization: Bearer)");
    }
    if (call.agent.empty()) {
      return common::InvalidArgumentError(
          "agent is required: name it in the call or present an agent token");
    }
    return common::OkStatus();
  }
  auto claims = VerifyAgentToken(token, call.now_unix_nanos / 1'000'000'000);
  if (!claims.ok()) {
    log_("warn", "identity: agent token refused: " + claims.status().message());
    return claims.status();
  }
  if (call.agent.empty()) call.agent = claims->sub;
  if (call.tenant.empty()) call.tenant = claims->tenant;
  call.verified = engine::CallContext::VerifiedAgent{claims->sub, claims->tenant};
  // Conditions may read the verified claims as `identity`.
  call.identity = common::Json::EmptyObject();
  call.identity.Set("iss", common::Json::String(claims->iss));
  call.identity.Set("sub", common::Json::String(claims->sub));
  call.identity.Set("tenant", common::Json::String(claims->tenant));
  call.identity.Set("jti", common::Json::String(claims->jti));
  call.identity.Set("exp", common::Json::Int(claims->exp));
  return common::OkStatus();
}

common::StatusOr<std::string> Identity::IssueAgentToken(std::string_view agent,
                                                        std::string_view tenant,
                                                        int64_t ttl_seconds, int64_t now_seconds,
                                                        identity::Claims* issued) const {
  if (ttl_seconds <= 0 || ttl_seconds > options_.max_ttl_seconds) {
    return common::InvalidArgumentError(StrCat("a token lives from 1 to ",
                                               options_.max_ttl_seconds,
                                               " seconds (identity.max_token_ttl_seconds)"));
  }
  identity::Claims c;
  c.iss = options_.issuer;
  c.sub = std::string(agent);
  c.aud = options_.audience;
  c.tenant = std::string(tenant);
  c.iat = c.nbf = now_seconds;
  c.exp = now_seconds + ttl_seconds;
  unsigned char random[16];
  if (RAND_bytes(random, sizeof random) != 1) {
    return common::InternalError("no randomness for the token id");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  c.jti = "agt_";
  for (unsigned char b : random) {
    c.jti += kHex[b >> 4];
    c.jti += kHex[b & 15];
  }
  auto token = keyring_->Sign(identity::TokenKind::kAgent, c);
  if (token.ok() && issued) *issued = c;
  return token;
}

common::StatusOr<std::string> Identity::IssueOverrideToken(const approvals::Approval& a,
                                                           int64_t now_seconds) const {
  if (a.state != approvals::State::kApproved) {
    return common::FailedPreconditionError(
        StrCat("approval ", a.id, " is ", approvals::StateName(a.state), ", not approved"));
  }
  identity::Claims c;
  c.iss = options_.issuer;
  c.sub = a.agent;
  c.aud = std::string(kOverrideAudience);
  c.jti = "ovr_" + a.id;  // one per approval: however often it is polled, one call goes through
  c.iat = c.nbf = now_seconds;
  c.exp = now_seconds + options_.override_ttl_seconds;
  c.approval_id = a.id;
  c.call_digest = a.call_digest;
  return keyring_->Sign(identity::TokenKind::kOverride, c);
}

std::optional<std::string> Identity::Authenticate(std::string_view secret,
                                                  std::string_view role) const {
  if (secret.empty() || secret.size() > 4096) return std::nullopt;
  std::string hash = common::Sha256Hex(secret);
  for (const Credential& c : options_.credentials) {
    if (c.token_sha256.size() != hash.size() ||
        CRYPTO_memcmp(c.token_sha256.data(), hash.data(), hash.size()) != 0) {
      continue;
    }
    bool allowed = std::find(c.roles.begin(), c.roles.end(), role) != c.roles.end() ||
                   std::find(c.roles.begin(), c.roles.end(), "admin") != c.roles.end();
    if (allowed) return c.name;
    log_("warn", StrCat("identity: credential ", c.name, " lacks the ", role, " role"));
    return std::nullopt;
  }
  log_("warn", StrCat("identity: unknown credential presented for the ", role, " role"));
  return std::nullopt;
}

engine::OverrideRedeemer::Result Identity::Redeem(std::string_view token,
                                                  std::string_view call_digest,
                                                  std::string_view tenant, std::string_view agent,
                                                  int64_t now_unix_nanos) {
  (void)tenant;  // bound through the digest, which covers tenant, agent, tool, action, params
  Result r;
  identity::VerifyOptions o;
  o.issuer = options_.issuer;
  o.audience = std::string(kOverrideAudience);
  o.now_seconds = now_unix_nanos / 1'000'000'000;
  o.leeway_seconds = options_.leeway_seconds;
  o.max_lifetime_seconds = options_.override_ttl_seconds;
  auto claims = keyring_->Verify(token, identity::TokenKind::kOverride, o);
  if (!claims.ok()) {
    r.error = claims.status().message();
    log_("warn", StrCat("identity: override token refused for agent ", agent, ": ", r.error));
    return r;
  }
  if (claims->sub != agent || claims->call_digest != call_digest) {
    r.error = StrCat("the override token of approval ", claims->approval_id,
                     " is for another call (the call digest differs)");
    return r;
  }
  auto fresh = once_->ConsumeOnce(StrCat("override/", claims->jti),
                                  (claims->exp + options_.leeway_seconds) * 1'000'000'000,
                                  now_unix_nanos);
  if (!fresh.ok()) {
    r.error = StrCat("cannot check that the override token is unused: ", fresh.status().message());
    return r;
  }
  if (!*fresh) {
    r.error = StrCat("the override token of approval ", claims->approval_id, " was used already");
    log_("warn", StrCat("identity: replayed override token of approval ", claims->approval_id,
                        " by agent ", agent));
    return r;
  }
  r.ok = true;
  r.approval_id = claims->approval_id;
  r.jti = claims->jti;
  return r;
}

void Identity::Release(std::string_view jti) { once_->Unconsume(StrCat("override/", jti)); }

}  // namespace aegis::service
