// Token verification and signing (target: verification <= 50 us, DESIGN.md section 8 and
// issue 5), with the bare OpenSSL Ed25519 verification of the same bytes as the reference.
//
//   BM_VerifyAgentToken/first_use   a token not seen before: the full RFC 8725 check, Ed25519
//   BM_VerifyAgentToken/repeated    the same token again (agents reuse theirs for minutes)
//   BM_Ed25519VerifyOpenSsl         EVP_DigestVerify alone on a token's bytes: the floor
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "identity/base64url.h"
#include "identity/jwt.h"
#include "identity/keyring.h"

namespace aegis::identity {
namespace {

constexpr int64_t kNow = 1'700'000'000;

Claims TypicalAgentClaims(int i) {
  Claims c;
  c.iss = "https://aegis.example.com";
  c.sub = "billing-agent-7";
  c.aud = "aegis";
  c.jti = "01J9ZK3V6Q8X4T2N5R7M" + std::to_string(i);
  c.tenant = "acme-finance";
  c.iat = kNow;
  c.nbf = kNow;
  c.exp = kNow + 900;
  return c;
}

VerifyOptions Options() {
  VerifyOptions o;
  o.issuer = "https://aegis.example.com";
  o.audience = "aegis";
  o.now_seconds = kNow + 60;
  return o;
}

// One keyring for the whole run, in a temporary directory removed at exit.
struct Fixture {
  Fixture() {
    std::string templ = std::filesystem::temp_directory_path().string() + "/aegis_bench_XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    root = templ;
    auto k = Keyring::Open(root + "/keys", kNow);
    if (!k.ok()) std::abort();
    keyring = std::move(*k);
  }
  ~Fixture() { std::filesystem::remove_all(root); }
  std::string root;
  std::unique_ptr<Keyring> keyring;
};

Fixture& Shared() {
  static Fixture fixture;  // destroyed at exit, which removes the directory
  return fixture;
}

// More distinct tokens than the keyring remembers, so each verification is a first use.
const std::vector<std::string>& DistinctTokens() {
  static const std::vector<std::string>* tokens = [] {
    auto* out = new std::vector<std::string>;
    for (int i = 0; i < 3 * 4096; ++i) {
      out->push_back(*Shared().keyring->Sign(TokenKind::kAgent, TypicalAgentClaims(i)));
    }
    return out;
  }();
  return *tokens;
}

void BM_VerifyAgentToken_FirstUse(benchmark::State& state) {
  const auto& tokens = DistinctTokens();
  VerifyOptions options = Options();
  size_t i = 0;
  for (auto _ : state) {
    auto claims = Shared().keyring->Verify(tokens[i], TokenKind::kAgent, options);
    if (!claims.ok()) state.SkipWithError(claims.status().ToString().c_str());
    benchmark::DoNotOptimize(claims);
    if (++i == tokens.size()) i = 0;
  }
  state.counters["token_bytes"] =
      benchmark::Counter(static_cast<double>(tokens[0].size()), benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_VerifyAgentToken_FirstUse)
    ->Name("BM_VerifyAgentToken/first_use")
    ->Repetitions(5)
    ->DisplayAggregatesOnly(true)
    ->Threads(1)
    ->Threads(2);

void BM_VerifyAgentToken_Repeated(benchmark::State& state) {
  std::string token = *Shared().keyring->Sign(TokenKind::kAgent, TypicalAgentClaims(-1));
  VerifyOptions options = Options();
  for (auto _ : state) {
    auto claims = Shared().keyring->Verify(token, TokenKind::kAgent, options);
    if (!claims.ok()) state.SkipWithError(claims.status().ToString().c_str());
    benchmark::DoNotOptimize(claims);
  }
}
BENCHMARK(BM_VerifyAgentToken_Repeated)
    ->Name("BM_VerifyAgentToken/repeated")
    ->Repetitions(5)
    ->DisplayAggregatesOnly(true)
    ->Threads(1)
    ->Threads(2);

// Every check except the signature: segments, base64url, header, payload, claims.
void BM_VerifyStepsWithoutSignature(benchmark::State& state) {
  std::string token = DistinctTokens()[0];
  VerifyOptions options = Options();
  for (auto _ : state) {
    auto decoded = DecodeToken(token, TokenKind::kAgent);
    auto payload = ParsePayload(decoded->payload, TokenKind::kAgent);
    auto claims = CheckPayload(*payload, options);
    benchmark::DoNotOptimize(claims);
  }
}
BENCHMARK(BM_VerifyStepsWithoutSignature)->Repetitions(5)->DisplayAggregatesOnly(true);

void BM_Ed25519VerifyOpenSsl(benchmark::State& state) {
  std::string kid = Shared().keyring->ActiveKid();
  FILE* f = std::fopen((Shared().root + "/keys/" + kid + ".pem").c_str(), "r");
  EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  const std::string& token = DistinctTokens()[0];
  std::string input = token.substr(0, token.rfind('.'));
  std::string sig = *Base64UrlDecode(token.substr(token.rfind('.') + 1));
  for (auto _ : state) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key);
    int ok = EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                              reinterpret_cast<const unsigned char*>(input.data()), input.size());
    if (ok != 1) state.SkipWithError("Ed25519 verification failed");
    EVP_MD_CTX_free(ctx);
  }
  EVP_PKEY_free(key);
}
BENCHMARK(BM_Ed25519VerifyOpenSsl)->Repetitions(5)->DisplayAggregatesOnly(true);

void BM_SignAgentToken(benchmark::State& state) {
  Claims claims = TypicalAgentClaims(0);
  for (auto _ : state) {
    auto token = Shared().keyring->Sign(TokenKind::kAgent, claims);
    benchmark::DoNotOptimize(token);
  }
}
BENCHMARK(BM_SignAgentToken)->Repetitions(5)->DisplayAggregatesOnly(true);

}  // namespace
}  // namespace aegis::identity

BENCHMARK_MAIN();
