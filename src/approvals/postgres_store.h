// PostgresApprovalStore: approvals in PostgreSQL, shared by every gateway replica that uses the
// same database (DESIGN.md section 2), through libpq.
//
// Consistency across replicas comes from the database, not from this process: a unique partial
// index allows one pending approval per (tenant, call_digest), so CreateOrJoin is an INSERT ...
// ON CONFLICT DO NOTHING followed by reading the winner; a vote is one transaction that locks the
// approval row (SELECT ... FOR UPDATE), so votes on one approval are applied one at a time.
// Schema and details: docs/approvals-store.md.
//
// Connections come from a pool (at most `pool_size`, each used by one call at a time). A
// connection the server closed (a restart, a failover) is noticed and replaced; a call that
// failed on such a connection before it could have changed anything is retried once on a fresh
// one. While the server cannot be reached, calls return kUnavailable without waiting: after a
// failed connection attempt the next one waits a short, growing pause (100 ms to 1 s), and the
// first success ends it.
#ifndef AEGIS_APPROVALS_POSTGRES_STORE_H_
#define AEGIS_APPROVALS_POSTGRES_STORE_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "approvals/store.h"

struct pg_conn;

namespace aegis::approvals {

class PostgresApprovalStore : public ApprovalStore {
 public:
  // `conninfo`: a libpq connection string ("host=... dbname=...") or a postgresql:// URL; its
  // connect_timeout defaults to 5 s. Connects and creates the schema if missing (CREATE ... IF
  // NOT EXISTS under an advisory lock, so replicas starting together are fine).
  // kInvalidArgument for a malformed conninfo or a pool_size of 0; kUnavailable when the server
  // cannot be reached.
  static common::StatusOr<std::unique_ptr<PostgresApprovalStore>> Open(const std::string& conninfo,
                                                                       size_t pool_size = 4);
  // Closes the pool's connections; no call may be running.
  ~PostgresApprovalStore() override;

  PostgresApprovalStore(const PostgresApprovalStore&) = delete;
  PostgresApprovalStore& operator=(const PostgresApprovalStore&) = delete;

  common::StatusOr<Approval> CreateOrJoin(const Approval& a, int64_t now, bool* joined) override;
  common::StatusOr<Approval> Get(std::string_view id, int64_t now) override;
  common::StatusOr<std::vector<Approval>> List(const ListFilter& filter, int64_t now) override;
  common::StatusOr<Approval> Vote(std::string_view id, const approvals::Vote& vote,
                                  int64_t now) override;

  // Defined in postgres_store.cc: one connection's worth of statements for one call.
  class Session;

 private:
  PostgresApprovalStore(std::string conninfo, size_t pool_size)
      : conninfo_(std::move(conninfo)), pool_size_(pool_size) {}

  // Runs `fn` on a pooled connection; retries once on a fresh connection when the one it got
  // turned out to be closed before `fn` could have changed anything.
  common::Status WithSession(const std::function<common::Status(Session&)>& fn);

  // A connection from the pool (idle and alive, or new); kUnavailable when none can be made.
  common::StatusOr<pg_conn*> Acquire();
  // Returns `conn` to the pool, or closes it when it is broken or mid-transaction.
  void Release(pg_conn* conn);
  // Closes the idle connections (after one was found closed by the server, the others were
  // most likely closed too).
  void DropIdle();

  const std::string conninfo_;
  const size_t pool_size_;

  std::mutex mu_;
  std::condition_variable released_;
  std::vector<pg_conn*> idle_;  // guarded by mu_
  size_t open_ = 0;             // connections in use, idle or being made; guarded by mu_
  // After a failed connection attempt: no new one before this time; guarded by mu_.
  std::chrono::steady_clock::time_point next_attempt_;
  std::chrono::milliseconds pause_{0};
  std::string last_error_;
};

}  // namespace aegis::approvals

#endif  // AEGIS_APPROVALS_POSTGRES_STORE_H_
