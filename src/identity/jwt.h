// Aegis tokens: compact JWS (RFC 7515) JSON Web Tokens (RFC 7519) signed with Ed25519 (EdDSA,
// RFC 8037), of two kinds told apart by the header's `typ` (RFC 8725 section 3.11):
//
//   agent tokens     typ "aegis-agent+jwt"     who is calling: sub (agent) and tenant
//   override tokens  typ "aegis-override+jwt"  one approved call: approval_id and call_digest
//
// This file holds what does not need keys: the claims, the verification options, and the steps
// of verification that Keyring::Verify (keyring.h) runs around the signature check. The format
// and every rule are documented in docs/identity.md.
#ifndef AEGIS_IDENTITY_JWT_H_
#define AEGIS_IDENTITY_JWT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace aegis::identity {

enum class TokenKind { kAgent, kOverride };

// The header `typ` of a kind: "aegis-agent+jwt" or "aegis-override+jwt".
std::string_view TypOf(TokenKind kind);

struct Claims {
  std::string iss, sub, aud, jti;
  // Agent tokens (may be empty: a bundle-wide agent).
  std::string tenant;
  // Unix seconds.
  int64_t iat = 0, nbf = 0, exp = 0;
  // Override tokens only (claims "approval_id", "call_digest").
  std::string approval_id, call_digest;
};

struct VerifyOptions {
  // iss must equal it.
  std::string issuer;
  // aud must equal it (a string; an array containing it is also accepted).
  std::string audience;
  int64_t now_seconds = 0;
  int64_t leeway_seconds = 30;
  // exp - iat above this is refused.
  int64_t max_lifetime_seconds = 3600;
};

// A token longer than this is refused before any parsing.
inline constexpr size_t kMaxTokenBytes = 8192;
// Longest sub, tenant, jti and approval_id accepted, in bytes.
inline constexpr size_t kMaxClaimBytes = 128;

// Returns true if `kid` matches ^[A-Za-z0-9_-]{1,64}$. A kid that does not is refused before
// any lookup, so it can never name a path or reach a query.
bool IsValidKid(std::string_view kid);

// The steps of verification, in the order Keyring::Verify runs them. Each returns
// Unauthenticated with a message that says which rule the token broke.

// A token whose size, segments and header have passed every check, and whose signature has not
// been checked yet.
struct UnverifiedToken {
  std::string_view signing_input;  // "header.payload", the bytes signed; points into the token
  std::string kid;                 // well-formed (IsValidKid), not yet known to be a key
  std::string payload;             // decoded payload bytes, not parsed yet
  std::string signature;           // decoded signature bytes
};

// Step 1: size (at most kMaxTokenBytes), exactly three strict base64url segments, and the
// header: a JSON object with alg "EdDSA", typ TypOf(kind), a well-formed kid, and no other
// member (jku, x5u, jwk, x5c, x5t, crit and the rest are refused by name).
common::StatusOr<UnverifiedToken> DecodeToken(std::string_view token, TokenKind kind);

// The claims of a payload that has the right structure and types, before the checks that
// depend on VerifyOptions.
struct PayloadClaims {
  TokenKind kind = TokenKind::kAgent;
  Claims claims;                       // claims.aud is empty when aud is an array
  std::vector<std::string> audiences;  // aud as a list (one element when it is a string)
};

// Step 3 (after the signature): the payload is a JSON object with iss, sub, aud, iat, nbf, exp
// and jti of the right types (times are integers), sub 1-128 bytes, and the claims of `kind`:
// tenant for an agent token; approval_id and call_digest (64 lower-case hex) for an override
// token; the other kind's claims absent. Other claims are ignored.
common::StatusOr<PayloadClaims> ParsePayload(std::string_view payload, TokenKind kind);

// Step 4: iss and aud against `options`, then time: exp after iat, exp - iat at most
// max_lifetime_seconds, exp > now - leeway, nbf <= now + leeway, iat <= now + leeway. Returns
// the claims, with aud set to options.audience.
common::StatusOr<Claims> CheckPayload(const PayloadClaims& payload, const VerifyOptions& options);

// Signing side.

// The header JSON of a token: {"alg":"EdDSA","kid":kid,"typ":TypOf(kind)}.
std::string EncodeHeader(TokenKind kind, std::string_view kid);

// The payload JSON of a token of `kind` (sorted keys, no whitespace): iss, sub, aud, iat, nbf,
// exp, jti, plus tenant for an agent token or approval_id and call_digest for an override token.
std::string EncodePayload(TokenKind kind, const Claims& claims);

// Returns InvalidArgument if `claims` would make a token that ParsePayload refuses, or whose exp
// is not after iat, so that a signer never issues a token no verifier accepts.
common::Status CheckClaimsForSigning(TokenKind kind, const Claims& claims);

}  // namespace aegis::identity

#endif  // AEGIS_IDENTITY_JWT_H_
