// Reading the trail back (`aegis audit show`): the records that match a filter, as stored.
#ifndef AEGIS_AUDIT_SHOW_H_
#define AEGIS_AUDIT_SHOW_H_

#include <cstdint>
#include <string>
#include <vector>

#include "audit/trail_source.h"
#include "common/status.h"

namespace aegis::audit {

struct ShowFilter {
  std::string agent = {}, tool = {}, decision = {};  // when non-empty, must equal the field
  int64_t since_unix_nanos = 0;                      // time >= since (0: no bound)
  int64_t until_unix_nanos = 0;                      // time < until (0: no bound)
  size_t limit = 100;                                // the most recent matches; 0: all of them
};

// Returns the matching record lines exactly as stored (JSON, with seq, prev and hash), oldest
// first. The writer's event records (e.g. records_dropped) match only a filter without agent,
// tool or decision. Does not verify the trail (Verify does) and skips lines it cannot read.
// Returns NotFound if `dir` is not a trail.
common::StatusOr<std::vector<std::string>> Show(const std::string& dir, const ShowFilter& filter);
common::StatusOr<std::vector<std::string>> ShowTrail(TrailSource& source, const ShowFilter& filter);

}  // namespace aegis::audit

#endif  // AEGIS_AUDIT_SHOW_H_
