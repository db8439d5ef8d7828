// Redactor::Compiled: what Redactor::Create builds once and every copy shares (internal).
#ifndef AEGIS_REDACT_COMPILED_H_
#define AEGIS_REDACT_COMPILED_H_

#include <openssl/evp.h>
#include <re2/re2.h>
#include <re2/set.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "redact/detectors.h"
#include "redact/redact.h"

namespace aegis::redact {

struct Redactor::Compiled {
  Compiled();
  ~Compiled();

  // Appends the findings in `text` to `out`, in order, not overlapping.
  void Scan(std::string_view text, internal::Context ctx, std::vector<Finding>& out) const;
  // Writes `text` with `findings` replaced to `out`; returns how many.
  size_t Redact(std::string_view text, const std::vector<Finding>& findings,
                std::string& out) const;
  void AppendReplacement(std::string& out, Detector d, std::string_view value) const;
  // The replacement for a whole value named by a field path.
  void AppendFieldReplacement(std::string& out, std::string_view value) const;
  // Absorbs the key into hmac_inner / hmac_outer.
  common::Status InitHmac(std::string_view key);
  // First 12 hex digits of HMAC-SHA256(key, value).
  std::string Fingerprint(std::string_view value) const;

  Style style = Style::kMask;
  // HMAC-SHA256 with the key already absorbed: SHA-256 states after (key ^ ipad) and
  // (key ^ opad). Each fingerprint copies them instead of starting over (RFC 2104).
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> hmac_inner{nullptr, EVP_MD_CTX_free};
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> hmac_outer{nullptr, EVP_MD_CTX_free};
  unsigned enabled = 0;  // bit per Detector
  // The alternatives of the enabled detectors, in priority order; `each` and the Set's ids follow
  // the same order.
  std::vector<const internal::Alternative*> alternatives;
  std::unique_ptr<RE2> combined;  // (?:alt0)|(?:alt1)|...; null when no detector is enabled
  std::unique_ptr<RE2::Set> set;  // the alternatives, anchored at the start
  std::vector<std::unique_ptr<RE2>> each;
};

}  // namespace aegis::redact

#endif  // AEGIS_REDACT_COMPILED_H_
