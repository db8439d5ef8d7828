#include "approvals/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>

#include "common/strings.h"

namespace aegis::approvals {
namespace {

using common::Status;
using common::StatusOr;
using common::StrCat;

constexpr int kBusyTimeoutMs = 5000;

// Creates what is missing; run in one write transaction, so processes opening a new file at the
// same time create it once. `rowid` (implicit) orders approvals created in the same second and
// votes in the order they were cast.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS approvals (
  id           TEXT PRIMARY KEY NOT NULL,
  tenant       TEXT NOT NULL,
  agent        TEXT NOT NULL,
  tool         TEXT NOT NULL,
  action       TEXT NOT NULL,
  call_digest  TEXT NOT NULL,
  rule_id      TEXT NOT NULL,
  message      TEXT NOT NULL,
  summary_json TEXT NOT NULL,
  quorum       INTEGER NOT NULL CHECK (quorum >= 1),
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  decided_at   INTEGER NOT NULL DEFAULT 0,
  state        TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired'))
);
CREATE UNIQUE INDEX IF NOT EXISTS approvals_one_pending_per_call
  ON approvals (tenant, call_digest) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS approvals_pending_expiry ON approvals (expires_at)
  WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS approvals_newest ON approvals (created_at);
CREATE TABLE IF NOT EXISTS approval_votes (
  approval_id TEXT NOT NULL REFERENCES approvals (id),
  approver    TEXT NOT NULL,
  approve     INTEGER NOT NULL,
  at          INTEGER NOT NULL,
  comment     TEXT NOT NULL,
  PRIMARY KEY (approval_id, approver)
);
)sql";

// The columns every query reads, in this order (see ReadApproval, ReadVote).
#define AEGIS_APPROVAL_COLUMNS                                                                \
  "a.id, a.tenant, a.agent, a.tool, a.action, a.call_digest, a.rule_id, a.message, "          \
  "a.summary_json, a.quorum, a.created_at, a.expires_at, a.decided_at, a.state, v.approver, " \
  "v.approve, v.at, v.comment "
constexpr int kVoteColumn = 14;

Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string message =
      StrCat("approvals database: ", what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
      return common::UnavailableError(std::move(message));
    case SQLITE_CONSTRAINT:
      return common::AlreadyExistsError(std::move(message));
    default:
      return common::InternalError(std::move(message));
  }
}

// A prepared statement, finalized when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds parameters 1, 2, ... in order.
  Statement& Bind(std::string_view s) {
    if (rc_ == SQLITE_OK) {
      // Never a null pointer, which SQLite would bind as NULL rather than ''.
      rc_ = sqlite3_bind_text(stmt_, ++bound_, s.empty() ? "" : s.data(),
                              static_cast<int>(s.size()), SQLITE_TRANSIENT);
    }
    return *this;
  }
  Statement& Bind(int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, ++bound_, v);
    return *this;
  }

  // Advances: true with a row to read, false when done (or on error: see status()).
  bool Step() {
    if (rc_ != SQLITE_OK && rc_ != SQLITE_ROW) return false;
    int rc = sqlite3_step(stmt_);
    rc_ = rc == SQLITE_DONE ? SQLITE_OK : rc;
    return rc == SQLITE_ROW;
  }
  // Runs a statement that returns no rows.
  Status Run(std::string_view what) {
    while (Step()) {
    }
    return status(what);
  }
  Status status(std::string_view what) const {
    return rc_ == SQLITE_OK || rc_ == SQLITE_ROW ? common::OkStatus() : SqliteError(db_, rc_, what);
  }

  std::string Text(int column) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column))) : "";
  }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
  int bound_ = 0;
};

// BEGIN IMMEDIATE: takes the file's write lock now (waiting up to the busy timeout), so the
// reads that decide a write see the latest state and nobody writes in between. Rolled back
// unless committed.
class WriteTransaction {
 public:
  explicit WriteTransaction(sqlite3* db) : db_(db) {
    rc_ = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  }
  ~WriteTransaction() {
    if (rc_ == SQLITE_OK && !done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;

  Status status() const {
    return rc_ == SQLITE_OK ? common::OkStatus() : SqliteError(db_, rc_, "begin");
  }
  Status Commit() {
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, "commit");
    done_ = true;
    return common::OkStatus();
  }

 private:
  sqlite3* db_;
  int rc_;
  bool done_ = false;
};

// Reads the approval columns of the current row (votes are added by ReadApprovals).
Approval ReadApproval(const Statement& s) {
  Approval a;
  a.id = s.Text(0);
  a.tenant = s.Text(1);
  a.agent = s.Text(2);
  a.tool = s.Text(3);
  a.action = s.Text(4);
  a.call_digest = s.Text(5);
  a.rule_id = s.Text(6);
  a.message = s.Text(7);
  a.summary_json = s.Text(8);
  a.quorum = static_cast<int>(s.Int(9));
  a.created_at = s.Int(10);
  a.expires_at = s.Int(11);
  a.decided_at = s.Int(12);
  a.state = ParseState(s.Text(13)).value_or(State::kPending);
  return a;
}

// Runs a query over approvals LEFT JOIN votes, ordered by approval then vote, and folds its rows
// into approvals with their votes.
StatusOr<std::vector<Approval>> ReadApprovals(Statement& s) {
  std::vector<Approval> out;
  while (s.Step()) {
    std::string id = s.Text(0);
    if (out.empty() || out.back().id != id) out.push_back(ReadApproval(s));
    if (!s.IsNull(kVoteColumn)) {
      out.back().votes.push_back(approvals::Vote{s.Text(kVoteColumn), s.Int(kVoteColumn + 1) != 0,
                                                 s.Int(kVoteColumn + 2), s.Text(kVoteColumn + 3)});
    }
  }
  if (Status st = s.status("read approvals"); !st.ok()) return st;
  return out;
}

// The approval `id` with its votes, or nullopt.
StatusOr<std::optional<Approval>> Load(sqlite3* db, std::string_view id) {
  Statement s(db, "SELECT " AEGIS_APPROVAL_COLUMNS
                  "FROM approvals a LEFT JOIN approval_votes v ON v.approval_id = a.id "
                  "WHERE a.id = ?1 ORDER BY v.rowid");
  s.Bind(id);
  auto rows = ReadApprovals(s);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::optional<Approval>();
  return std::optional<Approval>(std::move(rows->front()));
}

// Stores the expiry of `id` if it is pending and expired at `now` (a no-op otherwise).
Status ExpireOne(sqlite3* db, std::string_view id, int64_t now) {
  Statement s(db,
              "UPDATE approvals SET state = 'expired', decided_at = expires_at "
              "WHERE id = ?1 AND state = 'pending' AND expires_at <= ?2");
  return s.Bind(id).Bind(now).Run("expire");
}

}  // namespace

StatusOr<std::unique_ptr<SqliteApprovalStore>> SqliteApprovalStore::Open(const std::string& path) {
  if (!sqlite3_threadsafe()) {
    return common::InternalError("SQLite is built without thread support");
  }
  // Created here, not by SQLite, to get mode 0600 whatever the umask; SQLite gives its -wal and
  // -shm files the same mode.
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return common::UnavailableError(
        StrCat("cannot open approvals database ", path, ": ", std::strerror(errno)));
  }
  close(fd);

  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
  std::unique_ptr<SqliteApprovalStore> store(new SqliteApprovalStore(db));
  if (rc != SQLITE_OK) return SqliteError(db, rc, StrCat("open ", path));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  // WAL: readers never block the writer; FULL: a committed vote survives a power cut.
  // Switching a new file to WAL takes an exclusive lock that the busy handler does not wait
  // for: several processes opening the same new file at once can see "database is locked"
  // there. Retry it for as long as the busy timeout.
  for (int waited_ms = 0;; waited_ms += 10) {
    Statement s(db, "PRAGMA journal_mode = WAL");
    Status st = s.Run("PRAGMA journal_mode = WAL");
    if (st.ok()) break;
    int code = sqlite3_extended_errcode(db) & 0xff;
    if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || waited_ms >= kBusyTimeoutMs) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (const char* pragma : {"PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"}) {
    Statement s(db, pragma);
    if (Status st = s.Run(pragma); !st.ok()) return st;
  }
  WriteTransaction tx(db);
  if (Status st = tx.status(); !st.ok()) return st;
  char* error = nullptr;
  rc = sqlite3_exec(db, kSchema, nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    Status st = SqliteError(nullptr, rc, StrCat("create schema: ", error ? error : ""));
    sqlite3_free(error);
    return st;
  }
  if (Status st = tx.Commit(); !st.ok()) return st;
  return store;
}

SqliteApprovalStore::~SqliteApprovalStore() { sqlite3_close_v2(db_); }

StatusOr<Approval> SqliteApprovalStore::CreateOrJoin(const Approval& a, int64_t now, bool* joined) {
  if (joined) *joined = false;
  if (Status st = store_internal::CheckApproval(a); !st.ok()) return st;
  Approval fresh = store_internal::NewPending(a, now);

  std::lock_guard<std::mutex> lock(mu_);
  WriteTransaction tx(db_);
  if (Status st = tx.status(); !st.ok()) return st;
  {
    // A stale pending approval for the same call gives way to the new one.
    Statement s(db_,
                "UPDATE approvals SET state = 'expired', decided_at = expires_at "
                "WHERE tenant = ?1 AND call_digest = ?2 AND state = 'pending' "
                "AND expires_at <= ?3");
    if (Status st = s.Bind(a.tenant).Bind(a.call_digest).Bind(now).Run("expire"); !st.ok()) {
      return st;
    }
  }
  std::string pending_id;
  {
    Statement s(db_,
                "SELECT id FROM approvals WHERE tenant = ?1 AND call_digest = ?2 "
                "AND state = 'pending'");
    s.Bind(a.tenant).Bind(a.call_digest);
    if (s.Step()) pending_id = s.Text(0);
    if (Status st = s.status("find pending"); !st.ok()) return st;
  }
  if (!pending_id.empty()) {
    auto existing = Load(db_, pending_id);
    if (!existing.ok()) return existing.status();
    if (!existing->has_value()) return common::InternalError("pending approval vanished");
    if (Status st = tx.Commit(); !st.ok()) return st;
    if (joined) *joined = true;
    return std::move(**existing);
  }
  Statement s(db_,
              "INSERT INTO approvals (id, tenant, agent, tool, action, call_digest, rule_id, "
              "message, summary_json, quorum, created_at, expires_at, decided_at, state) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, 'pending')");
  s.Bind(fresh.id)
      .Bind(fresh.tenant)
      .Bind(fresh.agent)
      .Bind(fresh.tool)
      .Bind(fresh.action)
      .Bind(fresh.call_digest)
      .Bind(fresh.rule_id)
      .Bind(fresh.message)
      .Bind(fresh.summary_json)
      .Bind(int64_t{fresh.quorum})
      .Bind(fresh.created_at)
      .Bind(fresh.expires_at);
  if (Status st = s.Run("insert approval"); !st.ok()) {
    if (st.code() == common::StatusCode::kAlreadyExists) {
      return common::AlreadyExistsError(StrCat("approval id ", fresh.id, " is taken"));
    }
    return st;
  }
  if (Status st = tx.Commit(); !st.ok()) return st;
  return fresh;
}

StatusOr<Approval> SqliteApprovalStore::Get(std::string_view id, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto a = Load(db_, id);
  if (!a.ok()) return a.status();
  if (!a->has_value()) return common::NotFoundError(StrCat("no approval ", id));
  if (!store_internal::IsExpired(**a, now)) return std::move(**a);
  // The update re-checks the state, so a vote that resolved it meanwhile (from another
  // process) wins, and the approval is read again as stored.
  if (Status st = ExpireOne(db_, id, now); !st.ok()) return st;
  a = Load(db_, id);
  if (!a.ok()) return a.status();
  if (!a->has_value()) return common::NotFoundError(StrCat("no approval ", id));
  return std::move(**a);
}

StatusOr<std::vector<Approval>> SqliteApprovalStore::List(const ListFilter& filter, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  bool any_expired = false;
  {
    // Checked first, so a List with nothing to expire never waits for another writer.
    Statement s(db_,
                "SELECT 1 FROM approvals WHERE state = 'pending' AND expires_at <= ?1 LIMIT 1");
    any_expired = s.Bind(now).Step();
    if (Status st = s.status("find expired"); !st.ok()) return st;
  }
  if (any_expired) {
    Statement s(db_,
                "UPDATE approvals SET state = 'expired', decided_at = expires_at "
                "WHERE state = 'pending' AND expires_at <= ?1");
    if (Status st = s.Bind(now).Run("expire"); !st.ok()) return st;
  }
  // One statement, so the approvals and their votes come from one snapshot.
  Statement s(db_, "SELECT " AEGIS_APPROVAL_COLUMNS
                   "FROM (SELECT *, rowid AS seq FROM approvals "
                   "      WHERE (?1 = '' OR state = ?1) AND (?2 = '' OR tenant = ?2) "
                   "        AND (?3 = '' OR agent = ?3) "
                   "      ORDER BY created_at DESC, rowid DESC LIMIT ?4) a "
                   "LEFT JOIN approval_votes v ON v.approval_id = a.id "
                   "ORDER BY a.created_at DESC, a.seq DESC, v.rowid");
  s.Bind(filter.state ? StateName(*filter.state) : std::string_view())
      .Bind(filter.tenant)
      .Bind(filter.agent)
      .Bind(static_cast<int64_t>(std::min<size_t>(filter.limit, INT64_MAX)));
  return ReadApprovals(s);
}

StatusOr<Approval> SqliteApprovalStore::Vote(std::string_view id, const approvals::Vote& vote,
                                             int64_t now) {
  auto v = store_internal::NormalizeVote(vote, now);
  if (!v.ok()) return v.status();

  std::lock_guard<std::mutex> lock(mu_);
  WriteTransaction tx(db_);
  if (Status st = tx.status(); !st.ok()) return st;
  auto a = Load(db_, id);
  if (!a.ok()) return a.status();
  if (!a->has_value()) return common::NotFoundError(StrCat("no approval ", id));
  Approval& approval = **a;
  if (store_internal::IsExpired(approval, now)) {
    if (Status st = ExpireOne(db_, id, now); !st.ok()) return st;
    if (Status st = tx.Commit(); !st.ok()) return st;
    approval.state = State::kExpired;
  }
  if (approval.state != State::kPending) return store_internal::NotPending(approval);
  if (v->approver == approval.agent) {
    return common::PermissionDeniedError(
        StrCat("agent ", approval.agent, " cannot vote on its own call"));
  }
  for (const approvals::Vote& cast : approval.votes) {
    if (cast.approver == v->approver) return std::move(approval);
  }
  {
    Statement s(db_,
                "INSERT INTO approval_votes (approval_id, approver, approve, at, comment) "
                "VALUES (?1, ?2, ?3, ?4, ?5)");
    s.Bind(id).Bind(v->approver).Bind(int64_t{v->approve}).Bind(v->at).Bind(v->comment);
    if (Status st = s.Run("insert vote"); !st.ok()) return st;
  }
  approval.votes.push_back(*v);
  int approve_votes = 0;
  for (const approvals::Vote& cast : approval.votes) approve_votes += cast.approve ? 1 : 0;
  std::optional<State> resolved;
  if (!v->approve) {
    resolved = State::kDenied;
  } else if (approve_votes >= approval.quorum) {
    resolved = State::kApproved;
  }
  if (resolved) {
    Statement s(db_,
                "UPDATE approvals SET state = ?2, decided_at = ?3 "
                "WHERE id = ?1 AND state = 'pending'");
    if (Status st = s.Bind(id).Bind(StateName(*resolved)).Bind(now).Run("resolve"); !st.ok()) {
      return st;
    }
    approval.state = *resolved;
    approval.decided_at = now;
  }
  if (Status st = tx.Commit(); !st.ok()) return st;
  return std::move(approval);
}

}  // namespace aegis::approvals
