// The audit trail (docs/audit.md): one hash-chained, checkpoint-signed record per decision in
// segment files under <data_dir>/audit. Writer appends (off the hot path), Verify proves the
// trail intact or says where it is not, Show reads records back.
//
// May depend on src/common and OpenSSL only; knows nothing of policies, engines or HTTP.
#ifndef AEGIS_AUDIT_AUDIT_H_
#define AEGIS_AUDIT_AUDIT_H_

#include "audit/record.h"  // IWYU pragma: export
#include "audit/show.h"    // IWYU pragma: export
#include "audit/verify.h"  // IWYU pragma: export
#include "audit/writer.h"  // IWYU pragma: export

#endif  // AEGIS_AUDIT_AUDIT_H_
