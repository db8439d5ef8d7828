#include "redact/redact.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>

#include "common/strings.h"
#include "redact/compiled.h"
#include "redact/detectors.h"

namespace aegis::redact {

using common::InternalError;
using common::InvalidArgumentError;
using common::StatusOr;
using common::StrCat;

namespace {

constexpr std::array<std::string_view, kDetectorCount> kDetectorNames = {
    "ssn", "dob", "email", "phone", "card", "iban", "ip", "secret", "jwt"};

bool IsWordByte(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

RE2::Options PatternOptions(int64_t max_mem) {
  RE2::Options o;
  o.set_encoding(RE2::Options::EncodingLatin1);  // bytes, not UTF-8: any input is searchable
  o.set_never_capture(true);
  o.set_log_errors(false);
  o.set_max_mem(max_mem);
  return o;
}

}  // namespace

std::optional<Detector> ParseDetector(std::string_view name) {
  for (int i = 0; i < kDetectorCount; ++i) {
    if (kDetectorNames[i] == name) return static_cast<Detector>(i);
  }
  return std::nullopt;
}

std::string_view DetectorName(Detector d) { return kDetectorNames[static_cast<int>(d)]; }

std::optional<Style> ParseStyle(std::string_view name) {
  if (name == "mask") return Style::kMask;
  if (name == "partial") return Style::kPartial;
  if (name == "hash") return Style::kHash;
  return std::nullopt;
}

std::string_view StyleName(Style s) {
  switch (s) {
    case Style::kMask:
      return "mask";
    case Style::kPartial:
      return "partial";
    case Style::kHash:
      return "hash";
  }
  return "mask";
}

Redactor::Compiled::Compiled() = default;
Redactor::Compiled::~Compiled() = default;

StatusOr<Redactor> Redactor::Create(std::vector<std::string> detectors, Style style,
                                    std::string hmac_key) {
  unsigned enabled = 0;
  for (const std::string& name : detectors) {
    if (name == "all") {
      enabled = (1u << kDetectorCount) - 1;
      continue;
    }
    std::optional<Detector> d = ParseDetector(name);
    if (!d) {
      return InvalidArgumentError(
          StrCat("unknown detector \"", name,
                 "\" (known: ssn, dob, email, phone, card, iban, ip, secret, jwt, all)"));
    }
    enabled |= 1u << static_cast<unsigned>(*d);
  }
  if (style == Style::kHash && hmac_key.size() < 32) {
    return InvalidArgumentError(StrCat(
        "the hash style needs an HMAC key of at least 32 bytes (got ", hmac_key.size(), ")"));
  }
  auto c = std::make_shared<Compiled>();
  c->style = style;
  c->enabled = enabled;
  if (style == Style::kHash) {
    common::Status st = c->InitHmac(hmac_key);
    if (!st.ok()) return st;
  }

  std::string combined;
  for (const internal::Alternative& alt : internal::Alternatives()) {
    if ((enabled & (1u << static_cast<unsigned>(alt.detector))) == 0) continue;
    c->alternatives.push_back(&alt);
    if (!combined.empty()) combined += '|';
    combined += "(?:";
    combined += alt.pattern;
    combined += ')';
  }
  if (c->alternatives.empty()) return Redactor(std::move(c));

  c->combined = std::make_unique<RE2>(combined, PatternOptions(64 << 20));
  if (!c->combined->ok()) {
    return InternalError(StrCat("redaction pattern: ", c->combined->error()));
  }
  c->set = std::make_unique<RE2::Set>(PatternOptions(16 << 20), RE2::ANCHOR_START);
  for (const internal::Alternative* alt : c->alternatives) {
    std::string error;
    if (c->set->Add(alt->pattern, &error) < 0) {
      return InternalError(StrCat("redaction pattern: ", error));
    }
    auto re = std::make_unique<RE2>(alt->pattern, PatternOptions(2 << 20));
    if (!re->ok()) return InternalError(StrCat("redaction pattern: ", re->error()));
    c->each.push_back(std::move(re));
  }
  if (!c->set->Compile()) return InternalError("redaction patterns: out of memory compiling");
  return Redactor(std::move(c));
}

void Redactor::Compiled::Scan(std::string_view text, internal::Context ctx,
                              std::vector<Finding>& out) const {
  if (!combined || text.empty()) return;
  ctx.enabled = enabled;
  // On short texts a pass over the bytes is cheaper than starting RE2 (about 100 ns a call).
  constexpr size_t kPrecheckMax = 512;
  if (text.size() <= kPrecheckMax && !internal::MayContainFinding(text, ctx)) return;
  const re2::StringPiece input(text.data(), text.size());
  thread_local std::vector<int> ids;  // keeps its capacity from one scan to the next
  // Per alternative: candidates starting before this offset are known to fail (Span::skip_until).
  std::array<size_t, internal::kMaxAlternatives> skip_until{};
  size_t pos = 0;
  while (pos < text.size()) {
    re2::StringPiece m;
    if (!combined->Match(input, pos, text.size(), RE2::UNANCHORED, &m, 1)) return;
    const size_t b = static_cast<size_t>(m.data() - text.data());
    const size_t e = b + m.size();

    // Which alternatives match at b. The Set sees the text from b on, so it cannot check a \b
    // against the byte before b; when b is inside a word its answer is confirmed below.
    ids.clear();
    if (!set->Match(re2::StringPiece(text.data() + b, text.size() - b), &ids) || ids.empty()) {
      ids.clear();  // out of DFA memory (or no answer): try every alternative
      for (size_t i = 0; i < alternatives.size(); ++i) ids.push_back(static_cast<int>(i));
    }
    std::sort(ids.begin(), ids.end());
    const bool trust_span = ids.size() == 1 && !(b > 0 && IsWordByte(text[b - 1]));

    pos = b + 1;
    for (int id : ids) {
      if (b < skip_until[id]) continue;
      const internal::Alternative& alt = *alternatives[id];
      internal::Span span{b, e, alt.detector};
      if (!trust_span) {
        // This alternative's own match at b, with the whole text as context.
        re2::StringPiece own;
        if (!each[id]->Match(input, b, text.size(), RE2::ANCHOR_START, &own, 1)) continue;
        span.end = b + own.size();
      }
      if (span.end > span.begin && alt.validate(text, span, ctx)) {
        assert(span.begin >= b && span.end > span.begin && span.end <= text.size());
        out.push_back(Finding{span.detector, span.begin, span.end});
        pos = std::max(span.end, b + 1);
        break;
      }
      skip_until[id] = std::max(skip_until[id], span.skip_until);
    }
  }
}

void Redactor::Compiled::AppendReplacement(std::string& out, Detector d,
                                           std::string_view value) const {
  switch (style) {
    case Style::kMask:
      out += "[REDACTED:";
      out += DetectorName(d);
      out += ']';
      return;
    case Style::kPartial:
      internal::AppendPartial(out, value, d == Detector::kDob);
      return;
    case Style::kHash:
      out += '[';
      out += DetectorName(d);
      out += ":hmac:";
      out += Fingerprint(internal::NormalizeForHash(d, value));
      out += ']';
      return;
  }
}

void Redactor::Compiled::AppendFieldReplacement(std::string& out, std::string_view value) const {
  switch (style) {
    case Style::kMask:
      out += "[REDACTED]";
      return;
    case Style::kPartial:
      internal::AppendPartial(out, value, false);
      return;
    case Style::kHash:
      out += "[hmac:";
      out += Fingerprint(value);
      out += ']';
      return;
  }
}

common::Status Redactor::Compiled::InitHmac(std::string_view key) {
  constexpr size_t kBlock = 64;  // SHA-256 block size
  unsigned char k[kBlock] = {};
  if (key.size() > kBlock) {
    unsigned int len = 0;
    if (EVP_Digest(key.data(), key.size(), k, &len, EVP_sha256(), nullptr) != 1) {
      return InternalError("SHA-256 failed");
    }
  } else {
    std::memcpy(k, key.data(), key.size());
  }
  unsigned char ipad[kBlock], opad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  hmac_inner.reset(EVP_MD_CTX_new());
  hmac_outer.reset(EVP_MD_CTX_new());
  if (!hmac_inner || !hmac_outer ||
      EVP_DigestInit_ex(hmac_inner.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(hmac_inner.get(), ipad, kBlock) != 1 ||
      EVP_DigestInit_ex(hmac_outer.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(hmac_outer.get(), opad, kBlock) != 1) {
    return InternalError("HMAC-SHA256 setup failed");
  }
  OPENSSL_cleanse(k, sizeof(k));
  OPENSSL_cleanse(ipad, sizeof(ipad));
  OPENSSL_cleanse(opad, sizeof(opad));
  return common::OkStatus();
}

std::string Redactor::Compiled::Fingerprint(std::string_view value) const {
  // One working context per thread; the keyed states are only read (copied from).
  thread_local std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> work(EVP_MD_CTX_new(),
                                                                       EVP_MD_CTX_free);
  unsigned char inner[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
  unsigned int inner_len = 0, len = 0;
  bool ok = work && EVP_MD_CTX_copy_ex(work.get(), hmac_inner.get()) == 1 &&
            EVP_DigestUpdate(work.get(), value.data(), value.size()) == 1 &&
            EVP_DigestFinal_ex(work.get(), inner, &inner_len) == 1 &&
            EVP_MD_CTX_copy_ex(work.get(), hmac_outer.get()) == 1 &&
            EVP_DigestUpdate(work.get(), inner, inner_len) == 1 &&
            EVP_DigestFinal_ex(work.get(), mac, &len) == 1;
  if (!ok) return "000000000000";  // unreachable with a working libcrypto; never the value
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(12, '0');
  for (size_t i = 0; i < 6; ++i) {
    hex[2 * i] = kHex[mac[i] >> 4];
    hex[2 * i + 1] = kHex[mac[i] & 15];
  }
  return hex;
}

size_t Redactor::Compiled::Redact(std::string_view text, const std::vector<Finding>& findings,
                                  std::string& out) const {
  out.clear();
  out.reserve(text.size());
  size_t at = 0;
  for (const Finding& f : findings) {
    out.append(text.substr(at, f.begin - at));
    AppendReplacement(out, f.detector, text.substr(f.begin, f.end - f.begin));
    at = f.end;
  }
  out.append(text.substr(at));
  return findings.size();
}

std::vector<Finding> Redactor::Scan(std::string_view text) const {
  std::vector<Finding> out;
  c_->Scan(text, internal::Context{}, out);
  return out;
}

size_t Redactor::RedactText(std::string& text) const {
  std::vector<Finding> findings;
  c_->Scan(text, internal::Context{}, findings);
  if (findings.empty()) return 0;
  std::string out;
  size_t n = c_->Redact(text, findings, out);
  text = std::move(out);
  return n;
}

Style Redactor::style() const { return c_->style; }

std::vector<Detector> Redactor::detectors() const {
  std::vector<Detector> out;
  for (int i = 0; i < kDetectorCount; ++i) {
    if (c_->enabled & (1u << i)) out.push_back(static_cast<Detector>(i));
  }
  return out;
}

}  // namespace aegis::redact
