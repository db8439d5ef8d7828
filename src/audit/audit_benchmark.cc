// Audit append throughput with group commit (target: >= 100k records/s, DESIGN.md section 8),
// with realistic records (763-byte lines), against the floor of writing the same bytes unchained.
//
//   BM_AppendDurable/producers:N  N threads Append 100k records (kBlock), then Flush: records/s
//                                 made durable (hashed, chained, written, fdatasync'd, and
//                                 checkpointed every 10,000) with the default 10 ms interval
//   BM_AppendSync/threads:N       each thread waits for its record to be durable: the latency
//                                 of one group commit, and how threads share fsyncs
//   BM_FormatRecord               the writer thread's CPU per record: params check, line, SHA-256
//   BM_PlainWriteReference        the same lines, preformatted, written with write(2) in 4 MiB
//                                 chunks and one fdatasync per 10 ms: the file system's floor
//   BM_Verify                     offline verification, records/s
//
// Run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true for medians.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit.h"
#include "audit/format.h"
#include "common/digest.h"

namespace aegis::audit {
namespace {

constexpr int kBatch = 100'000;

Record Realistic(int i) {
  Record r;
  r.decision_id = "dec_01J9ZK3V6Q8X4T2N5R7M" + std::to_string(i);
  r.tenant = "acme-finance";
  r.agent = "finance-agent-" + std::to_string(i % 16);
  r.tool = "stripe";
  r.action = "create_payment";
  r.decision = "allow";
  r.effective = "allow";
  r.policy_version = "sha256:3f1c9a7be04d2e61";
  r.front_door = "decide_api";
  r.reasons = {"rule:payments", "limits:ok"};
  r.rule = "payments";
  r.cost_micros = 2000;
  r.time_unix_nanos = 1'767'225'600'000'000'000 + i;
  r.params_redacted_json =
      R"({"amount":)" + std::to_string(100 + i % 5000) +
      R"(,"currency":"usd","customer":{"email":"[REDACTED:email]"},"memo":"Invoice 2024-0042"})";
  r.params_sha256 = common::Sha256Hex(r.params_redacted_json);
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  return r;
}

class TempDir {
 public:
  TempDir() {
    std::string templ =
        std::filesystem::temp_directory_path().string() + "/aegis_audit_bench_XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    path_ = templ;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<Writer> OpenWriter(const std::string& dir) {
  WriterOptions o;
  o.dir = dir;
  o.overflow = OverflowPolicy::kBlock;  // a benchmark measures the writer, not refusals
  auto w = Writer::Open(o, nullptr);
  if (!w.ok()) {
    std::fprintf(stderr, "%s\n", w.status().ToString().c_str());
    std::abort();
  }
  return std::move(*w);
}

void BM_AppendDurable(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  TempDir dir;
  auto w = OpenWriter(dir.path() + "/audit");
  std::vector<Record> records;
  for (int i = 0; i < 1024; ++i) records.push_back(Realistic(i));
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (int i = p; i < kBatch; i += producers) w->Append(records[i % records.size()]);
      });
    }
    for (auto& t : threads) t.join();
    if (!w->Flush().ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  Writer::Stats s = w->stats();
  state.counters["segments"] = static_cast<double>(s.segments);
  w->Close();
}
BENCHMARK(BM_AppendDurable)
    ->ArgName("producers")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2);

void BM_AppendSync(benchmark::State& state) {
  static std::unique_ptr<TempDir> dir;
  static std::unique_ptr<Writer> w;
  if (state.thread_index() == 0) {
    dir = std::make_unique<TempDir>();
    w = OpenWriter(dir->path() + "/audit");
  }
  // Google Benchmark starts the timed loop of every thread together, after the setup above.
  Record r = Realistic(state.thread_index());
  for (auto _ : state) {
    if (!w->AppendSync(r).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    w->Close();
    w.reset();
    dir.reset();
  }
}
BENCHMARK(BM_AppendSync)->Threads(1)->Threads(8)->Threads(64)->UseRealTime()->MinTime(1);

void BM_FormatRecord(benchmark::State& state) {
  Record r = Realistic(7);
  std::string out;
  std::string prev(64, 'a');
  uint64_t seq = 1;
  for (auto _ : state) {
    out.clear();
    std::string params = NormalizeParams(r.params_redacted_json);
    benchmark::DoNotOptimize(AppendRecordLine(r, params, seq++, prev, out));
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["line_bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_FormatRecord);

void BM_PlainWriteReference(benchmark::State& state) {
  TempDir dir;
  std::string path = dir.path() + "/plain.log";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  std::string line;
  AppendRecordLine(Realistic(7), NormalizeParams(Realistic(7).params_redacted_json), 1,
                   std::string(64, 'a'), line);
  std::string buf;
  auto last_sync = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      buf += line;
      if (buf.size() >= (4 << 20)) {
        if (::write(fd, buf.data(), buf.size()) < 0) std::abort();
        buf.clear();
      }
      if (std::chrono::steady_clock::now() - last_sync >= std::chrono::milliseconds(10)) {
        ::fdatasync(fd);
        last_sync = std::chrono::steady_clock::now();
      }
    }
    if (::write(fd, buf.data(), buf.size()) < 0) std::abort();
    buf.clear();
    ::fdatasync(fd);
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_PlainWriteReference)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2);

void BM_Verify(benchmark::State& state) {
  TempDir dir;
  std::string trail = dir.path() + "/audit";
  {
    auto w = OpenWriter(trail);
    Record r = Realistic(1);
    for (int i = 0; i < kBatch; ++i) w->Append(r);
    if (!w->Flush().ok()) std::abort();
  }
  for (auto _ : state) {
    VerifyReport report = Verify(trail);
    if (!report.ok) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Verify)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace aegis::audit

BENCHMARK_MAIN();
