// The keyring on disk: creation and permissions, rotation, pruning, reloading what another
// process wrote, and verification while keys change under concurrent readers.
#include "identity/keyring.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "identity/base64url.h"

namespace aegis::identity {
namespace {

using common::StatusCode;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'700'000'000;

unsigned ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::vector<std::string> JwksKids(const std::string& jwks) {
  auto json = common::ParseJson(jwks);
  EXPECT_TRUE(json.ok()) << json.status();
  std::vector<std::string> kids;
  for (const common::Json& k : json->Find("keys")->as_array()) {
    kids.push_back(k.Find("kid")->as_string());
  }
  return kids;
}

std::string KidOf(const std::string& token) {
  auto header = common::ParseJson(*Base64UrlDecode(token.substr(0, token.find('.'))));
  return header->Find("kid")->as_string();
}

class KeyringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "aegis_keyring_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    root_ = templ;
    dir_ = root_ + "/data/keys";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::unique_ptr<Keyring> MustOpen(int64_t now = kNow) {
    auto keyring = Keyring::Open(dir_, now);
    EXPECT_TRUE(keyring.ok()) << keyring.status();
    return keyring.ok() ? std::move(*keyring) : nullptr;
  }

  static Claims AgentClaims(int64_t now = kNow) {
    Claims c;
    c.iss = "aegis";
    c.sub = "agent-1";
    c.aud = "aegis";
    c.jti = "j";
    c.tenant = "acme";
    c.iat = now;
    c.nbf = now;
    c.exp = now + 600;
    return c;
  }
  static VerifyOptions Options(int64_t now = kNow) {
    VerifyOptions o;
    o.issuer = "aegis";
    o.audience = "aegis";
    o.now_seconds = now;
    return o;
  }

  std::string root_;
  std::string dir_;
};

TEST_F(KeyringTest, OpenCreatesAPrivateDirectoryWithAFirstKey) {
  auto keyring = MustOpen();
  ASSERT_NE(keyring, nullptr);
  std::string kid = keyring->ActiveKid();
  EXPECT_EQ(kid.size(), 16u);
  EXPECT_TRUE(IsValidKid(kid)) << kid;
  EXPECT_EQ(ModeOf(dir_), 0700u);
  EXPECT_EQ(ModeOf(dir_ + "/" + kid + ".pem"), 0600u);
  EXPECT_EQ(ModeOf(dir_ + "/keyring.json"), 0600u);
  std::ifstream pem(dir_ + "/" + kid + ".pem");
  std::string first_line;
  std::getline(pem, first_line);
  EXPECT_EQ(first_line, "-----BEGIN PRIVATE KEY-----");

  auto jwks = common::ParseJson(keyring->JwksJson());
  ASSERT_TRUE(jwks.ok());
  ASSERT_EQ(jwks->Find("keys")->as_array().size(), 1u);
  const common::Json& jwk = jwks->Find("keys")->as_array()[0];
  EXPECT_EQ(jwk.Find("kty")->as_string(), "OKP");
  EXPECT_EQ(jwk.Find("crv")->as_string(), "Ed25519");
  EXPECT_EQ(jwk.Find("alg")->as_string(), "EdDSA");
  EXPECT_EQ(jwk.Find("use")->as_string(), "sig");
  EXPECT_EQ(jwk.Find("kid")->as_string(), kid);
  EXPECT_EQ(Base64UrlDecode(jwk.Find("x")->as_string())->size(), 32u);
  EXPECT_EQ(jwk.Find("d"), nullptr);  // never the private part
  EXPECT_EQ(jwk.as_object().size(), 6u);

  // Opening again uses the same key.
  keyring.reset();
  auto again = MustOpen(kNow + 100);
  EXPECT_EQ(again->ActiveKid(), kid);
}

TEST_F(KeyringTest, TrailingSlashStillMakesAPrivateDirectory) {
  auto keyring = Keyring::Open(dir_ + "/", kNow);
  ASSERT_TRUE(keyring.ok()) << keyring.status();
  EXPECT_EQ(ModeOf(dir_), 0700u);
  EXPECT_EQ(ModeOf(root_ + "/data"), 0700u);
}

TEST_F(KeyringTest, RotationKeepsOldTokensValidUntilPruned) {
  auto keyring = MustOpen();
  std::string old_kid = keyring->ActiveKid();
  std::string old_token = *keyring->Sign(TokenKind::kAgent, AgentClaims());
  ASSERT_TRUE(keyring->Verify(old_token, TokenKind::kAgent, Options()).ok());

  auto new_kid = keyring->Rotate(kNow + 10);
  ASSERT_TRUE(new_kid.ok()) << new_kid.status();
  EXPECT_NE(*new_kid, old_kid);
  EXPECT_EQ(keyring->ActiveKid(), *new_kid);
  EXPECT_EQ(ModeOf(dir_ + "/" + *new_kid + ".pem"), 0600u);

  std::string new_token = *keyring->Sign(TokenKind::kAgent, AgentClaims(kNow + 10));
  EXPECT_EQ(KidOf(new_token), *new_kid);
  EXPECT_EQ(KidOf(old_token), old_kid);
  EXPECT_TRUE(keyring->Verify(old_token, TokenKind::kAgent, Options(kNow + 10)).ok());
  EXPECT_TRUE(keyring->Verify(new_token, TokenKind::kAgent, Options(kNow + 10)).ok());
  EXPECT_THAT(JwksKids(keyring->JwksJson()), ElementsAre(*new_kid, old_kid));

  // The old key retired at kNow + 10: pruning keys retired before then keeps it.
  ASSERT_TRUE(keyring->Prune(kNow + 10).ok());
  EXPECT_THAT(JwksKids(keyring->JwksJson()), ElementsAre(*new_kid, old_kid));
  EXPECT_TRUE(keyring->Verify(old_token, TokenKind::kAgent, Options(kNow + 10)).ok());

  ASSERT_TRUE(keyring->Prune(kNow + 11).ok());
  EXPECT_THAT(JwksKids(keyring->JwksJson()), ElementsAre(*new_kid));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/" + old_kid + ".pem"));
  // Refused although it verified (and was remembered) before.
  auto refused = keyring->Verify(old_token, TokenKind::kAgent, Options(kNow + 11));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(refused.status().message(), HasSubstr("is not a known key"));
  EXPECT_TRUE(keyring->Verify(new_token, TokenKind::kAgent, Options(kNow + 11)).ok());

  // The active key is never pruned.
  ASSERT_TRUE(keyring->Prune(kNow + 1'000'000).ok());
  EXPECT_EQ(keyring->ActiveKid(), *new_kid);
  EXPECT_TRUE(keyring->Verify(new_token, TokenKind::kAgent, Options(kNow + 11)).ok());
}

TEST_F(KeyringTest, ARememberedTokenStillExpires) {
  auto keyring = MustOpen();
  std::string token = *keyring->Sign(TokenKind::kAgent, AgentClaims());
  ASSERT_TRUE(keyring->Verify(token, TokenKind::kAgent, Options()).ok());
  ASSERT_TRUE(keyring->Verify(token, TokenKind::kAgent, Options()).ok());
  auto late = keyring->Verify(token, TokenKind::kAgent, Options(kNow + 3600));
  ASSERT_FALSE(late.ok());
  EXPECT_THAT(late.status().message(), HasSubstr("token expired"));
  VerifyOptions other_audience = Options();
  other_audience.audience = "other";
  EXPECT_THAT(keyring->Verify(token, TokenKind::kAgent, other_audience).status().message(),
              HasSubstr("does not include \"other\""));
}

TEST_F(KeyringTest, ReloadSeesARotationByAnotherInstance) {
  auto a = MustOpen();
  auto b = MustOpen();
  ASSERT_EQ(a->ActiveKid(), b->ActiveKid());
  std::string first = a->ActiveKid();
  auto kid = a->Rotate(kNow + 5);
  ASSERT_TRUE(kid.ok());
  std::string token = *a->Sign(TokenKind::kAgent, AgentClaims());

  EXPECT_EQ(b->ActiveKid(), first);
  EXPECT_THAT(b->Verify(token, TokenKind::kAgent, Options()).status().message(),
              HasSubstr("is not a known key"));
  ASSERT_TRUE(b->Reload().ok());
  EXPECT_EQ(b->ActiveKid(), *kid);
  EXPECT_TRUE(b->Verify(token, TokenKind::kAgent, Options()).ok());

  // A prune by a: b, once reloaded, refuses a token it verified (and remembered) before.
  ASSERT_TRUE(b->Reload().ok());  // nothing changed
  ASSERT_TRUE(b->Verify(token, TokenKind::kAgent, Options()).ok());
  ASSERT_TRUE(a->Rotate(kNow + 6).ok());
  ASSERT_TRUE(a->Prune(kNow + 7).ok());  // deletes the first two keys
  ASSERT_TRUE(b->Reload().ok());
  EXPECT_THAT(b->Verify(token, TokenKind::kAgent, Options()).status().message(),
              HasSubstr("is not a known key"));

  // A rotation by c after one by a that c has not read: everything a wrote is kept.
  auto c = MustOpen();
  ASSERT_TRUE(a->Rotate(kNow + 8).ok());
  auto third = c->Rotate(kNow + 9);  // c last read the directory before a's last rotation
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(JwksKids(c->JwksJson()).size(), 3u);
  ASSERT_TRUE(a->Reload().ok());
  EXPECT_EQ(a->ActiveKid(), *third);
}

TEST_F(KeyringTest, KeyFileReadableByOthersIsRefused) {
  std::string kid = MustOpen()->ActiveKid();
  std::string pem = dir_ + "/" + kid + ".pem";
  ASSERT_EQ(::chmod(pem.c_str(), 0644), 0);
  auto keyring = Keyring::Open(dir_, kNow);
  ASSERT_FALSE(keyring.ok());
  EXPECT_THAT(keyring.status().message(), HasSubstr("chmod 600 " + pem));
  EXPECT_THAT(keyring.status().message(), HasSubstr("mode 0644"));

  ASSERT_EQ(::chmod(pem.c_str(), 0640), 0);
  EXPECT_THAT(Keyring::Open(dir_, kNow).status().message(), HasSubstr("chmod 600"));
  ASSERT_EQ(::chmod(pem.c_str(), 0600), 0);
  EXPECT_TRUE(Keyring::Open(dir_, kNow).ok());
}

TEST_F(KeyringTest, ReloadThatFailsKeepsTheKeysInUse) {
  auto keyring = MustOpen();
  std::string token = *keyring->Sign(TokenKind::kAgent, AgentClaims());
  std::string pem = dir_ + "/" + keyring->ActiveKid() + ".pem";
  ASSERT_EQ(::chmod(pem.c_str(), 0604), 0);
  common::Status reload = keyring->Reload();
  EXPECT_THAT(reload.message(), HasSubstr("chmod 600"));
  EXPECT_TRUE(keyring->Verify(token, TokenKind::kAgent, Options()).ok());
}

TEST_F(KeyringTest, DirectoryWritableByOthersIsRefused) {
  MustOpen();
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  auto keyring = Keyring::Open(dir_, kNow);
  ASSERT_FALSE(keyring.ok());
  EXPECT_THAT(keyring.status().message(), HasSubstr("chmod 700 " + dir_));
}

TEST_F(KeyringTest, SymlinkedKeyFileIsRefused) {
  std::string kid = MustOpen()->ActiveKid();
  std::string pem = dir_ + "/" + kid + ".pem";
  std::filesystem::rename(pem, root_ + "/elsewhere.pem");
  std::filesystem::create_symlink(root_ + "/elsewhere.pem", pem);
  EXPECT_FALSE(Keyring::Open(dir_, kNow).ok());
}

TEST_F(KeyringTest, KeysWithoutAManifestOrABadManifestAreRefused) {
  std::filesystem::create_directories(dir_);
  ASSERT_EQ(::chmod(dir_.c_str(), 0700), 0);
  { std::ofstream(dir_ + "/stray.pem") << "x"; }
  EXPECT_THAT(Keyring::Open(dir_, kNow).status().message(),
              HasSubstr("holds .pem files but no keyring.json"));
  std::filesystem::remove(dir_ + "/stray.pem");

  std::string kid = MustOpen()->ActiveKid();
  auto write_manifest = [&](const std::string& text) {
    std::ofstream(dir_ + "/keyring.json", std::ios::trunc) << text;
  };
  write_manifest("{\"keys\":[{\"created\":1,\"kid\":\"" + kid + "\"},{\"created\":1,\"kid\":\"" +
                 kid + "\"}],\"version\":1}");
  EXPECT_THAT(Keyring::Open(dir_, kNow).status().message(), HasSubstr("is listed twice"));
  write_manifest("{\"keys\":[{\"created\":1,\"kid\":\"" + kid +
                 "\",\"retired\":2}],\"version\":1}");
  EXPECT_THAT(Keyring::Open(dir_, kNow).status().message(),
              HasSubstr("exactly one key must be active"));
  write_manifest("{\"keys\":[{\"created\":1,\"kid\":\"../" + kid + "\"}],\"version\":1}");
  EXPECT_THAT(Keyring::Open(dir_, kNow).status().message(), HasSubstr("1 to 64 of A-Z"));
  write_manifest("{\"keys\":[{\"created\":1,\"kid\":\"" + kid +
                 "\"}],\"version\":1,\"version\":2}");
  EXPECT_THAT(Keyring::Open(dir_, kNow).status().message(), HasSubstr("duplicate"));
  write_manifest("{\"keys\":[{\"created\":1,\"kid\":\"" + kid + "\"}],\"version\":1}");
  EXPECT_TRUE(Keyring::Open(dir_, kNow).ok());
}

TEST_F(KeyringTest, ANonEd25519KeyIsRefused) {
  std::string kid = MustOpen()->ActiveKid();
  // A P-256 key in PKCS#8 (from `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
  const char* kP256 =
      "-----BEGIN PRIVATE KEY-----\n"
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\n"
      "OF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n"
      "1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G\n"
      "-----END PRIVATE KEY-----\n";
  std::string pem = dir_ + "/" + kid + ".pem";
  { std::ofstream(pem, std::ios::trunc) << kP256; }
  ASSERT_EQ(::chmod(pem.c_str(), 0600), 0);
  EXPECT_THAT(Keyring::Open(dir_, kNow).status().message(), HasSubstr("is not an Ed25519 key"));
  { std::ofstream(pem, std::ios::trunc) << "not a key"; }
  EXPECT_THAT(Keyring::Open(dir_, kNow).status().message(),
              HasSubstr("does not hold an unencrypted PKCS#8 PEM private key"));
}

// Threads verify (old and new tokens) and sign while another thread rotates and reloads.
TEST_F(KeyringTest, VerifiesConcurrentlyWithRotation) {
  auto keyring = MustOpen();
  auto other = MustOpen();
  std::string first_token = *keyring->Sign(TokenKind::kAgent, AgentClaims());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, verified{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int i = 0;
      while (!stop.load()) {
        Claims c = AgentClaims();
        c.jti = "t" + std::to_string(t) + "-" + std::to_string(i++);
        auto fresh = keyring->Sign(TokenKind::kAgent, c);
        if (!fresh.ok()) ++failures;
        for (const std::string* token : {&first_token, fresh.ok() ? &*fresh : &first_token}) {
          auto claims = keyring->Verify(*token, TokenKind::kAgent, Options());
          if (!claims.ok() || claims->sub != "agent-1") ++failures;
          ++verified;
        }
        (void)keyring->JwksJson();
      }
    });
  }
  for (int r = 0; r < 20; ++r) {
    ASSERT_TRUE(keyring->Rotate(kNow + r).ok());
    ASSERT_TRUE(other->Rotate(kNow + r).ok());
    ASSERT_TRUE(keyring->Reload().ok());
  }
  // Let the readers run a little after the last change too.
  while (verified.load() < 200) std::this_thread::yield();
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(JwksKids(keyring->JwksJson()).size(), 41u);
}

}  // namespace
}  // namespace aegis::identity
