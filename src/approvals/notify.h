// Notifier: tells humans about approvals (DESIGN.md section 6) through Slack incoming webhooks,
// Microsoft Teams (Adaptive Cards through an incoming webhook or workflow) and generic JSON
// webhooks, configured by name and referenced from rules' `approval.notify`.
//
// Sending is off the hot path: Notify() renders the message and queues it; one background
// thread delivers, retrying with exponential backoff and jitter (and Retry-After), and keeps a
// schedule so a message waiting to retry never holds up others. Failures are visible in
// metrics and logs. Slack and Teams webhook URLs are secrets: logs name only scheme and host.
// docs/notifications.md describes the configuration, the payloads and the retry policy.
#ifndef AEGIS_APPROVALS_NOTIFY_H_
#define AEGIS_APPROVALS_NOTIFY_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "approvals/approval.h"
#include "common/status.h"

namespace aegis::approvals {

enum class Event { kCreated, kApproved, kDenied, kExpired };
// "approval.created", "approval.approved", "approval.denied", "approval.expired".
std::string_view EventName(Event e);

struct NotifierConfig {
  std::string name;  // referenced by rules' approval.notify; [A-Za-z0-9_.-]+
  enum class Kind { kSlack, kTeams, kWebhook } kind = Kind::kWebhook;
  std::string url;  // http(s); for Slack and Teams the URL itself is the credential
  std::vector<std::pair<std::string, std::string>> headers;  // webhook only, e.g. Authorization
};

struct NotifyOptions {
  int max_attempts = 5;  // per message, the first included
  std::chrono::milliseconds initial_backoff{200}, max_backoff{10000};
  size_t queue_capacity = 1000;             // messages waiting, retries included
  std::chrono::milliseconds timeout{5000};  // per attempt, the whole HTTP exchange
  std::string public_url;  // base URL of the Aegis API for links, e.g. http://aegis.internal:8181
  std::string ca_file;     // PEM CAs for https; empty: the system's
};

// The message bodies, exactly what is POSTed. Text that comes from the call (agent, tool,
// parameters, the rule's message) is escaped so it cannot add links, mentions or formatting.
//
// Slack incoming webhook: {"text": <one-line fallback>, "blocks": [header; section with who,
// what and why; fields tenant, agent, tool, action, rule, quorum (approvals so far), expiry,
// state; the redacted parameters; how to approve (CLI command and API URL) while pending, or
// the votes once decided; a context line with the approval id]}.
std::string SlackPayload(const Approval& a, Event e, const std::string& public_url);
// Teams: {"type":"message","attachments":[{"contentType":
// "application/vnd.microsoft.card.adaptive","content":<AdaptiveCard 1.4: TextBlocks, a FactSet
// with the same facts as Slack's fields, the parameters, how to approve, and an Action.OpenUrl
// to the approval in the API when public_url is set>}]}.
std::string TeamsPayload(const Approval& a, Event e, const std::string& public_url);
// {"event":"approval.created","approval":<a.ToJson()>,"sent_at":"<RFC 3339 now>"}
std::string WebhookPayload(const Approval& a, Event e);

// The command an approver runs, and the API path it calls (relative to public_url).
std::string ApproveCommand(const Approval& a);
std::string ApprovePath(const Approval& a);

// Delivers approval notifications; see the file comment. Thread-safe: Notify, Has and
// AppendMetrics may be called from any thread, Start and Stop from the owner's.
class Notifier {
 public:
  using LogFn = std::function<void(std::string_view level, const std::string& message)>;

  // `notifiers` should have passed Validate(); one that does not is logged and left out.
  Notifier(std::vector<NotifierConfig> notifiers, NotifyOptions options, LogFn log);
  ~Notifier();  // Stop(0)
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Returns OK if every config has a distinct name matching [A-Za-z0-9_.-]+, a URL Fetch
  // accepts, a known kind, and (webhooks only) well-formed headers; else InvalidArgument
  // naming the notifier. Never quotes a URL's path.
  static common::Status Validate(const std::vector<NotifierConfig>& notifiers);

  // Starts the one background thread that sends; messages queued before are sent then.
  // Sends never happen on the caller's thread. Does nothing after Stop.
  void Start();
  // Stops taking messages, keeps delivering (retries included) for up to `drain` or until the
  // queue is empty, then joins the thread; what is left is dropped (counted and logged). An
  // attempt already in flight finishes first (at most the timeout). Idempotent.
  void Stop(std::chrono::milliseconds drain);

  // Renders and queues one message per named notifier; never blocks on the network. Unknown
  // names are logged and counted as failed under their name. A full queue (or a stopped
  // notifier) drops the message, counted and logged.
  void Notify(const std::vector<std::string>& names, const Approval& a, Event e);
  bool Has(std::string_view name) const;

  // Prometheus text: aegis_notifications_sent_total{notifier},
  // aegis_notifications_failed_total{notifier} (gave up), aegis_notifications_retries_total
  // {notifier}, aegis_notifications_dropped_total, aegis_notifications_queue_depth.
  void AppendMetrics(std::string& out) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegis::approvals

#endif  // AEGIS_APPROVALS_NOTIFY_H_
