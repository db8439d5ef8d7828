// Override tokens, as the engine's stage 6 sees them: something that can tell whether a token
// is a valid, unused override for exactly this call, and consume it. The service implements it
// with the keyring (signature, kind, binding) and the limit store (single use).
#ifndef AEGIS_ENGINE_OVERRIDES_H_
#define AEGIS_ENGINE_OVERRIDES_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace aegis::engine {

class OverrideRedeemer {
 public:
  struct Result {
    bool ok = false;
    std::string approval_id;  // ok: the approval the token carries
    std::string jti;          // ok: the token id now consumed
    std::string error;        // !ok: why the token was refused
  };

  virtual ~OverrideRedeemer() = default;
  // Verifies `token` as an override token bound to `call_digest`, `tenant` and `agent`, and
  // consumes it atomically: of concurrent redemptions of one token exactly one succeeds.
  virtual Result Redeem(std::string_view token, std::string_view call_digest,
                        std::string_view tenant, std::string_view agent,
                        int64_t now_unix_nanos) = 0;
  // Gives a consumed token back when the call did not happen after all (stage 7 refused it).
  virtual void Release(std::string_view jti) = 0;
};

}  // namespace aegis::engine

#endif  // AEGIS_ENGINE_OVERRIDES_H_
