// The exporter against a real HTTP receiver on a free loopback port (net::HttpServer): batching,
// the flush timer, retries (503 then 200, transport errors), Retry-After, giving up, a full
// queue, partial success, and Stop's drain.
#include "telemetry/exporter.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "common/strings.h"
#include "net/http_server.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace aegis::telemetry {
namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using common::StrCat;
using ::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using std::chrono::milliseconds;

// An OTLP receiver on a free port: records every request and answers as `answer` says for the
// n-th request (0-based); 200 with an empty body by default.
class Receiver {
 public:
  struct Request {
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names
    Clock::time_point at;
  };
  using Answer = std::function<void(int n, net::HttpResponse&)>;

  explicit Receiver(Answer answer = {}) : answer_(std::move(answer)) {
    net::HttpServerOptions options;
    options.address = "127.0.0.1:0";
    options.threads = 1;
    options.max_body_bytes = 8 << 20;
    server_ = std::make_unique<net::HttpServer>(
        options, [this](const net::HttpRequest& req, net::HttpResponse& res) { Handle(req, res); });
    EXPECT_TRUE(server_->Start().ok());
  }
  ~Receiver() { Stop(); }
  void Stop() { server_->Stop(milliseconds(100)); }

  std::string Url() const { return StrCat("http://127.0.0.1:", server_->port(), "/v1/traces"); }

  std::vector<Request> Received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  bool WaitFor(size_t count, milliseconds timeout = milliseconds(10000)) const {
    auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      if (Received().size() >= count) return true;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return false;
  }
  // Spans received, over all requests, decoded with the generated classes.
  size_t SpansReceived() const {
    size_t n = 0;
    for (const Request& r : Received()) n += Decode(r.body).size();
    return n;
  }
  // The spans of one protobuf request body, as "name" strings.
  static std::vector<std::string> Decode(const std::string& body) {
    ExportTraceServiceRequest request;
    EXPECT_TRUE(request.ParseFromString(body));
    std::vector<std::string> names;
    for (const auto& rs : request.resource_spans()) {
      for (const auto& ss : rs.scope_spans()) {
        for (const auto& s : ss.spans()) names.push_back(s.name());
      }
    }
    return names;
  }

 private:
  void Handle(const net::HttpRequest& req, net::HttpResponse& res) {
    Request r;
    r.body = req.body();
    r.at = Clock::now();
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(f.value());
    }
    int n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      n = static_cast<int>(requests_.size());
      requests_.push_back(std::move(r));
    }
    res.result(http::status::ok);
    res.set(http::field::content_type, "application/x-protobuf");
    if (answer_) answer_(n, res);
  }

  Answer answer_;
  mutable std::mutex mu_;
  std::vector<Request> requests_;
  std::unique_ptr<net::HttpServer> server_;
};

class Logs {
 public:
  Exporter::LogFn Fn() {
    return [this](std::string_view level, const std::string& message) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_ += StrCat(level, ": ", message, "\n");
    };
  }
  std::string All() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::string lines_;
};

Span SampledSpan(std::string name) {
  Span s = StartSpan(std::move(name), {}, 1700000000000000000, 1.0);
  s.end_unix_nanos = s.start_unix_nanos + 1000;
  s.attributes.strings = {{"aegis.agent", "finance-agent"}, {"aegis.decision", "allow"}};
  return s;
}

ExporterOptions Fast(const Receiver& r) {
  ExporterOptions o;
  o.endpoint = r.Url();
  o.flush_interval = milliseconds(3600 * 1000);  // only full batches and Stop send, unless set
  o.initial_backoff = milliseconds(10);
  o.max_backoff = milliseconds(5000);
  o.timeout = milliseconds(5000);
  return o;
}

// The value of one sample line ("name{labels} value") in Prometheus text.
int64_t Metric(const Exporter& e, std::string_view series) {
  std::string text;
  e.AppendMetrics(text);
  std::string prefix = StrCat(series, " ");
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    std::string_view line(text.data() + at, (end == std::string::npos ? text.size() : end) - at);
    if (line.substr(0, prefix.size()) == prefix) {
      return std::stoll(std::string(line.substr(prefix.size())));
    }
    at = end == std::string::npos ? text.size() : end + 1;
  }
  ADD_FAILURE() << "no series " << series << " in\n" << text;
  return -1;
}

TEST(Exporter, SendsFullBatchesAndStopDrainsTheRest) {
  Receiver r;
  ExporterOptions o = Fast(r);
  o.max_batch = 3;
  o.headers = {{"Authorization", "Bearer collector-token"}};
  Exporter e(o, {});
  e.Start();
  for (int i = 0; i < 7; ++i) e.Export(SampledSpan(StrCat("span-", i)));
  ASSERT_TRUE(r.WaitFor(2));
  // The seventh waits for its batch to fill (or the flush timer, an hour away here).
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(r.Received().size(), 2u);
  EXPECT_EQ(Metric(e, "aegis_span_queue_depth"), 1);

  e.Stop(milliseconds(5000));
  auto got = r.Received();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(Receiver::Decode(got[0].body),
            (std::vector<std::string>{"span-0", "span-1", "span-2"}));
  EXPECT_EQ(Receiver::Decode(got[1].body),
            (std::vector<std::string>{"span-3", "span-4", "span-5"}));
  EXPECT_EQ(Receiver::Decode(got[2].body), std::vector<std::string>{"span-6"});
  for (const auto& req : got) {
    EXPECT_EQ(req.headers.at("content-type"), "application/x-protobuf");
    EXPECT_EQ(req.headers.at("authorization"), "Bearer collector-token");
  }
  EXPECT_EQ(Metric(e, "aegis_spans_exported_total"), 7);
  EXPECT_EQ(Metric(e, "aegis_span_export_requests_total{result=\"ok\"}"), 3);
  EXPECT_EQ(Metric(e, "aegis_span_queue_depth"), 0);
}

TEST(Exporter, FlushIntervalSendsAPartialBatch) {
  Receiver r;
  ExporterOptions o = Fast(r);
  o.flush_interval = milliseconds(50);
  Exporter e(o, {});
  e.Start();
  e.Export(SampledSpan("a"));
  e.Export(SampledSpan("b"));
  ASSERT_TRUE(r.WaitFor(1));
  EXPECT_EQ(Receiver::Decode(r.Received()[0].body), (std::vector<std::string>{"a", "b"}));
  e.Stop(milliseconds(1000));
}

TEST(Exporter, UnsampledSpansAreNotQueued) {
  Receiver r;
  Exporter e(Fast(r), {});
  Span s = SampledSpan("x");
  s.context.sampled = false;
  e.Export(s);
  Span invalid = SampledSpan("y");
  invalid.context.valid = false;
  e.Export(invalid);
  EXPECT_EQ(Metric(e, "aegis_span_queue_depth"), 0);
  e.Start();
  e.Stop(milliseconds(1000));
  EXPECT_TRUE(r.Received().empty());
}

TEST(Exporter, RetriesA503ThenSucceeds) {
  Receiver r([](int n, net::HttpResponse& res) {
    if (n == 0) res.result(http::status::service_unavailable);
  });
  Logs logs;
  Exporter e(Fast(r), logs.Fn());
  e.Start();
  e.Export(SampledSpan("retried"));
  e.Stop(milliseconds(5000));
  auto got = r.Received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].body, got[1].body);
  EXPECT_EQ(Metric(e, "aegis_spans_exported_total"), 1);
  EXPECT_EQ(Metric(e, "aegis_span_export_requests_total{result=\"retry\"}"), 1);
  EXPECT_EQ(Metric(e, "aegis_span_export_requests_total{result=\"ok\"}"), 1);
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"export_failed\"}"), 0);
  EXPECT_NE(logs.All().find("HTTP 503"), std::string::npos) << logs.All();
  // Logs name the origin only.
  EXPECT_EQ(logs.All().find("/v1/traces"), std::string::npos) << logs.All();
}

TEST(Exporter, HonoursRetryAfter) {
  Receiver r([](int n, net::HttpResponse& res) {
    if (n == 0) {
      res.result(http::status::too_many_requests);
      res.set(http::field::retry_after, "1");
    }
  });
  ExporterOptions o = Fast(r);  // initial backoff 10 ms: only Retry-After explains a long wait
  o.flush_interval = milliseconds(20);
  Exporter e(o, {});
  e.Start();
  e.Export(SampledSpan("throttled"));
  ASSERT_TRUE(r.WaitFor(2));
  auto got = r.Received();
  EXPECT_GE(got[1].at - got[0].at, milliseconds(950));
  e.Stop(milliseconds(1000));
  EXPECT_EQ(Metric(e, "aegis_spans_exported_total"), 1);
}

TEST(Exporter, RetryAfterIsCappedAtMaxBackoff) {
  Receiver r([](int n, net::HttpResponse& res) {
    if (n == 0) {
      res.result(http::status::service_unavailable);
      res.set(http::field::retry_after, "3600");
    }
  });
  ExporterOptions o = Fast(r);
  o.max_backoff = milliseconds(100);
  o.flush_interval = milliseconds(20);
  Exporter e(o, {});
  e.Start();
  e.Export(SampledSpan("x"));
  ASSERT_TRUE(r.WaitFor(2));
  e.Stop(milliseconds(1000));
  EXPECT_EQ(Metric(e, "aegis_spans_exported_total"), 1);
}

TEST(Exporter, GivesUpAfterMaxAttemptsAndCounts) {
  Receiver r([](int, net::HttpResponse& res) { res.result(http::status::bad_gateway); });
  Logs logs;
  ExporterOptions o = Fast(r);
  o.max_attempts = 3;
  Exporter e(o, logs.Fn());
  e.Start();
  e.Export(SampledSpan("a"));
  e.Export(SampledSpan("b"));
  e.Stop(milliseconds(5000));
  EXPECT_EQ(r.Received().size(), 3u);
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"export_failed\"}"), 2);
  EXPECT_EQ(Metric(e, "aegis_spans_exported_total"), 0);
  EXPECT_EQ(Metric(e, "aegis_span_export_requests_total{result=\"retry\"}"), 2);
  EXPECT_EQ(Metric(e, "aegis_span_export_requests_total{result=\"failed\"}"), 1);
  EXPECT_NE(logs.All().find("dropped 2 spans after 3 attempts: HTTP 502"), std::string::npos)
      << logs.All();
}

TEST(Exporter, DoesNotRetryWhatTheCollectorRefuses) {
  Receiver r([](int, net::HttpResponse& res) {
    res.result(http::status::bad_request);
    res.body() = "bad payload";
  });
  Logs logs;
  Exporter e(Fast(r), logs.Fn());
  e.Start();
  e.Export(SampledSpan("a"));
  e.Stop(milliseconds(5000));
  EXPECT_EQ(r.Received().size(), 1u);
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"export_failed\"}"), 1);
  EXPECT_NE(logs.All().find("HTTP 400: bad payload"), std::string::npos) << logs.All();
}

TEST(Exporter, RetriesTransportErrors) {
  std::string url;
  {
    Receiver gone;
    url = gone.Url();
  }  // the port is closed now: connections are refused
  ExporterOptions o;
  o.endpoint = url;
  o.initial_backoff = milliseconds(5);
  o.max_attempts = 2;
  Logs logs;
  Exporter e(o, logs.Fn());
  e.Start();
  e.Export(SampledSpan("a"));
  e.Stop(milliseconds(5000));
  EXPECT_EQ(Metric(e, "aegis_span_export_requests_total{result=\"retry\"}"), 1);
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"export_failed\"}"), 1);
  EXPECT_NE(logs.All().find("after 2 attempts"), std::string::npos) << logs.All();
}

TEST(Exporter, AFullQueueDropsAndCounts) {
  Receiver r;
  ExporterOptions o = Fast(r);
  o.queue_capacity = 5;
  Logs logs;
  Exporter e(o, logs.Fn());
  for (int i = 0; i < 8; ++i) e.Export(SampledSpan(StrCat("s", i)));  // not started: all queue
  EXPECT_EQ(Metric(e, "aegis_span_queue_depth"), 5);
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"queue_full\"}"), 3);
  e.Start();
  e.Stop(milliseconds(5000));
  EXPECT_EQ(r.SpansReceived(), 5u);
  EXPECT_EQ(Receiver::Decode(r.Received()[0].body).front(), "s0");  // the oldest are kept
  EXPECT_EQ(Metric(e, "aegis_spans_exported_total"), 5);
  EXPECT_NE(logs.All().find("queue full (5): dropped 3 spans"), std::string::npos) << logs.All();
}

TEST(Exporter, StopDrainsManyBatches) {
  Receiver r;
  ExporterOptions o = Fast(r);
  o.max_batch = 100;
  o.queue_capacity = 10000;
  Exporter e(o, {});
  for (int i = 0; i < 1050; ++i) e.Export(SampledSpan("s"));
  e.Start();
  e.Stop(milliseconds(10000));
  EXPECT_EQ(r.SpansReceived(), 1050u);
  EXPECT_EQ(r.Received().size(), 11u);
  EXPECT_EQ(Metric(e, "aegis_spans_exported_total"), 1050);
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"shutdown\"}"), 0);
}

TEST(Exporter, StopWithoutDrainTimeDropsAndCountsShutdown) {
  Receiver r;
  Logs logs;
  Exporter e(Fast(r), logs.Fn());
  for (int i = 0; i < 4; ++i) e.Export(SampledSpan("s"));
  e.Stop(milliseconds(0));  // never started: nothing can send them
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"shutdown\"}"), 4);
  e.Export(SampledSpan("late"));
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"shutdown\"}"), 5);
  e.Start();  // does nothing after Stop
  e.Stop(milliseconds(0));
  EXPECT_TRUE(r.Received().empty());
  EXPECT_NE(logs.All().find("stopped with 4 spans unsent"), std::string::npos) << logs.All();
}

TEST(Exporter, StopCutsARetryWaitThatWouldOutliveTheDrain) {
  Receiver r([](int, net::HttpResponse& res) {
    res.result(http::status::service_unavailable);
    res.set(http::field::retry_after, "30");
  });
  ExporterOptions o = Fast(r);
  o.max_backoff = milliseconds(60000);
  o.flush_interval = milliseconds(20);
  Exporter e(o, {});
  e.Start();
  e.Export(SampledSpan("a"));
  ASSERT_TRUE(r.WaitFor(1));
  auto before = Clock::now();
  e.Stop(milliseconds(200));
  EXPECT_LT(Clock::now() - before, milliseconds(20000));  // not the 30 s Retry-After
  EXPECT_EQ(r.Received().size(), 1u);
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"export_failed\"}"), 1);
}

TEST(Exporter, PartialSuccessCountsRejectedSpans) {
  Receiver r([](int, net::HttpResponse& res) {
    ::opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse response;
    response.mutable_partial_success()->set_rejected_spans(1);
    response.mutable_partial_success()->set_error_message("one span too old");
    res.body() = response.SerializeAsString();
  });
  Logs logs;
  Exporter e(Fast(r), logs.Fn());
  e.Start();
  for (int i = 0; i < 3; ++i) e.Export(SampledSpan("s"));
  e.Stop(milliseconds(5000));
  EXPECT_EQ(Metric(e, "aegis_spans_exported_total"), 2);
  EXPECT_EQ(Metric(e, "aegis_spans_dropped_total{reason=\"rejected\"}"), 1);
  EXPECT_NE(logs.All().find("one span too old"), std::string::npos) << logs.All();
}

TEST(Exporter, JsonEncoding) {
  Receiver r;
  ExporterOptions o = Fast(r);
  o.encoding = ExporterOptions::Encoding::kJson;
  Exporter e(o, {});
  e.Start();
  Span s = SampledSpan("json-span");
  e.Export(s);
  e.Stop(milliseconds(5000));
  auto got = r.Received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].headers.at("content-type"), "application/json");
  auto json = common::ParseJson(got[0].body);
  ASSERT_TRUE(json.ok()) << json.status();
  const common::Json& span = json->Find("resourceSpans")
                                 ->as_array()[0]
                                 .Find("scopeSpans")
                                 ->as_array()[0]
                                 .Find("spans")
                                 ->as_array()[0];
  EXPECT_EQ(span.Find("name")->as_string(), "json-span");
  EXPECT_EQ(span.Find("traceId")->as_string(), HexId(s.context.trace_id));
}

TEST(Exporter, ManyThreadsExportConcurrently) {
  Receiver r;
  ExporterOptions o = Fast(r);
  o.max_batch = 64;
  o.flush_interval = milliseconds(20);
  Exporter e(o, {});
  e.Start();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) e.Export(SampledSpan("c"));
    });
  }
  for (auto& t : threads) t.join();
  e.Stop(milliseconds(10000));
  EXPECT_EQ(r.SpansReceived(), 2000u);
  EXPECT_EQ(Metric(e, "aegis_spans_exported_total"), 2000);
}

TEST(Exporter, ValidateOptions) {
  ExporterOptions o;
  EXPECT_TRUE(Exporter::Validate(o).ok());
  o.endpoint = "ftp://collector/v1/traces";
  EXPECT_FALSE(Exporter::Validate(o).ok());
  o = {};
  o.headers = {{"Bad Header", "x"}};
  EXPECT_FALSE(Exporter::Validate(o).ok());
  o.headers = {{"Authorization", "Bearer a\r\nInjected: yes"}};
  EXPECT_FALSE(Exporter::Validate(o).ok());
  o.headers = {{"content-type", "text/plain"}};
  EXPECT_FALSE(Exporter::Validate(o).ok());
  o.headers = {{"Authorization", "Bearer token"}};
  EXPECT_TRUE(Exporter::Validate(o).ok());
  o.max_batch = 0;
  EXPECT_FALSE(Exporter::Validate(o).ok());
  o = {};
  o.queue_capacity = 0;
  EXPECT_FALSE(Exporter::Validate(o).ok());
  o = {};
  o.max_attempts = 0;
  EXPECT_FALSE(Exporter::Validate(o).ok());
}

}  // namespace
}  // namespace aegis::telemetry
