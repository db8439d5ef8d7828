// SqliteApprovalStore: approvals in a SQLite file in the data dir, the default when one machine
// runs the gateway (DESIGN.md section 2). It survives restarts, and several processes may open
// the same file (`aegis serve` and the CLI): every write runs in a BEGIN IMMEDIATE transaction,
// so the file's write lock orders them, and a writer waits up to 5 s for another (busy timeout)
// before returning kUnavailable. Schema and consistency: docs/approvals-store.md.
#ifndef AEGIS_APPROVALS_SQLITE_STORE_H_
#define AEGIS_APPROVALS_SQLITE_STORE_H_

#include <memory>
#include <mutex>
#include <string>

#include "approvals/store.h"

struct sqlite3;

namespace aegis::approvals {

class SqliteApprovalStore : public ApprovalStore {
 public:
  // Opens the database file at `path` (e.g. <data_dir>/approvals.db), creating it with mode 0600
  // if missing; WAL journal, synchronous commits, a 5 s busy timeout; creates the schema if
  // missing. kUnavailable when the file cannot be opened or stays locked.
  static common::StatusOr<std::unique_ptr<SqliteApprovalStore>> Open(const std::string& path);
  ~SqliteApprovalStore() override;

  SqliteApprovalStore(const SqliteApprovalStore&) = delete;
  SqliteApprovalStore& operator=(const SqliteApprovalStore&) = delete;

  common::StatusOr<Approval> CreateOrJoin(const Approval& a, int64_t now, bool* joined) override;
  common::StatusOr<Approval> Get(std::string_view id, int64_t now) override;
  common::StatusOr<std::vector<Approval>> List(const ListFilter& filter, int64_t now) override;
  common::StatusOr<Approval> Vote(std::string_view id, const approvals::Vote& vote,
                                  int64_t now) override;

 private:
  explicit SqliteApprovalStore(sqlite3* db) : db_(db) {}

  // One connection, used by one thread at a time.
  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace aegis::approvals

#endif  // AEGIS_APPROVALS_SQLITE_STORE_H_
