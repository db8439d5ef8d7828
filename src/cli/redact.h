// `aegis redact`: the redaction engine over files or standard input (docs/redaction.md).
#ifndef AEGIS_CLI_REDACT_H_
#define AEGIS_CLI_REDACT_H_

#include <string>
#include <vector>

namespace aegis::cli {

// redact [--detectors all|ssn,email,...] [--style mask|partial|hash] [--json [--fields P,...]]
//        [FILE...]   (no FILE or "-": standard input). Hash style keys: AEGIS_REDACTION_KEY.
int Redact(const std::vector<std::string>& args);

}  // namespace aegis::cli

#endif  // AEGIS_CLI_REDACT_H_
