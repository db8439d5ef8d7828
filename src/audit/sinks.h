// Sinks: ship audit-trail lines to SIEMs and log pipelines — a file, stdout, syslog (RFC 5424
// over UDP or TCP) or an HTTP(S) webhook taking NDJSON — off the writer's thread.
//
// The writer hands over lines once they are durable (Publish). Each sink has its own bounded
// buffer and its own thread, so a slow or dead sink never delays another sink or the caller:
// Publish copies the lines into every sink's buffer under a short lock and returns. Each thread
// takes up to batch_records lines at a time and delivers them, retrying a failed attempt with
// jittered exponential backoff up to max_attempts. Nothing is dropped silently: a line that does
// not fit in a buffer, a batch given up on, and lines still buffered when Stop ends are counted
// under a reason in the metrics, and each sink logs its drops with their counts (at most one
// line a second).
//
// A file or syslog batch interrupted by an error resumes after the last line that got through,
// so a retry neither repeats nor tears a line; a webhook batch is all or nothing (a batch the
// receiver took but did not acknowledge in time is sent again). A syslog message written into
// a TCP connection the receiver then closes without reading it is counted as delivered: TCP
// cannot tell, though the sink checks for a closed connection before each batch.
//
// Thread-safety: Publish, AppendMetrics, stats and Reopen may be called from any thread; Start,
// Stop and the destructor from the owner's.
#ifndef AEGIS_AUDIT_SINKS_H_
#define AEGIS_AUDIT_SINKS_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace aegis::audit {

enum class SinkKind { kFile, kStdout, kSyslog, kWebhook };

struct SinkOptions {
  std::string name;  // unique, [a-z0-9_-]{1,64}; the `sink` label in metrics and logs
  SinkKind kind = SinkKind::kStdout;
  std::string path;     // kFile: appended to (O_APPEND|O_CREAT, mode 0600)
  std::string address;  // kSyslog: host:port (IPv4/hostname, or [IPv6]:port)
  // kSyslog: TCP with RFC 6587 octet counting ("LEN SP MSG"); else UDP (RFC 5426), one message
  // per datagram.
  bool tcp = false;
  int facility = 13;               // kSyslog: 0..23 (13 = log audit)
  std::string app_name = "aegis";  // kSyslog APP-NAME
  std::string hostname;            // kSyslog HOSTNAME; empty: gethostname()
  // kSyslog UDP: longer messages are truncated to this (counted); 480..65507.
  size_t max_datagram_bytes = 8192;
  // kWebhook: http(s) URL; batches of lines are POSTed, Content-Type application/x-ndjson.
  std::string url;
  // kWebhook: extra headers (e.g. Authorization); not Content-Type, which the sink sets.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string ca_file;  // kWebhook: PEM CA bundle; empty: the system's CAs
  // Bounded buffer: lines waiting; a line that does not fit is dropped and counted.
  size_t buffer_records = 10000;
  size_t batch_records = 500;                      // lines per write / POST at most
  std::chrono::milliseconds batch_interval{1000};  // kWebhook: send a partial batch after this
  std::chrono::milliseconds timeout{5000};         // per attempt (connect+send / HTTP exchange)
  int max_attempts = 5;  // per batch; then the batch is dropped and counted
  std::chrono::milliseconds backoff_initial{200}, backoff_max{5000};
};

// Returns OK if `options` can make a working sink, else InvalidArgument naming the sink and the
// field: a name outside [a-z0-9_-]{1,64}; an empty path (kFile); an address that is not
// host:port with a port (kSyslog), a facility outside 0..23, max_datagram_bytes outside
// 480..65507; a URL net::Fetch refuses (kWebhook; the message never quotes its path), a
// malformed header or a Content-Type header; zero sizes, non-positive durations, max_attempts
// below 1, or backoff_max below backoff_initial. Does not touch the file system or network.
common::Status ValidateSinkOptions(const SinkOptions& options);

// The RFC 5424 message a kSyslog sink sends for one audit line (without the line's '\n', and
// without TCP framing or UDP truncation):
//   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [aegis@32473 decision_id=".." agent=".."
//   tenant=".." decision=".."] MSG
// The line is parsed as untrusted JSON. PRI is facility*8 plus the severity of its "decision"
// (deny 4, approval_needed 5, allow and sanitize 6, anything else 4); a line without a string
// "decision" (an event record, or not JSON at all) gets severity 4 and MSGID "event", others
// MSGID "decision". TIMESTAMP is the record's "time" (Unix nanoseconds) in RFC 3339 UTC with
// microseconds, or `now_unix_nanos` when absent or out of range. HOSTNAME and APP-NAME are
// sanitised (bytes outside 33..126 become '_', cut to 255 and 48 bytes; empty becomes "-").
// SD-PARAM values are the record's strings, cut to 256 bytes, control bytes replaced by '_' and
// '"', '\' and ']' escaped; "-" when a field is missing or not a string. MSG is the line as is.
std::string FormatSyslogMessage(std::string_view line, int facility, std::string_view hostname,
                                std::string_view app_name, int64_t procid, int64_t now_unix_nanos);

class Sinks {
 public:
  // level: "info", "warn" or "error". Called from the sinks' threads, possibly concurrently
  // (and from Publish's thread for lines published after Stop); it must not call back into
  // Sinks. Messages name a webhook by its origin only (URLs carry secrets).
  using LogFn = std::function<void(std::string_view level, const std::string& message)>;

  // Validates every option (and that names are distinct), opens kFile sinks' files (so a bad
  // path fails here) and checks that a webhook's ca_file is readable, then starts one thread
  // per sink. Returns InvalidArgument for bad options, or the error opening a file; nothing is
  // left running then. `log` may be empty.
  static common::StatusOr<std::unique_ptr<Sinks>> Start(std::vector<SinkOptions> options,
                                                        LogFn log);

  ~Sinks();  // Stop(0)
  Sinks(const Sinks&) = delete;
  Sinks& operator=(const Sinks&) = delete;

  // Hands '\n'-terminated lines (one or many in one view) to every sink and returns; never
  // waits for I/O, only for each sink's buffer lock. A final piece without '\n' is taken as a
  // line and given one; empty lines are skipped. A line that does not fit in a sink's buffer is
  // dropped for that sink (reason "buffer_full"); after Stop every line is dropped (reason
  // "shutdown"). Thread-safe.
  void Publish(std::string_view lines);

  // Stops taking lines, keeps delivering (retries included) for up to `drain` or until every
  // buffer is empty, then joins the threads. An attempt already in flight may run to its
  // timeout; an attempt started during the drain gets at most the time left. What is left is
  // dropped, reason "shutdown". Idempotent.
  void Stop(std::chrono::milliseconds drain);

  // Asks kFile sinks to reopen their path (log rotation, on SIGHUP): lines published after
  // Reopen returns go to the file now at the path. If it cannot be opened the sink logs an
  // error, keeps writing to the old file and tries again before its next batch. Thread-safe.
  void Reopen();

  // Prometheus text exposition, one series per sink (no output when there are no sinks):
  //   aegis_audit_sink_delivered_total{sink="NAME"}   lines delivered
  //   aegis_audit_sink_dropped_total{sink="NAME",reason="buffer_full|delivery_failed|shutdown"}
  //   aegis_audit_sink_failures_total{sink="NAME"}    failed attempts (each retry counts)
  //   aegis_audit_sink_truncated_total{sink="NAME"}   syslog UDP messages cut to
  //                                                   max_datagram_bytes
  //   aegis_audit_sink_queue_depth{sink="NAME"}       lines waiting now
  void AppendMetrics(std::string& out) const;

  struct Stats {
    uint64_t delivered = 0;
    uint64_t dropped_buffer_full = 0;
    uint64_t dropped_delivery_failed = 0;
    uint64_t dropped_shutdown = 0;
    uint64_t failures = 0;
    uint64_t truncated = 0;
    size_t queue_depth = 0;
  };
  // The counters of the sink called `name` (all zero for an unknown name). For tests.
  Stats stats(std::string_view name) const;

  struct Impl;

 private:
  explicit Sinks(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegis::audit

#endif  // AEGIS_AUDIT_SINKS_H_
