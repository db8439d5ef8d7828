// The audit trail's Ed25519 key: the writer signs checkpoints with it, verifiers check them with
// the public half kept in chain.json. Raw Ed25519 (RFC 8032) through OpenSSL; signatures and
// public keys are written as lowercase hex.
#ifndef AEGIS_AUDIT_KEY_H_
#define AEGIS_AUDIT_KEY_H_

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace aegis::audit {

class SigningKey {
 public:
  // A fresh key from the system's CSPRNG.
  static common::StatusOr<SigningKey> Generate();
  // An unencrypted PKCS#8 PEM Ed25519 private key.
  static common::StatusOr<SigningKey> FromPem(std::string_view pem);

  // The private key as PKCS#8 PEM (for the 0600 key file).
  common::StatusOr<std::string> PrivatePem() const;
  // The raw 32-byte public key, as 64 hex digits.
  const std::string& public_key_hex() const { return public_key_hex_; }
  // Ed25519 signature of `message`, as 128 hex digits.
  common::StatusOr<std::string> SignHex(std::string_view message) const;

 private:
  SigningKey(std::shared_ptr<EVP_PKEY> pkey, std::string public_key_hex)
      : pkey_(std::move(pkey)), public_key_hex_(std::move(public_key_hex)) {}
  std::shared_ptr<EVP_PKEY> pkey_;
  std::string public_key_hex_;
};

class VerifyingKey {
 public:
  // A raw public key given as 64 hex digits.
  static common::StatusOr<VerifyingKey> FromHex(std::string_view public_key_hex);
  // True if `sig_hex` (128 hex digits) is a valid Ed25519 signature of `message`.
  bool Verify(std::string_view message, std::string_view sig_hex) const;

 private:
  explicit VerifyingKey(std::shared_ptr<EVP_PKEY> pkey) : pkey_(std::move(pkey)) {}
  std::shared_ptr<EVP_PKEY> pkey_;
};

}  // namespace aegis::audit

#endif  // AEGIS_AUDIT_KEY_H_
