#include "identity/jwt.h"

#include <initializer_list>
#include <utility>

#include "common/json.h"
#include "common/strings.h"
#include "identity/base64url.h"

namespace aegis::identity {
namespace {

using common::Json;
using common::StrCat;
using common::UnauthenticatedError;

constexpr std::string_view kAgentTyp = "aegis-agent+jwt";
constexpr std::string_view kOverrideTyp = "aegis-override+jwt";

// Headers and payloads are flat; aud may be an array.
constexpr common::JsonLimits kJsonLimits{.max_bytes = kMaxTokenBytes, .max_depth = 8};

std::string_view KindName(TokenKind kind) {
  return kind == TokenKind::kAgent ? "agent" : "override";
}

// A value from the token, quoted for an error message: JSON-escaped and cut short, so a log line
// stays one line of bounded size whatever the token holds.
std::string Quote(std::string_view value) {
  constexpr size_t kMax = 64;
  std::string out;
  common::AppendJsonString(out, value.substr(0, kMax));
  if (value.size() > kMax) out += "...";
  return out;
}

std::string_view KindOfJson(const Json& v) {
  switch (v.kind()) {
    case Json::Kind::kNull:
      return "null";
    case Json::Kind::kBool:
      return "a boolean";
    case Json::Kind::kInt:
      return "an integer";
    case Json::Kind::kDouble:
      return "a non-integer number";
    case Json::Kind::kString:
      return "a string";
    case Json::Kind::kArray:
      return "an array";
    case Json::Kind::kObject:
      return "an object";
  }
  return "?";
}

bool HasControlCharacter(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool IsLowerHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The rule for sub, tenant, jti and approval_id. `may_be_empty` only for tenant.
common::Status CheckName(std::string_view claim, std::string_view value, bool may_be_empty) {
  if ((value.empty() && !may_be_empty) || value.size() > kMaxClaimBytes) {
    return UnauthenticatedError(StrCat("token claim ", claim, " must be ", may_be_empty ? "0" : "1",
                                       " to ", kMaxClaimBytes, " bytes long"));
  }
  if (HasControlCharacter(value)) {
    return UnauthenticatedError(StrCat("token claim ", claim, " holds a control character"));
  }
  return common::OkStatus();
}

common::Status CheckDigest(std::string_view value) {
  if (!IsLowerHex64(value)) {
    return UnauthenticatedError(
        "token claim call_digest must be 64 lower-case hex characters (a SHA-256)");
  }
  return common::OkStatus();
}

// Finds a required member of the payload of type string or integer.
common::StatusOr<const Json*> Required(const Json& payload, std::string_view claim) {
  const Json* v = payload.Find(claim);
  if (v == nullptr) return UnauthenticatedError(StrCat("token claim ", claim, " is missing"));
  return v;
}

common::StatusOr<std::string> RequiredString(const Json& payload, std::string_view claim) {
  auto v = Required(payload, claim);
  if (!v.ok()) return v.status();
  if (!(*v)->is_string()) {
    return UnauthenticatedError(
        StrCat("token claim ", claim, " must be a string, not ", KindOfJson(**v)));
  }
  return (*v)->as_string();
}

common::StatusOr<int64_t> RequiredTime(const Json& payload, std::string_view claim) {
  auto v = Required(payload, claim);
  if (!v.ok()) return v.status();
  if (!(*v)->is_int()) {
    return UnauthenticatedError(
        StrCat("token claim ", claim, " must be an integer (Unix seconds), not ", KindOfJson(**v)));
  }
  return (*v)->as_int();
}

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

// Header members a token may carry, and why each dangerous one is refused.
struct RefusedMember {
  std::string_view name;
  std::string_view why;
};
constexpr RefusedMember kRefusedMembers[] = {
    {"jku", "keys are never taken from a token"},
    {"jwk", "keys are never taken from a token"},
    {"x5u", "keys are never taken from a token"},
    {"x5c", "keys are never taken from a token"},
    {"x5t", "keys are never taken from a token"},
    {"x5t#S256", "keys are never taken from a token"},
    {"crit", "no JWS extension is understood"},
    {"b64", "no JWS extension is understood"},
    {"zip", "compressed tokens are not accepted"},
    {"enc", "encrypted tokens are not accepted"},
};

common::Status CheckHeader(const Json& header, TokenKind kind, std::string* kid) {
  if (!header.is_object()) {
    return UnauthenticatedError(
        StrCat("token header must be a JSON object, not ", KindOfJson(header)));
  }
  // alg first: whatever else the header says, a token that is not EdDSA is refused as such.
  const Json* alg = header.Find("alg");
  if (alg == nullptr) return UnauthenticatedError("token header has no alg");
  if (!alg->is_string()) return UnauthenticatedError("token header alg must be a string");
  if (alg->as_string() != "EdDSA") {
    return UnauthenticatedError(
        StrCat("token alg ", Quote(alg->as_string()), " is refused: only EdDSA is accepted"));
  }
  for (const Json::Member& m : header.as_object()) {
    if (m.key == "alg" || m.key == "typ" || m.key == "kid") continue;
    for (const RefusedMember& r : kRefusedMembers) {
      if (m.key == r.name) {
        return UnauthenticatedError(StrCat("token header member ", r.name, " is refused: ", r.why));
      }
    }
    return UnauthenticatedError(
        StrCat("token header member ", Quote(m.key), " is not accepted (only alg, typ, kid)"));
  }
  const Json* typ = header.Find("typ");
  if (typ == nullptr) return UnauthenticatedError("token header has no typ");
  if (!typ->is_string()) return UnauthenticatedError("token header typ must be a string");
  if (typ->as_string() != TypOf(kind)) {
    TokenKind other = kind == TokenKind::kAgent ? TokenKind::kOverride : TokenKind::kAgent;
    if (typ->as_string() == TypOf(other)) {
      return UnauthenticatedError(StrCat("token is an ", KindName(other), " token (typ ",
                                         TypOf(other), "), not an ", KindName(kind), " token"));
    }
    return UnauthenticatedError(
        StrCat("token typ ", Quote(typ->as_string()), " is not ", TypOf(kind)));
  }
  const Json* k = header.Find("kid");
  if (k == nullptr) return UnauthenticatedError("token header has no kid");
  if (!k->is_string()) return UnauthenticatedError("token header kid must be a string");
  if (!IsValidKid(k->as_string())) {
    return UnauthenticatedError(
        StrCat("token kid ", Quote(k->as_string()), " is malformed: 1 to 64 of A-Z a-z 0-9 _ -"));
  }
  *kid = k->as_string();
  return common::OkStatus();
}

}  // namespace

std::string_view TypOf(TokenKind kind) {
  return kind == TokenKind::kAgent ? kAgentTyp : kOverrideTyp;
}

bool IsValidKid(std::string_view kid) {
  if (kid.empty() || kid.size() > 64) return false;
  for (char c : kid) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

common::StatusOr<UnverifiedToken> DecodeToken(std::string_view token, TokenKind kind) {
  if (token.empty()) return UnauthenticatedError("token is empty");
  if (token.size() > kMaxTokenBytes) {
    return UnauthenticatedError(
        StrCat("token is ", token.size(), " bytes long; the limit is ", kMaxTokenBytes));
  }
  size_t first = token.find('.');
  size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    size_t segments = 1;
    for (char c : token) segments += c == '.';
    return UnauthenticatedError(
        StrCat("token must be three base64url segments separated by '.' (compact JWS); it has ",
               segments));
  }
  std::string_view parts[3] = {token.substr(0, first), token.substr(first + 1, second - first - 1),
                               token.substr(second + 1)};
  constexpr std::string_view kPartNames[3] = {"header", "payload", "signature"};
  std::string decoded[3];
  auto decode = [&](int i) -> common::Status {
    if (parts[i].empty()) return UnauthenticatedError(StrCat("token ", kPartNames[i], " is empty"));
    auto d = Base64UrlDecode(parts[i]);
    if (!d.ok()) {
      return UnauthenticatedError(
          StrCat("token ", kPartNames[i], " is not base64url: ", d.status().message()));
    }
    decoded[i] = std::move(*d);
    return common::OkStatus();
  };
  // The header first, so that an unsigned ("alg":"none") token is refused for what it is.
  if (auto s = decode(0); !s.ok()) return s;
  auto header = common::ParseJson(decoded[0], kJsonLimits);
  if (!header.ok()) {
    return UnauthenticatedError(
        StrCat("token header is not valid JSON: ", header.status().message()));
  }
  UnverifiedToken out;
  if (auto s = CheckHeader(*header, kind, &out.kid); !s.ok()) return s;
  if (auto s = decode(1); !s.ok()) return s;
  if (auto s = decode(2); !s.ok()) return s;
  if (decoded[2].size() != 64) {
    return UnauthenticatedError(
        StrCat("token signature is ", decoded[2].size(), " bytes; Ed25519 signatures are 64"));
  }
  out.signing_input = token.substr(0, second);
  out.payload = std::move(decoded[1]);
  out.signature = std::move(decoded[2]);
  return out;
}

common::StatusOr<PayloadClaims> ParsePayload(std::string_view payload, TokenKind kind) {
  auto parsed = common::ParseJson(payload, kJsonLimits);
  if (!parsed.ok()) {
    return UnauthenticatedError(
        StrCat("token payload is not valid JSON: ", parsed.status().message()));
  }
  const Json& p = *parsed;
  if (!p.is_object()) {
    return UnauthenticatedError(StrCat("token payload must be a JSON object, not ", KindOfJson(p)));
  }
  PayloadClaims out;
  out.kind = kind;
  Claims& c = out.claims;
  for (auto [claim, field] : {std::pair<std::string_view, std::string*>{"iss", &c.iss},
                              {"sub", &c.sub},
                              {"jti", &c.jti}}) {
    auto v = RequiredString(p, claim);
    if (!v.ok()) return v.status();
    *field = std::move(*v);
  }
  auto aud = Required(p, "aud");
  if (!aud.ok()) return aud.status();
  if ((*aud)->is_string()) {
    c.aud = (*aud)->as_string();
    out.audiences.push_back(c.aud);
  } else if ((*aud)->is_array() && !(*aud)->as_array().empty()) {
    for (const Json& a : (*aud)->as_array()) {
      if (!a.is_string()) {
        return UnauthenticatedError(
            StrCat("token claim aud must hold only strings, not ", KindOfJson(a)));
      }
      out.audiences.push_back(a.as_string());
    }
  } else {
    return UnauthenticatedError(
        StrCat("token claim aud must be a string or a non-empty array of strings, not ",
               KindOfJson(**aud)));
  }
  for (auto [claim, field] :
       {std::pair<std::string_view, int64_t*>{"iat", &c.iat}, {"nbf", &c.nbf}, {"exp", &c.exp}}) {
    auto v = RequiredTime(p, claim);
    if (!v.ok()) return v.status();
    *field = *v;
  }
  if (auto s = CheckName("sub", c.sub, false); !s.ok()) return s;
  if (auto s = CheckName("jti", c.jti, false); !s.ok()) return s;
  if (kind == TokenKind::kAgent) {
    auto tenant = RequiredString(p, "tenant");
    if (!tenant.ok()) return tenant.status();
    c.tenant = std::move(*tenant);
    if (auto s = CheckName("tenant", c.tenant, true); !s.ok()) return s;
    for (std::string_view claim : {"approval_id", "call_digest"}) {
      if (p.Find(claim) != nullptr) {
        return UnauthenticatedError(
            StrCat("token claim ", claim, " belongs to override tokens, not agent tokens"));
      }
    }
  } else {
    auto approval = RequiredString(p, "approval_id");
    if (!approval.ok()) return approval.status();
    c.approval_id = std::move(*approval);
    if (auto s = CheckName("approval_id", c.approval_id, false); !s.ok()) return s;
    auto digest = RequiredString(p, "call_digest");
    if (!digest.ok()) return digest.status();
    c.call_digest = std::move(*digest);
    if (auto s = CheckDigest(c.call_digest); !s.ok()) return s;
    if (p.Find("tenant") != nullptr) {
      return UnauthenticatedError(
          "token claim tenant belongs to agent tokens, not override tokens");
    }
  }
  return out;
}

common::StatusOr<Claims> CheckPayload(const PayloadClaims& payload, const VerifyOptions& options) {
  const Claims& c = payload.claims;
  if (c.iss != options.issuer) {
    return UnauthenticatedError(
        StrCat("token issuer ", Quote(c.iss), " is not the expected ", Quote(options.issuer)));
  }
  bool audience_ok = false;
  for (const std::string& a : payload.audiences) audience_ok = audience_ok || a == options.audience;
  if (!audience_ok) {
    return UnauthenticatedError(StrCat(
        "token audience ", payload.audiences.size() == 1 ? Quote(payload.audiences[0]) : "list",
        " does not include ", Quote(options.audience)));
  }
  if (c.exp <= c.iat) {
    return UnauthenticatedError(
        StrCat("token exp (", c.exp, ") is not after its iat (", c.iat, ")"));
  }
  // exp > iat, so the difference fits uint64 exactly even when int64 subtraction would overflow.
  uint64_t lifetime = static_cast<uint64_t>(c.exp) - static_cast<uint64_t>(c.iat);
  if (options.max_lifetime_seconds < 0 ||
      lifetime > static_cast<uint64_t>(options.max_lifetime_seconds)) {
    return UnauthenticatedError(StrCat("token lifetime of ", lifetime,
                                       " s (exp - iat) exceeds the maximum of ",
                                       options.max_lifetime_seconds, " s"));
  }
  int64_t late = SaturatingAdd(options.now_seconds, options.leeway_seconds);
  int64_t early = SaturatingAdd(options.now_seconds, -options.leeway_seconds);
  if (c.exp <= early) {
    return UnauthenticatedError(StrCat("token expired at ", c.exp, " (now ", options.now_seconds,
                                       ", leeway ", options.leeway_seconds, " s)"));
  }
  if (c.nbf > late) {
    return UnauthenticatedError(StrCat("token is not valid before ", c.nbf, " (now ",
                                       options.now_seconds, ", leeway ", options.leeway_seconds,
                                       " s)"));
  }
  if (c.iat > late) {
    return UnauthenticatedError(StrCat("token is issued in the future (iat ", c.iat, ", now ",
                                       options.now_seconds, ", leeway ", options.leeway_seconds,
                                       " s)"));
  }
  Claims out = c;
  out.aud = options.audience;
  return out;
}

std::string EncodeHeader(TokenKind kind, std::string_view kid) {
  std::string out = "{\"alg\":\"EdDSA\",\"kid\":";
  common::AppendJsonString(out, kid);
  out += ",\"typ\":";
  common::AppendJsonString(out, TypOf(kind));
  out += '}';
  return out;
}

std::string EncodePayload(TokenKind kind, const Claims& claims) {
  Json p = Json::EmptyObject();
  p.Set("iss", Json::String(claims.iss));
  p.Set("sub", Json::String(claims.sub));
  p.Set("aud", Json::String(claims.aud));
  p.Set("jti", Json::String(claims.jti));
  p.Set("iat", Json::Int(claims.iat));
  p.Set("nbf", Json::Int(claims.nbf));
  p.Set("exp", Json::Int(claims.exp));
  if (kind == TokenKind::kAgent) {
    p.Set("tenant", Json::String(claims.tenant));
  } else {
    p.Set("approval_id", Json::String(claims.approval_id));
    p.Set("call_digest", Json::String(claims.call_digest));
  }
  return p.Canonical();
}

common::Status CheckClaimsForSigning(TokenKind kind, const Claims& claims) {
  // The same rules as ParsePayload, applied to what is about to be signed.
  auto parsed = ParsePayload(EncodePayload(kind, claims), kind);
  if (!parsed.ok()) return common::InvalidArgumentError(parsed.status().message());
  if (claims.exp <= claims.iat) {
    return common::InvalidArgumentError(
        StrCat("token exp (", claims.exp, ") is not after its iat (", claims.iat, ")"));
  }
  return common::OkStatus();
}

}  // namespace aegis::identity
