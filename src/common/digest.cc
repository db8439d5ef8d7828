#include "common/digest.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <memory>

namespace aegis::common {

namespace {

struct CtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

}  // namespace

void AppendSha256Hex(std::string_view data, std::string& out) {
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!sha256 || !ctx || EVP_DigestInit_ex2(ctx.get(), sha256, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), md, &len) != 1 || len != 32) {
    std::abort();  // only without a usable libcrypto: nothing could be trusted then
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
}

std::string Sha256Hex(std::string_view data) {
  std::string out;
  out.reserve(64);
  AppendSha256Hex(data, out);
  return out;
}

}  // namespace aegis::common
