#include "approvals/notify.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "common/json.h"
#include "common/files.h"
#include "common/strings.h"
#include "expr/time_util.h"
#include "net/http_client.h"

namespace aegis::approvals {

using common::AppendJsonString;
using common::StrCat;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string_view EventName(Event e) {
  switch (e) {
    case Event::kCreated:
      return "approval.created";
    case Event::kApproved:
      return "approval.approved";
    case Event::kDenied:
      return "approval.denied";
    case Event::kExpired:
      return "approval.expired";
  }
  return "approval.created";
}

std::string ApproveCommand(const Approval& a) { return StrCat("aegis approvals approve ", a.id); }
std::string ApprovePath(const Approval& a) { return StrCat("/v1/approvals/", a.id, "/approve"); }

namespace {

constexpr size_t kMaxFactBytes = 200;
constexpr size_t kMaxParamsBytes = 1500;
constexpr size_t kMaxLoggedBodyBytes = 200;
constexpr size_t kMaxUnknownNames = 100;

// Cuts `s` to at most `max` bytes on a UTF-8 character boundary, marking the cut.
std::string Truncate(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return StrCat(s.substr(0, end), "…");
}

std::string Rfc3339(int64_t unix_seconds) {
  std::string out;
  expr::internal::AppendTimestamp(out, unix_seconds * 1'000'000'000);
  return out;
}

std::string NowRfc3339() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  std::string out;
  expr::internal::AppendTimestamp(
      out, std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  return out;
}

// Slack mrkdwn: &, < and > are the only characters Slack requires escaped; escaping them also
// keeps text from the call from forming links (<http://...|...>) or mentions (<!channel>).
// In a code span or block (`code`), a backtick becomes a quote so it cannot close the span.
// The result is at most `max` bytes (Slack limits each text), cut on a character boundary.
std::string SlackEscape(std::string_view s, size_t max, bool code) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    std::string_view piece(&s[i], 1);
    if (c == '&') piece = "&amp;";
    if (c == '<') piece = "&lt;";
    if (c == '>') piece = "&gt;";
    if (c == '`' && code) piece = "'";
    bool boundary = (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    if (boundary && out.size() + piece.size() > max - 3) {
      out += "â¦";  // "…"
      break;
    }
    out += piece;
  }
  return out;
}
std::string SlackText(std::string_view s, size_t max = 300) { return SlackEscape(s, max, false); }
std::string SlackCode(std::string_view s, size_t max = 300) { return SlackEscape(s, max, true); }

// Teams renders Markdown in TextBlocks and facts: a backslash before the characters that make
// emphasis, links and mentions keeps text from the call literal.
std::string TeamsText(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\*_[]~`<>#").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string_view Headline(Event e) {
  switch (e) {
    case Event::kCreated:
      return "Approval needed";
    case Event::kApproved:
      return "Approved";
    case Event::kDenied:
      return "Denied";
    case Event::kExpired:
      return "Expired";
  }
  return "Approval needed";
}

int Approvals(const Approval& a) {
  int n = 0;
  for (const Vote& v : a.votes) n += v.approve ? 1 : 0;
  return n;
}

struct Fact {
  std::string_view title;
  std::string value;  // raw; escaped by each renderer
};

std::vector<Fact> Facts(const Approval& a) {
  return {
      {"Tenant", a.tenant.empty() ? "(none)" : Truncate(a.tenant, kMaxFactBytes)},
      {"Agent", Truncate(a.agent, kMaxFactBytes)},
      {"Tool", Truncate(a.tool, kMaxFactBytes)},
      {"Action", Truncate(a.action, kMaxFactBytes)},
      {"Rule", Truncate(a.rule_id, kMaxFactBytes)},
      {"Quorum", StrCat(Approvals(a), " of ", a.quorum, " approvals")},
      {"Expires", Rfc3339(a.expires_at)},
      {"State", std::string(StateName(a.state))},
  };
}

std::string Params(const Approval& a) {
  return Truncate(a.summary_json.empty() ? "{}" : a.summary_json, kMaxParamsBytes);
}

// "alice approved; bob denied: not this month"
std::string VotesLine(const Approval& a) {
  std::string out;
  for (const Vote& v : a.votes) {
    if (!out.empty()) out += "; ";
    out += StrCat(Truncate(v.approver, kMaxFactBytes), v.approve ? " approved" : " denied");
    if (!v.comment.empty()) out += StrCat(": ", Truncate(v.comment, kMaxFactBytes));
  }
  return out.empty() ? "none" : out;
}

// The public base URL without a trailing slash, or "" when it is not a URL Fetch would accept
// (operators' config, but it ends up inside link syntax).
std::string PublicBase(const std::string& public_url) {
  std::string base = public_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.empty() || !net::ParseUrl(base).ok()) return "";
  return base;
}

void AppendMrkdwn(std::string& out, std::string_view text) {
  out += "{\"type\":\"mrkdwn\",\"text\":";
  AppendJsonString(out, text);
  out += "}";
}

void AppendSection(std::string& out, std::string_view mrkdwn) {
  out += ",{\"type\":\"section\",\"text\":";
  AppendMrkdwn(out, mrkdwn);
  out += "}";
}

}  // namespace

std::string SlackPayload(const Approval& a, Event e, const std::string& public_url) {
  const std::string base = PublicBase(public_url);
  const std::string call = StrCat(a.tool, ".", a.action);

  std::string fallback =
      StrCat("[Aegis] ", Headline(e), ": ", SlackText(Truncate(a.agent, kMaxFactBytes)), " → ",
             SlackText(Truncate(call, kMaxFactBytes)), " (rule ",
             SlackText(Truncate(a.rule_id, kMaxFactBytes)), ", ", Approvals(a), " of ", a.quorum,
             " approvals) ", a.id);

  std::string out = "{\"text\":";
  AppendJsonString(out, fallback);
  out += ",\"blocks\":[{\"type\":\"header\",\"text\":{\"type\":\"plain_text\",\"text\":";
  AppendJsonString(out, StrCat(Headline(e), ": ", Truncate(call, 100)));
  out += "}}";

  std::string who = StrCat("*", SlackText(Truncate(a.agent, kMaxFactBytes)), "* wants to call `",
                           SlackCode(Truncate(call, kMaxFactBytes)), "`");
  if (!a.tenant.empty()) who += StrCat(" for tenant *", SlackText(Truncate(a.tenant, 100)), "*");
  who += a.message.empty() ? StrCat("\n>Rule `", SlackCode(Truncate(a.rule_id, kMaxFactBytes)),
                                    "` asks for approval")
                           : StrCat("\n>", SlackText(Truncate(a.message, 500), 1500));
  AppendSection(out, who);

  out += ",{\"type\":\"section\",\"fields\":[";
  bool first = true;
  for (const Fact& f : Facts(a)) {
    if (!first) out += ",";
    first = false;
    AppendMrkdwn(out, StrCat("*", f.title, "*\n", SlackText(f.value)));
  }
  out += "]}";

  AppendSection(out, StrCat("*Parameters (redacted)*\n```", SlackCode(Params(a), 2800), "```"));

  if (e == Event::kCreated && a.state == State::kPending) {
    std::string how = StrCat("*To approve:* `", SlackCode(ApproveCommand(a)), "`\n*To deny:* `",
                             SlackCode(StrCat("aegis approvals deny ", a.id)), "`\n*API:* `POST ",
                             SlackCode(base + ApprovePath(a)), "`");
    if (!base.empty()) {
      how += StrCat("\n<", base, "/v1/approvals/", SlackText(a.id), "|View ", SlackText(a.id), ">");
    }
    AppendSection(out, how);
  } else {
    AppendSection(out, StrCat("*Votes:* ", SlackText(VotesLine(a), 2800)));
  }

  out += ",{\"type\":\"context\",\"elements\":[";
  AppendMrkdwn(out, StrCat("Approval `", SlackCode(a.id), "` · created ", Rfc3339(a.created_at),
                           " · call digest `", SlackCode(a.call_digest.substr(0, 16)), "`"));
  out += "]}]}";
  return out;
}

namespace {

void AppendTextBlock(std::string& out, std::string_view text, std::string_view extra = "") {
  out += "{\"type\":\"TextBlock\",\"wrap\":true,\"text\":";
  AppendJsonString(out, text);
  out += extra;
  out += "}";
}

std::string_view TeamsColor(Event e) {
  switch (e) {
    case Event::kCreated:
      return "Warning";
    case Event::kApproved:
      return "Good";
    case Event::kDenied:
      return "Attention";
    case Event::kExpired:
      return "Default";
  }
  return "Default";
}

}  // namespace

std::string TeamsPayload(const Approval& a, Event e, const std::string& public_url) {
  const std::string base = PublicBase(public_url);
  const std::string call = StrCat(a.tool, ".", a.action);

  std::string out =
      "{\"type\":\"message\",\"attachments\":[{\"contentType\":"
      "\"application/vnd.microsoft.card.adaptive\",\"contentUrl\":null,\"content\":{"
      "\"$schema\":\"http://adaptivecards.io/schemas/adaptive-card.json\","
      "\"type\":\"AdaptiveCard\",\"version\":\"1.4\",\"body\":[";
  AppendTextBlock(
      out, StrCat(Headline(e), ": ", TeamsText(Truncate(call, 100))),
      StrCat(",\"size\":\"Medium\",\"weight\":\"Bolder\",\"color\":\"", TeamsColor(e), "\""));
  out += ",";
  std::string who = StrCat("**", TeamsText(Truncate(a.agent, kMaxFactBytes)), "** wants to call **",
                           TeamsText(Truncate(call, kMaxFactBytes)), "**");
  if (!a.tenant.empty()) who += StrCat(" for tenant **", TeamsText(Truncate(a.tenant, 100)), "**");
  AppendTextBlock(out, who);
  out += ",";
  AppendTextBlock(out,
                  a.message.empty() ? StrCat("Rule ", TeamsText(Truncate(a.rule_id, kMaxFactBytes)),
                                             " asks for approval")
                                    : TeamsText(Truncate(a.message, 500)),
                  ",\"isSubtle\":true");

  out += ",{\"type\":\"FactSet\",\"facts\":[";
  bool first = true;
  for (const Fact& f : Facts(a)) {
    if (!first) out += ",";
    first = false;
    out += "{\"title\":";
    AppendJsonString(out, f.title);
    out += ",\"value\":";
    AppendJsonString(out, TeamsText(f.value));
    out += "}";
  }
  out += "]},";
  AppendTextBlock(out, "Parameters (redacted)", ",\"weight\":\"Bolder\"");
  out += ",";
  AppendTextBlock(out, TeamsText(Params(a)), ",\"fontType\":\"Monospace\"");
  out += ",";
  if (e == Event::kCreated && a.state == State::kPending) {
    // Our own text (the id is "apr_" and hex), left unescaped so it copies as it reads; one
    // block each, so no two underscores meet in one block.
    AppendTextBlock(out, StrCat("To approve: ", ApproveCommand(a)));
    out += ",";
    AppendTextBlock(out, StrCat("API: POST ", base, ApprovePath(a)));
  } else {
    AppendTextBlock(out, StrCat("Votes: ", TeamsText(VotesLine(a))));
  }
  out += ",";
  AppendTextBlock(out, StrCat("Approval ", a.id, " · created ", Rfc3339(a.created_at)),
                  ",\"isSubtle\":true,\"size\":\"Small\"");
  out += "]";
  if (!base.empty()) {
    out += ",\"actions\":[{\"type\":\"Action.OpenUrl\",\"title\":\"Open approval\",\"url\":";
    AppendJsonString(out, StrCat(base, "/v1/approvals/", a.id));
    out += "}]";
  }
  out += "}}]}";
  return out;
}

std::string WebhookPayload(const Approval& a, Event e) {
  std::string out = "{\"event\":";
  AppendJsonString(out, EventName(e));
  out += ",\"approval\":";
  out += a.ToJson();
  out += ",\"sent_at\":";
  AppendJsonString(out, NowRfc3339());
  out += "}";
  return out;
}

// --- Notifier ------------------------------------------------------------------------------

namespace {

struct Message {
  Clock::time_point due;
  uint64_t seq = 0;
  std::string body;
  std::string approval_id;
  Event event = Event::kCreated;
  std::string delivery_id;  // the same on every attempt, so receivers can drop duplicates
  int attempts = 0;
};

// Orders a max-heap so the earliest due message (then the oldest) is on top.
struct DueLater {
  bool operator()(const Message& a, const Message& b) const {
    return a.due != b.due ? a.due > b.due : a.seq > b.seq;
  }
};

struct Target {
  NotifierConfig config;
  std::string origin;         // scheme://host[:port], for logs
  std::vector<Message> heap;  // DueLater heap
  uint64_t last_served = 0;   // ticket of the last send, for fairness between notifiers
  uint64_t sent = 0, failed = 0, retries = 0;
};

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

std::string_view KindName(NotifierConfig::Kind k) {
  switch (k) {
    case NotifierConfig::Kind::kSlack:
      return "slack";
    case NotifierConfig::Kind::kTeams:
      return "teams";
    case NotifierConfig::Kind::kWebhook:
      return "webhook";
  }
  return "?";
}

common::Status ValidateOne(const NotifierConfig& c) {
  if (c.name.empty()) return common::InvalidArgumentError("notifier with an empty name");
  for (char ch : c.name) {
    if (!IsNameChar(ch)) {
      return common::InvalidArgumentError(
          "notifier names may only contain letters, digits, '_', '.' and '-'");
    }
  }
  if (KindName(c.kind) == "?") {
    return common::InvalidArgumentError(StrCat("notifier \"", c.name, "\": unknown kind"));
  }
  auto url = net::ParseUrl(c.url);
  if (!url.ok()) {
    return common::InvalidArgumentError(
        StrCat("notifier \"", c.name, "\": url: ", url.status().message()));
  }
  if (!c.headers.empty() && c.kind != NotifierConfig::Kind::kWebhook) {
    return common::InvalidArgumentError(
        StrCat("notifier \"", c.name, "\": headers are for webhooks only (", KindName(c.kind),
               " URLs carry their own credential)"));
  }
  for (const auto& [name, value] : c.headers) {
    if (auto s = net::CheckHeader(name, value); !s.ok()) {
      return common::InvalidArgumentError(StrCat("notifier \"", c.name, "\": ", s.message()));
    }
  }
  return common::OkStatus();
}

std::string RandomHex(size_t bytes) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  while (out.size() < bytes * 2) {
    uint64_t v = rng();
    for (int i = 0; i < 16 && out.size() < bytes * 2; ++i, v >>= 4) out.push_back(kHex[v & 15]);
  }
  return out;
}

// Printable ASCII only, cut short: a response body, for a log line.
std::string Snippet(std::string_view body) {
  std::string out;
  for (char c : body.substr(0, kMaxLoggedBodyBytes)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (body.size() > kMaxLoggedBodyBytes) out += "...";
  return out;
}

std::string FormatDelay(milliseconds d) {
  return d.count() >= 10000 ? StrCat(d.count() / 1000, "s") : StrCat(d.count(), "ms");
}

// Escapes a Prometheus label value.
std::string LabelValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Delta-seconds only (an HTTP-date is ignored, and the backoff used instead).
std::optional<milliseconds> ParseRetryAfter(const std::string* value) {
  if (!value || value->empty() || value->size() > 9) return std::nullopt;
  int64_t seconds = 0;
  for (char c : *value) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = seconds * 10 + (c - '0');
  }
  return milliseconds(seconds * 1000);
}

}  // namespace

struct Notifier::Impl {
  NotifyOptions options;
  LogFn log;
  std::vector<Target> targets;  // fixed after construction; contents guarded by mu
  std::map<std::string, size_t, std::less<>> by_name;

  mutable std::mutex mu;
  std::condition_variable wake;
  size_t queued = 0;
  uint64_t next_seq = 0, next_ticket = 0;
  uint64_t dropped = 0, drops_unlogged = 0;
  Clock::time_point last_drop_log;
  std::map<std::string, uint64_t> unknown_failed;
  bool stopping = false;  // Stop called: no new messages, drain until drain_deadline
  Clock::time_point drain_deadline;
  std::thread worker;

  std::mt19937_64 rng{std::random_device{}()};  // the worker's

  void Log(std::string_view level, const std::string& message) const {
    if (log) log(level, message);
  }

  // Called with mu held. Returns a log line when one is due (at most one a second).
  std::optional<std::string> CountDrop(std::string_view why) {
    ++dropped;
    ++drops_unlogged;
    Clock::time_point now = Clock::now();
    if (drops_unlogged == 1 || now - last_drop_log >= std::chrono::seconds(1)) {
      std::string line = StrCat("notifications: dropped ", drops_unlogged, " message(s): ", why,
                                " (", dropped, " dropped in all)");
      drops_unlogged = 0;
      last_drop_log = now;
      return line;
    }
    return std::nullopt;
  }

  // The ready notifier served least recently, or nullptr. Called with mu held.
  Target* PickReady(Clock::time_point now) {
    Target* best = nullptr;
    for (Target& t : targets) {
      if (t.heap.empty() || t.heap.front().due > now) continue;
      if (!best || t.last_served < best->last_served) best = &t;
    }
    return best;
  }

  std::optional<Clock::time_point> NextDue() const {
    std::optional<Clock::time_point> next;
    for (const Target& t : targets) {
      if (!t.heap.empty() && (!next || t.heap.front().due < *next)) next = t.heap.front().due;
    }
    return next;
  }

  milliseconds Backoff(int attempts) {
    return common::JitteredBackoff(attempts, options.initial_backoff, options.max_backoff, rng);
  }

  enum class Result { kSent, kRetry, kGiveUp };
  struct Outcome {
    Result result = Result::kSent;
    std::string reason;
    std::optional<milliseconds> retry_after;
  };

  Outcome Attempt(const Target& t, const Message& m, milliseconds timeout) const {
    net::FetchRequest request;
    request.url = t.config.url;
    request.body = m.body;
    request.timeout = timeout;
    request.ca_file = options.ca_file;
    request.headers = {{"Content-Type", "application/json"}};
    if (t.config.kind == NotifierConfig::Kind::kWebhook) {
      request.headers.emplace_back("X-Aegis-Event", std::string(EventName(m.event)));
      request.headers.emplace_back("X-Aegis-Delivery", m.delivery_id);
      for (const auto& h : t.config.headers) request.headers.push_back(h);
    }
    auto response = net::Fetch(request);
    Outcome out;
    if (!response.ok()) {
      out.result = response.status().code() == common::StatusCode::kInvalidArgument
                       ? Result::kGiveUp
                       : Result::kRetry;
      out.reason = response.status().message();
      return out;
    }
    int status = response->status;
    if (status >= 200 && status < 300) return out;
    out.reason = StrCat("HTTP ", status);
    if (!response->body.empty()) out.reason += StrCat(": ", Snippet(response->body));
    // A redirect is not followed and will not change; a 4xx other than 408 and 429 says the
    // message itself (or the credential) is wrong.
    if ((status >= 300 && status < 400) ||
        (status >= 400 && status < 500 && status != 408 && status != 429)) {
      out.result = Result::kGiveUp;
      return out;
    }
    out.result = Result::kRetry;
    if (status == 429 || status == 503) {
      out.retry_after = ParseRetryAfter(response->Header("Retry-After"));
    }
    return out;
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      Clock::time_point now = Clock::now();
      if (stopping && (queued == 0 || now >= drain_deadline)) break;
      Target* t = PickReady(now);
      if (!t) {
        std::optional<Clock::time_point> until = NextDue();
        if (stopping && (!until || drain_deadline < *until)) until = drain_deadline;
        if (until) {
          wake.wait_until(lock, *until);
        } else {
          wake.wait(lock);
        }
        continue;
      }
      std::pop_heap(t->heap.begin(), t->heap.end(), DueLater());
      Message m = std::move(t->heap.back());
      t->heap.pop_back();
      --queued;
      t->last_served = ++next_ticket;
      milliseconds timeout = options.timeout;
      if (stopping) {
        timeout = std::min(
            timeout, std::max(milliseconds(1),
                              std::chrono::duration_cast<milliseconds>(drain_deadline - now)));
      }
      lock.unlock();

      ++m.attempts;
      Outcome outcome = Attempt(*t, m, timeout);
      std::string about = StrCat("notifier \"", t->config.name, "\" (", t->origin,
                                 "): ", m.approval_id, " ", EventName(m.event), ": ");
      if (outcome.result == Result::kSent) {
        if (m.attempts > 1) Log("info", StrCat(about, "delivered on attempt ", m.attempts));
      } else if (outcome.result == Result::kRetry && m.attempts < options.max_attempts) {
        milliseconds delay = outcome.retry_after
                                 ? std::min(*outcome.retry_after, options.max_backoff)
                                 : Backoff(m.attempts);
        Log("warn", StrCat(about, "attempt ", m.attempts, " of ", options.max_attempts,
                           " failed: ", outcome.reason, "; retrying in ", FormatDelay(delay)));
        m.due = Clock::now() + delay;
      } else {
        Log("error", StrCat(about, "giving up after ", m.attempts,
                            m.attempts == 1 ? " attempt: " : " attempts: ", outcome.reason));
      }

      lock.lock();
      if (outcome.result == Result::kSent) {
        ++t->sent;
      } else if (outcome.result == Result::kRetry && m.attempts < options.max_attempts) {
        ++t->retries;
        m.seq = next_seq++;
        t->heap.push_back(std::move(m));
        std::push_heap(t->heap.begin(), t->heap.end(), DueLater());
        ++queued;
      } else {
        ++t->failed;
      }
    }
    DropRemaining(lock);
  }

  // Drops whatever is still queued (at Stop), counted and logged. Takes and releases `lock`.
  void DropRemaining(std::unique_lock<std::mutex>& lock) {
    size_t left = queued;
    for (Target& t : targets) t.heap.clear();
    queued = 0;
    dropped += left;
    lock.unlock();
    if (left > 0) {
      Log("warn", StrCat("notifications: stopped with ", left, " message(s) undelivered; dropped (",
                         dropped, " dropped in all)"));
    }
  }
};

Notifier::Notifier(std::vector<NotifierConfig> notifiers, NotifyOptions options, LogFn log)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->options.max_attempts = std::max(impl_->options.max_attempts, 1);
  impl_->options.max_backoff = std::max(impl_->options.max_backoff, milliseconds(1));
  impl_->log = std::move(log);
  for (NotifierConfig& c : notifiers) {
    common::Status s = ValidateOne(c);
    if (s.ok() && impl_->by_name.count(c.name)) {
      s = common::InvalidArgumentError(StrCat("notifier \"", c.name, "\" is defined twice"));
    }
    if (!s.ok()) {
      impl_->Log("error", StrCat("notifications: left out: ", s.message()));
      continue;
    }
    Target t;
    t.origin = net::ParseUrl(c.url)->Origin();
    t.config = std::move(c);
    impl_->by_name.emplace(t.config.name, impl_->targets.size());
    impl_->targets.push_back(std::move(t));
  }
}

Notifier::~Notifier() { Stop(milliseconds(0)); }

common::Status Notifier::Validate(const std::vector<NotifierConfig>& notifiers) {
  std::set<std::string_view> names;
  for (const NotifierConfig& c : notifiers) {
    if (auto s = ValidateOne(c); !s.ok()) return s;
    if (!names.insert(c.name).second) {
      return common::InvalidArgumentError(StrCat("notifier \"", c.name, "\" is defined twice"));
    }
  }
  return common::OkStatus();
}

void Notifier::Start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->stopping || impl_->worker.joinable()) return;
  impl_->worker = std::thread([impl = impl_.get()] { impl->Run(); });
}

void Notifier::Stop(milliseconds drain) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  if (!impl_->stopping) {
    impl_->stopping = true;
    impl_->drain_deadline = Clock::now() + drain;
  }
  if (!impl_->worker.joinable()) {
    impl_->DropRemaining(lock);  // never started: nothing will send what is queued
    return;
  }
  lock.unlock();
  impl_->wake.notify_all();
  // Only the owner calls Stop, so no one else joins concurrently.
  impl_->worker.join();
}

bool Notifier::Has(std::string_view name) const {
  return impl_->by_name.find(name) != impl_->by_name.end();
}

void Notifier::Notify(const std::vector<std::string>& names, const Approval& a, Event e) {
  std::vector<std::string> logs;
  std::vector<std::pair<size_t, Message>> messages;
  std::string slack, teams, webhook;  // rendered once per kind
  for (const std::string& name : names) {
    auto it = impl_->by_name.find(name);
    if (it == impl_->by_name.end()) {
      std::lock_guard<std::mutex> lock(impl_->mu);
      auto& unknown = impl_->unknown_failed;
      if (unknown.count(name) || unknown.size() < kMaxUnknownNames) {
        ++unknown[name];
      } else {
        ++unknown["(other)"];
      }
      logs.push_back(StrCat("notifications: ", a.id, " ", EventName(e), ": no notifier named \"",
                            Truncate(name, 100), "\" (rule ", a.rule_id, ")"));
      continue;
    }
    const Target& t = impl_->targets[it->second];
    Message m;
    switch (t.config.kind) {
      case NotifierConfig::Kind::kSlack:
        if (slack.empty()) slack = SlackPayload(a, e, impl_->options.public_url);
        m.body = slack;
        break;
      case NotifierConfig::Kind::kTeams:
        if (teams.empty()) teams = TeamsPayload(a, e, impl_->options.public_url);
        m.body = teams;
        break;
      case NotifierConfig::Kind::kWebhook:
        if (webhook.empty()) webhook = WebhookPayload(a, e);
        m.body = webhook;
        break;
    }
    m.approval_id = a.id;
    m.event = e;
    m.delivery_id = RandomHex(16);
    messages.emplace_back(it->second, std::move(m));
  }

  if (!messages.empty()) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    Clock::time_point now = Clock::now();
    for (auto& [index, m] : messages) {
      Target& t = impl_->targets[index];
      if (impl_->stopping || impl_->queued >= impl_->options.queue_capacity) {
        auto line = impl_->CountDrop(
            impl_->stopping
                ? StrCat("notifier stopped; latest for \"", t.config.name, "\" ", m.approval_id)
                : StrCat("queue full (", impl_->options.queue_capacity, "); latest for \"",
                         t.config.name, "\" ", m.approval_id));
        if (line) logs.push_back(std::move(*line));
        continue;
      }
      m.due = now;
      m.seq = impl_->next_seq++;
      t.heap.push_back(std::move(m));
      std::push_heap(t.heap.begin(), t.heap.end(), DueLater());
      ++impl_->queued;
    }
  }
  impl_->wake.notify_one();
  for (const std::string& line : logs) impl_->Log("warn", line);
}

void Notifier::AppendMetrics(std::string& out) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto family = [&](std::string_view name, std::string_view help, auto value, bool unknown) {
    out += StrCat("# HELP ", name, " ", help, "\n# TYPE ", name, " counter\n");
    for (const Target& t : impl_->targets) {
      out += StrCat(name, "{notifier=\"", t.config.name, "\"} ", value(t), "\n");
    }
    if (unknown) {
      for (const auto& [n, count] : impl_->unknown_failed) {
        out += StrCat(name, "{notifier=\"", LabelValue(n), "\"} ", count, "\n");
      }
    }
  };
  family(
      "aegis_notifications_sent_total", "Notifications delivered (2xx), by notifier.",
      [](const Target& t) { return t.sent; }, false);
  family(
      "aegis_notifications_failed_total",
      "Notifications given up on (attempts exhausted, a non-retryable answer, or no "
      "notifier by that name), by notifier.",
      [](const Target& t) { return t.failed; }, true);
  family(
      "aegis_notifications_retries_total",
      "Notification attempts scheduled again after a "
      "failure, by notifier.",
      [](const Target& t) { return t.retries; }, false);
  out += StrCat(
      "# HELP aegis_notifications_dropped_total Notifications dropped unsent: queue full, or "
      "still queued at shutdown.\n# TYPE aegis_notifications_dropped_total counter\n"
      "aegis_notifications_dropped_total ",
      impl_->dropped,
      "\n# HELP aegis_notifications_queue_depth Notifications waiting to be sent, retries "
      "included.\n# TYPE aegis_notifications_queue_depth gauge\n"
      "aegis_notifications_queue_depth ",
      impl_->queued, "\n");
}

}  // namespace aegis::approvals
