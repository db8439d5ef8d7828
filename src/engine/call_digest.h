// The call digest: what an approval and an override token are bound to, so that an approved
// call goes through exactly as approved and no other (DESIGN.md section 6).
//
//   digest = lower-case hex SHA-256 of the RFC 8785 (JCS) canonical JSON of
//            {"action": ..., "agent": ..., "params": ..., "tenant": ..., "tool": ...}
//
// JCS: object members sorted by their keys' UTF-16 code units, no whitespace, strings with only
// `"`, `\` and control characters escaped (\b \f \n \r \t short, others \u00xx), other characters
// as UTF-8, numbers as ECMAScript's Number.prototype.toString writes them (7000.0 is "7000",
// 1e-7 is "1e-7", 1e21 is "1e+21"). One deviation: integers are written exactly, also beyond
// 2^53 (JavaScript cannot hold those exactly anyway). docs/approvals.md has worked examples for
// SDKs to test against.
#ifndef AEGIS_ENGINE_CALL_DIGEST_H_
#define AEGIS_ENGINE_CALL_DIGEST_H_

#include <string>
#include <string_view>

#include "common/json.h"

namespace aegis::engine {

// The canonical JSON text the digest is taken over.
std::string CanonicalCall(std::string_view tenant, std::string_view agent, std::string_view tool,
                          std::string_view action, const common::Json& params);

std::string CallDigest(std::string_view tenant, std::string_view agent, std::string_view tool,
                       std::string_view action, const common::Json& params);

// JCS serialisation of any value, and ECMAScript's formatting of a double (finite only).
void AppendJcs(std::string& out, const common::Json& value);
std::string EcmaScriptNumber(double d);

}  // namespace aegis::engine

#endif  // AEGIS_ENGINE_CALL_DIGEST_H_
