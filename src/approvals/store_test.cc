// The behaviour every approval store must have, run against SQLite (a temporary file) and a real
// PostgreSQL started by this test; then what only one of them does (file mode, server restarts,
// replicas starting together).
#include "approvals/store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>
#include <vector>

#include "approvals/postgres_store.h"
#include "approvals/sqlite_store.h"
#include "approvals/testing/postgres_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aegis::approvals {
namespace {

using common::StatusCode;
using ::testing::HasSubstr;

// 2026-05-28T12:00:00Z
constexpr int64_t kNow = 1'779'969'600;

Approval Call(std::string tenant, std::string agent, std::string digest, int quorum = 1,
              int64_t created_at = kNow, int64_t ttl = 3600) {
  Approval a;
  a.id = NewApprovalId();
  a.tenant = std::move(tenant);
  a.agent = std::move(agent);
  a.tool = "payments";
  a.action = "transfer";
  a.call_digest = std::move(digest);
  a.rule_id = "large-payments";
  a.message = "Payments over $5,000 need two finance leads";
  a.summary_json = R"({"amount":7000,"currency":"USD","to":"[redacted]"})";
  a.quorum = quorum;
  a.created_at = created_at;
  a.expires_at = created_at + ttl;
  return a;
}

Vote By(std::string approver, bool approve = true, std::string comment = "") {
  return Vote{std::move(approver), approve, 0, std::move(comment)};
}

ListFilter Where(std::optional<State> state, std::string tenant = "", std::string agent = "",
                 size_t limit = 100) {
  ListFilter f;
  f.state = state;
  f.tenant = std::move(tenant);
  f.agent = std::move(agent);
  f.limit = limit;
  return f;
}

std::string Code(const common::Status& s) { return std::string(common::StatusCodeName(s.code())); }

std::vector<std::string> Ids(const std::vector<Approval>& list) {
  std::vector<std::string> ids;
  for (const Approval& a : list) ids.push_back(a.id);
  return ids;
}

// Every stored field of `a` equals `b`'s.
void ExpectSame(const Approval& a, const Approval& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.tenant, b.tenant);
  EXPECT_EQ(a.agent, b.agent);
  EXPECT_EQ(a.tool, b.tool);
  EXPECT_EQ(a.action, b.action);
  EXPECT_EQ(a.call_digest, b.call_digest);
  EXPECT_EQ(a.rule_id, b.rule_id);
  EXPECT_EQ(a.message, b.message);
  EXPECT_EQ(a.summary_json, b.summary_json);
  EXPECT_EQ(a.quorum, b.quorum);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.expires_at, b.expires_at);
  EXPECT_EQ(a.decided_at, b.decided_at);
  EXPECT_EQ(a.state, b.state);
  ASSERT_EQ(a.votes.size(), b.votes.size());
  for (size_t i = 0; i < a.votes.size(); ++i) {
    EXPECT_EQ(a.votes[i].approver, b.votes[i].approver);
    EXPECT_EQ(a.votes[i].approve, b.votes[i].approve);
    EXPECT_EQ(a.votes[i].at, b.votes[i].at);
    EXPECT_EQ(a.votes[i].comment, b.votes[i].comment);
  }
}

// One PostgreSQL for the whole program, started from the main thread; each test gets its own
// database in it.
testing::PostgresServer& SharedPostgres() {
  static testing::PostgresServer server;  // stopped when the program exits
  static bool started = [] {
    bool ok = server.Start();
    if (!ok) {
      ADD_FAILURE() << "PostgreSQL did not start (scripts/install-deps.sh installs it)\n"
                    << server.log();
    }
    return ok;
  }();
  (void)started;
  return server;
}

std::string NewDatabase(testing::PostgresServer& server) {
  static int n = 0;
  std::string name = "approvals_" + std::to_string(getpid()) + "_" + std::to_string(n++);
  EXPECT_TRUE(server.CreateDatabase(name)) << server.log();
  return name;
}

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      char tmpl[] = "/tmp/aegis-approvals-XXXXXX";
      ASSERT_NE(mkdtemp(tmpl), nullptr);
      dir_ = tmpl;
    } else {
      database_ = NewDatabase(SharedPostgres());
    }
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // Another store on the same data: another connection to the same SQLite file (as another
  // process would have), another pool on the same PostgreSQL database (another replica).
  std::unique_ptr<ApprovalStore> Open() {
    if (GetParam() == "sqlite") {
      auto s = SqliteApprovalStore::Open(dir_ + "/approvals.db");
      EXPECT_TRUE(s.ok()) << s.status();
      return s.ok() ? std::move(*s) : nullptr;
    }
    auto s = PostgresApprovalStore::Open(SharedPostgres().conninfo(database_), 4);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  Approval Create(const Approval& a, bool* joined = nullptr, int64_t now = kNow) {
    auto r = store_->CreateOrJoin(a, now, joined);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : Approval{};
  }
  Approval Get(const std::string& id, int64_t now = kNow) {
    auto r = store_->Get(id, now);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : Approval{};
  }
  std::vector<Approval> List(ListFilter filter, int64_t now = kNow) {
    auto r = store_->List(filter, now);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<Approval>{};
  }

  std::string dir_, database_;
  std::unique_ptr<ApprovalStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

TEST_P(StoreTest, CreatesGetsAndListsWithFilters) {
  Approval a = Call("acme", "billing-bot", "d1", 2, kNow - 30);
  Approval b = Call("acme", "support-bot", "d2", 1, kNow - 20);
  Approval c = Call("globex", "billing-bot", "d3", 1, kNow - 10);
  bool joined = true;
  Approval stored = Create(a, &joined);
  EXPECT_FALSE(joined);
  EXPECT_EQ(stored.state, State::kPending);
  ExpectSame(stored, a);
  Create(b);
  Create(c);

  ExpectSame(Get(a.id), a);
  EXPECT_THAT(Ids(List({})), ::testing::ElementsAre(c.id, b.id, a.id));  // newest first
  EXPECT_THAT(Ids(List(Where(std::nullopt, "acme"))), ::testing::ElementsAre(b.id, a.id));
  EXPECT_THAT(Ids(List(Where(std::nullopt, "", "billing-bot"))),
              ::testing::ElementsAre(c.id, a.id));
  EXPECT_THAT(Ids(List(Where(std::nullopt, "acme", "billing-bot"))), ::testing::ElementsAre(a.id));
  EXPECT_THAT(Ids(List(Where(std::nullopt, "", "", 2))), ::testing::ElementsAre(c.id, b.id));
  EXPECT_THAT(Ids(List(Where(std::nullopt, "initech"))), ::testing::IsEmpty());

  ASSERT_TRUE(store_->Vote(b.id, By("alice", false), kNow).ok());
  ASSERT_TRUE(store_->Vote(a.id, By("bob"), kNow).ok());
  EXPECT_THAT(Ids(List(Where(State::kDenied))), ::testing::ElementsAre(b.id));
  std::vector<Approval> pending = List(Where(State::kPending));
  EXPECT_THAT(Ids(pending), ::testing::ElementsAre(c.id, a.id));
  ASSERT_EQ(pending.size(), 2u);
  ASSERT_EQ(pending[1].votes.size(), 1u);  // listed with its votes
  EXPECT_EQ(pending[1].votes[0].approver, "bob");
  EXPECT_EQ(pending[1].votes[0].at, kNow);

  // Created in the same second: still newest first.
  Approval d = Call("acme", "x", "d4", 1, kNow), e = Call("acme", "x", "d5", 1, kNow);
  Create(d);
  Create(e);
  EXPECT_THAT(Ids(List(Where(std::nullopt, "", "x"))), ::testing::ElementsAre(e.id, d.id));
}

TEST_P(StoreTest, JoinsOnlyThePendingIdenticalCall) {
  Approval first = Create(Call("acme", "bot", "digest-1", 2));
  bool joined = false;
  Approval again = Create(Call("acme", "bot", "digest-1", 2), &joined);
  EXPECT_TRUE(joined);
  EXPECT_EQ(again.id, first.id);

  Approval other_call = Create(Call("acme", "bot", "digest-2"), &joined);
  EXPECT_FALSE(joined);
  EXPECT_NE(other_call.id, first.id);
  Approval other_tenant = Create(Call("globex", "bot", "digest-1"), &joined);
  EXPECT_FALSE(joined);
  EXPECT_NE(other_tenant.id, first.id);

  // A joined approval keeps its votes; once decided, the same call asks anew.
  ASSERT_TRUE(store_->Vote(first.id, By("alice"), kNow).ok());
  again = Create(Call("acme", "bot", "digest-1", 2), &joined);
  EXPECT_TRUE(joined);
  ASSERT_EQ(again.votes.size(), 1u);
  ASSERT_TRUE(store_->Vote(first.id, By("bob", false), kNow).ok());
  Approval fresh = Create(Call("acme", "bot", "digest-1", 2), &joined);
  EXPECT_FALSE(joined);
  EXPECT_NE(fresh.id, first.id);
  EXPECT_EQ(Get(first.id).state, State::kDenied);

  // An id already in use is refused, not overwritten.
  Approval clash = Call("acme", "bot", "digest-9");
  clash.id = first.id;
  auto r = store_->CreateOrJoin(clash, kNow, &joined);
  EXPECT_EQ(Code(r.status()), "ALREADY_EXISTS") << r.status();
}

TEST_P(StoreTest, ExpiryResolvesAsExpiredAndRefusesVotes) {
  Approval a = Create(Call("acme", "bot", "d1", 1, kNow, /*ttl=*/60));
  EXPECT_EQ(Get(a.id, kNow + 59).state, State::kPending);
  Approval expired = Get(a.id, kNow + 60);
  EXPECT_EQ(expired.state, State::kExpired);
  EXPECT_EQ(expired.decided_at, kNow + 60);
  // Stored: an earlier clock (another replica's) sees it expired too, and cannot vote on it.
  EXPECT_EQ(Get(a.id, kNow).state, State::kExpired);
  auto v = store_->Vote(a.id, By("alice"), kNow);
  EXPECT_EQ(Code(v.status()), "FAILED_PRECONDITION");
  EXPECT_THAT(v.status().message(), HasSubstr("expired"));

  // A vote is the first to notice: refused, and the expiry stored.
  Approval b = Create(Call("acme", "bot", "d2", 1, kNow, 60));
  v = store_->Vote(b.id, By("alice"), kNow + 61);
  EXPECT_EQ(Code(v.status()), "FAILED_PRECONDITION");
  EXPECT_THAT(v.status().message(), HasSubstr("expired"));
  Approval after = Get(b.id, kNow);
  EXPECT_EQ(after.state, State::kExpired);
  EXPECT_TRUE(after.votes.empty());

  // The same call after expiry asks anew; List resolves what has expired before filtering.
  Approval c = Create(Call("acme", "bot", "d3", 1, kNow, 60));
  bool joined = true;
  Approval renewed = Create(Call("acme", "bot", "d3", 1, kNow + 100, 60), &joined, kNow + 100);
  EXPECT_FALSE(joined);
  EXPECT_NE(renewed.id, c.id);
  EXPECT_EQ(Get(c.id, kNow).state, State::kExpired);
  Approval d = Create(Call("acme", "bot", "d4", 1, kNow, 60));
  EXPECT_THAT(Ids(List(Where(State::kPending), kNow + 100)), ::testing::ElementsAre(renewed.id));
  EXPECT_EQ(Get(d.id, kNow).state, State::kExpired);
}

TEST_P(StoreTest, QuorumCountsDistinctApprovers) {
  Approval a = Create(Call("acme", "bot", "d1", /*quorum=*/2));
  auto r = store_->Vote(a.id, By("alice", true, "looks right"), kNow + 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, State::kPending);
  r = store_->Vote(a.id, By("alice", true, "again"), kNow + 2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, State::kPending);
  ASSERT_EQ(r->votes.size(), 1u);
  EXPECT_EQ(r->votes[0].comment, "looks right");
  EXPECT_EQ(Get(a.id).votes.size(), 1u);

  r = store_->Vote(a.id, By("bob"), kNow + 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, State::kApproved);
  EXPECT_EQ(r->decided_at, kNow + 3);
  Approval stored = Get(a.id);
  ExpectSame(stored, *r);
  ASSERT_EQ(stored.votes.size(), 2u);
  EXPECT_EQ(stored.votes[0].approver, "alice");
  EXPECT_EQ(stored.votes[0].at, kNow + 1);
  EXPECT_EQ(stored.votes[1].approver, "bob");
  EXPECT_TRUE(stored.votes[1].approve);
}

TEST_P(StoreTest, ADenyResolvesDenied) {
  Approval a = Create(Call("acme", "bot", "d1", 2));
  ASSERT_TRUE(store_->Vote(a.id, By("alice"), kNow).ok());
  auto r = store_->Vote(a.id, By("bob", false, "not this vendor"), kNow + 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, State::kDenied);
  EXPECT_EQ(r->decided_at, kNow + 5);
  Approval stored = Get(a.id);
  EXPECT_EQ(stored.state, State::kDenied);
  ASSERT_EQ(stored.votes.size(), 2u);
  EXPECT_FALSE(stored.votes[1].approve);
  EXPECT_EQ(stored.votes[1].comment, "not this vendor");
}

TEST_P(StoreTest, AnAgentNeverVotesOnItsOwnCall) {
  Approval a = Create(Call("acme", "billing-bot", "d1"));
  for (bool approve : {true, false}) {
    auto r = store_->Vote(a.id, By("billing-bot", approve), kNow);
    EXPECT_EQ(Code(r.status()), "PERMISSION_DENIED") << r.status();
  }
  Approval stored = Get(a.id);
  EXPECT_EQ(stored.state, State::kPending);
  EXPECT_TRUE(stored.votes.empty());
  auto r = store_->Vote(a.id, By(""), kNow);
  EXPECT_EQ(Code(r.status()), "INVALID_ARGUMENT") << r.status();
}

TEST_P(StoreTest, DecidedApprovalsRefuseVotes) {
  Approval approved = Create(Call("acme", "bot", "d1"));
  ASSERT_TRUE(store_->Vote(approved.id, By("alice"), kNow).ok());
  Approval denied = Create(Call("acme", "bot", "d2", 2));
  ASSERT_TRUE(store_->Vote(denied.id, By("alice", false), kNow).ok());

  for (const auto& [id, word] : {std::pair{approved.id, "approved"}, {denied.id, "denied"}}) {
    for (const Vote& v : {By("carol"), By("carol", false), By("alice")}) {
      auto r = store_->Vote(id, v, kNow + 1);
      EXPECT_EQ(Code(r.status()), "FAILED_PRECONDITION") << r.status();
      EXPECT_THAT(r.status().message(), HasSubstr(word));
    }
    EXPECT_EQ(Get(id).votes.size(), 1u);
  }
  EXPECT_EQ(Get(approved.id).decided_at, kNow);
}

TEST_P(StoreTest, UnknownIdsAreNotFound) {
  Create(Call("acme", "bot", "d1"));
  for (std::string id : {"apr_00000000000000000000000000000000", "' OR '1'='1", "", "%"}) {
    auto g = store_->Get(id, kNow);
    EXPECT_EQ(Code(g.status()), "NOT_FOUND") << id << ": " << g.status();
    auto v = store_->Vote(id, By("alice"), kNow);
    EXPECT_EQ(Code(v.status()), "NOT_FOUND") << id << ": " << v.status();
  }
}

TEST_P(StoreTest, ConcurrentVotesResolveExactlyOnce) {
  std::unique_ptr<ApprovalStore> other = Open();  // half the voters come through another store
  ASSERT_NE(other, nullptr);
  Approval a = Create(Call("acme", "bot", "d1", /*quorum=*/5));

  // 20 distinct approvers at once: 5 are counted, one of them resolves it, 15 come too late.
  std::atomic<bool> go{false};
  std::atomic<int> counted{0}, resolved{0}, too_late{0}, other_errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      ApprovalStore& store = i % 2 ? *other : *store_;
      while (!go.load()) std::this_thread::yield();
      auto r = store.Vote(a.id, By("approver-" + std::to_string(i)), kNow);
      if (r.ok()) {
        counted.fetch_add(1);
        if (r->state == State::kApproved) resolved.fetch_add(1);
      } else if (r.status().code() == StatusCode::kFailedPrecondition) {
        too_late.fetch_add(1);
      } else {
        ADD_FAILURE() << r.status();
        other_errors.fetch_add(1);
      }
    });
  }
  go.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(counted.load(), 5);
  EXPECT_EQ(resolved.load(), 1);
  EXPECT_EQ(too_late.load(), 15);
  Approval stored = Get(a.id);
  EXPECT_EQ(stored.state, State::kApproved);
  ASSERT_EQ(stored.votes.size(), 5u);
  std::set<std::string> approvers;
  for (const Vote& v : stored.votes) approvers.insert(v.approver);
  EXPECT_EQ(approvers.size(), 5u);

  // 10 approvers voting twice each, at once, on a quorum out of reach: each counted once.
  Approval b = Create(Call("acme", "bot", "d2", /*quorum=*/50));
  go.store(false);
  threads.clear();
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      ApprovalStore& store = i % 2 ? *other : *store_;
      while (!go.load()) std::this_thread::yield();
      auto r = store.Vote(b.id, By("approver-" + std::to_string(i / 2)), kNow);
      EXPECT_TRUE(r.ok()) << r.status();
    });
  }
  go.store(true);
  for (auto& t : threads) t.join();
  stored = Get(b.id);
  EXPECT_EQ(stored.state, State::kPending);
  approvers.clear();
  for (const Vote& v : stored.votes) approvers.insert(v.approver);
  EXPECT_EQ(stored.votes.size(), 10u);
  EXPECT_EQ(approvers.size(), 10u);
}

TEST_P(StoreTest, ConcurrentIdenticalCallsCreateOneApproval) {
  std::unique_ptr<ApprovalStore> other = Open();
  ASSERT_NE(other, nullptr);
  std::atomic<bool> go{false};
  std::atomic<int> created{0};
  std::vector<std::string> ids(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      ApprovalStore& store = i % 2 ? *other : *store_;
      while (!go.load()) std::this_thread::yield();
      bool joined = true;
      auto r = store.CreateOrJoin(Call("acme", "bot", "same-call"), kNow, &joined);
      ASSERT_TRUE(r.ok()) << r.status();
      if (!joined) created.fetch_add(1);
      ids[i] = r->id;
    });
  }
  go.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_THAT(ids, ::testing::Each(ids[0]));
  EXPECT_EQ(List({}).size(), 1u);
}

TEST_P(StoreTest, TwoStoresSeeEachOthersApprovalsAndVotes) {
  std::unique_ptr<ApprovalStore> other = Open();
  ASSERT_NE(other, nullptr);
  Approval a = Create(Call("acme", "bot", "d1", 2));
  auto seen = other->Get(a.id, kNow);
  ASSERT_TRUE(seen.ok()) << seen.status();
  ExpectSame(*seen, a);
  bool joined = false;
  auto joined_there = other->CreateOrJoin(Call("acme", "bot", "d1", 2), kNow, &joined);
  ASSERT_TRUE(joined_there.ok()) << joined_there.status();
  EXPECT_TRUE(joined);
  EXPECT_EQ(joined_there->id, a.id);

  ASSERT_TRUE(other->Vote(a.id, By("alice"), kNow).ok());
  EXPECT_EQ(Get(a.id).votes.size(), 1u);
  auto r = store_->Vote(a.id, By("alice"), kNow);  // the same approver through the other store
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, State::kPending);
  ASSERT_TRUE(store_->Vote(a.id, By("bob"), kNow).ok());
  auto listed = other->List(Where(State::kApproved), kNow);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(Ids(*listed), ::testing::ElementsAre(a.id));
}

TEST_P(StoreTest, SurvivesReopening) {
  Approval a = Create(Call("acme", "bot", "d1", 2));
  ASSERT_TRUE(store_->Vote(a.id, By("alice", true, "ok by me"), kNow).ok());
  Approval before = Get(a.id);
  store_.reset();
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  ExpectSame(Get(a.id), before);
  auto r = store_->Vote(a.id, By("bob"), kNow + 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, State::kApproved);
}

TEST_P(StoreTest, StoresHostileTextVerbatim) {
  Approval a = Call("t'; DROP TABLE approvals; --", "agent \"quoted\" \\ back\\slash",
                    "$1 ?1 ? %s %n :name @p");
  a.tool = "tool ✓ — ünïcödé 🚀 日本語";
  a.action = "delete\ttab\nnewline\r";
  a.rule_id = "rule'); DELETE FROM approval_votes; --";
  a.message = "RTL \u202eevil\u202c and zero\u200bwidth, combining e\u0301";
  a.summary_json = R"({"note":"it's \"fine\"","emoji":"🙂","sql":"' OR 1=1 --"})";
  Approval stored = Create(a);
  ExpectSame(stored, a);
  ExpectSame(Get(a.id), a);
  ASSERT_EQ(List(Where(std::nullopt, a.tenant, a.agent)).size(), 1u);

  std::string comment = "'); DROP TABLE approval_votes; -- \U0001F600 \\x00 %s";
  auto r = store_->Vote(a.id, By("o'brien \"the\" approver", true, comment), kNow);
  ASSERT_TRUE(r.ok()) << r.status();
  Approval after = Get(a.id);
  ASSERT_EQ(after.votes.size(), 1u);
  EXPECT_EQ(after.votes[0].approver, "o'brien \"the\" approver");
  EXPECT_EQ(after.votes[0].comment, comment);

  // A very long comment is cut at a character boundary ("€" is 3 bytes).
  Approval b = Create(Call("acme", "bot", "d2", 2));
  std::string euros;
  for (int i = 0; i < 5000; ++i) euros += "€";
  r = store_->Vote(b.id, By("alice", true, euros), kNow);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string kept = Get(b.id).votes.at(0).comment;
  EXPECT_EQ(kept.size(), kMaxCommentBytes / 3 * 3);
  EXPECT_EQ(kept, euros.substr(0, kept.size()));
  EXPECT_TRUE(common::IsValidUtf8(kept));

  // What PostgreSQL's text cannot hold is refused by both stores alike.
  Approval nul = Call(std::string("acme\0evil", 9), "bot", "d3");
  EXPECT_EQ(Code(store_->CreateOrJoin(nul, kNow, nullptr).status()), "INVALID_ARGUMENT");
  Approval bad_utf8 = Call("acme", "bot\xff\xfe", "d4");
  EXPECT_EQ(Code(store_->CreateOrJoin(bad_utf8, kNow, nullptr).status()), "INVALID_ARGUMENT");
  EXPECT_EQ(Code(store_->Vote(b.id, By("bob", true, std::string("a\0b", 3)), kNow).status()),
            "INVALID_ARGUMENT");
  EXPECT_EQ(Code(store_->Vote(b.id, By("bob\xc3"), kNow).status()), "INVALID_ARGUMENT");
  EXPECT_EQ(Get(b.id).votes.size(), 1u);
  Approval no_quorum = Call("acme", "bot", "d5", 0);
  EXPECT_EQ(Code(store_->CreateOrJoin(no_quorum, kNow, nullptr).status()), "INVALID_ARGUMENT");
}

TEST_P(StoreTest, FillsInIdAndCreationTime) {
  Approval a = Call("acme", "bot", "d1");
  a.id.clear();
  a.created_at = 0;
  a.state = State::kApproved;  // ignored: a new approval is pending, without votes
  a.votes.push_back(By("mallory"));
  a.decided_at = 5;
  Approval stored = Create(a);
  EXPECT_THAT(stored.id, ::testing::MatchesRegex("apr_[0-9a-f]{32}"));
  EXPECT_EQ(stored.created_at, kNow);
  EXPECT_EQ(stored.state, State::kPending);
  EXPECT_EQ(stored.decided_at, 0);
  EXPECT_TRUE(stored.votes.empty());
  ExpectSame(Get(stored.id), stored);
}

TEST(NewApprovalIdTest, IsRandomLowerCaseHex) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewApprovalId();
    ASSERT_THAT(id, ::testing::MatchesRegex("apr_[0-9a-f]{32}"));
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(SqliteStoreTest, CreatesAPrivateFileInWalMode) {
  char tmpl[] = "/tmp/aegis-approvals-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl, path = dir + "/approvals.db";
  mode_t old_umask = umask(0);  // the file is private whatever the umask
  {
    // Several processes opening a new file at once create the schema once.
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&] {
        auto s = SqliteApprovalStore::Open(path);
        EXPECT_TRUE(s.ok()) << s.status();
      });
    }
    for (auto& t : threads) t.join();
    auto s = SqliteApprovalStore::Open(path);
    ASSERT_TRUE(s.ok()) << s.status();
    bool joined;
    ASSERT_TRUE((*s)->CreateOrJoin(Call("acme", "bot", "d1"), kNow, &joined).ok());
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(stat((path + "-wal").c_str(), &st), 0) << "no write-ahead log";
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  umask(old_umask);
  auto missing = SqliteApprovalStore::Open(dir + "/no/such/dir/approvals.db");
  EXPECT_EQ(Code(missing.status()), "UNAVAILABLE") << missing.status();
  std::filesystem::remove_all(dir);
}

TEST(PostgresStoreTest, ARestartedServerIsUnavailableThenUsedAgain) {
  testing::PostgresServer server;  // its own: this test stops it
  ASSERT_TRUE(server.Start()) << server.log();
  auto opened = PostgresApprovalStore::Open(server.conninfo(), 2);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<PostgresApprovalStore> store = std::move(*opened);
  bool joined;
  auto a = store->CreateOrJoin(Call("acme", "bot", "d1", 2), kNow, &joined);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(store->Vote(a->id, By("alice"), kNow).ok());

  server.Stop();
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(Code(store->Get(a->id, kNow).status()), "UNAVAILABLE");
  EXPECT_EQ(Code(store->Vote(a->id, By("bob"), kNow).status()), "UNAVAILABLE");
  EXPECT_EQ(Code(store->CreateOrJoin(Call("acme", "bot", "d2"), kNow, &joined).status()),
            "UNAVAILABLE");
  EXPECT_EQ(Code(store->List({}, kNow).status()), "UNAVAILABLE");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2))
      << "an unreachable server must not make every call wait";

  ASSERT_TRUE(server.Start()) << server.log();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  common::StatusOr<Approval> got = store->Get(a->id, kNow);
  while (!got.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    got = store->Get(a->id, kNow);
  }
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->votes.size(), 1u);
  auto r = store->Vote(a->id, By("bob"), kNow);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, State::kApproved);

  // A restart while connections sit idle in the pool: the next calls replace them.
  server.Stop();
  ASSERT_TRUE(server.Start()) << server.log();
  auto b = store->CreateOrJoin(Call("acme", "bot", "d3"), kNow, &joined);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!b.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    b = store->CreateOrJoin(Call("acme", "bot", "d3"), kNow, &joined);
  }
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(store->Get(b->id, kNow)->state, State::kPending);
}

TEST(PostgresStoreTest, ReplicasStartingTogetherCreateTheSchemaOnce) {
  testing::PostgresServer& server = SharedPostgres();
  std::string db = NewDatabase(server);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      auto s = PostgresApprovalStore::Open(server.conninfo(db), 1);
      EXPECT_TRUE(s.ok()) << s.status();
    });
  }
  go.store(true);
  for (auto& t : threads) t.join();
  // A URL works as well as a key=value string.
  auto s = PostgresApprovalStore::Open(
      "postgresql://aegis@127.0.0.1:" + std::to_string(server.port()) + "/" + db, 1);
  ASSERT_TRUE(s.ok()) << s.status();
  bool joined;
  EXPECT_TRUE((*s)->CreateOrJoin(Call("acme", "bot", "d1"), kNow, &joined).ok());
}

TEST(PostgresStoreTest, OpenRefusesABadConninfoAndReportsAnUnreachableServer) {
  EXPECT_EQ(Code(PostgresApprovalStore::Open("nonsense").status()), "INVALID_ARGUMENT");
  EXPECT_EQ(Code(PostgresApprovalStore::Open("host=127.0.0.1", 0).status()), "INVALID_ARGUMENT");
  // Port 1 on loopback: nobody listens, the connection is refused at once.
  auto s = PostgresApprovalStore::Open("host=127.0.0.1 port=1 user=aegis dbname=x");
  EXPECT_EQ(Code(s.status()), "UNAVAILABLE") << s.status();
}

}  // namespace
}  // namespace aegis::approvals
