#include "audit/key.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <optional>

#include "audit/format.h"

namespace aegis::audit {
namespace {

std::shared_ptr<EVP_PKEY> Own(EVP_PKEY* p) { return std::shared_ptr<EVP_PKEY>(p, EVP_PKEY_free); }

std::optional<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0 || !IsLowerHex(hex, hex.size())) return std::nullopt;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
  }
  return out;
}

common::StatusOr<std::string> PublicHex(EVP_PKEY* pkey) {
  unsigned char raw[32];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1 || len != sizeof raw) {
    ERR_clear_error();
    return common::InternalError("cannot read the audit public key");
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(raw), len));
}

// Never asks for a passphrase (OpenSSL's default callback would prompt on the terminal).
int NoPassphrase(char*, int, int, void*) { return 0; }

}  // namespace

common::StatusOr<SigningKey> SigningKey::Generate() {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  EVP_PKEY* pkey = nullptr;
  bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &pkey) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) {
    ERR_clear_error();
    return common::InternalError("cannot generate an Ed25519 key");
  }
  auto owned = Own(pkey);
  auto pub = PublicHex(pkey);
  if (!pub.ok()) return pub.status();
  return SigningKey(std::move(owned), std::move(*pub));
}

common::StatusOr<SigningKey> SigningKey::FromPem(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = bio ? PEM_read_bio_PrivateKey(bio, nullptr, NoPassphrase, nullptr) : nullptr;
  BIO_free(bio);
  if (pkey == nullptr) {
    ERR_clear_error();
    return common::FailedPreconditionError("not an unencrypted PKCS#8 PEM private key");
  }
  auto owned = Own(pkey);
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
    return common::FailedPreconditionError("not an Ed25519 key");
  }
  auto pub = PublicHex(pkey);
  if (!pub.ok()) return pub.status();
  return SigningKey(std::move(owned), std::move(*pub));
}

common::StatusOr<std::string> SigningKey::PrivatePem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio, pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    BIO_free(bio);
    ERR_clear_error();
    return common::InternalError("cannot encode the audit key as PEM");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

common::StatusOr<std::string> SigningKey::SignHex(std::string_view message) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char sig[64];
  size_t len = sizeof sig;
  bool ok = ctx != nullptr &&
            EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, pkey_.get()) == 1 &&
            EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                           message.size()) == 1 &&
            len == sizeof sig;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    ERR_clear_error();
    return common::InternalError("Ed25519 signing failed");
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(sig), len));
}

common::StatusOr<VerifyingKey> VerifyingKey::FromHex(std::string_view public_key_hex) {
  auto raw = HexDecode(public_key_hex);
  if (!raw || raw->size() != 32) {
    return common::InvalidArgumentError("an Ed25519 public key is 64 lowercase hex digits");
  }
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw->data()), raw->size());
  if (pkey == nullptr) {
    ERR_clear_error();
    return common::InvalidArgumentError("not a valid Ed25519 public key");
  }
  return VerifyingKey(Own(pkey));
}

bool VerifyingKey::Verify(std::string_view message, std::string_view sig_hex) const {
  auto sig = HexDecode(sig_hex);
  if (!sig || sig->size() != 64) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey_.get()) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

}  // namespace aegis::audit
