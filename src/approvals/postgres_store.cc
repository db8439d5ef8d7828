#include "approvals/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>

#include "common/strings.h"

namespace aegis::approvals {

using common::Status;
using common::StatusOr;
using common::StrCat;

namespace {

constexpr auto kPoolWait = std::chrono::seconds(5);
constexpr auto kFirstPause = std::chrono::milliseconds(100);
constexpr auto kMaxPause = std::chrono::milliseconds(1000);

// Serialises schema creation between processes that start together (CREATE ... IF NOT EXISTS
// alone can still collide on the catalog); "aegis_ap" in ASCII.
constexpr const char* kSchema = R"sql(
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT pg_advisory_xact_lock(7018129296931643760);
CREATE TABLE IF NOT EXISTS approvals (
  id           text PRIMARY KEY,
  seq          bigint GENERATED ALWAYS AS IDENTITY,
  tenant       text NOT NULL,
  agent        text NOT NULL,
  tool         text NOT NULL,
  action       text NOT NULL,
  call_digest  text NOT NULL,
  rule_id      text NOT NULL,
  message      text NOT NULL,
  summary_json text NOT NULL,
  quorum       integer NOT NULL CHECK (quorum >= 1),
  created_at   bigint NOT NULL,
  expires_at   bigint NOT NULL,
  decided_at   bigint NOT NULL DEFAULT 0,
  state        text NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired'))
);
CREATE UNIQUE INDEX IF NOT EXISTS approvals_one_pending_per_call
  ON approvals (tenant, call_digest) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS approvals_pending_expiry ON approvals (expires_at)
  WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS approvals_newest ON approvals (created_at DESC, seq DESC);
CREATE TABLE IF NOT EXISTS approval_votes (
  approval_id text NOT NULL REFERENCES approvals (id),
  approver    text NOT NULL,
  approve     boolean NOT NULL,
  at          bigint NOT NULL,
  comment     text NOT NULL,
  seq         bigint GENERATED ALWAYS AS IDENTITY,
  PRIMARY KEY (approval_id, approver)
);
COMMIT;
)sql";

// The columns every query reads, in this order (see ReadApprovals).
#define AEGIS_APPROVAL_COLUMNS                                                                \
  "a.id, a.tenant, a.agent, a.tool, a.action, a.call_digest, a.rule_id, a.message, "          \
  "a.summary_json, a.quorum, a.created_at, a.expires_at, a.decided_at, a.state, v.approver, " \
  "v.approve, v.at, v.comment "
constexpr int kVoteColumn = 14;

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

std::string Trimmed(const char* message) {
  std::string m = message ? message : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

pg_conn* Connect(const std::string& conninfo) {
  // Later entries override earlier ones: the caller's conninfo overrides the default timeout
  // and name, and text is always exchanged as UTF-8.
  const char* keywords[] = {"connect_timeout", "application_name", "dbname", "client_encoding",
                            nullptr};
  const char* values[] = {"5", "aegis", conninfo.c_str(), "UTF8", nullptr};
  pg_conn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  // Errors come back as statuses; libpq would print the server's notices on stderr.
  if (conn)
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
  return conn;
}

std::string Int(int64_t v) { return std::to_string(v); }

}  // namespace

// The statements of one call on one connection.
class PostgresApprovalStore::Session {
 public:
  explicit Session(pg_conn* conn) : conn_(conn) {}

  // Runs one statement with text parameters $1, $2, ...; its result, or the error as a status.
  StatusOr<Result> Exec(const char* sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const std::string& p : params) values.push_back(p.c_str());
    Result r(PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(),
                          nullptr, nullptr, 0));
    ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
    return Error(r.get());
  }
  // Runs several statements without parameters (the schema).
  Status ExecScript(const char* sql) {
    Result r(PQexec(conn_, sql));
    ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return common::OkStatus();
    return Error(r.get());
  }

  Status Begin() { return Exec("BEGIN").status(); }
  // After COMMIT has been sent, a lost connection leaves the outcome unknown: no retry.
  Status Commit() {
    committing_ = true;
    return Exec("COMMIT").status();
  }
  bool committing() const { return committing_; }

 private:
  Status Error(PGresult* r) const {
    std::string message = Trimmed(r ? PQresultErrorMessage(r) : nullptr);
    if (message.empty()) message = Trimmed(PQerrorMessage(conn_));
    message = StrCat("approvals database: ", message);
    const char* code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string_view sqlstate = code ? code : "";
    if (PQstatus(conn_) != CONNECTION_OK || sqlstate.starts_with("08") ||
        sqlstate.starts_with("57P") || sqlstate == "57014" || sqlstate == "40001" ||
        sqlstate == "40P01" || sqlstate == "53300") {
      // Lost connection, shutdown, cancelled, serialisation failure, deadlock, too many
      // connections: worth trying again later.
      return common::UnavailableError(std::move(message));
    }
    if (sqlstate == "23505") return common::AlreadyExistsError(std::move(message));
    if (sqlstate.starts_with("22")) return common::InvalidArgumentError(std::move(message));
    return common::InternalError(std::move(message));
  }

  pg_conn* conn_;
  bool committing_ = false;
};

namespace {

using Session = PostgresApprovalStore::Session;

int64_t ParseInt(const PGresult* r, int row, int column) {
  return std::strtoll(PQgetvalue(r, row, column), nullptr, 10);
}
std::string Text(const PGresult* r, int row, int column) {
  return std::string(PQgetvalue(r, row, column), static_cast<size_t>(PQgetlength(r, row, column)));
}

// Folds the rows of approvals LEFT JOIN votes, ordered by approval then vote, into approvals
// with their votes.
std::vector<Approval> ReadApprovals(const PGresult* r) {
  std::vector<Approval> out;
  for (int row = 0; row < PQntuples(r); ++row) {
    std::string id = Text(r, row, 0);
    if (out.empty() || out.back().id != id) {
      Approval a;
      a.id = std::move(id);
      a.tenant = Text(r, row, 1);
      a.agent = Text(r, row, 2);
      a.tool = Text(r, row, 3);
      a.action = Text(r, row, 4);
      a.call_digest = Text(r, row, 5);
      a.rule_id = Text(r, row, 6);
      a.message = Text(r, row, 7);
      a.summary_json = Text(r, row, 8);
      a.quorum = static_cast<int>(ParseInt(r, row, 9));
      a.created_at = ParseInt(r, row, 10);
      a.expires_at = ParseInt(r, row, 11);
      a.decided_at = ParseInt(r, row, 12);
      a.state = ParseState(Text(r, row, 13)).value_or(State::kPending);
      out.push_back(std::move(a));
    }
    if (!PQgetisnull(r, row, kVoteColumn)) {
      out.back().votes.push_back(
          Vote{Text(r, row, kVoteColumn), Text(r, row, kVoteColumn + 1) == "t",
               ParseInt(r, row, kVoteColumn + 2), Text(r, row, kVoteColumn + 3)});
    }
  }
  return out;
}

// The approval `id` with its votes, or nullopt.
StatusOr<std::optional<Approval>> Load(Session& s, std::string_view id) {
  auto r = s.Exec("SELECT " AEGIS_APPROVAL_COLUMNS
                  "FROM approvals a LEFT JOIN approval_votes v ON v.approval_id = a.id "
                  "WHERE a.id = $1 ORDER BY v.seq",
                  {std::string(id)});
  if (!r.ok()) return r.status();
  std::vector<Approval> rows = ReadApprovals(r->get());
  if (rows.empty()) return std::optional<Approval>();
  return std::optional<Approval>(std::move(rows.front()));
}

// Stores the expiry of `id` if it is pending and expired at `now` (a no-op otherwise).
Status ExpireOne(Session& s, std::string_view id, int64_t now) {
  return s
      .Exec(
          "UPDATE approvals SET state = 'expired', decided_at = expires_at "
          "WHERE id = $1 AND state = 'pending' AND expires_at <= $2::bigint",
          {std::string(id), Int(now)})
      .status();
}

}  // namespace

StatusOr<std::unique_ptr<PostgresApprovalStore>> PostgresApprovalStore::Open(
    const std::string& conninfo, size_t pool_size) {
  if (pool_size == 0) return common::InvalidArgumentError("pool_size must be at least 1");
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (!options) {
    std::string message = Trimmed(error ? error : "out of memory");
    PQfreemem(error);
    return common::InvalidArgumentError(StrCat("bad PostgreSQL conninfo: ", message));
  }
  PQconninfoFree(options);

  std::unique_ptr<PostgresApprovalStore> store(new PostgresApprovalStore(conninfo, pool_size));
  Status st = store->WithSession([](Session& s) { return s.ExecScript(kSchema); });
  if (!st.ok()) return st;
  return store;
}

PostgresApprovalStore::~PostgresApprovalStore() {
  std::lock_guard<std::mutex> lock(mu_);
  for (pg_conn* c : idle_) PQfinish(c);
}

StatusOr<pg_conn*> PostgresApprovalStore::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + kPoolWait;
  for (;;) {
    while (!idle_.empty()) {
      pg_conn* c = idle_.back();
      idle_.pop_back();
      // Reads what the server sent while the connection sat idle: a server that shut down
      // sent an error and closed it, which this notices without a round trip.
      if (PQconsumeInput(c) && PQstatus(c) == CONNECTION_OK) return c;
      PQfinish(c);
      --open_;
    }
    if (open_ < pool_size_) break;
    if (released_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= pool_size_) {
      return common::UnavailableError(
          StrCat("approvals database: all ", pool_size_, " connections busy"));
    }
  }
  if (std::chrono::steady_clock::now() < next_attempt_) {
    return common::UnavailableError(last_error_);
  }
  ++open_;
  lock.unlock();
  pg_conn* c = Connect(conninfo_);
  lock.lock();
  if (c && PQstatus(c) == CONNECTION_OK) {
    pause_ = std::chrono::milliseconds(0);
    return c;
  }
  last_error_ =
      StrCat("approvals database unreachable: ", Trimmed(c ? PQerrorMessage(c) : "out of memory"));
  PQfinish(c);
  --open_;
  pause_ = std::clamp(pause_ * 2, std::chrono::milliseconds(kFirstPause), kMaxPause);
  next_attempt_ = std::chrono::steady_clock::now() + pause_;
  released_.notify_one();
  return common::UnavailableError(last_error_);
}

void PostgresApprovalStore::Release(pg_conn* conn) {
  if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
    PQclear(PQexec(conn, "ROLLBACK"));
  }
  bool keep = PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE;
  std::lock_guard<std::mutex> lock(mu_);
  if (keep) {
    idle_.push_back(conn);
  } else {
    PQfinish(conn);
    --open_;
  }
  released_.notify_one();
}

void PostgresApprovalStore::DropIdle() {
  std::lock_guard<std::mutex> lock(mu_);
  for (pg_conn* c : idle_) PQfinish(c);
  open_ -= idle_.size();
  idle_.clear();
  released_.notify_all();
}

Status PostgresApprovalStore::WithSession(const std::function<Status(Session&)>& fn) {
  for (int attempt = 0;; ++attempt) {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    Session session(*conn);
    Status st = fn(session);
    bool broken = PQstatus(*conn) != CONNECTION_OK;
    Release(*conn);
    if (!broken) return st;
    DropIdle();
    // Every operation is idempotent up to its COMMIT (autocommit statements only expire what
    // has expired, or insert an approval that a retry then finds as its own), so a call whose
    // connection broke before it committed runs again once.
    if (st.ok() || session.committing() || attempt > 0) return st;
  }
}

StatusOr<Approval> PostgresApprovalStore::CreateOrJoin(const Approval& a, int64_t now,
                                                       bool* joined) {
  if (joined) *joined = false;
  if (Status st = store_internal::CheckApproval(a); !st.ok()) return st;
  const Approval fresh = store_internal::NewPending(a, now);
  std::optional<Approval> out;
  bool was_joined = false;
  Status st = WithSession([&](Session& s) -> Status {
    // Each round: expire a stale pending approval for this call, try to insert, else read the
    // pending one that won. Another round only when that one was resolved in between.
    for (int round = 0; round < 5; ++round) {
      auto expired = s.Exec(
          "UPDATE approvals SET state = 'expired', decided_at = expires_at "
          "WHERE tenant = $1 AND call_digest = $2 AND state = 'pending' "
          "AND expires_at <= $3::bigint",
          {a.tenant, a.call_digest, Int(now)});
      if (!expired.ok()) return expired.status();
      auto inserted = s.Exec(
          "INSERT INTO approvals (id, tenant, agent, tool, action, call_digest, rule_id, "
          "message, summary_json, quorum, created_at, expires_at, decided_at, state) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::integer, $11::bigint, $12::bigint, "
          "0, 'pending') "
          "ON CONFLICT (tenant, call_digest) WHERE state = 'pending' DO NOTHING RETURNING id",
          {fresh.id, fresh.tenant, fresh.agent, fresh.tool, fresh.action, fresh.call_digest,
           fresh.rule_id, fresh.message, fresh.summary_json, Int(fresh.quorum),
           Int(fresh.created_at), Int(fresh.expires_at)});
      if (!inserted.ok()) {
        if (inserted.status().code() == common::StatusCode::kAlreadyExists) {
          return common::AlreadyExistsError(StrCat("approval id ", fresh.id, " is taken"));
        }
        return inserted.status();
      }
      if (PQntuples(inserted->get()) == 1) {
        out = fresh;
        was_joined = false;
        return common::OkStatus();
      }
      auto pending = s.Exec(
          "SELECT id FROM approvals WHERE tenant = $1 AND call_digest = $2 "
          "AND state = 'pending'",
          {a.tenant, a.call_digest});
      if (!pending.ok()) return pending.status();
      if (PQntuples(pending->get()) == 0) continue;
      auto existing = Load(s, Text(pending->get(), 0, 0));
      if (!existing.ok()) return existing.status();
      if (!existing->has_value() || store_internal::IsExpired(**existing, now) ||
          (*existing)->state != State::kPending) {
        continue;
      }
      // Our own row when a retry follows an insert whose reply was lost.
      was_joined = (*existing)->id != fresh.id;
      out = std::move(**existing);
      return common::OkStatus();
    }
    return common::UnavailableError("approvals database: too much contention on one call");
  });
  if (!st.ok()) return st;
  if (joined) *joined = was_joined;
  return std::move(*out);
}

StatusOr<Approval> PostgresApprovalStore::Get(std::string_view id, int64_t now) {
  std::optional<Approval> out;
  Status st = WithSession([&](Session& s) -> Status {
    auto a = Load(s, id);
    if (!a.ok()) return a.status();
    if (a->has_value() && store_internal::IsExpired(**a, now)) {
      // The update re-checks the state, so a vote that resolved it meanwhile wins, and the
      // approval is read again as stored.
      if (Status e = ExpireOne(s, id, now); !e.ok()) return e;
      a = Load(s, id);
      if (!a.ok()) return a.status();
    }
    if (!a->has_value()) return common::NotFoundError(StrCat("no approval ", id));
    out = std::move(**a);
    return common::OkStatus();
  });
  if (!st.ok()) return st;
  return std::move(*out);
}

StatusOr<std::vector<Approval>> PostgresApprovalStore::List(const ListFilter& filter, int64_t now) {
  std::vector<Approval> out;
  Status st = WithSession([&](Session& s) -> Status {
    auto expired = s.Exec(
        "UPDATE approvals SET state = 'expired', decided_at = expires_at "
        "WHERE state = 'pending' AND expires_at <= $1::bigint",
        {Int(now)});
    if (!expired.ok()) return expired.status();
    // One statement, so the approvals and their votes come from one snapshot.
    auto r = s.Exec(
        "SELECT " AEGIS_APPROVAL_COLUMNS
        "FROM (SELECT * FROM approvals "
        "      WHERE ($1::text = '' OR state = $1::text) AND ($2::text = '' OR tenant = $2::text) "
        "        AND ($3::text = '' OR agent = $3::text) "
        "      ORDER BY created_at DESC, seq DESC LIMIT $4::bigint) a "
        "LEFT JOIN approval_votes v ON v.approval_id = a.id "
        "ORDER BY a.created_at DESC, a.seq DESC, v.seq",
        {filter.state ? std::string(StateName(*filter.state)) : std::string(), filter.tenant,
         filter.agent, std::to_string(std::min<size_t>(filter.limit, INT64_MAX))});
    if (!r.ok()) return r.status();
    out = ReadApprovals(r->get());
    return common::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

StatusOr<Approval> PostgresApprovalStore::Vote(std::string_view id, const approvals::Vote& vote,
                                               int64_t now) {
  auto v = store_internal::NormalizeVote(vote, now);
  if (!v.ok()) return v.status();
  std::optional<Approval> out;
  Status st = WithSession([&](Session& s) -> Status {
    if (Status b = s.Begin(); !b.ok()) return b;
    // Votes on one approval wait for each other here, whichever replica they come through.
    auto locked = s.Exec("SELECT 1 FROM approvals WHERE id = $1 FOR UPDATE", {std::string(id)});
    if (!locked.ok()) return locked.status();
    if (PQntuples(locked->get()) == 0) return common::NotFoundError(StrCat("no approval ", id));
    auto a = Load(s, id);
    if (!a.ok()) return a.status();
    if (!a->has_value()) return common::NotFoundError(StrCat("no approval ", id));
    Approval& approval = **a;
    if (store_internal::IsExpired(approval, now)) {
      if (Status e = ExpireOne(s, id, now); !e.ok()) return e;
      if (Status c = s.Commit(); !c.ok()) return c;
      approval.state = State::kExpired;
    }
    if (approval.state != State::kPending) return store_internal::NotPending(approval);
    if (v->approver == approval.agent) {
      return common::PermissionDeniedError(
          StrCat("agent ", approval.agent, " cannot vote on its own call"));
    }
    for (const approvals::Vote& cast : approval.votes) {
      if (cast.approver == v->approver) {
        out = std::move(approval);
        return common::OkStatus();  // the transaction is rolled back on release
      }
    }
    auto inserted = s.Exec(
        "INSERT INTO approval_votes (approval_id, approver, approve, at, comment) "
        "VALUES ($1, $2, $3::boolean, $4::bigint, $5)",
        {std::string(id), v->approver, v->approve ? "true" : "false", Int(v->at), v->comment});
    if (!inserted.ok()) return inserted.status();
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
      auto updated = s.Exec(
          "UPDATE approvals SET state = $2, decided_at = $3::bigint "
          "WHERE id = $1 AND state = 'pending'",
          {std::string(id), std::string(StateName(*resolved)), Int(now)});
      if (!updated.ok()) return updated.status();
      approval.state = *resolved;
      approval.decided_at = now;
    }
    if (Status c = s.Commit(); !c.ok()) return c;
    out = std::move(approval);
    return common::OkStatus();
  });
  if (!st.ok()) return st;
  return std::move(*out);
}

}  // namespace aegis::approvals
