#include "approvals/notify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "common/json.h"
#include "common/strings.h"
#include "net/http_server.h"

namespace aegis::approvals {
namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using common::Json;
using common::StrCat;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPublicUrl[] = "http://aegis.test:8181";

Approval Sample() {
  Approval a;
  a.id = "apr_0123456789abcdef0123456789abcdef";
  a.tenant = "acme";
  a.agent = "finance-agent";
  a.tool = "stripe";
  a.action = "create_payment";
  a.call_digest = std::string(64, 'c');
  a.rule_id = "payment-ceiling";
  a.message = "Payments above $5,000 need two approvers";
  a.summary_json = R"({"amount":7000,"card":"[REDACTED]","currency":"usd"})";
  a.quorum = 2;
  a.created_at = 1714564800;  // 2024-05-01T12:00:00Z
  a.expires_at = a.created_at + 4 * 3600;
  return a;
}

// An HTTP sink on a free port: records every request and answers as `answer` says for the
// n-th request (0-based) to a path; 200 by default.
class Sink {
 public:
  struct Request {
    std::string path, body;
    std::map<std::string, std::string> headers;  // lower-case names
    Clock::time_point at;
  };
  using Answer = std::function<void(int n, const std::string& path, net::HttpResponse&)>;

  explicit Sink(Answer answer = {}) : answer_(std::move(answer)) {
    net::HttpServerOptions options;
    options.address = "127.0.0.1:0";
    options.threads = 1;
    server_ = std::make_unique<net::HttpServer>(
        options, [this](const net::HttpRequest& req, net::HttpResponse& res) { Handle(req, res); });
    EXPECT_TRUE(server_->Start().ok());
  }
  ~Sink() { server_->Stop(milliseconds(100)); }

  std::string Url(std::string_view path) const {
    return StrCat("http://127.0.0.1:", server_->port(), path);
  }
  std::vector<Request> Received(const std::string& path) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Request> out;
    for (const Request& r : requests_) {
      if (r.path == path) out.push_back(r);
    }
    return out;
  }
  // Waits up to `timeout` for `count` requests to `path`.
  bool WaitFor(const std::string& path, size_t count, milliseconds timeout = milliseconds(5000)) {
    auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      if (Received(path).size() >= count) return true;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return false;
  }

 private:
  void Handle(const net::HttpRequest& req, net::HttpResponse& res) {
    Request r;
    r.path = std::string(req.target());
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
      n = counts_[r.path]++;
      requests_.push_back(std::move(r));
    }
    res.result(http::status::ok);
    res.body() = "ok";
    if (answer_) answer_(n, std::string(req.target()), res);
  }

  Answer answer_;
  mutable std::mutex mu_;
  std::vector<Request> requests_;
  std::map<std::string, int> counts_;
  std::unique_ptr<net::HttpServer> server_;
};

// Collects log lines.
class Logs {
 public:
  Notifier::LogFn Fn() {
    return [this](std::string_view level, const std::string& message) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(StrCat(level, ": ", message));
    };
  }
  std::string All() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& l : lines_) out += l + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

NotifyOptions FastOptions() {
  NotifyOptions o;
  o.initial_backoff = milliseconds(10);
  o.max_backoff = milliseconds(50);
  o.timeout = milliseconds(2000);
  o.public_url = kPublicUrl;
  return o;
}

// The value of the sample `series` (e.g. `x_total{notifier="a"}`), or -1 if absent.
int64_t Metric(const Notifier& n, std::string_view series) {
  std::string text;
  n.AppendMetrics(text);
  std::string needle = StrCat("\n", series, " ");
  size_t pos = text.find(needle);
  if (pos == std::string::npos) return -1;
  return std::stoll(text.substr(pos + needle.size()));
}

bool WaitUntil(const std::function<bool()>& done, milliseconds timeout = milliseconds(5000)) {
  auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return done();
}

Json Parse(const std::string& body) {
  auto json = common::ParseJson(body);
  EXPECT_TRUE(json.ok()) << json.status() << "\n" << body;
  return json.ok() ? *json : Json();
}

const std::string& Str(const Json& j, std::string_view key) {
  static const std::string kMissing = "<missing>";
  const Json* v = j.Find(key);
  return v && v->is_string() ? v->as_string() : kMissing;
}

TEST(NotifierTest, SlackMessageCarriesTheCallAndHowToApprove) {
  Sink sink;
  Notifier notifier(
      {{"finance-slack", NotifierConfig::Kind::kSlack, sink.Url("/slack/T0/B1/x"), {}}},
      FastOptions(), nullptr);
  notifier.Start();
  Approval a = Sample();
  notifier.Notify({"finance-slack"}, a, Event::kCreated);
  ASSERT_TRUE(sink.WaitFor("/slack/T0/B1/x", 1));
  auto got = sink.Received("/slack/T0/B1/x");
  EXPECT_EQ(got[0].headers["content-type"], "application/json");
  Json msg = Parse(got[0].body);

  const std::string& text = Str(msg, "text");
  EXPECT_THAT(text, HasSubstr("Approval needed"));
  EXPECT_THAT(text, HasSubstr("finance-agent"));
  EXPECT_THAT(text, HasSubstr("stripe.create_payment"));
  EXPECT_THAT(text, HasSubstr("payment-ceiling"));
  EXPECT_THAT(text, HasSubstr(a.id));

  const Json* blocks = msg.Find("blocks");
  ASSERT_TRUE(blocks && blocks->is_array());
  std::vector<std::string> sections, fields;
  std::string header, context;
  for (const Json& b : blocks->as_array()) {
    const std::string& type = Str(b, "type");
    if (type == "header") header = Str(*b.Find("text"), "text");
    if (type == "section" && b.Find("text")) sections.push_back(Str(*b.Find("text"), "text"));
    if (type == "section" && b.Find("fields")) {
      for (const Json& f : b.Find("fields")->as_array()) {
        EXPECT_EQ(Str(f, "type"), "mrkdwn");
        fields.push_back(Str(f, "text"));
      }
    }
    if (type == "context") context = Str(b.Find("elements")->as_array()[0], "text");
  }
  EXPECT_EQ(header, "Approval needed: stripe.create_payment");
  ASSERT_EQ(sections.size(), 3u);
  EXPECT_EQ(sections[0],
            "*finance-agent* wants to call `stripe.create_payment` for tenant *acme*\n"
            ">Payments above $5,000 need two approvers");
  EXPECT_THAT(fields,
              ::testing::ElementsAre("*Tenant*\nacme", "*Agent*\nfinance-agent", "*Tool*\nstripe",
                                     "*Action*\ncreate_payment", "*Rule*\npayment-ceiling",
                                     "*Quorum*\n0 of 2 approvals",
                                     "*Expires*\n2024-05-01T16:00:00Z", "*State*\npending"));
  EXPECT_EQ(sections[1], StrCat("*Parameters (redacted)*\n```", a.summary_json, "```"));
  EXPECT_THAT(sections[2], HasSubstr(StrCat("`aegis approvals approve ", a.id, "`")));
  EXPECT_THAT(sections[2], HasSubstr(StrCat("`aegis approvals deny ", a.id, "`")));
  EXPECT_THAT(sections[2],
              HasSubstr(StrCat("`POST http://aegis.test:8181/v1/approvals/", a.id, "/approve`")));
  EXPECT_THAT(sections[2], HasSubstr(StrCat("<http://aegis.test:8181/v1/approvals/", a.id, "|View ",
                                            a.id, ">")));
  EXPECT_THAT(context, HasSubstr(a.id));
  EXPECT_TRUE(WaitUntil([&] {
    return Metric(notifier, R"(aegis_notifications_sent_total{notifier="finance-slack"})") == 1;
  }));
}

TEST(NotifierTest, TeamsMessageIsAnAdaptiveCard) {
  Sink sink;
  Notifier notifier({{"ops-teams", NotifierConfig::Kind::kTeams, sink.Url("/teams"), {}}},
                    FastOptions(), nullptr);
  notifier.Start();
  Approval a = Sample();
  notifier.Notify({"ops-teams"}, a, Event::kCreated);
  ASSERT_TRUE(sink.WaitFor("/teams", 1));
  Json msg = Parse(sink.Received("/teams")[0].body);

  EXPECT_EQ(Str(msg, "type"), "message");
  const Json* attachments = msg.Find("attachments");
  ASSERT_TRUE(attachments && attachments->is_array());
  ASSERT_EQ(attachments->as_array().size(), 1u);
  const Json& attachment = attachments->as_array()[0];
  EXPECT_EQ(Str(attachment, "contentType"), "application/vnd.microsoft.card.adaptive");
  const Json* card = attachment.Find("content");
  ASSERT_TRUE(card && card->is_object());
  EXPECT_EQ(Str(*card, "type"), "AdaptiveCard");
  EXPECT_EQ(Str(*card, "version"), "1.4");

  std::map<std::string, std::string> facts;
  std::string texts;
  for (const Json& element : card->Find("body")->as_array()) {
    if (Str(element, "type") == "TextBlock") texts += Str(element, "text") + "\n";
    if (Str(element, "type") == "FactSet") {
      for (const Json& f : element.Find("facts")->as_array()) {
        facts[Str(f, "title")] = Str(f, "value");
      }
    }
  }
  EXPECT_EQ(facts["Tenant"], "acme");
  EXPECT_EQ(facts["Agent"], "finance-agent");
  EXPECT_EQ(facts["Tool"], "stripe");
  EXPECT_EQ(facts["Action"], "create\\_payment");  // Markdown-escaped
  EXPECT_EQ(facts["Rule"], "payment-ceiling");
  EXPECT_EQ(facts["Quorum"], "0 of 2 approvals");
  EXPECT_EQ(facts["Expires"], "2024-05-01T16:00:00Z");
  EXPECT_EQ(facts["State"], "pending");
  EXPECT_THAT(texts, HasSubstr("Approval needed: stripe.create\\_payment"));
  EXPECT_THAT(texts, HasSubstr("**finance-agent** wants to call"));
  EXPECT_THAT(texts, HasSubstr("Payments above $5,000 need two approvers"));
  EXPECT_THAT(texts, HasSubstr(R"("amount":7000)"));
  EXPECT_THAT(texts, HasSubstr(StrCat("To approve: aegis approvals approve ", a.id, "\n")));
  EXPECT_THAT(
      texts, HasSubstr(StrCat("API: POST http://aegis.test:8181/v1/approvals/", a.id, "/approve")));

  const Json* actions = card->Find("actions");
  ASSERT_TRUE(actions && actions->is_array());
  ASSERT_EQ(actions->as_array().size(), 1u);
  EXPECT_EQ(Str(actions->as_array()[0], "type"), "Action.OpenUrl");
  EXPECT_EQ(Str(actions->as_array()[0], "url"),
            StrCat("http://aegis.test:8181/v1/approvals/", a.id));
}

TEST(NotifierTest, WebhookCarriesTheApprovalAndHeaders) {
  Sink sink;
  Notifier notifier({{"audit-hook",
                      NotifierConfig::Kind::kWebhook,
                      sink.Url("/hook?source=aegis"),
                      {{"Authorization", "Bearer t0ken"}}}},
                    FastOptions(), nullptr);
  notifier.Start();
  Approval a = Sample();
  a.state = State::kApproved;
  a.votes = {{"alice@example.com", true, a.created_at + 60, "ok"},
             {"bob@example.com", true, a.created_at + 120, ""}};
  a.decided_at = a.created_at + 120;
  notifier.Notify({"audit-hook"}, a, Event::kApproved);
  ASSERT_TRUE(sink.WaitFor("/hook?source=aegis", 1));
  auto got = sink.Received("/hook?source=aegis")[0];
  EXPECT_EQ(got.headers["authorization"], "Bearer t0ken");
  EXPECT_EQ(got.headers["content-type"], "application/json");
  EXPECT_EQ(got.headers["x-aegis-event"], "approval.approved");
  EXPECT_EQ(got.headers["x-aegis-delivery"].size(), 32u);

  Json msg = Parse(got.body);
  EXPECT_EQ(Str(msg, "event"), "approval.approved");
  EXPECT_THAT(Str(msg, "sent_at"), ::testing::MatchesRegex("20[0-9][0-9]-.*Z"));
  const Json* approval = msg.Find("approval");
  ASSERT_TRUE(approval && approval->is_object());
  EXPECT_EQ(*approval, Parse(a.ToJson()));
  EXPECT_EQ(Str(*approval, "id"), a.id);
  EXPECT_EQ(Str(*approval, "state"), "approved");
  EXPECT_EQ(Str(*approval, "rule"), "payment-ceiling");
  const Json* votes = approval->Find("votes");
  ASSERT_TRUE(votes && votes->is_array());
  ASSERT_EQ(votes->as_array().size(), 2u);
  EXPECT_EQ(Str(votes->as_array()[0], "approver"), "alice@example.com");
  EXPECT_EQ(Str(votes->as_array()[0], "verdict"), "approve");
  EXPECT_EQ(Str(votes->as_array()[1], "approver"), "bob@example.com");
}

TEST(PayloadTest, DecidedMessagesShowVotesInsteadOfHowToApprove) {
  Approval a = Sample();
  a.state = State::kDenied;
  a.votes = {{"carol", false, a.created_at + 60, "not this month"}};
  std::string slack = SlackPayload(a, Event::kDenied, kPublicUrl);
  EXPECT_THAT(slack, HasSubstr("Denied: stripe.create_payment"));
  EXPECT_THAT(slack, HasSubstr("*Votes:* carol denied: not this month"));
  EXPECT_THAT(slack, Not(HasSubstr("aegis approvals approve")));
  std::string teams = TeamsPayload(a, Event::kDenied, kPublicUrl);
  EXPECT_THAT(teams, HasSubstr("Votes: carol denied: not this month"));
  EXPECT_THAT(teams, HasSubstr(R"("color":"Attention")"));
  EXPECT_THAT(WebhookPayload(a, Event::kExpired), HasSubstr(R"({"event":"approval.expired",)"));
}

TEST(PayloadTest, TextFromTheCallCannotAddLinksOrMentions) {
  Approval a = Sample();
  a.agent = "<!channel> evil";
  a.message = "[Approve here](http://evil.example) & <http://evil.example|click>";
  a.summary_json = R"({"note":"```<@U123>``` *bold*"})";
  Json slack = Parse(SlackPayload(a, Event::kCreated, kPublicUrl));
  std::string all = slack.Canonical();
  EXPECT_THAT(all, Not(HasSubstr("<!channel>")));
  EXPECT_THAT(all, Not(HasSubstr("<http://evil")));
  EXPECT_THAT(all, Not(HasSubstr("<@U123>")));
  EXPECT_THAT(all, HasSubstr("&lt;!channel&gt; evil"));
  EXPECT_THAT(all, HasSubstr("&amp; &lt;http://evil.example|click&gt;"));
  EXPECT_THAT(all, HasSubstr("'''&lt;@U123&gt;'''"));  // cannot close the code block

  std::string teams = Parse(TeamsPayload(a, Event::kCreated, kPublicUrl)).Canonical();
  EXPECT_THAT(teams, HasSubstr(R"(\\[Approve here\\](http://evil.example))"));
  EXPECT_THAT(teams, HasSubstr(R"(\\<!channel\\> evil)"));

  // No public URL, or a bad one: no link and no OpenUrl action.
  EXPECT_THAT(TeamsPayload(a, Event::kCreated, ""), Not(HasSubstr("Action.OpenUrl")));
  EXPECT_THAT(SlackPayload(a, Event::kCreated, "http://x/<y>|z"), Not(HasSubstr("|View ")));
}

TEST(PayloadTest, LongParametersAreCutToSlackLimits) {
  Approval a = Sample();
  a.summary_json = StrCat(R"({"memo":")", std::string(5000, '&'), R"("})");
  Json slack = Parse(SlackPayload(a, Event::kCreated, kPublicUrl));
  for (const Json& b : slack.Find("blocks")->as_array()) {
    if (const Json* text = b.Find("text")) {
      EXPECT_LE(Str(*text, "text").size(), 3000u);
    }
  }
}

TEST(NotifierTest, RetriesAServerErrorAndDelivers) {
  Sink sink([](int n, const std::string&, net::HttpResponse& res) {
    if (n < 2) res.result(http::status::internal_server_error);
  });
  Logs logs;
  Notifier notifier({{"flaky", NotifierConfig::Kind::kSlack, sink.Url("/services/SECRET1"), {}}},
                    FastOptions(), logs.Fn());
  notifier.Start();
  notifier.Notify({"flaky"}, Sample(), Event::kCreated);
  ASSERT_TRUE(WaitUntil([&] {
    return Metric(notifier, R"(aegis_notifications_sent_total{notifier="flaky"})") == 1;
  }));
  notifier.Stop(milliseconds(1000));
  EXPECT_EQ(sink.Received("/services/SECRET1").size(), 3u);
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_retries_total{notifier="flaky"})"), 2);
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_failed_total{notifier="flaky"})"), 0);
  EXPECT_EQ(Metric(notifier, "aegis_notifications_queue_depth"), 0);
  std::string all = logs.All();
  EXPECT_THAT(all, HasSubstr("notifier \"flaky\""));
  EXPECT_THAT(all, HasSubstr("attempt 1 of 5 failed: HTTP 500"));
  EXPECT_THAT(all, HasSubstr(sink.Url("")));
  EXPECT_THAT(all, Not(HasSubstr("SECRET")));
}

TEST(NotifierTest, HonoursRetryAfter) {
  Sink sink([](int n, const std::string&, net::HttpResponse& res) {
    if (n == 0) {
      res.result(http::status::too_many_requests);
      res.set(http::field::retry_after, "1");
    }
  });
  NotifyOptions options = FastOptions();
  options.max_backoff = milliseconds(5000);
  Notifier notifier({{"limited", NotifierConfig::Kind::kWebhook, sink.Url("/rl"), {}}}, options,
                    nullptr);
  notifier.Start();
  notifier.Notify({"limited"}, Sample(), Event::kCreated);
  ASSERT_TRUE(sink.WaitFor("/rl", 2));
  auto got = sink.Received("/rl");
  auto gap = got[1].at - got[0].at;
  EXPECT_GE(gap, milliseconds(950));
  EXPECT_LT(gap, milliseconds(2000));
  EXPECT_EQ(got[0].headers["x-aegis-delivery"], got[1].headers["x-aegis-delivery"]);
}

TEST(NotifierTest, RetryAfterIsCappedByMaxBackoff) {
  Sink sink([](int n, const std::string&, net::HttpResponse& res) {
    if (n == 0) {
      res.result(http::status::service_unavailable);
      res.set(http::field::retry_after, "3600");
    }
  });
  Notifier notifier({{"capped", NotifierConfig::Kind::kWebhook, sink.Url("/cap"), {}}},
                    FastOptions(), nullptr);
  notifier.Start();
  notifier.Notify({"capped"}, Sample(), Event::kCreated);
  ASSERT_TRUE(sink.WaitFor("/cap", 2, milliseconds(2000)));
}

TEST(NotifierTest, GivesUpAfterMaxAttemptsWithoutDelayingOthers) {
  Sink sink([](int, const std::string& path, net::HttpResponse& res) {
    if (path == "/down") res.result(http::status::bad_gateway);
  });
  NotifyOptions options = FastOptions();
  options.max_attempts = 3;
  options.initial_backoff = milliseconds(300);
  options.max_backoff = milliseconds(300);
  Logs logs;
  Notifier notifier({{"down", NotifierConfig::Kind::kWebhook, sink.Url("/down"), {}},
                     {"up", NotifierConfig::Kind::kWebhook, sink.Url("/up"), {}}},
                    options, logs.Fn());
  notifier.Start();
  notifier.Notify({"down"}, Sample(), Event::kCreated);
  ASSERT_TRUE(sink.WaitFor("/down", 1));
  notifier.Notify({"up"}, Sample(), Event::kCreated);
  ASSERT_TRUE(sink.WaitFor("/up", 1));
  // "up" went out while "down" waited to retry.
  EXPECT_EQ(sink.Received("/down").size(), 1u);
  EXPECT_LT(sink.Received("/up")[0].at - sink.Received("/down")[0].at, milliseconds(140));

  ASSERT_TRUE(WaitUntil([&] {
    return Metric(notifier, R"(aegis_notifications_failed_total{notifier="down"})") == 1;
  }));
  EXPECT_EQ(sink.Received("/down").size(), 3u);
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_retries_total{notifier="down"})"), 2);
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_sent_total{notifier="down"})"), 0);
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_sent_total{notifier="up"})"), 1);
  EXPECT_THAT(logs.All(), HasSubstr("error: notifier \"down\""));
  EXPECT_THAT(logs.All(), HasSubstr("giving up after 3 attempts: HTTP 502"));
}

TEST(NotifierTest, DoesNotRetryAClientError) {
  Sink sink([](int, const std::string&, net::HttpResponse& res) {
    res.result(http::status::bad_request);
    res.body() = "invalid_payload";
  });
  Logs logs;
  Notifier notifier({{"bad", NotifierConfig::Kind::kSlack, sink.Url("/bad"), {}}}, FastOptions(),
                    logs.Fn());
  notifier.Start();
  notifier.Notify({"bad"}, Sample(), Event::kCreated);
  ASSERT_TRUE(WaitUntil([&] {
    return Metric(notifier, R"(aegis_notifications_failed_total{notifier="bad"})") == 1;
  }));
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(sink.Received("/bad").size(), 1u);
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_retries_total{notifier="bad"})"), 0);
  EXPECT_THAT(logs.All(), HasSubstr("giving up after 1 attempt: HTTP 400: invalid_payload"));
}

TEST(NotifierTest, RetriesTransportErrors) {
  int port;
  {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  NotifyOptions options = FastOptions();
  options.max_attempts = 2;
  Logs logs;
  Notifier notifier(
      {{"gone", NotifierConfig::Kind::kTeams, StrCat("http://127.0.0.1:", port, "/SECRET"), {}}},
      options, logs.Fn());
  notifier.Start();
  notifier.Notify({"gone"}, Sample(), Event::kCreated);
  ASSERT_TRUE(WaitUntil([&] {
    return Metric(notifier, R"(aegis_notifications_failed_total{notifier="gone"})") == 1;
  }));
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_retries_total{notifier="gone"})"), 1);
  EXPECT_THAT(logs.All(), HasSubstr("connecting to http://127.0.0.1:"));
  EXPECT_THAT(logs.All(), Not(HasSubstr("SECRET")));
}

TEST(NotifierTest, CountsUnknownNames) {
  Sink sink;
  Logs logs;
  Notifier notifier({{"known", NotifierConfig::Kind::kWebhook, sink.Url("/k"), {}}}, FastOptions(),
                    logs.Fn());
  EXPECT_TRUE(notifier.Has("known"));
  EXPECT_FALSE(notifier.Has("cfo-email"));
  notifier.Start();
  notifier.Notify({"cfo-email", "known", "cfo-email"}, Sample(), Event::kCreated);
  ASSERT_TRUE(sink.WaitFor("/k", 1));
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_failed_total{notifier="cfo-email"})"), 2);
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_failed_total{notifier="known"})"), 0);
  EXPECT_THAT(logs.All(), HasSubstr("no notifier named \"cfo-email\""));
}

TEST(NotifierTest, DropsWhenTheQueueIsFull) {
  Sink sink;
  NotifyOptions options = FastOptions();
  options.queue_capacity = 2;
  Logs logs;
  Notifier notifier({{"q", NotifierConfig::Kind::kWebhook, sink.Url("/q"), {}}}, options,
                    logs.Fn());
  // Not started yet: messages wait in the queue.
  for (int i = 0; i < 3; ++i) notifier.Notify({"q"}, Sample(), Event::kCreated);
  EXPECT_EQ(Metric(notifier, "aegis_notifications_queue_depth"), 2);
  EXPECT_EQ(Metric(notifier, "aegis_notifications_dropped_total"), 1);
  EXPECT_THAT(logs.All(), HasSubstr("queue full (2)"));
  notifier.Start();
  ASSERT_TRUE(sink.WaitFor("/q", 2));
  EXPECT_TRUE(WaitUntil(
      [&] { return Metric(notifier, R"(aegis_notifications_sent_total{notifier="q"})") == 2; }));
  EXPECT_EQ(Metric(notifier, "aegis_notifications_queue_depth"), 0);
}

TEST(NotifierTest, StopDrainsTheQueue) {
  Sink sink;
  Notifier notifier({{"d", NotifierConfig::Kind::kWebhook, sink.Url("/d"), {}}}, FastOptions(),
                    nullptr);
  notifier.Start();
  for (int i = 0; i < 20; ++i) notifier.Notify({"d"}, Sample(), Event::kCreated);
  notifier.Stop(milliseconds(5000));
  EXPECT_EQ(sink.Received("/d").size(), 20u);
  EXPECT_EQ(Metric(notifier, R"(aegis_notifications_sent_total{notifier="d"})"), 20);
  EXPECT_EQ(Metric(notifier, "aegis_notifications_dropped_total"), 0);
  // After Stop, nothing more is taken.
  notifier.Notify({"d"}, Sample(), Event::kCreated);
  EXPECT_EQ(Metric(notifier, "aegis_notifications_dropped_total"), 1);
}

TEST(NotifierTest, StopGivesUpOnRetriesAfterTheDrainTime) {
  Sink sink([](int, const std::string&, net::HttpResponse& res) {
    res.result(http::status::service_unavailable);
  });
  NotifyOptions options = FastOptions();
  options.initial_backoff = milliseconds(10000);
  options.max_backoff = milliseconds(10000);
  Logs logs;
  Notifier notifier({{"s", NotifierConfig::Kind::kWebhook, sink.Url("/s"), {}}}, options,
                    logs.Fn());
  notifier.Start();
  notifier.Notify({"s"}, Sample(), Event::kCreated);
  ASSERT_TRUE(sink.WaitFor("/s", 1));
  auto start = Clock::now();
  notifier.Stop(milliseconds(200));
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  EXPECT_EQ(Metric(notifier, "aegis_notifications_dropped_total"), 1);
  EXPECT_THAT(logs.All(), HasSubstr("stopped with 1 message(s) undelivered"));
}

TEST(NotifierTest, ValidateRefusesBadConfigs) {
  using Kind = NotifierConfig::Kind;
  EXPECT_TRUE(
      Notifier::Validate(
          {{"a.b_c-1", Kind::kSlack, "https://hooks.slack.com/x", {}},
           {"hook", Kind::kWebhook, "http://10.0.0.1:9000/h", {{"Authorization", "Bearer x"}}}})
          .ok());
  std::vector<std::pair<std::vector<NotifierConfig>, std::string>> bad = {
      {{{"", Kind::kSlack, "https://hooks.slack.com/x", {}}}, "empty name"},
      {{{"has space", Kind::kSlack, "https://hooks.slack.com/x", {}}}, "names may only"},
      {{{"a", Kind::kSlack, "ftp://hooks.slack.com/x", {}}}, "notifier \"a\": url"},
      {{{"a", Kind::kSlack, "https://user:pw@hooks.slack.com/SECRET x", {}}}, "notifier \"a\""},
      {{{"a", Kind::kSlack, "https://hooks.slack.com/x", {{"Authorization", "x"}}}},
       "webhooks only"},
      {{{"a", Kind::kWebhook, "https://h.example/x", {{"X-A", "1\r\nX-B: 2"}}}},
       "control character"},
      {{{"a", Kind::kWebhook, "https://h.example/x", {}},
        {"a", Kind::kTeams, "https://h.example/y", {}}},
       "defined twice"},
      {{{"a", static_cast<Kind>(7), "https://h.example/x", {}}}, "unknown kind"},
  };
  for (const auto& [configs, message] : bad) {
    common::Status s = Notifier::Validate(configs);
    EXPECT_EQ(s.code(), common::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(s.message(), HasSubstr(message));
    EXPECT_THAT(s.message(), Not(HasSubstr("SECRET")));
  }

  // The constructor leaves out what Validate refuses.
  Logs logs;
  Notifier notifier({{"ok", Kind::kWebhook, "http://127.0.0.1:1/", {}},
                     {"bad name", Kind::kWebhook, "http://127.0.0.1:1/", {}}},
                    FastOptions(), logs.Fn());
  EXPECT_TRUE(notifier.Has("ok"));
  EXPECT_FALSE(notifier.Has("bad name"));
  EXPECT_THAT(logs.All(), HasSubstr("left out"));
}

TEST(NotifierTest, EventNames) {
  EXPECT_EQ(EventName(Event::kCreated), "approval.created");
  EXPECT_EQ(EventName(Event::kApproved), "approval.approved");
  EXPECT_EQ(EventName(Event::kDenied), "approval.denied");
  EXPECT_EQ(EventName(Event::kExpired), "approval.expired");
}

}  // namespace
}  // namespace aegis::approvals
