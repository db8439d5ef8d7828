// Tokens signed and verified by a Keyring: the round trip, then every way a token can be wrong
// (RFC 8725), each refused as Unauthenticated with a message that names the broken rule.
#include "identity/jwt.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/json.h"
#include "identity/base64url.h"
#include "identity/keyring.h"

namespace aegis::identity {
namespace {

using common::Json;
using common::StatusCode;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'700'000'000;
constexpr char kDigest[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string MakeTempDir() {
  std::string templ = ::testing::TempDir() + "aegis_identity_XXXXXX";
  char* dir = ::mkdtemp(templ.data());
  EXPECT_NE(dir, nullptr);
  return templ;
}

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Reads a key file as the test's own signer, to make tokens that only a holder of the key could.
Pkey LoadKey(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  EXPECT_NE(f, nullptr) << path;
  if (f == nullptr) return nullptr;
  Pkey key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return key;
}

std::string Ed25519Sign(EVP_PKEY* key, std::string_view data) {
  unsigned char sig[64];
  size_t len = sizeof sig;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EXPECT_EQ(EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key), 1);
  EXPECT_EQ(EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(data.data()),
                           data.size()),
            1);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<const char*>(sig), len);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char mac[32];
  size_t len = 0;
  EXPECT_NE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                      reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
                      sizeof mac, &len),
            nullptr);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

Json MustParse(std::string_view text) {
  auto j = common::ParseJson(text);
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *j : Json();
}

Json Without(Json object, std::string_view key) {
  auto& members = object.mutable_object();
  std::erase_if(members, [&](const Json::Member& m) { return m.key == key; });
  return object;
}

Json With(Json object, std::string key, Json value) {
  object.Set(std::move(key), std::move(value));
  return object;
}

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    auto keyring = Keyring::Open(dir_ + "/keys", kNow);
    ASSERT_TRUE(keyring.ok()) << keyring.status();
    keyring_ = std::move(*keyring);
    kid_ = keyring_->ActiveKid();
    key_ = LoadKey(dir_ + "/keys/" + kid_ + ".pem");
    ASSERT_NE(key_, nullptr);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static Claims AgentClaims() {
    Claims c;
    c.iss = "https://aegis.example";
    c.sub = "billing-agent";
    c.aud = "aegis";
    c.jti = "j-1";
    c.tenant = "acme";
    c.iat = kNow;
    c.nbf = kNow;
    c.exp = kNow + 600;
    return c;
  }
  static Claims OverrideClaims() {
    Claims c = AgentClaims();
    c.tenant.clear();
    c.approval_id = "apr_123";
    c.call_digest = kDigest;
    c.exp = kNow + 300;
    return c;
  }
  static VerifyOptions Options(int64_t now = kNow) {
    VerifyOptions o;
    o.issuer = "https://aegis.example";
    o.audience = "aegis";
    o.now_seconds = now;
    return o;
  }
  static Json AgentPayload() { return MustParse(EncodePayload(TokenKind::kAgent, AgentClaims())); }
  static Json OverridePayload() {
    return MustParse(EncodePayload(TokenKind::kOverride, OverrideClaims()));
  }
  std::string AgentHeader() const { return EncodeHeader(TokenKind::kAgent, kid_); }

  // A token with exactly these header and payload bytes, signed with the active key.
  std::string Forge(std::string_view header, std::string_view payload) const {
    std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
    return input + "." + Base64UrlEncode(Ed25519Sign(key_.get(), input));
  }
  std::string ForgeAgent(const Json& payload) const {
    return Forge(AgentHeader(), payload.Canonical());
  }

  void ExpectRefused(std::string_view token, TokenKind kind, std::string_view message,
                     const VerifyOptions& options = Options()) const {
    auto claims = keyring_->Verify(token, kind, options);
    ASSERT_FALSE(claims.ok()) << "accepted: " << token;
    EXPECT_EQ(claims.status().code(), StatusCode::kUnauthenticated) << claims.status();
    EXPECT_THAT(claims.status().message(), HasSubstr(message));
  }
  void ExpectAgentRefused(const Json& payload, std::string_view message) const {
    ExpectRefused(ForgeAgent(payload), TokenKind::kAgent, message);
  }

  std::string dir_;
  std::unique_ptr<Keyring> keyring_;
  std::string kid_;
  Pkey key_;
};

TEST_F(TokenTest, AgentTokenRoundTrips) {
  auto token = keyring_->Sign(TokenKind::kAgent, AgentClaims());
  ASSERT_TRUE(token.ok()) << token.status();
  size_t dot = token->find('.');
  EXPECT_EQ(*Base64UrlDecode(token->substr(0, dot)),
            "{\"alg\":\"EdDSA\",\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}");
  auto claims = keyring_->Verify(*token, TokenKind::kAgent, Options());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->iss, "https://aegis.example");
  EXPECT_EQ(claims->sub, "billing-agent");
  EXPECT_EQ(claims->aud, "aegis");
  EXPECT_EQ(claims->jti, "j-1");
  EXPECT_EQ(claims->tenant, "acme");
  EXPECT_EQ(claims->iat, kNow);
  EXPECT_EQ(claims->nbf, kNow);
  EXPECT_EQ(claims->exp, kNow + 600);
  EXPECT_EQ(claims->approval_id, "");
  EXPECT_EQ(claims->call_digest, "");
}

TEST_F(TokenTest, OverrideTokenRoundTripsWithoutTenant) {
  auto token = keyring_->Sign(TokenKind::kOverride, OverrideClaims());
  ASSERT_TRUE(token.ok()) << token.status();
  std::string payload = *Base64UrlDecode(
      token->substr(token->find('.') + 1, token->rfind('.') - token->find('.') - 1));
  EXPECT_EQ(MustParse(payload).Find("tenant"), nullptr);
  auto claims = keyring_->Verify(*token, TokenKind::kOverride, Options());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->approval_id, "apr_123");
  EXPECT_EQ(claims->call_digest, kDigest);
  EXPECT_EQ(claims->sub, "billing-agent");
}

TEST_F(TokenTest, EmptyTenantIsABundleWideAgent) {
  Claims c = AgentClaims();
  c.tenant = "";
  auto token = keyring_->Sign(TokenKind::kAgent, c);
  ASSERT_TRUE(token.ok());
  auto claims = keyring_->Verify(*token, TokenKind::kAgent, Options());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tenant, "");
}

TEST_F(TokenTest, AudienceArrayContainingTheAudienceIsAccepted) {
  Json aud = Json::Array({Json::String("other"), Json::String("aegis")});
  auto claims =
      keyring_->Verify(ForgeAgent(With(AgentPayload(), "aud", aud)), TokenKind::kAgent, Options());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->aud, "aegis");
  ExpectAgentRefused(With(AgentPayload(), "aud", Json::Array({Json::String("other")})),
                     "token audience \"other\" does not include \"aegis\"");
  ExpectAgentRefused(
      With(AgentPayload(), "aud", Json::Array({Json::String("a"), Json::String("aegis2")})),
      "token audience list does not include \"aegis\"");
  ExpectAgentRefused(With(AgentPayload(), "aud", Json::Array()),
                     "aud must be a string or a non-empty array of strings");
  ExpectAgentRefused(With(AgentPayload(), "aud", Json::Array({Json::Int(1)})),
                     "aud must hold only strings");
}

TEST_F(TokenTest, TimeClaimsHaveALeeway) {
  auto token = *keyring_->Sign(TokenKind::kAgent, AgentClaims());
  // exp is kNow + 600; leeway 30 s.
  EXPECT_TRUE(keyring_->Verify(token, TokenKind::kAgent, Options(kNow + 629)).ok());
  ExpectRefused(token, TokenKind::kAgent, "token expired at 1700000600", Options(kNow + 630));
  EXPECT_TRUE(keyring_->Verify(token, TokenKind::kAgent, Options(kNow - 30)).ok());
  ExpectRefused(token, TokenKind::kAgent, "token is not valid before 1700000000",
                Options(kNow - 31));
}

TEST_F(TokenTest, SignRefusesClaimsNoVerifierWouldAccept) {
  Claims c = AgentClaims();
  c.sub = "";
  EXPECT_EQ(keyring_->Sign(TokenKind::kAgent, c).status().code(), StatusCode::kInvalidArgument);
  c = AgentClaims();
  c.exp = c.iat;
  EXPECT_THAT(keyring_->Sign(TokenKind::kAgent, c).status().message(),
              HasSubstr("is not after its iat"));
  c = OverrideClaims();
  c.call_digest = "ABC";
  EXPECT_THAT(keyring_->Sign(TokenKind::kOverride, c).status().message(),
              HasSubstr("64 lower-case hex"));
  c = AgentClaims();
  c.sub = "\xff";
  EXPECT_EQ(keyring_->Sign(TokenKind::kAgent, c).status().code(), StatusCode::kInvalidArgument);
}

// --- Header: algorithm confusion, keys from the token, typ, kid ---

TEST_F(TokenTest, AlgNoneUnsignedIsRefused) {
  std::string header = "{\"alg\":\"none\",\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}";
  std::string unsigned_token =
      Base64UrlEncode(header) + "." + Base64UrlEncode(AgentPayload().Canonical()) + ".";
  ExpectRefused(unsigned_token, TokenKind::kAgent,
                "token alg \"none\" is refused: only EdDSA is accepted");
  // Even with a real signature over it.
  ExpectRefused(Forge(header, AgentPayload().Canonical()), TokenKind::kAgent,
                "token alg \"none\" is refused");
  ExpectRefused(Forge("{\"alg\":\"None\",\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}",
                      AgentPayload().Canonical()),
                TokenKind::kAgent, "token alg \"None\" is refused");
}

TEST_F(TokenTest, Hs256SignedWithThePublicKeyIsRefused) {
  // The classic confusion: a verifier that uses "the key" as an HMAC secret when alg says HS256.
  Json jwks = MustParse(keyring_->JwksJson());
  std::string x = jwks.Find("keys")->as_array()[0].Find("x")->as_string();
  std::string public_raw = *Base64UrlDecode(x);
  std::string header = "{\"alg\":\"HS256\",\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}";
  std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(AgentPayload().Canonical());
  for (const std::string& secret : {public_raw, x, keyring_->JwksJson()}) {
    std::string token = input + "." + Base64UrlEncode(HmacSha256(secret, input));
    ExpectRefused(token, TokenKind::kAgent, "token alg \"HS256\" is refused");
  }
}

TEST_F(TokenTest, OtherAlgorithmsAreRefused) {
  for (std::string alg : {"RS256", "ES256", "PS256", "HS512", "Ed25519", "EdDSA ", "eddsa"}) {
    std::string header =
        "{\"alg\":\"" + alg + "\",\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}";
    ExpectRefused(Forge(header, AgentPayload().Canonical()), TokenKind::kAgent,
                  "\" is refused: only EdDSA is accepted");
  }
  ExpectRefused(
      Forge("{\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}", AgentPayload().Canonical()),
      TokenKind::kAgent, "token header has no alg");
  ExpectRefused(Forge("{\"alg\":[\"EdDSA\"],\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}",
                      AgentPayload().Canonical()),
                TokenKind::kAgent, "token header alg must be a string");
}

TEST_F(TokenTest, KeysNamedByTheTokenAreRefused) {
  const std::pair<std::string, std::string> members[] = {
      {"jku", "\"https://evil.example/jwks.json\""},
      {"x5u", "\"https://evil.example/cert.pem\""},
      {"jwk", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}"},
      {"x5c", "[\"MIIB\"]"},
      {"x5t", "\"abc\""},
  };
  for (const auto& [name, value] : members) {
    std::string header = "{\"alg\":\"EdDSA\",\"kid\":\"" + kid_ +
                         "\",\"typ\":\"aegis-agent+jwt\",\"" + name + "\":" + value + "}";
    ExpectRefused(Forge(header, AgentPayload().Canonical()), TokenKind::kAgent,
                  "token header member " + name + " is refused: keys are never taken from a token");
  }
  std::string crit =
      "{\"alg\":\"EdDSA\",\"crit\":[\"exp\"],\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}";
  ExpectRefused(Forge(crit, AgentPayload().Canonical()), TokenKind::kAgent,
                "token header member crit is refused: no JWS extension is understood");
  std::string other =
      "{\"alg\":\"EdDSA\",\"foo\":1,\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}";
  ExpectRefused(Forge(other, AgentPayload().Canonical()), TokenKind::kAgent,
                "token header member \"foo\" is not accepted");
}

TEST_F(TokenTest, AgentAndOverrideTokensAreNotInterchangeable) {
  auto agent = *keyring_->Sign(TokenKind::kAgent, AgentClaims());
  auto override_token = *keyring_->Sign(TokenKind::kOverride, OverrideClaims());
  ExpectRefused(agent, TokenKind::kOverride,
                "token is an agent token (typ aegis-agent+jwt), not an override token");
  ExpectRefused(override_token, TokenKind::kAgent,
                "token is an override token (typ aegis-override+jwt), not an agent token");
  // Verified once as the right kind (and so remembered), still refused as the other.
  ASSERT_TRUE(keyring_->Verify(agent, TokenKind::kAgent, Options()).ok());
  ExpectRefused(agent, TokenKind::kOverride, "not an override token");
  // An override payload under an agent typ, and the reverse: the claims do not fit.
  ExpectRefused(Forge(AgentHeader(), OverridePayload().Canonical()), TokenKind::kAgent,
                "token claim tenant is missing");
  ExpectRefused(Forge(EncodeHeader(TokenKind::kOverride, kid_), AgentPayload().Canonical()),
                TokenKind::kOverride, "token claim approval_id is missing");
  ExpectAgentRefused(With(AgentPayload(), "approval_id", Json::String("apr_1")),
                     "token claim approval_id belongs to override tokens, not agent tokens");
  ExpectRefused(Forge(EncodeHeader(TokenKind::kOverride, kid_),
                      With(OverridePayload(), "tenant", Json::String("acme")).Canonical()),
                TokenKind::kOverride,
                "token claim tenant belongs to agent tokens, not override tokens");
}

TEST_F(TokenTest, TypMustBeExactlyTheKindsTyp) {
  for (std::string typ : {"JWT", "at+jwt", "AEGIS-AGENT+JWT", "application/aegis-agent+jwt"}) {
    std::string header = "{\"alg\":\"EdDSA\",\"kid\":\"" + kid_ + "\",\"typ\":\"" + typ + "\"}";
    ExpectRefused(Forge(header, AgentPayload().Canonical()), TokenKind::kAgent,
                  "\" is not aegis-agent+jwt");
  }
  ExpectRefused(Forge("{\"alg\":\"EdDSA\",\"kid\":\"" + kid_ + "\"}", AgentPayload().Canonical()),
                TokenKind::kAgent, "token header has no typ");
}

TEST_F(TokenTest, UnknownAndMalformedKidsAreRefusedBeforeAnyLookup) {
  std::string unknown =
      Forge(EncodeHeader(TokenKind::kAgent, "AAAAAAAAAAAAAAAA"), AgentPayload().Canonical());
  ExpectRefused(unknown, TokenKind::kAgent, "token kid \"AAAAAAAAAAAAAAAA\" is not a known key");
  for (const std::string& kid :
       std::vector<std::string>{"../" + kid_, "../../../../etc/passwd", kid_ + "/../" + kid_,
                                "'; DROP TABLE keys; --", kid_ + "'", "", std::string(65, 'a'),
                                kid_ + ".pem", kid_ + "\n", std::string("a\0b", 3)}) {
    std::string header = EncodeHeader(TokenKind::kAgent, kid);
    ExpectRefused(Forge(header, AgentPayload().Canonical()), TokenKind::kAgent,
                  "is malformed: 1 to 64 of A-Z a-z 0-9 _ -");
  }
  ExpectRefused(
      Forge("{\"alg\":\"EdDSA\",\"typ\":\"aegis-agent+jwt\"}", AgentPayload().Canonical()),
      TokenKind::kAgent, "token header has no kid");
  ExpectRefused(Forge("{\"alg\":\"EdDSA\",\"kid\":7,\"typ\":\"aegis-agent+jwt\"}",
                      AgentPayload().Canonical()),
                TokenKind::kAgent, "token header kid must be a string");
}

TEST_F(TokenTest, DuplicateHeaderMembersAreRefused) {
  std::string header =
      "{\"alg\":\"EdDSA\",\"alg\":\"none\",\"kid\":\"" + kid_ + "\",\"typ\":\"aegis-agent+jwt\"}";
  ExpectRefused(Forge(header, AgentPayload().Canonical()), TokenKind::kAgent,
                "token header is not valid JSON");
  ExpectRefused(Forge(header, AgentPayload().Canonical()), TokenKind::kAgent, "duplicate");
}

// --- Signature ---

TEST_F(TokenTest, TamperedPayloadIsRefused) {
  auto token = *keyring_->Sign(TokenKind::kAgent, AgentClaims());
  size_t a = token.find('.'), b = token.rfind('.');
  Json changed = With(AgentPayload(), "sub", Json::String("admin-agent"));
  std::string tampered =
      token.substr(0, a + 1) + Base64UrlEncode(changed.Canonical()) + token.substr(b);
  ExpectRefused(tampered, TokenKind::kAgent,
                "token signature does not verify with key \"" + kid_ + "\"");
  // A longer lifetime, same signature.
  Json longer = With(AgentPayload(), "exp", Json::Int(kNow + 601));
  ExpectRefused(token.substr(0, a + 1) + Base64UrlEncode(longer.Canonical()) + token.substr(b),
                TokenKind::kAgent, "token signature does not verify");
}

TEST_F(TokenTest, TamperedSignatureIsRefused) {
  auto token = *keyring_->Sign(TokenKind::kAgent, AgentClaims());
  size_t b = token.rfind('.');
  std::string sig = *Base64UrlDecode(token.substr(b + 1));
  for (size_t i : {size_t{0}, size_t{31}, size_t{63}}) {
    std::string bad = sig;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    ExpectRefused(token.substr(0, b + 1) + Base64UrlEncode(bad), TokenKind::kAgent,
                  "token signature does not verify");
  }
  ExpectRefused(token.substr(0, b + 1) + Base64UrlEncode(sig.substr(0, 63)), TokenKind::kAgent,
                "token signature is 63 bytes; Ed25519 signatures are 64");
  ExpectRefused(token.substr(0, b + 1) + Base64UrlEncode(sig + "x"), TokenKind::kAgent,
                "token signature is 65 bytes");
  ExpectRefused(token.substr(0, b + 1) + Base64UrlEncode(std::string(64, '\0')), TokenKind::kAgent,
                "token signature does not verify");
}

TEST_F(TokenTest, TokenSignedByAnotherKeyWithTheSameKidIsRefused) {
  std::string other_dir = MakeTempDir();
  auto other = Keyring::Open(other_dir + "/keys", kNow);
  ASSERT_TRUE(other.ok());
  Pkey other_key = LoadKey(other_dir + "/keys/" + (*other)->ActiveKid() + ".pem");
  std::string input =
      Base64UrlEncode(AgentHeader()) + "." + Base64UrlEncode(AgentPayload().Canonical());
  ExpectRefused(input + "." + Base64UrlEncode(Ed25519Sign(other_key.get(), input)),
                TokenKind::kAgent, "token signature does not verify");
  std::filesystem::remove_all(other_dir);
}

// --- Time claims ---

TEST_F(TokenTest, TimeRulesAreEachRefused) {
  Json expired =
      With(With(AgentPayload(), "iat", Json::Int(kNow - 700)), "exp", Json::Int(kNow - 100));
  ExpectAgentRefused(With(expired, "nbf", Json::Int(kNow - 700)),
                     "token expired at 1699999900 (now 1700000000, leeway 30 s)");
  ExpectAgentRefused(With(AgentPayload(), "nbf", Json::Int(kNow + 120)),
                     "token is not valid before 1700000120");
  Json future =
      With(With(AgentPayload(), "iat", Json::Int(kNow + 120)), "exp", Json::Int(kNow + 600));
  ExpectAgentRefused(future, "token is issued in the future (iat 1700000120");
  ExpectAgentRefused(With(AgentPayload(), "exp", Json::Int(kNow + 3601)),
                     "token lifetime of 3601 s (exp - iat) exceeds the maximum of 3600 s");
  ExpectAgentRefused(With(AgentPayload(), "exp", Json::Int(kNow)),
                     "token exp (1700000000) is not after its iat (1700000000)");
  // Extremes do not overflow into acceptance.
  ExpectAgentRefused(
      With(With(AgentPayload(), "iat", Json::Int(INT64_MIN)), "exp", Json::Int(INT64_MAX)),
      "exceeds the maximum of 3600 s");
  ExpectAgentRefused(With(AgentPayload(), "exp", Json::Int(INT64_MAX)), "exceeds the maximum");
  VerifyOptions shorter = Options();
  shorter.max_lifetime_seconds = 300;
  ExpectRefused(*keyring_->Sign(TokenKind::kAgent, AgentClaims()), TokenKind::kAgent,
                "token lifetime of 600 s (exp - iat) exceeds the maximum of 300 s", shorter);
}

// --- Claims ---

TEST_F(TokenTest, WrongIssuerOrAudienceIsRefused) {
  ExpectAgentRefused(With(AgentPayload(), "iss", Json::String("https://evil.example")),
                     "token issuer \"https://evil.example\" is not the expected "
                     "\"https://aegis.example\"");
  ExpectAgentRefused(With(AgentPayload(), "aud", Json::String("other-service")),
                     "token audience \"other-service\" does not include \"aegis\"");
}

TEST_F(TokenTest, DuplicateClaimsAreRefused) {
  std::string payload = AgentPayload().Canonical();
  // Add a second "sub" after the first member.
  std::string duplicated = "{\"sub\":\"admin\"," + payload.substr(1);
  ExpectRefused(Forge(AgentHeader(), duplicated), TokenKind::kAgent,
                "token payload is not valid JSON");
  ExpectRefused(Forge(AgentHeader(), duplicated), TokenKind::kAgent, "duplicate");
  std::string duplicated_exp = "{\"exp\":9999999999," + payload.substr(1);
  ExpectRefused(Forge(AgentHeader(), duplicated_exp), TokenKind::kAgent, "duplicate");
}

TEST_F(TokenTest, MissingClaimsAreRefused) {
  for (std::string claim : {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "tenant"}) {
    ExpectAgentRefused(Without(AgentPayload(), claim), "token claim " + claim + " is missing");
  }
  for (std::string claim : {"approval_id", "call_digest"}) {
    ExpectRefused(Forge(EncodeHeader(TokenKind::kOverride, kid_),
                        Without(OverridePayload(), claim).Canonical()),
                  TokenKind::kOverride, "token claim " + claim + " is missing");
  }
}

TEST_F(TokenTest, ClaimsOfTheWrongTypeAreRefused) {
  ExpectAgentRefused(With(AgentPayload(), "exp", Json::String("1700000600")),
                     "token claim exp must be an integer (Unix seconds), not a string");
  ExpectAgentRefused(With(AgentPayload(), "exp", Json::Double(1700000600.5)),
                     "token claim exp must be an integer (Unix seconds), not a non-integer number");
  ExpectAgentRefused(With(AgentPayload(), "iat", Json::Double(1.7e9)),
                     "token claim iat must be an integer");
  ExpectAgentRefused(With(AgentPayload(), "nbf", Json::Null()),
                     "token claim nbf must be an integer (Unix seconds), not null");
  ExpectAgentRefused(With(AgentPayload(), "sub", Json::Int(42)),
                     "token claim sub must be a string, not an integer");
  ExpectAgentRefused(With(AgentPayload(), "iss", Json::Bool(true)),
                     "token claim iss must be a string, not a boolean");
  ExpectAgentRefused(With(AgentPayload(), "tenant", Json::Null()),
                     "token claim tenant must be a string, not null");
  ExpectAgentRefused(With(AgentPayload(), "jti", Json::Array()),
                     "token claim jti must be a string, not an array");
  ExpectAgentRefused(With(AgentPayload(), "aud", Json::EmptyObject()),
                     "aud must be a string or a non-empty array of strings, not an object");
  ExpectRefused(Forge(AgentHeader(), "[]"), TokenKind::kAgent,
                "token payload must be a JSON object, not an array");
  ExpectRefused(Forge(AgentHeader(), "\"sub\""), TokenKind::kAgent,
                "token payload must be a JSON object, not a string");
  ExpectRefused(Forge(AgentHeader(), "{\"sub\":"), TokenKind::kAgent,
                "token payload is not valid JSON");
  ExpectRefused(Forge(AgentHeader(), "{\"sub\":\"\xc0\xaf\"}"), TokenKind::kAgent,
                "token payload is not valid JSON");
}

TEST_F(TokenTest, SubjectAndNamesAreBounded) {
  ExpectAgentRefused(With(AgentPayload(), "sub", Json::String("")),
                     "token claim sub must be 1 to 128 bytes long");
  ExpectAgentRefused(With(AgentPayload(), "sub", Json::String(std::string(129, 'a'))),
                     "token claim sub must be 1 to 128 bytes long");
  EXPECT_TRUE(
      keyring_
          ->Verify(ForgeAgent(With(AgentPayload(), "sub", Json::String(std::string(128, 'a')))),
                   TokenKind::kAgent, Options())
          .ok());
  ExpectAgentRefused(With(AgentPayload(), "sub", Json::String("agent\nX-Injected: 1")),
                     "token claim sub holds a control character");
  ExpectAgentRefused(With(AgentPayload(), "jti", Json::String("")),
                     "token claim jti must be 1 to 128 bytes long");
  ExpectAgentRefused(With(AgentPayload(), "tenant", Json::String(std::string(129, 't'))),
                     "token claim tenant must be 0 to 128 bytes long");
  for (const std::string& digest :
       std::vector<std::string>{std::string(kDigest).substr(1), std::string(kDigest) + "0",
                                "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
                                std::string(64, 'g')}) {
    ExpectRefused(Forge(EncodeHeader(TokenKind::kOverride, kid_),
                        With(OverridePayload(), "call_digest", Json::String(digest)).Canonical()),
                  TokenKind::kOverride,
                  "token claim call_digest must be 64 lower-case hex characters");
  }
  ExpectRefused(Forge(EncodeHeader(TokenKind::kOverride, kid_),
                      With(OverridePayload(), "approval_id", Json::String("")).Canonical()),
                TokenKind::kOverride, "token claim approval_id must be 1 to 128 bytes long");
}

// --- Encoding ---

TEST_F(TokenTest, SegmentsMustBeThreeStrictBase64Url) {
  auto token = *keyring_->Sign(TokenKind::kAgent, AgentClaims());
  size_t a = token.find('.'), b = token.rfind('.');
  std::string header = token.substr(0, a);
  std::string payload = token.substr(a + 1, b - a - 1);
  std::string sig = token.substr(b + 1);
  ExpectRefused(token + ".", TokenKind::kAgent, "it has 4");
  ExpectRefused(token + "." + sig, TokenKind::kAgent,
                "token must be three base64url segments separated by '.' (compact JWS); it has 4");
  ExpectRefused(header + "." + payload, TokenKind::kAgent, "it has 2");
  ExpectRefused(header, TokenKind::kAgent, "it has 1");
  // Padding: the header of this project is 3n+1 or 3n+2 bytes long, so it would be padded.
  std::string padded_header = header + std::string((4 - header.size() % 4) % 4, '=');
  std::string padded_payload = payload + std::string((4 - payload.size() % 4) % 4, '=');
  std::string padded_sig = sig + std::string((4 - sig.size() % 4) % 4, '=');
  ASSERT_NE(padded_sig, sig);
  ExpectRefused(header + "." + payload + "." + padded_sig, TokenKind::kAgent,
                "token signature is not base64url: '=' padding is not allowed");
  if (padded_payload != payload) {
    ExpectRefused(header + "." + padded_payload + "." + sig, TokenKind::kAgent,
                  "token payload is not base64url: '=' padding is not allowed");
  }
  if (padded_header != header) {
    ExpectRefused(padded_header + "." + payload + "." + sig, TokenKind::kAgent,
                  "token header is not base64url: '=' padding is not allowed");
  }
  ExpectRefused(header + "." + payload + "." + sig + "==", TokenKind::kAgent, "padding");
  // Standard base64 characters, whitespace.
  std::string plus = sig;
  plus[5] = '+';
  ExpectRefused(header + "." + payload + "." + plus, TokenKind::kAgent,
                "token signature is not base64url: character at offset 5");
  ExpectRefused(header + "." + payload + " ." + sig, TokenKind::kAgent,
                "token payload is not base64url");
  ExpectRefused(" " + token, TokenKind::kAgent, "token header is not base64url");
  ExpectRefused(header + ".." + sig, TokenKind::kAgent, "token payload is empty");
}

TEST_F(TokenTest, OversizeTokenIsRefusedBeforeParsing) {
  ExpectRefused(std::string(kMaxTokenBytes + 1, 'a'), TokenKind::kAgent,
                "token is 8193 bytes long; the limit is 8192");
  // A well-formed and correctly signed token that is too long.
  Json big = With(AgentPayload(), "pad", Json::String(std::string(kMaxTokenBytes, 'p')));
  ExpectRefused(ForgeAgent(big), TokenKind::kAgent, "the limit is 8192");
}

TEST_F(TokenTest, GarbageIsRefused) {
  for (std::string garbage :
       {std::string(""), std::string("garbage"), std::string(".."), std::string("..."),
        std::string("a.b.c"), std::string("eyJ.eyJ.eyJ"), std::string("\xff\xfe.\x00.\x01", 7),
        std::string("Bearer x.y.z"), Base64UrlEncode("{}") + ".e30.AA",
        Base64UrlEncode("[]") + ".e30.AA", Base64UrlEncode("null") + ".e30.AA",
        Base64UrlEncode("{\"alg\":\"EdDSA\"") + ".e30.AA",
        Base64UrlEncode(std::string(100, '[')) + ".e30.AA",
        Base64UrlEncode("{\"alg\":\"EdDSA\",\"x\":\"\xed\xa0\x80\"}") + ".e30.AA"}) {
    auto claims = keyring_->Verify(garbage, TokenKind::kAgent, Options());
    ASSERT_FALSE(claims.ok()) << garbage;
    EXPECT_EQ(claims.status().code(), StatusCode::kUnauthenticated);
    EXPECT_THAT(claims.status().message(), HasSubstr("token")) << garbage;
  }
  ExpectRefused("", TokenKind::kAgent, "token is empty");
  ExpectRefused(Base64UrlEncode("{}") + ".e30.AA", TokenKind::kAgent, "token header has no alg");
  ExpectRefused(Base64UrlEncode("[]") + ".e30.AA", TokenKind::kAgent,
                "token header must be a JSON object, not an array");
}

// Every byte changed anywhere in a valid token gives a refused token, never a crash or an
// acceptance (the format leaves no byte unchecked: strict base64url, signature over both parts).
TEST_F(TokenTest, EveryMutationOfAValidTokenIsRefused) {
  auto token = *keyring_->Sign(TokenKind::kAgent, AgentClaims());
  ASSERT_TRUE(keyring_->Verify(token, TokenKind::kAgent, Options()).ok());
  std::mt19937 rng(42);
  for (int i = 0; i < 3000; ++i) {
    std::string mutated = token;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % mutated.size();
      switch (rng() % 3) {
        case 0:
          mutated[pos] = static_cast<char>(rng());
          break;
        case 1:
          mutated.erase(pos, 1);
          break;
        default:
          mutated.insert(pos, 1, static_cast<char>(rng()));
          break;
      }
    }
    if (mutated == token) continue;
    auto claims = keyring_->Verify(mutated, TokenKind::kAgent, Options());
    ASSERT_FALSE(claims.ok()) << "accepted mutation: " << mutated;
    EXPECT_EQ(claims.status().code(), StatusCode::kUnauthenticated);
  }
}

}  // namespace
}  // namespace aegis::identity
