#include "identity/keyring.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/files.h"
#include "common/strings.h"
#include "identity/base64url.h"

namespace aegis::identity {
namespace {

using common::Json;
using common::StrCat;

constexpr std::string_view kManifestName = "keyring.json";
constexpr int kManifestVersion = 1;
constexpr size_t kMaxFileBytes = 1 << 20;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using UniqueMdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using UniqueBio = std::unique_ptr<BIO, BioDeleter>;

// A file descriptor closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

using common::ErrnoError;

std::string PathOf(const std::string& dir, std::string_view name) { return StrCat(dir, "/", name); }

std::string KeyFileName(std::string_view kid) { return StrCat(kid, ".pem"); }

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    // A CSPRNG that fails is not something to carry on from: keys and kids depend on it.
    std::abort();
  }
  return out;
}

// The metadata of one key, as keyring.json holds it.
struct KeyMeta {
  std::string kid;
  int64_t created = 0;
  std::optional<int64_t> retired;  // none: the active key
};

// An flock(2) on the key directory, held while it lives.
class DirLock {
 public:
  static common::StatusOr<std::unique_ptr<DirLock>> Acquire(const std::string& dir,
                                                            bool exclusive) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return ErrnoError("cannot open key directory", dir);
    while (::flock(fd.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) {
      if (errno != EINTR) return ErrnoError("cannot lock key directory", dir);
    }
    return std::unique_ptr<DirLock>(new DirLock(fd.Release()));
  }
  ~DirLock() { ::close(fd_); }  // closing releases the lock
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

common::Status FsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) return ErrnoError("cannot sync directory", dir);
  return common::OkStatus();
}

// Writes `contents` to dir/name with mode 0600: to a temporary file first, synced, then renamed
// over the old file, so a reader sees the old or the new file and never a part of one.
common::Status WriteFileAtomically(const std::string& dir, std::string_view name,
                                   std::string_view contents) {
  std::string path = PathOf(dir, name);
  std::string tmp = PathOf(dir, StrCat(".", name, ".tmp-", Base64UrlEncode(RandomBytes(6))));
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) return ErrnoError("cannot create", tmp);
  common::Status status;
  if (::fchmod(fd.get(), 0600) != 0) status = ErrnoError("cannot chmod", tmp);
  size_t done = 0;
  while (status.ok() && done < contents.size()) {
    ssize_t n = ::write(fd.get(), contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status = ErrnoError("cannot write", tmp);
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (status.ok() && ::fsync(fd.get()) != 0) status = ErrnoError("cannot sync", tmp);
  if (status.ok() && ::close(fd.Release()) != 0) status = ErrnoError("cannot close", tmp);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoError("cannot rename to", path);
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  return FsyncDir(dir);
}

// Reads a whole file that must be a regular file (not a symlink) of at most kMaxFileBytes.
// With `private_only`, a file that group or others may read or write is refused.
common::StatusOr<std::string> ReadFile(const std::string& path, bool private_only) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return common::NotFoundError(StrCat(path, " does not exist"));
    return ErrnoError("cannot open", path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    return common::FailedPreconditionError(StrCat(path, " is not a regular file"));
  }
  if (private_only && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return common::FailedPreconditionError(
        StrCat("key file ", path, " is accessible to group or others (mode ", mode,
               "); a private key must be readable by its owner only: chmod 600 ", path));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes) {
    return common::FailedPreconditionError(
        StrCat(path, " is larger than ", kMaxFileBytes, " bytes"));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot read", path);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

common::StatusOr<UniquePkey> GenerateKey() {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  EVP_PKEY* pkey = nullptr;
  bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &pkey) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return common::InternalError("cannot generate an Ed25519 key");
  return UniquePkey(pkey);
}

common::StatusOr<std::string> PrivateKeyPem(EVP_PKEY* pkey) {
  UniqueBio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return common::InternalError("cannot encode a private key as PEM");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// Never asks for a passphrase (OpenSSL's default callback would prompt on the terminal).
int NoPassphrase(char*, int, int, void*) { return 0; }

common::StatusOr<UniquePkey> ReadKeyFile(const std::string& path) {
  auto pem = ReadFile(path, /*private_only=*/true);
  if (!pem.ok()) return pem.status();
  UniqueBio bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  UniquePkey pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr)
                      : nullptr);
  if (pkey == nullptr) {
    ERR_clear_error();
    return common::FailedPreconditionError(
        StrCat("key file ", path, " does not hold an unencrypted PKCS#8 PEM private key"));
  }
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_ED25519) {
    return common::FailedPreconditionError(StrCat("key file ", path, " is not an Ed25519 key"));
  }
  return pkey;
}

common::StatusOr<std::vector<KeyMeta>> ParseManifest(std::string_view text,
                                                     const std::string& path) {
  auto bad = [&](std::string_view why) {
    return common::FailedPreconditionError(StrCat(path, ": ", why));
  };
  auto json = common::ParseJson(text);
  if (!json.ok()) return bad(json.status().message());
  if (!json->is_object()) return bad("not a JSON object");
  const Json* version = json->Find("version");
  if (version == nullptr || !version->is_int() || version->as_int() != kManifestVersion) {
    return bad("version must be 1");
  }
  const Json* keys = json->Find("keys");
  if (keys == nullptr || !keys->is_array() || keys->as_array().empty()) {
    return bad("keys must be a non-empty array");
  }
  if (json->as_object().size() != 2) return bad("only version and keys are allowed");
  std::vector<KeyMeta> out;
  int active = 0;
  for (const Json& k : keys->as_array()) {
    if (!k.is_object()) return bad("each key must be an object");
    KeyMeta meta;
    size_t known = 0;
    const Json* kid = k.Find("kid");
    if (kid == nullptr || !kid->is_string() || !IsValidKid(kid->as_string())) {
      return bad("a key has no kid, or one that is not 1 to 64 of A-Z a-z 0-9 _ -");
    }
    meta.kid = kid->as_string();
    ++known;
    const Json* created = k.Find("created");
    if (created == nullptr || !created->is_int()) {
      return bad(StrCat("key ", meta.kid, ": created must be an integer"));
    }
    meta.created = created->as_int();
    ++known;
    if (const Json* retired = k.Find("retired"); retired != nullptr) {
      if (!retired->is_int()) return bad(StrCat("key ", meta.kid, ": retired must be an integer"));
      meta.retired = retired->as_int();
      ++known;
    } else {
      ++active;
    }
    if (k.as_object().size() != known) {
      return bad(StrCat("key ", meta.kid, ": only kid, created and retired are allowed"));
    }
    for (const KeyMeta& other : out) {
      if (other.kid == meta.kid) return bad(StrCat("key ", meta.kid, " is listed twice"));
    }
    out.push_back(std::move(meta));
  }
  if (active != 1) {
    return bad(StrCat("exactly one key must be active (without retired); ", active, " are"));
  }
  return out;
}

std::string EncodeManifest(const std::vector<KeyMeta>& keys) {
  std::vector<Json> list;
  for (const KeyMeta& k : keys) {
    Json o = Json::EmptyObject();
    o.Set("kid", Json::String(k.kid));
    o.Set("created", Json::Int(k.created));
    if (k.retired) o.Set("retired", Json::Int(*k.retired));
    list.push_back(std::move(o));
  }
  Json m = Json::EmptyObject();
  m.Set("version", Json::Int(kManifestVersion));
  m.Set("keys", Json::Array(std::move(list)));
  return m.Canonical() + "\n";
}

common::StatusOr<std::vector<KeyMeta>> ReadManifest(const std::string& dir) {
  std::string path = PathOf(dir, kManifestName);
  auto text = ReadFile(path, /*private_only=*/false);
  if (!text.ok()) return text.status();
  return ParseManifest(*text, path);
}

// Creates a key with a fresh kid and writes its file. Returns the kid.
common::StatusOr<std::string> CreateKeyFile(const std::string& dir,
                                            const std::vector<KeyMeta>& existing) {
  std::string kid;
  do {
    kid = Base64UrlEncode(RandomBytes(12));  // 16 characters
  } while (std::any_of(existing.begin(), existing.end(),
                       [&](const KeyMeta& k) { return k.kid == kid; }));
  auto pkey = GenerateKey();
  if (!pkey.ok()) return pkey.status();
  auto pem = PrivateKeyPem(pkey->get());
  if (!pem.ok()) return pem.status();
  if (auto s = WriteFileAtomically(dir, KeyFileName(kid), *pem); !s.ok()) return s;
  return kid;
}

// Tokens that verified, so that the same token presented again skips the signature check. The
// entry is what ParsePayload returned; CheckPayload still runs on every hit. Sharded, each shard
// bounded, the oldest entry evicted first.
class VerifiedTokenCache {
 public:
  // Returns true on a hit of a token verified as `kind`, with the outcome in `out`.
  bool Lookup(std::string_view token, TokenKind kind, const VerifyOptions& options,
              std::optional<common::StatusOr<Claims>>* out) const {
    Shard& shard = ShardOf(token);
    std::lock_guard lock(shard.mu);
    auto it = shard.map.find(token);
    if (it == shard.map.end() || it->second.kind != kind) return false;
    out->emplace(CheckPayload(it->second, options));
    return true;
  }

  void Insert(std::string_view token, PayloadClaims payload) const {
    Shard& shard = ShardOf(token);
    std::lock_guard lock(shard.mu);
    auto [it, inserted] = shard.map.try_emplace(std::string(token), std::move(payload));
    if (!inserted) return;  // another thread verified the same token meanwhile
    shard.order.push_back(&it->first);
    if (shard.order.size() > kShardCapacity) {
      // Map nodes do not move, so the key a pointer names stays valid until erased here.
      shard.map.erase(*shard.order.front());
      shard.order.pop_front();
    }
  }

 private:
  static constexpr size_t kShards = 16;
  static constexpr size_t kShardCapacity = 256;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, PayloadClaims, Hash, std::equal_to<>> map;
    std::deque<const std::string*> order;  // keys of `map`, oldest first
  };
  Shard& ShardOf(std::string_view token) const {
    // The high bits: the map uses the low ones for its buckets.
    return shards_[(std::hash<std::string_view>{}(token) >> 56) % kShards];
  }
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace

// The keys of one moment, never changed once built: Rotate, Prune and Reload build a new one.
class Keyring::KeySet {
 public:
  struct Key {
    KeyMeta meta;
    UniquePkey pkey;                      // signs (OpenSSL)
    std::array<unsigned char, 32> raw{};  // the public key, for verification (libsodium)
  };

  static common::StatusOr<std::shared_ptr<const KeySet>> Load(const std::string& dir) {
    auto manifest = ReadManifest(dir);
    if (!manifest.ok()) return manifest.status();
    auto set = std::make_shared<KeySet>();
    // The active key first, then the others from the most recently retired.
    std::stable_sort(manifest->begin(), manifest->end(), [](const KeyMeta& a, const KeyMeta& b) {
      return a.retired.value_or(INT64_MAX) > b.retired.value_or(INT64_MAX);
    });
    std::vector<Json> jwks;
    for (KeyMeta& meta : *manifest) {
      auto pkey = ReadKeyFile(PathOf(dir, KeyFileName(meta.kid)));
      if (!pkey.ok()) return pkey.status();
      unsigned char raw[32];
      size_t raw_len = sizeof raw;
      if (EVP_PKEY_get_raw_public_key(pkey->get(), raw, &raw_len) != 1 || raw_len != 32) {
        return common::InternalError(StrCat("cannot read the public key of ", meta.kid));
      }
      Json jwk = Json::EmptyObject();
      jwk.Set("kty", Json::String("OKP"));
      jwk.Set("crv", Json::String("Ed25519"));
      jwk.Set("x", Json::String(Base64UrlEncode(
                       std::string_view(reinterpret_cast<const char*>(raw), raw_len))));
      jwk.Set("kid", Json::String(meta.kid));
      jwk.Set("alg", Json::String("EdDSA"));
      jwk.Set("use", Json::String("sig"));
      jwks.push_back(std::move(jwk));
      Key key{std::move(meta), std::move(*pkey), {}};
      std::copy(raw, raw + 32, key.raw.begin());
      set->keys_.push_back(std::move(key));
    }
    Json doc = Json::EmptyObject();
    doc.Set("keys", Json::Array(std::move(jwks)));
    set->jwks_ = doc.Canonical();
    return std::shared_ptr<const KeySet>(std::move(set));
  }

  const Key& active() const { return keys_.front(); }
  const std::string& jwks() const { return jwks_; }
  const VerifiedTokenCache& cache() const { return cache_; }

  const Key* Find(std::string_view kid) const {
    for (const Key& k : keys_) {
      if (k.meta.kid == kid) return &k;
    }
    return nullptr;
  }

 private:
  std::vector<Key> keys_;  // the active key first
  std::string jwks_;
  VerifiedTokenCache cache_;
};

Keyring::Keyring(std::string dir, std::shared_ptr<const KeySet> keys)
    : dir_(std::move(dir)), keys_(std::move(keys)) {}

Keyring::~Keyring() = default;

std::shared_ptr<const Keyring::KeySet> Keyring::Snapshot() const {
  std::shared_lock lock(keys_mu_);
  return keys_;
}

void Keyring::Install(std::shared_ptr<const KeySet> keys) {
  std::unique_lock lock(keys_mu_);
  keys_.swap(keys);
  // The old set is released after the lock, in `keys`' destructor.
}

common::StatusOr<std::unique_ptr<Keyring>> Keyring::Open(const std::string& dir_arg,
                                                         int64_t now_seconds) {
  if (sodium_init() < 0) return common::InternalError("libsodium cannot be initialised");
  std::string dir = dir_arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return common::InvalidArgumentError("key directory is empty");
  // Missing parents (a fresh data directory) are created private too.
  if (auto st = common::MakePrivateDir(dir, "key directory"); !st.ok()) return st;

  auto lock = DirLock::Acquire(dir, /*exclusive=*/true);
  if (!lock.ok()) return lock.status();
  auto manifest = ReadManifest(dir);
  if (!manifest.ok() && manifest.status().code() == common::StatusCode::kNotFound) {
    // No keyring yet: the directory must not hold keys (they would be silently ignored).
    if (DIR* d = ::opendir(dir.c_str())) {
      bool has_keys = false;
      while (dirent* e = ::readdir(d)) {
        std::string_view name = e->d_name;
        has_keys = has_keys || (name.size() > 4 && name.substr(name.size() - 4) == ".pem");
      }
      ::closedir(d);
      if (has_keys) {
        return common::FailedPreconditionError(
            StrCat("key directory ", dir, " holds .pem files but no ", kManifestName));
      }
    }
    auto kid = CreateKeyFile(dir, {});
    if (!kid.ok()) return kid.status();
    std::vector<KeyMeta> first = {KeyMeta{*kid, now_seconds, std::nullopt}};
    if (auto s = WriteFileAtomically(dir, kManifestName, EncodeManifest(first)); !s.ok()) {
      return s;
    }
  } else if (!manifest.ok()) {
    return manifest.status();
  }
  auto keys = KeySet::Load(dir);
  if (!keys.ok()) return keys.status();
  return std::unique_ptr<Keyring>(new Keyring(dir, std::move(*keys)));
}

common::StatusOr<std::string> Keyring::Rotate(int64_t now_seconds) {
  std::lock_guard write(write_mu_);
  auto lock = DirLock::Acquire(dir_, /*exclusive=*/true);
  if (!lock.ok()) return lock.status();
  auto manifest = ReadManifest(dir_);
  if (!manifest.ok()) return manifest.status();
  auto kid = CreateKeyFile(dir_, *manifest);
  if (!kid.ok()) return kid.status();
  for (KeyMeta& k : *manifest) {
    if (!k.retired) k.retired = now_seconds;
  }
  manifest->push_back(KeyMeta{*kid, now_seconds, std::nullopt});
  if (auto s = WriteFileAtomically(dir_, kManifestName, EncodeManifest(*manifest)); !s.ok()) {
    ::unlink(PathOf(dir_, KeyFileName(*kid)).c_str());
    return s;
  }
  auto keys = KeySet::Load(dir_);
  if (!keys.ok()) return keys.status();
  Install(std::move(*keys));
  return kid;
}

common::Status Keyring::Prune(int64_t retired_before_seconds) {
  std::lock_guard write(write_mu_);
  auto lock = DirLock::Acquire(dir_, /*exclusive=*/true);
  if (!lock.ok()) return lock.status();
  auto manifest = ReadManifest(dir_);
  if (!manifest.ok()) return manifest.status();
  std::vector<KeyMeta> keep, drop;
  for (KeyMeta& k : *manifest) {
    (k.retired && *k.retired < retired_before_seconds ? drop : keep).push_back(std::move(k));
  }
  if (!drop.empty()) {
    // The manifest first: a reader never finds a listed key without its file.
    if (auto s = WriteFileAtomically(dir_, kManifestName, EncodeManifest(keep)); !s.ok()) return s;
    for (const KeyMeta& k : drop) {
      std::string path = PathOf(dir_, KeyFileName(k.kid));
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("cannot delete", path);
    }
  }
  auto keys = KeySet::Load(dir_);
  if (!keys.ok()) return keys.status();
  Install(std::move(*keys));
  return common::OkStatus();
}

common::Status Keyring::Reload() {
  std::lock_guard write(write_mu_);
  auto lock = DirLock::Acquire(dir_, /*exclusive=*/false);
  if (!lock.ok()) return lock.status();
  auto keys = KeySet::Load(dir_);
  if (!keys.ok()) return keys.status();
  // The same public keys in the same order (the active one first): keep the set in use, and
  // with it the tokens it remembers.
  if ((*keys)->jwks() == Snapshot()->jwks()) return common::OkStatus();
  Install(std::move(*keys));
  return common::OkStatus();
}

std::string Keyring::ActiveKid() const { return Snapshot()->active().meta.kid; }

std::string Keyring::JwksJson() const { return Snapshot()->jwks(); }

common::StatusOr<std::string> Keyring::Sign(TokenKind kind, const Claims& claims) const {
  if (auto s = CheckClaimsForSigning(kind, claims); !s.ok()) return s;
  auto keys = Snapshot();
  const KeySet::Key& key = keys->active();
  std::string token = Base64UrlEncode(EncodeHeader(kind, key.meta.kid));
  token += '.';
  token += Base64UrlEncode(EncodePayload(kind, claims));
  unsigned char sig[64];
  size_t sig_len = sizeof sig;
  UniqueMdCtx ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &sig_len, reinterpret_cast<const unsigned char*>(token.data()),
                     token.size()) != 1 ||
      sig_len != sizeof sig) {
    return common::InternalError("Ed25519 signing failed");
  }
  token += '.';
  token += Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(sig), sig_len));
  return token;
}

common::StatusOr<Claims> Keyring::Verify(std::string_view token, TokenKind kind,
                                         const VerifyOptions& options) const {
  auto keys = Snapshot();
  if (token.size() <= kMaxTokenBytes) {
    std::optional<common::StatusOr<Claims>> cached;
    if (keys->cache().Lookup(token, kind, options, &cached)) return std::move(*cached);
  }
  auto decoded = DecodeToken(token, kind);
  if (!decoded.ok()) return decoded.status();
  const KeySet::Key* key = keys->Find(decoded->kid);
  if (key == nullptr) {
    return common::UnauthenticatedError(
        StrCat("token kid \"", decoded->kid, "\" is not a known key"));
  }
  // libsodium's Ed25519 verification: twice as fast as OpenSSL 3.0's on this kind of machine
  // (bench/identity), and stricter (it refuses non-canonical signatures and small-order keys).
  if (decoded->signature.size() != crypto_sign_BYTES ||
      crypto_sign_verify_detached(
          reinterpret_cast<const unsigned char*>(decoded->signature.data()),
          reinterpret_cast<const unsigned char*>(decoded->signing_input.data()),
          decoded->signing_input.size(), key->raw.data()) != 0) {
    return common::UnauthenticatedError(
        StrCat("token signature does not verify with key \"", decoded->kid, "\""));
  }
  auto payload = ParsePayload(decoded->payload, kind);
  if (!payload.ok()) return payload.status();
  auto claims = CheckPayload(*payload, options);
  if (claims.ok()) {
    keys->cache().Insert(token, std::move(*payload));
  }
  return claims;
}

}  // namespace aegis::identity
