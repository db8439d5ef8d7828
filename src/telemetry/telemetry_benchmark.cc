// What tracing costs a decision: parsing the caller's traceparent, StartSpan, filling in the
// decision's attributes, and Export (the enqueue; sending happens on the exporter's thread), and
// what encoding costs per span on the exporter's thread.
#include <benchmark/benchmark.h>

#include <boost/beast/http.hpp>
#include <memory>
#include <string>
#include <vector>

#include "common/strings.h"
#include "net/http_server.h"
#include "telemetry/exporter.h"
#include "telemetry/otlp.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"

namespace aegis::telemetry {
namespace {

constexpr std::string_view kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// The attributes docs/tracing.md lists for a decision span, with typical values.
void FillDecision(Span& s) {
  s.attributes.strings.reserve(9);
  s.attributes.strings.emplace_back("aegis.agent", "finance-agent");
  s.attributes.strings.emplace_back("aegis.tenant", "acme");
  s.attributes.strings.emplace_back("aegis.tool", "stripe");
  s.attributes.strings.emplace_back("aegis.action", "create_payment");
  s.attributes.strings.emplace_back("aegis.decision", "allow");
  s.attributes.strings.emplace_back("aegis.rule", "payments");
  s.attributes.strings.emplace_back("aegis.policy_version", "sha256:9f86d081884c7d65");
  s.attributes.strings.emplace_back("aegis.decision_id", "dec_0123456789abcdef");
  s.attributes.strings.emplace_back("aegis.front_door", "decide_api");
  s.attributes.doubles.emplace_back("aegis.cost_usd", 0.002);
  s.attributes.bools.emplace_back("aegis.enforced", true);
  s.end_unix_nanos = s.start_unix_nanos + 1200;
}

void BM_ParseTraceparent(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(ParseTraceparent(kParent));
}
BENCHMARK(BM_ParseTraceparent);

void BM_StartSpan(benchmark::State& state) {
  TraceContext parent = ParseTraceparent(kParent);
  for (auto _ : state) benchmark::DoNotOptimize(StartSpan("aegis.decide", parent, 1, 1.0));
}
BENCHMARK(BM_StartSpan);

// StartSpan + the decision's attributes, no export: the part the caller always pays.
void BM_DecisionSpan(benchmark::State& state) {
  TraceContext parent = ParseTraceparent(kParent);
  for (auto _ : state) {
    Span s = StartSpan("aegis.decide", parent, 1700000000000000000, 1.0);
    FillDecision(s);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_DecisionSpan);

// A running exporter sending to a local receiver that answers 200.
class Sink {
 public:
  Sink() {
    net::HttpServerOptions options;
    options.address = "127.0.0.1:0";
    options.threads = 1;
    options.max_body_bytes = 16 << 20;
    server_ = std::make_unique<net::HttpServer>(
        options, [](const net::HttpRequest&, net::HttpResponse& res) {
          res.result(boost::beast::http::status::ok);
        });
    (void)server_->Start();
  }
  ~Sink() { server_->Stop(std::chrono::milliseconds(100)); }
  std::string Url() const {
    return common::StrCat("http://127.0.0.1:", server_->port(), "/v1/traces");
  }

 private:
  std::unique_ptr<net::HttpServer> server_;
};

// Per decision: StartSpan + attributes + Export (enqueue), with the exporter sending for real.
void BM_StartSpanAndExport(benchmark::State& state) {
  Sink sink;
  ExporterOptions o;
  o.endpoint = sink.Url();
  o.queue_capacity = 1 << 16;
  Exporter exporter(o, {});
  exporter.Start();
  TraceContext parent = ParseTraceparent(kParent);
  for (auto _ : state) {
    Span s = StartSpan("aegis.decide", parent, 1700000000000000000, 1.0);
    FillDecision(s);
    exporter.Export(std::move(s));
  }
  exporter.Stop(std::chrono::milliseconds(10000));
  std::string metrics;
  exporter.AppendMetrics(metrics);
  auto value = [&](std::string_view series) {
    std::string line_start = common::StrCat("\n", series, " ");
    size_t at = metrics.find(line_start);
    return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + line_start.size()));
  };
  state.counters["exported"] = value("aegis_spans_exported_total");
  state.counters["dropped_full"] = value("aegis_spans_dropped_total{reason=\"queue_full\"}");
}
BENCHMARK(BM_StartSpanAndExport)->UseRealTime();

// Export alone (the enqueue), on a queue that never fills: an exporter that is not started,
// replaced before it would. Each iteration moves in 1024 prepared spans, timed by hand so the
// preparation is not counted; per_span is the time per span.
void BM_ExportEnqueue(benchmark::State& state) {
  constexpr size_t kChunk = 1024, kCapacity = 64 * kChunk;
  ExporterOptions o;
  o.queue_capacity = kCapacity;
  auto exporter = std::make_unique<Exporter>(o, Exporter::LogFn{});
  TraceContext parent = ParseTraceparent(kParent);
  Span span = StartSpan("aegis.decide", parent, 1700000000000000000, 1.0);
  FillDecision(span);
  size_t queued = 0;
  std::vector<Span> chunk;
  for (auto _ : state) {
    if (queued == kCapacity) {
      exporter = std::make_unique<Exporter>(o, Exporter::LogFn{});
      queued = 0;
    }
    chunk.assign(kChunk, span);
    auto start = std::chrono::steady_clock::now();
    for (Span& s : chunk) exporter->Export(std::move(s));
    auto elapsed = std::chrono::steady_clock::now() - start;
    queued += kChunk;
    state.SetIterationTime(std::chrono::duration<double>(elapsed).count());
  }
  state.counters["per_span"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kChunk),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ExportEnqueue)->UseManualTime();

// A span not sampled: StartSpan at ratio 0, attributes skipped as a caller should, Export.
void BM_UnsampledSpan(benchmark::State& state) {
  ExporterOptions o;
  Exporter exporter(o, {});
  for (auto _ : state) {
    Span s = StartSpan("aegis.decide", TraceContext{}, 1, 0.0);
    if (s.context.sampled) FillDecision(s);
    exporter.Export(std::move(s));
  }
}
BENCHMARK(BM_UnsampledSpan);

std::vector<Span> Batch(size_t n) {
  std::vector<Span> spans;
  TraceContext parent = ParseTraceparent(kParent);
  for (size_t i = 0; i < n; ++i) {
    spans.push_back(StartSpan("aegis.decide", parent, 1700000000000000000, 1.0));
    FillDecision(spans.back());
  }
  return spans;
}

void BM_EncodeProtobuf(benchmark::State& state) {
  std::vector<Span> spans = Batch(static_cast<size_t>(state.range(0)));
  ExporterOptions o;
  size_t bytes = 0;
  for (auto _ : state) {
    std::string body = EncodeProtobuf(spans, o);
    bytes = body.size();
    benchmark::DoNotOptimize(body);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["bytes_per_span"] = static_cast<double>(bytes) / state.range(0);
}
BENCHMARK(BM_EncodeProtobuf)->Arg(1)->Arg(512);

void BM_EncodeJson(benchmark::State& state) {
  std::vector<Span> spans = Batch(static_cast<size_t>(state.range(0)));
  ExporterOptions o;
  size_t bytes = 0;
  for (auto _ : state) {
    std::string body = EncodeJson(spans, o);
    bytes = body.size();
    benchmark::DoNotOptimize(body);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["bytes_per_span"] = static_cast<double>(bytes) / state.range(0);
}
BENCHMARK(BM_EncodeJson)->Arg(1)->Arg(512);

}  // namespace
}  // namespace aegis::telemetry

BENCHMARK_MAIN();
