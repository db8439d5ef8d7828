// Keyring: the Ed25519 keys that sign and verify Aegis tokens (jwt.h), kept in a directory.
//
// One key is active and signs; keys retired by a rotation keep verifying until Prune deletes
// them, once every token they signed has expired. Several processes may share the directory:
// writers (Open on an empty directory, Rotate, Prune) hold an flock(2) on it, every file is
// replaced by rename(2), and Reload picks up what another process wrote.
//
// On disk (docs/identity.md):
//   <dir>/              0700
//   <dir>/keyring.json  0600  {"keys":[{"created":T,"kid":K},{"created":T,"kid":K,"retired":T}],
//                              "version":1}; exactly one key has no "retired": the active one
//   <dir>/<kid>.pem     0600  the private key, PKCS#8 PEM, unencrypted
//
// May depend on src/common and OpenSSL only.
#ifndef AEGIS_IDENTITY_KEYRING_H_
#define AEGIS_IDENTITY_KEYRING_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "common/status.h"
#include "identity/jwt.h"

namespace aegis::identity {

class Keyring {
 public:
  // `dir` (e.g. <data_dir>/keys): created 0700 if missing, with a first Ed25519 key when empty.
  // Key files 0600; a key file readable by group or others is refused with an error that says
  // chmod 600. A directory writable by group or others is refused too.
  static common::StatusOr<std::unique_ptr<Keyring>> Open(const std::string& dir,
                                                         int64_t now_seconds);

  ~Keyring();
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;

  // Creates a new signing key; older keys keep verifying (retired at `now`). Returns the new kid.
  // Rotations by other processes since the last Reload are kept: the directory is re-read under
  // its lock first.
  common::StatusOr<std::string> Rotate(int64_t now_seconds);

  // Deletes keys retired before `retired_before_seconds` (their tokens have all expired). The
  // active key is never deleted. Tokens signed by a deleted key are refused as unknown kid.
  common::Status Prune(int64_t retired_before_seconds);

  // Re-reads the directory (another process rotated). On error the keys in use stay as they were.
  common::Status Reload();

  // The kid that Sign uses now.
  std::string ActiveKid() const;

  // RFC 7517/8037 JWK set of every verifying key, the active one first:
  // {"keys":[{"alg":"EdDSA","crv":"Ed25519","kid":"...","kty":"OKP","use":"sig","x":"..."}]}
  std::string JwksJson() const;

  // Compact JWS: header {"alg":"EdDSA","kid":ACTIVE,"typ":TypOf(kind)}, payload: the claims
  // (override claims only for kOverride; tenant only for kAgent). Returns InvalidArgument for
  // claims that no verifier would accept (CheckClaimsForSigning).
  common::StatusOr<std::string> Sign(TokenKind kind, const Claims& claims) const;

  // RFC 8725 verification (the rules in jwt.h and docs/identity.md). Returns the claims, or an
  // Unauthenticated error whose message says which rule the token broke.
  //
  // A token that verified is remembered (bounded, per key set) so that an agent presenting the
  // same token again skips the Ed25519 check; its claims are still checked against `options`,
  // time included, on every call.
  common::StatusOr<Claims> Verify(std::string_view token, TokenKind kind,
                                  const VerifyOptions& options) const;

  // Every method may be called from any thread at any time.

 private:
  class KeySet;
  Keyring(std::string dir, std::shared_ptr<const KeySet> keys);
  std::shared_ptr<const KeySet> Snapshot() const;
  void Install(std::shared_ptr<const KeySet> keys);

  const std::string dir_;
  std::mutex write_mu_;  // serialises Rotate, Prune and Reload in this process
  mutable std::shared_mutex keys_mu_;
  std::shared_ptr<const KeySet> keys_;  // guarded by keys_mu_; never null
};

}  // namespace aegis::identity

#endif  // AEGIS_IDENTITY_KEYRING_H_
