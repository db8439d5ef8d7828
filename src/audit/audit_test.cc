// The audit trail as a user meets it: records written across segments and restarts verify; every
// kind of tampering (a flipped bit, a deleted, swapped or duplicated record, a cut end, a forged
// append, a rewritten chain, a segment from another trail) is found and the first bad record
// named; a crash leaves a trail that verifies and that the next writer continues; the overflow
// policies do what they say; and a writer killed with SIGKILL again and again never loses a
// record it acknowledged.
#include "audit/audit.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "audit/format.h"
#include "audit/key.h"
#include "common/digest.h"
#include "common/json.h"

namespace aegis::audit {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr int64_t kBaseTime = 1'767'225'600'000'000'000;  // 2026-01-01

Record MakeRecord(int i, const std::string& agent = "") {
  Record r;
  r.decision_id = "dec_01J9ZK3V6Q8X4T2N5R7M" + std::to_string(i);
  r.tenant = "acme-finance";
  r.agent = agent.empty() ? "finance-agent-" + std::to_string(i % 4) : agent;
  r.tool = i % 3 == 0 ? "ehr" : "stripe";
  r.action = i % 3 == 0 ? "export_records" : "create_payment";
  r.decision = i % 5 == 0 ? "approval_needed" : "allow";
  r.effective = r.decision;
  r.policy_version = "sha256:3f1c9a7be04d2e61";
  r.front_door = "decide_api";
  r.reasons = {"rule:payments", "limits:ok"};
  r.rule = "payments";
  r.cost_micros = 2000;
  r.time_unix_nanos = kBaseTime + int64_t{i} * 1'000'000;
  r.params_redacted_json =
      R"({"amount":)" + std::to_string(100 + i) +
      R"(,"currency":"usd","customer":{"email":"[REDACTED:email]"},"memo":"Invoice 2024-0042"})";
  r.params_sha256 = common::Sha256Hex(r.params_redacted_json);
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  return r;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

unsigned ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// The offset of the line of record `seq` in a segment's content, or npos.
size_t RecordLine(const std::string& content, uint64_t seq) {
  size_t at = content.find("\n{\"seq\":" + std::to_string(seq) + ",");
  return at == std::string::npos ? at : at + 1;
}

std::string LineAt(const std::string& content, size_t at) {
  return content.substr(at, content.find('\n', at) + 1 - at);
}

// Recomputes prev and hash of every record line from the first one whose seq >= `from`, as a
// forger without the key could: checkpoints are left as they are.
std::string Rehash(const std::string& content, uint64_t from) {
  std::string out;
  std::string prev;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    std::string line = content.substr(pos, end - pos);
    pos = end + 1;
    auto entry = ParseEntry(line);
    if (entry.ok() && entry->kind == Entry::Kind::kRecord && entry->seq >= from) {
      std::string body = line.substr(0, line.rfind(",\"hash\":\""));
      if (!prev.empty()) {
        size_t p = body.find("\"prev\":\"") + 8;
        body.replace(p, 64, prev);
      }
      std::string hash = common::Sha256Hex(body);
      line = body + ",\"hash\":\"" + hash + "\"}";
      prev = hash;
    } else if (entry.ok() && entry->kind == Entry::Kind::kRecord) {
      prev = entry->hash;
    }
    out += line + "\n";
  }
  return out;
}

// Blocks the writer thread (WriterOptions::before_batch_for_test) until released.
class WriterGate {
 public:
  std::function<void()> Hook() {
    return [this] {
      std::unique_lock lock(mu_);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lock, [this] { return released_; });
    };
  }
  void WaitEntered() {
    std::unique_lock lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [this] { return entered_; }));
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
};

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "aegis_audit_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    root_ = templ;
    dir_ = root_ + "/data/audit";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  WriterOptions Options(const std::string& dir = "") {
    WriterOptions o;
    o.dir = dir.empty() ? dir_ : dir;
    o.checkpoint_every = 20;
    o.fsync_interval = std::chrono::milliseconds(2);
    return o;
  }

  std::unique_ptr<Writer> MustOpen(WriterOptions options) {
    auto w = Writer::Open(std::move(options), [this](std::string_view level, const std::string& m) {
      std::lock_guard lock(log_mu_);
      logs_.push_back(std::string(level) + ": " + m);
    });
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? std::move(*w) : nullptr;
  }

  // A closed trail of `n` records (seqs from the previous end + 1).
  void WriteTrail(int n, WriterOptions options) {
    auto w = MustOpen(std::move(options));
    ASSERT_NE(w, nullptr);
    for (int i = 1; i <= n; ++i) ASSERT_TRUE(w->Append(MakeRecord(i)));
    ASSERT_TRUE(w->Flush().ok());
    w->Close();
  }
  void WriteTrail(int n) { WriteTrail(n, Options()); }

  // Runs `fn` in a child process that then exits without closing the writer: a crash.
  void CrashAfter(const std::function<void()>& fn) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      fn();
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }

  // In a child: opens, appends `n` records synchronously, and crashes.
  void AppendThenCrash(int n, int first = 1) {
    CrashAfter([&] {
      auto w = Writer::Open(Options(), nullptr);
      if (!w.ok()) ::_exit(2);
      for (int i = first; i < first + n; ++i) {
        if (!(*w)->AppendSync(MakeRecord(i)).ok()) ::_exit(3);
      }
      ::_exit(0);  // without Close: a crash
    });
  }

  std::string Segment(int index) { return dir_ + "/" + SegmentFileName(index); }

  std::vector<std::string> Logs() {
    std::lock_guard lock(log_mu_);
    return logs_;
  }

  std::string root_;
  std::string dir_;
  std::mutex log_mu_;
  std::vector<std::string> logs_;
};

TEST_F(AuditTest, RoundTripAcrossSegments) {
  WriterOptions o = Options();
  o.segment_max_bytes = 16 << 10;
  WriteTrail(500, o);

  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.records, 500u);
  EXPECT_EQ(r.last_record, 500u);
  EXPECT_GE(r.segments, 10u);
  EXPECT_TRUE(r.closed_cleanly);
  EXPECT_EQ(r.unsealed_records, 0u);
  EXPECT_THAT(r.warnings, IsEmpty());
  EXPECT_EQ(r.first_bad_record, 0u);
  // A checkpoint at each roll (every ~20 records here), and the open and close ones.
  EXPECT_GE(r.checkpoints, r.segments - 1 + 2);
  EXPECT_EQ(r.key_id, KeyIdOf(r.public_key_hex));

  // Every segment stays under its size, and the files are private.
  for (uint64_t i = 1; i <= r.segments; ++i) {
    EXPECT_LE(std::filesystem::file_size(Segment(static_cast<int>(i))), 16u << 10);
    EXPECT_EQ(ModeOf(Segment(static_cast<int>(i))), 0600u);
  }
  EXPECT_EQ(ModeOf(dir_), 0700u);
  EXPECT_EQ(ModeOf(dir_ + "/audit_key.pem"), 0600u);

  // Show: filters, oldest first, the most recent `limit`.
  auto all = Show(dir_, ShowFilter{.limit = 0});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 500u);
  auto some = Show(dir_, ShowFilter{.agent = "finance-agent-1", .tool = "ehr", .limit = 5});
  ASSERT_TRUE(some.ok());
  ASSERT_EQ(some->size(), 5u);
  for (const std::string& line : *some) {
    auto json = common::ParseJson(line, {.max_bytes = kMaxLineBytes});
    ASSERT_TRUE(json.ok()) << line;
    EXPECT_EQ(json->Find("agent")->as_string(), "finance-agent-1");
    EXPECT_EQ(json->Find("tool")->as_string(), "ehr");
  }
  // i % 4 == 1 and i % 3 == 0: 489 is the last such i <= 500, 441 the fifth from last.
  EXPECT_THAT(some->front(), HasSubstr("dec_01J9ZK3V6Q8X4T2N5R7M441\""));
  EXPECT_THAT(some->back(), HasSubstr("dec_01J9ZK3V6Q8X4T2N5R7M489\""));
  auto window = Show(dir_, ShowFilter{.decision = "approval_needed",
                                      .since_unix_nanos = kBaseTime + 100'000'000,
                                      .until_unix_nanos = kBaseTime + 200'000'000,
                                      .limit = 0});
  ASSERT_TRUE(window.ok());
  EXPECT_EQ(window->size(), 20u);  // i in [100, 200) with i % 5 == 0
  EXPECT_FALSE(Show(root_ + "/nowhere", ShowFilter{}).ok());
}

// The sinks' feed: every record line, exactly as in the segments, in order, and only once
// durable — across segment rolls and with the writer's own event records.
TEST_F(AuditTest, DurableLinesReachOnDurableInOrder) {
  std::mutex mu;
  std::string published;
  WriterOptions o = Options();
  o.segment_max_bytes = 16 << 10;
  o.on_durable = [&](std::string_view lines) {
    ASSERT_FALSE(lines.empty());
    ASSERT_EQ(lines.back(), '\n');
    std::lock_guard lock(mu);
    published += lines;
  };
  auto w = MustOpen(o);
  for (int i = 1; i <= 300; ++i) ASSERT_TRUE(w->Append(MakeRecord(i)));
  ASSERT_TRUE(w->Flush().ok());
  {
    std::lock_guard lock(mu);  // Flush returns once durable; on_durable ran before it woke us
    EXPECT_EQ(std::count(published.begin(), published.end(), '\n'), 300);
  }
  std::string metrics;
  w->AppendMetrics(metrics);
  EXPECT_THAT(metrics, HasSubstr("aegis_audit_records_total{result=\"appended\"} 300\n"));
  EXPECT_THAT(metrics, HasSubstr("aegis_audit_records_total{result=\"durable\"} 300\n"));
  EXPECT_THAT(metrics, HasSubstr("aegis_audit_records_total{result=\"dropped\"} 0\n"));
  EXPECT_THAT(metrics, HasSubstr("aegis_audit_writer_up 1\n"));
  w->Close();
  metrics.clear();
  w->AppendMetrics(metrics);
  EXPECT_THAT(metrics, HasSubstr("aegis_audit_writer_up 0\n"));

  auto lines = Show(dir_, ShowFilter{.limit = 0});
  ASSERT_TRUE(lines.ok());
  ASSERT_EQ(lines->size(), 300u);
  std::string expected;
  for (const std::string& line : *lines) expected += line + "\n";
  std::lock_guard lock(mu);
  EXPECT_EQ(published, expected);
  EXPECT_GE(Verify(dir_).segments, 5u);
}

TEST_F(AuditTest, RecordLineFormatIsTheDocumentedOne) {
  WriteTrail(3);
  std::string seg = ReadFile(Segment(1));
  std::string line = LineAt(seg, RecordLine(seg, 2));
  line.pop_back();  // '\n'
  // hash = SHA-256 of the bytes before ,"hash":" ; prev = the previous record's hash.
  size_t cut = line.rfind(",\"hash\":\"");
  ASSERT_NE(cut, std::string::npos);
  EXPECT_EQ(line.substr(cut + 9, 64), common::Sha256Hex(line.substr(0, cut)));
  std::string first = LineAt(seg, RecordLine(seg, 1));
  auto one = ParseEntry(first.substr(0, first.size() - 1));
  auto two = ParseEntry(line);
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_EQ(two->prev, one->hash);
  auto chain = ParseChainInfo(ReadFile(dir_ + "/chain.json"));
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(one->prev, chain->chain_id);  // record 1 chains to the chain id
  EXPECT_EQ(two->record.Find("params")->Find("amount")->as_int(), 102);
  EXPECT_EQ(two->record.Find("reasons")->as_array().size(), 2u);
  // A realistic record is about 600 bytes.
  EXPECT_GT(line.size(), 550u);
  EXPECT_LT(line.size(), 800u);
}

TEST_F(AuditTest, UnsafeFieldsAreStoredSafely) {
  Record r = MakeRecord(1);
  r.agent = std::string("bad\xff\xfe utf8\n\"quoted\"");
  r.tool = std::string(20000, 'x');
  r.params_redacted_json = "[1,2,3]";
  Record r2 = MakeRecord(2);
  r2.params_redacted_json = "{\"a\":\n 1}";  // valid, multi-line: stored canonical, one line
  Record r3 = MakeRecord(3);
  r3.params_redacted_json = "{\"a\":1,\"a\":2}";
  {
    auto w = MustOpen(Options());
    ASSERT_TRUE(w->AppendSync(r).ok());
    ASSERT_TRUE(w->AppendSync(r2).ok());
    ASSERT_TRUE(w->AppendSync(r3).ok());
  }
  VerifyReport v = Verify(dir_);
  ASSERT_TRUE(v.ok) << v.error;
  auto lines = Show(dir_, ShowFilter{.limit = 0});
  ASSERT_TRUE(lines.ok());
  ASSERT_EQ(lines->size(), 3u);
  auto one = ParseEntry((*lines)[0]);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->record.Find("agent")->as_string(), "bad\xEF\xBF\xBD\xEF\xBF\xBD utf8\n\"quoted\"");
  EXPECT_LE(one->record.Find("tool")->as_string().size(), kMaxFieldBytes);
  EXPECT_THAT(one->record.Find("tool")->as_string(), HasSubstr("[truncated]"));
  EXPECT_NE(one->record.Find("params")->Find("_aegis_params_omitted"), nullptr);
  EXPECT_THAT((*lines)[1], HasSubstr("\"params\":{\"a\":1}"));
  EXPECT_THAT((*lines)[2], HasSubstr("_aegis_params_omitted"));
}

TEST_F(AuditTest, RestartContinuesTheChain) {
  WriteTrail(30);
  {
    auto w = MustOpen(Options());
    for (int i = 31; i <= 45; ++i) ASSERT_TRUE(w->AppendSync(MakeRecord(i)).ok());
    EXPECT_EQ(w->stats().last_durable_seq, 45u);
  }
  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.records, 45u);
  EXPECT_TRUE(r.closed_cleanly);
  EXPECT_THAT(r.warnings, IsEmpty());  // a clean close and restart is not worth a warning
  auto lines = Show(dir_, ShowFilter{.limit = 0});
  ASSERT_TRUE(lines.ok());
  for (size_t i = 0; i < lines->size(); ++i) {
    EXPECT_THAT((*lines)[i], HasSubstr("{\"seq\":" + std::to_string(i + 1) + ","));
  }
}

TEST_F(AuditTest, SecondWriterOnTheSameDirectoryIsRefused) {
  auto w = MustOpen(Options());
  auto second = Writer::Open(Options(), nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another writer"));
  w->Close();
  auto third = Writer::Open(Options(), nullptr);
  EXPECT_TRUE(third.ok()) << third.status();
}

TEST_F(AuditTest, KeyReadableByOthersIsRefused) {
  WriteTrail(1);
  ASSERT_EQ(::chmod((dir_ + "/audit_key.pem").c_str(), 0644), 0);
  auto w = Writer::Open(Options(), nullptr);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.status().message(), HasSubstr("chmod 600"));
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  w = Writer::Open(Options(), nullptr);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.status().message(), HasSubstr("chmod 700"));
}

// ---- Tampering: each mutation is found, and the first bad record named. ----

class AuditMutationTest : public AuditTest {
 protected:
  void SetUp() override {
    AuditTest::SetUp();
    WriteTrail(100);  // one segment; checkpoints at 0 (open), 20, 40, ..., 100, 100 (close)
    seg_ = ReadFile(Segment(1));
    ASSERT_TRUE(Verify(dir_).ok);
  }
  VerifyReport Mutated(const std::string& content) {
    WriteFile(Segment(1), content);
    return Verify(dir_);
  }
  std::string seg_;
};

TEST_F(AuditMutationTest, BitFlipInARecord) {
  size_t at = RecordLine(seg_, 37);
  size_t agent = seg_.find("\"agent\":\"", at) + 12;
  seg_[agent] ^= 0x01;
  VerifyReport r = Mutated(seg_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("(record 37): record 37 altered (its hash does not match"));
  EXPECT_THAT(r.error, HasSubstr("segment 000001.log line "));
  EXPECT_EQ(r.first_bad_record, 37u);
}

TEST_F(AuditMutationTest, BitFlipThatBreaksTheJson) {
  size_t at = RecordLine(seg_, 12);
  seg_[seg_.find("\"tenant\"", at)] ^= 0x40;  // '"' becomes 'b'
  VerifyReport r = Mutated(seg_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("(record 12): malformed line"));
  EXPECT_EQ(r.first_bad_record, 12u);
}

TEST_F(AuditMutationTest, RecordDeleted) {
  size_t at = RecordLine(seg_, 37);
  seg_.erase(at, LineAt(seg_, at).size());
  VerifyReport r = Mutated(seg_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("record 37 is missing or out of order: found record 38 after "
                                 "record 36"));
  EXPECT_EQ(r.first_bad_record, 37u);
}

TEST_F(AuditMutationTest, RecordsSwapped) {
  size_t a = RecordLine(seg_, 37);
  std::string l37 = LineAt(seg_, a);
  std::string l38 = LineAt(seg_, a + l37.size());
  seg_.replace(a, l37.size() + l38.size(), l38 + l37);
  VerifyReport r = Mutated(seg_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("record 37 is missing or out of order: found record 38"));
  EXPECT_EQ(r.first_bad_record, 37u);
}

TEST_F(AuditMutationTest, RecordDuplicated) {
  size_t a = RecordLine(seg_, 37);
  seg_.insert(a, LineAt(seg_, a));
  VerifyReport r = Mutated(seg_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("(record 38): record 37 appears twice"));
  EXPECT_EQ(r.first_bad_record, 38u);  // records 1..37 verified; the trail goes wrong after them
}

TEST_F(AuditMutationTest, WholeRecordsCutFromTheEnd) {
  seg_.resize(RecordLine(seg_, 91));  // records 91..100 and the last checkpoints gone
  VerifyReport r = Mutated(seg_);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error,
            "records missing after record 90: the last checkpoint (head.json) covers record 100");
  EXPECT_EQ(r.first_bad_record, 91u);
  // And the writer refuses to continue such a trail.
  auto w = Writer::Open(Options(), nullptr);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.status().message(), HasSubstr("records were removed"));
}

TEST_F(AuditMutationTest, CutBackToACheckpointAndHeadRewritten) {
  // Someone with write access cuts the trail back to the checkpoint at record 60 and replaces
  // head.json by that checkpoint: only an anchor kept elsewhere can tell.
  std::string anchor = ReadFile(dir_ + "/head.json");
  size_t cp60 = seg_.find("\"reason\":\"interval\",\"seq\":60,");
  size_t line_start = seg_.rfind('\n', cp60) + 1;
  std::string cp_line = LineAt(seg_, line_start);
  seg_.resize(line_start + cp_line.size());
  WriteFile(dir_ + "/head.json", cp_line);
  VerifyReport r = Mutated(seg_);
  EXPECT_TRUE(r.ok) << r.error;  // indistinguishable from a crash right after that checkpoint
  EXPECT_THAT(r.warnings,
              Contains(HasSubstr("ended without a closing checkpoint after record 60")));
  VerifyReport pinned = Verify(dir_, VerifyOptions{.anchor_checkpoint = anchor});
  EXPECT_FALSE(pinned.ok);
  EXPECT_EQ(pinned.error,
            "records missing after record 60: the last checkpoint (the anchor "
            "checkpoint) covers record 100");
  EXPECT_EQ(pinned.first_bad_record, 61u);
}

TEST_F(AuditMutationTest, ForgedAppendAfterTheClosingCheckpoint) {
  std::string l100 = LineAt(seg_, RecordLine(seg_, 100));
  auto last = ParseEntry(l100.substr(0, l100.size() - 1));
  ASSERT_TRUE(last.ok());
  std::string forged;
  AppendRecordLine(MakeRecord(101, "mallory"), "{}", 101, last->hash, forged);
  VerifyReport r = Mutated(seg_ + forged);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("record 101 follows the closing checkpoint at record 100 without "
                                 "an open checkpoint"));
  EXPECT_EQ(r.first_bad_record, 101u);
}

TEST_F(AuditMutationTest, RewrittenChainIsCaughtByTheNextCheckpoint) {
  size_t at = RecordLine(seg_, 30);
  size_t agent = seg_.find("\"agent\":\"", at) + 9;
  seg_.replace(agent, 13, "mallory-agent");
  VerifyReport r = Mutated(Rehash(seg_, 30));  // every hash recomputed from record 30 on
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("checkpoint at record 40 does not match the trail"));
  EXPECT_EQ(r.first_bad_record, 21u);  // the checkpoint at 20 still vouches for 1..20
}

TEST_F(AuditMutationTest, CheckpointSignatureAltered) {
  size_t cp40 = seg_.find("\"reason\":\"interval\",\"seq\":40,");
  size_t sig = seg_.find("\"sig\":\"", cp40) + 7;
  seg_[sig] = seg_[sig] == '0' ? '1' : '0';
  VerifyReport r = Mutated(seg_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("signature of checkpoint at record 40 does not verify"));
  EXPECT_EQ(r.first_bad_record, 21u);
}

TEST_F(AuditMutationTest, HeadDeletedOrKeyReplaced) {
  std::filesystem::remove(dir_ + "/head.json");
  VerifyReport r = Verify(dir_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("head.json is missing"));
  EXPECT_FALSE(Writer::Open(Options(), nullptr).ok());

  VerifyReport pinned = Verify(dir_, VerifyOptions{.expected_key_id = "0123456789abcdef"});
  EXPECT_FALSE(pinned.ok);
  EXPECT_THAT(pinned.error, HasSubstr("not the expected key 0123456789abcdef"));
}

TEST_F(AuditMutationTest, DamagedLastSegmentIsNotContinued) {
  size_t at = RecordLine(seg_, 99);
  seg_[seg_.find("\"tool\":\"", at) + 8] ^= 0x02;
  WriteFile(Segment(1), seg_);
  auto w = Writer::Open(Options(), nullptr);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.status().message(), HasSubstr("record 99 altered"));
  EXPECT_EQ(ReadFile(Segment(1)), seg_);  // nothing cut, nothing added
}

TEST_F(AuditTest, SegmentFromAnotherChain) {
  WriterOptions o = Options();
  o.segment_max_bytes = 8 << 10;
  WriteTrail(60, o);
  std::string other = root_ + "/other";
  WriterOptions p = Options(other);
  p.segment_max_bytes = 8 << 10;
  WriteTrail(60, p);
  ASSERT_TRUE(Verify(other).ok);
  std::filesystem::copy_file(other + "/000002.log", Segment(2),
                             std::filesystem::copy_options::overwrite_existing);
  VerifyReport r = Verify(dir_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("segment 000002.log line 1"));
  EXPECT_THAT(r.error, HasSubstr("segment from another chain"));
  EXPECT_GT(r.first_bad_record, 1u);
  EXPECT_EQ(r.first_bad_record, r.last_record + 1);
}

TEST_F(AuditTest, SegmentMissingFromTheMiddle) {
  WriterOptions o = Options();
  o.segment_max_bytes = 8 << 10;
  WriteTrail(80, o);
  ASSERT_GE(Verify(dir_).segments, 4u);
  std::filesystem::remove(Segment(2));
  VerifyReport r = Verify(dir_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("segment 000002.log is missing (between 000001.log and "
                                 "000003.log)"));
  EXPECT_EQ(r.first_bad_record, r.last_record + 1);
}

TEST_F(AuditTest, NotATrail) {
  VerifyReport r = Verify(root_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("is not an audit trail: chain.json is missing"));
}

// ---- Crashes ----

TEST_F(AuditTest, CrashLeavesAnUnsealedTailThatTheNextStartSeals) {
  WriteTrail(10);
  AppendThenCrash(5, 11);
  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.records, 15u);
  EXPECT_FALSE(r.closed_cleanly);
  EXPECT_EQ(r.unsealed_records, 5u);
  EXPECT_THAT(r.warnings,
              Contains(AllOf(HasSubstr("ended without a closing checkpoint after record 15"),
                             HasSubstr("records 11..15 are hash-chained but no signed "
                                       "checkpoint covers them"))));

  WriteTrail(0);  // restart and close
  EXPECT_THAT(Logs(), Contains(HasSubstr("stopped after record 15 without a closing checkpoint")));
  r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.closed_cleanly);
  EXPECT_EQ(r.unsealed_records, 0u);
  EXPECT_THAT(r.warnings, Contains(HasSubstr("its next start sealed records 11..15")));
}

TEST_F(AuditTest, ForgedAppendAfterACrashIsOnlyHashChained) {
  // The documented limit: past the last signed checkpoint, a forger who recomputes hashes cannot
  // be told from the writer. Verify passes but says those records are not sealed.
  AppendThenCrash(5);
  std::string seg = ReadFile(Segment(1));
  std::string l5 = LineAt(seg, RecordLine(seg, 5));
  auto five = ParseEntry(l5.substr(0, l5.size() - 1));
  ASSERT_TRUE(five.ok());
  AppendRecordLine(MakeRecord(6, "mallory"), "{}", 6, five->hash, seg);
  WriteFile(Segment(1), seg);
  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.unsealed_records, 6u);
  EXPECT_THAT(r.warnings, Contains(HasSubstr("records 1..6 are hash-chained but no signed")));
}

TEST_F(AuditTest, TornTailIsCutAtOpenAndVerifyWarnsBeforeThat) {
  AppendThenCrash(8);
  std::string seg = ReadFile(Segment(1));
  size_t at = RecordLine(seg, 8);
  seg.resize(at + 123);  // a crash in the middle of writing record 8
  WriteFile(Segment(1), seg);

  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.last_record, 7u);
  EXPECT_THAT(r.warnings, Contains(HasSubstr("ends in an unfinished line (123 bytes after record "
                                             "7): a crash mid-write")));

  {
    auto w = MustOpen(Options());
    ASSERT_TRUE(w->AppendSync(MakeRecord(100)).ok());
  }
  EXPECT_THAT(Logs(), Contains(AllOf(HasSubstr("cut 123 bytes at offset " + std::to_string(at)),
                                     HasSubstr("after record 7"))));
  r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.records, 8u);  // the new record took seq 8
  EXPECT_TRUE(r.closed_cleanly);
  EXPECT_THAT(r.warnings, Not(Contains(HasSubstr("unfinished"))));
}

TEST_F(AuditTest, TrailingNulBytesAreATornTail) {
  AppendThenCrash(3);
  std::string seg = ReadFile(Segment(1));
  WriteFile(Segment(1), seg + std::string(4096, '\0'));
  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_THAT(r.warnings, Contains(HasSubstr("4096 bytes after record 3")));
  WriteTrail(0);
  EXPECT_TRUE(Verify(dir_).ok);
  // NUL bytes with records after them are damage, not a crash.
  seg = ReadFile(Segment(1));
  size_t at = RecordLine(seg, 2);
  seg.insert(at, std::string(10, '\0') + "\n");
  WriteFile(Segment(1), seg);
  r = Verify(dir_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("(record 2): a line of NUL bytes inside the segment"));
}

TEST_F(AuditTest, CrashWhileCreatingASegment) {
  WriterOptions o = Options();
  o.segment_max_bytes = 8 << 10;
  WriteTrail(40, o);
  VerifyReport before = Verify(dir_);
  // The writer died while rolling: the roll checkpoint is in the last segment (here it replaces
  // the closing one, signed with the trail's own key) and the next segment file exists, its
  // header unfinished.
  std::string last = Segment(static_cast<int>(before.segments));
  std::string content = ReadFile(last);
  content.erase(content.rfind("{\"checkpoint\""));
  auto chain = ParseChainInfo(ReadFile(dir_ + "/chain.json"));
  auto key = SigningKey::FromPem(ReadFile(dir_ + "/audit_key.pem"));
  ASSERT_TRUE(chain.ok() && key.ok());
  std::string l40 = LineAt(content, RecordLine(content, 40));
  auto forty = ParseEntry(l40.substr(0, l40.size() - 1));
  ASSERT_TRUE(forty.ok());
  Checkpoint roll{chain->chain_id, 40, forty->hash, kBaseTime, CheckpointReason::kRoll,
                  chain->key_id,   ""};
  roll.sig_hex = *key->SignHex(CheckpointMessage(roll));
  WriteFile(last, content + EncodeCheckpoint(roll));
  std::string next = Segment(static_cast<int>(before.segments) + 1);
  WriteFile(next, "{\"segment\":{\"chain\":\"");
  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_THAT(r.warnings, Contains(HasSubstr("holds no complete header")));
  {
    auto w = MustOpen(o);
    ASSERT_TRUE(w->AppendSync(MakeRecord(41)).ok());
  }
  EXPECT_THAT(Logs(), Contains(HasSubstr("removing " + next)));
  r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.records, 41u);
  EXPECT_THAT(r.warnings, Contains(HasSubstr("stopped after its roll checkpoint at record 40")));
}

TEST_F(AuditTest, TornTailOnlyInTheLastSegment) {
  WriterOptions o = Options();
  o.segment_max_bytes = 8 << 10;
  WriteTrail(40, o);
  std::string seg = ReadFile(Segment(1));
  WriteFile(Segment(1), seg + "{\"seq\":9");
  VerifyReport r = Verify(dir_);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("segment 000001.log ends in 8 bytes of an unfinished line"));
}

// ---- Overflow policies ----

TEST_F(AuditTest, FailClosedRefusesWhenTheQueueIsFull) {
  WriterGate gate;
  WriterOptions o = Options();
  o.queue_capacity = 1;
  o.before_batch_for_test = gate.Hook();
  auto w = MustOpen(o);
  ASSERT_TRUE(w->Append(MakeRecord(1)));
  gate.WaitEntered();  // the writer is stalled and has not taken record 1
  EXPECT_FALSE(w->Append(MakeRecord(2)));
  common::Status sync = w->AppendSync(MakeRecord(3));
  EXPECT_EQ(sync.code(), common::StatusCode::kResourceExhausted);
  Writer::Stats s = w->stats();
  EXPECT_EQ(s.appended, 1u);
  EXPECT_EQ(s.refused, 2u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.queue_depth, 1u);
  gate.Release();
  ASSERT_TRUE(w->Flush().ok());
  EXPECT_EQ(w->stats().durable, 1u);
  w->Close();
  EXPECT_FALSE(w->Append(MakeRecord(4)));  // closed: refused
  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.records, 1u);
}

TEST_F(AuditTest, DropAndCountDropsCountsAndNotesItInTheTrail) {
  WriterGate gate;
  WriterOptions o = Options();
  o.queue_capacity = 1;
  o.overflow = OverflowPolicy::kDropAndCount;
  o.before_batch_for_test = gate.Hook();
  auto w = MustOpen(o);
  ASSERT_TRUE(w->Append(MakeRecord(1)));
  gate.WaitEntered();
  EXPECT_TRUE(w->Append(MakeRecord(2)));  // dropped, the decision goes on
  EXPECT_TRUE(w->Append(MakeRecord(3)));
  EXPECT_EQ(w->stats().dropped, 2u);
  EXPECT_EQ(w->stats().refused, 0u);
  gate.Release();
  ASSERT_TRUE(w->Flush().ok());
  w->Close();
  EXPECT_THAT(Logs(), Contains(HasSubstr("2 records were dropped")));
  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.records, 2u);  // record 1 and the writer's note
  EXPECT_THAT(r.warnings, Contains(HasSubstr("2 records were dropped")));
  auto lines = Show(dir_, ShowFilter{});
  ASSERT_TRUE(lines.ok());
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_THAT((*lines)[1], HasSubstr("\"event\":\"records_dropped\",\"count\":2"));
  auto filtered = Show(dir_, ShowFilter{.agent = "finance-agent-1"});
  ASSERT_TRUE(filtered.ok());
  EXPECT_EQ(filtered->size(), 1u);  // events match no agent filter
}

TEST_F(AuditTest, BlockWaitsForRoom) {
  WriterGate gate;
  WriterOptions o = Options();
  o.queue_capacity = 1;
  o.overflow = OverflowPolicy::kBlock;
  o.before_batch_for_test = gate.Hook();
  auto w = MustOpen(o);
  ASSERT_TRUE(w->Append(MakeRecord(1)));
  gate.WaitEntered();
  std::atomic<bool> done{false};
  std::thread blocked([&] {
    EXPECT_TRUE(w->Append(MakeRecord(2)));
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(done.load());
  gate.Release();
  blocked.join();
  EXPECT_TRUE(done.load());
  ASSERT_TRUE(w->Flush().ok());
  w->Close();
  EXPECT_EQ(Verify(dir_).records, 2u);
}

TEST_F(AuditTest, ConcurrentAppendSyncShareFsyncs) {
  WriterOptions o = Options();
  o.segment_max_bytes = 64 << 10;
  auto w = MustOpen(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        EXPECT_TRUE(w->AppendSync(MakeRecord(t * 1000 + i)).ok());
      }
    });
  }
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) EXPECT_TRUE(w->Append(MakeRecord(10000 + t * 1000 + i)));
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(w->Flush().ok());
  Writer::Stats s = w->stats();
  EXPECT_EQ(s.appended, 2600u);
  EXPECT_EQ(s.durable, 2600u);
  EXPECT_EQ(s.last_durable_seq, 2600u);
  w->Close();
  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.records, 2600u);
  EXPECT_GT(r.segments, 1u);
}

// ---- kill -9 during heavy appends ----

// What the child reports through the pipe once AppendSync returned OK for a record.
struct Ack {
  int64_t round;
  int64_t index;
};

TEST_F(AuditTest, KillNineLoopLosesNothingAcknowledged) {
  constexpr int kRounds = 10;
  std::mt19937 rng(20260101);
  std::vector<Ack> acked;
  int torn = 0;  // kills that left a half-written line
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      WriterOptions o = Options();
      o.segment_max_bytes = 1 << 20;  // rolls happen during the run too
      o.checkpoint_every = 500;
      o.queue_capacity = 1024;
      o.overflow = OverflowPolicy::kBlock;
      auto w = Writer::Open(o, nullptr);
      if (!w.ok()) {
        std::fprintf(stderr, "child: %s\n", w.status().ToString().c_str());
        ::_exit(2);
      }
      // Heavy load besides the acknowledged appends: big batches, so kills land mid-write.
      std::thread background([&w] {
        for (int i = 0;; ++i) {
          (*w)->Append(MakeRecord(i, "background-agent"));
          if (i % 32 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      });
      background.detach();
      for (int64_t i = 0;; ++i) {
        Record r = MakeRecord(static_cast<int>(i));
        r.decision_id = "kill-" + std::to_string(round) + "-" + std::to_string(i);
        if (!(*w)->AppendSync(std::move(r)).ok()) ::_exit(3);
        Ack a{round, i};
        if (::write(fds[1], &a, sizeof a) != sizeof a) ::_exit(4);
      }
    }
    ::close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::uniform_int_distribution<int>(round == 0 ? 100 : 20, 250)(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child stopped by itself: status " << status;
    Ack a;
    size_t got = 0;
    while (::read(fds[0], &a, sizeof a) == sizeof a) {
      acked.push_back(a);
      ++got;
    }
    ::close(fds[0]);
    // After every kill the trail verifies as it is (a torn tail or unsealed records are warnings).
    VerifyReport r = Verify(dir_);
    ASSERT_TRUE(r.ok) << "round " << round << ": " << r.error;
    EXPECT_GE(r.last_record, got);
    for (const std::string& w : r.warnings) torn += w.find("unfinished") != std::string::npos;
  }
  ASSERT_GT(acked.size(), 20u);  // the children got somewhere before they were killed

  WriteTrail(0);  // recover and close cleanly
  VerifyReport r = Verify(dir_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.closed_cleanly);
  EXPECT_GT(r.segments, 1u);

  auto lines = Show(dir_, ShowFilter{.limit = 0});
  ASSERT_TRUE(lines.ok());
  std::map<std::string, int64_t> seq_of;
  for (const std::string& line : *lines) {
    auto e = ParseEntry(line);
    ASSERT_TRUE(e.ok());
    seq_of[e->record.Find("decision_id")->as_string()] = static_cast<int64_t>(e->seq);
  }
  int64_t prev_seq = 0;
  for (const Ack& a : acked) {
    std::string id = "kill-" + std::to_string(a.round) + "-" + std::to_string(a.index);
    auto it = seq_of.find(id);
    ASSERT_NE(it, seq_of.end()) << id << " was acknowledged but is not in the trail";
    EXPECT_GT(it->second, prev_seq) << id << " is out of order";  // acknowledged in this order
    prev_seq = it->second;
  }
  std::printf(
      "kill -9 loop: %zu acknowledged records over %d kills (%d left a torn line), %llu "
      "records, %llu segments, %zu warnings\n",
      acked.size(), kRounds, torn, static_cast<unsigned long long>(r.records),
      static_cast<unsigned long long>(r.segments), r.warnings.size());
  for (const std::string& w : r.warnings) std::printf("  warning: %s\n", w.c_str());
}

// docs/audit.md is enough to verify a trail: verify_trail.py implements it from the document
// alone (Python, `cryptography` for Ed25519) and must agree with Verify.
TEST_F(AuditTest, IndependentPythonVerifierAgrees) {
  if (std::system("python3 -c 'import cryptography' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3 with the cryptography package is not installed";
  }
  std::string script = (std::filesystem::path(__FILE__).parent_path() / "verify_trail.py").string();
  auto run = [&](const std::string& dir) {
    std::string cmd = "python3 " + script + " " + dir + " >/dev/null 2>&1";
    int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  WriterOptions o = Options();
  o.segment_max_bytes = 8 << 10;
  WriteTrail(60, o);
  AppendThenCrash(3, 61);
  ASSERT_TRUE(Verify(dir_).ok);
  EXPECT_EQ(run(dir_), 0);
  WriteTrail(5, o);
  ASSERT_TRUE(Verify(dir_).ok);
  EXPECT_EQ(run(dir_), 0);

  std::string seg = ReadFile(Segment(2));
  size_t at = seg.find("{\"seq\":");
  std::string flipped = seg;
  flipped[seg.find("\"agent\":\"", at) + 10] ^= 0x01;
  WriteFile(Segment(2), flipped);
  EXPECT_FALSE(Verify(dir_).ok);
  EXPECT_EQ(run(dir_), 1);
  WriteFile(Segment(2), seg);
  std::string last = Segment(static_cast<int>(Verify(dir_).segments));
  std::string content = ReadFile(last);
  WriteFile(last, content.substr(0, content.rfind("{\"seq\":")));
  EXPECT_FALSE(Verify(dir_).ok);
  EXPECT_EQ(run(dir_), 1);
}

TEST(AuditFormatTest, SegmentFileNames) {
  EXPECT_EQ(SegmentFileName(1), "000001.log");
  EXPECT_EQ(SegmentFileName(1234567), "1234567.log");
  EXPECT_EQ(ParseSegmentFileName("000042.log"), 42u);
  EXPECT_EQ(ParseSegmentFileName("1234567.log"), 1234567u);
  EXPECT_FALSE(ParseSegmentFileName("0000042.log"));
  EXPECT_FALSE(ParseSegmentFileName("000000.log"));
  EXPECT_FALSE(ParseSegmentFileName("00004a.log"));
  EXPECT_FALSE(ParseSegmentFileName("head.json"));
}

}  // namespace
}  // namespace aegis::audit
