"""The audit sinks of a real `aegis serve`, checked where a SIEM operator would check them: a real
rsyslogd taking RFC 5424 over UDP and over TCP (octet counting), a webhook collector that fails
twice before it takes NDJSON, a file sink rotated logrotate-style with SIGHUP, and stdout. Every
sink gets exactly the trail's record lines, once, without the raw PII the callers sent; syslog
carries the right PRI, APP-NAME, MSGID and structured data; /metrics counts what each sink
delivered, dropped and retried; the trail still verifies; and bad sink configurations stop
`aegis serve` at start with an error naming the sink.

rsyslogd comes from Debian's rsyslog package (scripts/install-deps.sh installs it); the test
runs its own instance in the foreground on loopback ports of its choosing and fails, naming the
package, when it is missing.

Usage: audit_sinks_test.py <path to aegis>
"""
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

AEGIS = None
JSON = {"Content-Type": "application/json"}

RSYSLOGD = shutil.which("rsyslogd") or next(
    (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.path.exists(p)), None)

POLICY = """\
apiVersion: aegis/v1
kind: Policy
metadata: {name: sinks-test}
tools:
  search: {actions: {query: {}}}
  ehr: {actions: {export: {}, delete: {}}}
  stripe: {actions: {create_payment: {}}}
agents:
  research-agent: {tools: [search, ehr]}
  finance-agent: {tools: [stripe]}
rules:
  - {id: lookups, match: {tools: [search]}, effect: allow}
  - {id: no-deletes, match: {tools: [ehr], actions: [delete]}, effect: deny}
  - id: phi
    match: {tools: [ehr], actions: [export]}
    effect: sanitize
    redact: {detectors: [ssn, email]}
  - id: big-payments
    match: {tools: [stripe]}
    if: params.amount > 5000
    effect: approval_needed
    approval: {quorum: 1, ttl: 1h}
  - {id: payments, match: {tools: [stripe]}, effect: allow}
"""

SSN = "123-45-6789"
EMAIL = "ann.smith@example.com"
WEBHOOK_TOKEN = "q-secret-7c1d9e"  # in the webhook URL's query: must never reach a log line
WEBHOOK_AUTH = "Bearer sink-secret-42"

# (agent, tool, action, params, HTTP status, decision)
FIRST_RUN = [
    ("research-agent", "search", "query", {"q": "weather in Lyon"}, 200, "allow"),
    ("research-agent", "search", "query", {"q": "mail " + EMAIL + " the report"}, 200, "allow"),
    ("research-agent", "ehr", "delete", {"patient": {"ssn": SSN}}, 403, "deny"),
    ("research-agent", "ehr", "export", {"patient": {"ssn": SSN, "mail": EMAIL}}, 200,
     "sanitize"),
    ("finance-agent", "stripe", "create_payment", {"amount": 7000, "receipt_to": EMAIL}, 403,
     "approval_needed"),
    ("finance-agent", "stripe", "create_payment", {"amount": 12}, 200, "allow"),
    ("mallory", "search", "query", {"ssn": SSN}, 403, "deny"),  # unknown agent
    ("research-agent", "ehr", "export", {"note": "SSN " + SSN + " on file"}, 200, "sanitize"),
]
SECOND_RUN = [  # after the file sink's file was rotated
    ("research-agent", "search", "query", {"q": "rotation"}, 200, "allow"),
    ("research-agent", "ehr", "delete", {"patient": {"mail": EMAIL}}, 403, "deny"),
    ("research-agent", "ehr", "export", {"patient": {"ssn": SSN}}, 200, "sanitize"),
]

SEVERITY = {"deny": 4, "approval_needed": 5, "allow": 6, "sanitize": 6}
UDP_FACILITY = 13  # the default (log audit)
TCP_FACILITY = 10  # set in the config (authpriv)
TCP_APP_NAME = "aegis-gw"
UDP_HOSTNAME = "gw-1.example"

# <PRI>1 is parsed by rsyslog; the template below writes the fields back one per column.
_RSYSLOG_LINE = re.compile(
    r'(\d+) (\S+) (\S+) (\S+) (\S+) (\S+) (\[aegis@32473(?: [a-z_]+="(?:[^"\\]|\\.)*")*\]) (.*)\Z')
_SD_PARAM = re.compile(r' ([a-z_]+)="((?:[^"\\]|\\.)*)"')
_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)\Z')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def deadline_poll(done, timeout=15.0, interval=0.05):
    """Calls done() until it returns a true value or the deadline passes; returns its last
    value (the caller's assertions then say what was missing)."""
    end = time.monotonic() + timeout
    while True:
        value = done()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def record_hash_ok(line):
    """The hash rule of docs/audit.md, applied to one record line (bytes, no '\\n')."""
    body = line[: line.rindex(b',"hash":"')]
    return hashlib.sha256(body).hexdigest() == json.loads(line)["hash"]


def rfc3339_micros(unix_nanos):
    seconds, nanos = divmod(unix_nanos, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%06dZ" % (nanos // 1000)


class Rsyslog:
    """rsyslogd in the foreground with a configuration of its own in `dir`: imudp and imtcp on
    loopback ports, each bound to a ruleset writing every message to its own file with a
    template that keeps the raw RFC 5424 fields. Messages whose APP-NAME is `probe` go to
    probe.log instead (the readiness check)."""

    TEMPLATE = ("%PRI% %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% %MSGID% "
                "%STRUCTURED-DATA% %msg%\\n")

    def __init__(self, dir):
        if RSYSLOGD is None:
            raise RuntimeError("rsyslogd is not installed: this test needs Debian's rsyslog "
                               "package (scripts/install-deps.sh installs it)")
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.udp_port = free_udp_port()
        self.tcp_port = harness.free_port()
        self.udp_log = os.path.join(dir, "udp.log")
        self.tcp_log = os.path.join(dir, "tcp.log")
        self.probe_log = os.path.join(dir, "probe.log")
        self.stderr_path = os.path.join(dir, "rsyslogd.out")
        self.proc = None

    def _ruleset(self, name, out):
        return ('ruleset(name="%s") {\n'
                '  if $app-name == "probe" then {\n'
                '    action(type="omfile" file="%s")\n'
                '    stop\n'
                '  }\n'
                '  action(type="omfile" file="%s" template="raw5424")\n'
                '}\n' % (name, self.probe_log, out))

    def start(self):
        conf = os.path.join(self.dir, "rsyslog.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write('global(workDirectory="%s" maxMessageSize="64k" net.enableDNS="off")\n'
                    % self.dir)
            f.write('module(load="imudp")\nmodule(load="imtcp")\n')
            f.write('template(name="raw5424" type="string" string="%s")\n' % self.TEMPLATE)
            f.write(self._ruleset("from_udp", self.udp_log))
            f.write(self._ruleset("from_tcp", self.tcp_log))
            f.write('input(type="imudp" address="127.0.0.1" port="%d" ruleset="from_udp")\n'
                    % self.udp_port)
            f.write('input(type="imtcp" address="127.0.0.1" port="%d" ruleset="from_tcp")\n'
                    % self.tcp_port)
        with open(self.stderr_path, "wb") as out:
            # -C: stay in the current directory; no imklog or imuxsock is loaded, so this
            # instance touches neither the kernel log nor /dev/log.
            self.proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-C", "-f", conf, "-i", os.path.join(self.dir, "rsyslogd.pid")],
                cwd=self.dir, stdout=out, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise
        return self

    def _wait_ready(self):
        if not harness.wait_for_port("127.0.0.1", self.tcp_port):
            raise RuntimeError("rsyslogd did not listen on TCP %d:\n%s" %
                               (self.tcp_port, self.output()))
        # UDP cannot be connected to: send probes until one is written out.
        probe = b"<14>1 - - probe - - - ready"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            def ready():
                if self.proc.poll() is not None:
                    raise RuntimeError("rsyslogd exited with %d:\n%s" %
                                       (self.proc.returncode, self.output()))
                s.sendto(probe, ("127.0.0.1", self.udp_port))
                return b"ready" in read_bytes(self.probe_log)
            if not deadline_poll(ready, timeout=10, interval=0.1):
                raise RuntimeError("rsyslogd did not take UDP on %d:\n%s" %
                                   (self.udp_port, self.output()))

    def output(self):
        return read_bytes(self.stderr_path).decode("utf-8", "replace")

    def messages(self, path):
        return read_bytes(path).decode("utf-8").splitlines()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FlakyCollector(harness.RecordingUpstream):
    """A webhook collector that answers 500 to its first `failures` requests, then 200; it
    remembers the status it gave each request (in the order of `requests`)."""

    def __init__(self, failures):
        super().__init__()
        self.failures_left = failures
        self.answers = []

    def respond(self, handler):
        with self._lock:
            status = 500 if self.failures_left > 0 else 200
            self.failures_left -= 1 if status == 500 else 0
            self.answers.append(status)
        if status == 500:
            return 500, [], b'{"error":"index not ready"}'
        return 200, [], b'{"accepted":true}'

    def exchanges(self):
        with self._lock:
            return list(zip(self.requests, self.answers))


def parse_metrics(text):
    """{(name, frozenset of (label, value))): float} of a Prometheus text exposition."""
    out = {}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def sink_value(samples, name, sink, **labels):
    key = (name, frozenset(dict(labels, sink=sink).items()))
    if key not in samples:
        raise AssertionError("no sample %s{sink=%r, %r}" % (name, sink, labels))
    return samples[key]


class AuditSinksTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="aegis-sinks-")
        self.server = self.rsyslog = self.collector = None
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.bundle = os.path.join(self.tmp, "bundle")
        os.makedirs(self.bundle)
        with open(os.path.join(self.bundle, "policy.yaml"), "w", encoding="utf-8") as f:
            f.write(POLICY)
        self.data = os.path.join(self.tmp, "data")

    def tearDown(self):
        if self.server is not None:
            self.server.stop()
        if self.collector is not None:
            self.collector.stop()
        if self.rsyslog is not None:
            self.rsyslog.stop()

    # --- helpers ------------------------------------------------------------------------------

    def aegis(self, *args):
        return subprocess.run([AEGIS, *args], capture_output=True, text=True, timeout=60)

    def trail_records(self):
        """The record (and event) lines of the trail's segments, as bytes without '\\n'."""
        lines = []
        for path in sorted(glob.glob(os.path.join(self.data, "audit", "*.log"))):
            lines += [l for l in read_bytes(path).split(b"\n") if l.startswith(b'{"seq":')]
        return lines

    def decide(self, run):
        ids = []
        for agent, tool, action, params, status, decision in run:
            call = {"agent": agent, "tool": tool, "action": action, "params": params}
            got, headers, body = self.server.request("POST", "/v1/decide", call, JSON)
            self.assertEqual(got, status, body)
            self.assertEqual(headers.get("x-aegis-decision"), decision, body)
            ids.append(headers["x-aegis-decision-id"])
        return ids

    def metrics(self):
        status, _, body = self.server.request("GET", "/metrics")
        self.assertEqual(status, 200)
        return parse_metrics(body.decode("utf-8"))

    def stdout_records(self):
        return [l.encode() for l in list(self.server.lines) if l.startswith('{"seq":')]

    def webhook_bodies(self):
        return b"".join(r["body"] for r, status in self.collector.exchanges() if status == 200)

    def check_syslog(self, messages, records, facility, app_name, hostname, name):
        """Each rsyslog line matches its trail record: same JSON in MSG, PRI from the decision,
        the record's time, APP-NAME, PROCID = aegis's pid, MSGID decision, and the SD-PARAMs."""
        self.assertEqual(len(messages), len(records), "%s: %d messages for %d records:\n%s" %
                         (name, len(messages), len(records), "\n".join(messages)))
        for message, line in zip(messages, records):
            m = _RSYSLOG_LINE.match(message)
            self.assertIsNotNone(m, "%s: not an RFC 5424 line as rsyslog parsed it: %r" %
                                 (name, message))
            pri, timestamp, host, app, procid, msgid, sd, msg = m.groups()
            record = json.loads(line)
            # rsyslog may escape control characters: compare the parsed JSON.
            self.assertEqual(json.loads(msg), record, name)
            decision = record["decision"]
            self.assertEqual(int(pri), facility * 8 + SEVERITY[decision], (name, decision))
            self.assertEqual(timestamp, rfc3339_micros(record["time"]), name)
            self.assertEqual(host, hostname, name)
            self.assertEqual(app, app_name, name)
            self.assertEqual(procid, str(self.server.proc.pid), name)
            self.assertEqual(msgid, "decision", name)
            params = dict(_SD_PARAM.findall(sd))
            self.assertEqual(params, {"decision_id": record["decision_id"],
                                      "agent": record["agent"], "tenant": record["tenant"],
                                      "decision": decision}, (name, sd))

    # --- the whole path -------------------------------------------------------------------------

    def test_every_sink_ships_exactly_the_trail(self):
        self.rsyslog = Rsyslog(os.path.join(self.tmp, "rsyslog")).start()
        self.collector = FlakyCollector(failures=2).start()
        sink_file = os.path.join(self.tmp, "siem", "aegis-audit.ndjson")
        os.makedirs(os.path.dirname(sink_file))
        hook_url = "http://127.0.0.1:%d/ingest/aegis?token=%s" % (self.collector.port,
                                                                   WEBHOOK_TOKEN)
        sinks = {
            "siem-udp": {"kind": "syslog", "address": "127.0.0.1:%d" % self.rsyslog.udp_port,
                         "hostname": UDP_HOSTNAME},
            "siem-tcp": {"kind": "syslog", "protocol": "tcp",
                         "address": "127.0.0.1:%d" % self.rsyslog.tcp_port,
                         "facility": TCP_FACILITY, "app_name": TCP_APP_NAME},
            "hook": {"kind": "webhook", "url": hook_url,
                     "headers": {"Authorization": WEBHOOK_AUTH},
                     "batch_interval_ms": 200, "timeout_ms": 3000},
            "archive": {"kind": "file", "path": sink_file},
            "console": {"kind": "stdout"},
        }
        config = {"data_dir": self.data, "log_level": "info", "policy": {"watch": False},
                  "audit": {"enabled": True, "sinks": sinks}}
        self.server = harness.AegisServer(AEGIS, self.tmp, self.bundle, config=config).start()
        hostname = socket.gethostname()

        # First run: decisions with PII in their parameters.
        ids = self.decide(FIRST_RUN)
        records = deadline_poll(lambda: len(self.trail_records()) == len(FIRST_RUN) and
                                self.trail_records())
        self.assertTrue(records, "the trail has %d records, expected %d" %
                        (len(self.trail_records()), len(FIRST_RUN)))
        self.assertEqual([json.loads(l)["decision_id"] for l in records], ids)
        trail_text = b"".join(l + b"\n" for l in records)

        def first_run_delivered():
            return (read_bytes(sink_file) == trail_text and
                    self.webhook_bodies() == trail_text and
                    self.stdout_records() == records and
                    len(self.rsyslog.messages(self.rsyslog.udp_log)) >= len(records) and
                    len(self.rsyslog.messages(self.rsyslog.tcp_log)) >= len(records))
        deadline_poll(first_run_delivered)

        # The file sink: the trail's record lines, byte for byte, in a file only its owner reads.
        self.assertEqual(read_bytes(sink_file), trail_text)
        self.assertEqual(stat.S_IMODE(os.stat(sink_file).st_mode) & 0o077, 0)
        # stdout: the same lines among aegis's own output.
        self.assertEqual(self.stdout_records(), records)
        # syslog over UDP (defaults) and over TCP (facility and APP-NAME set), parsed by rsyslog.
        self.check_syslog(self.rsyslog.messages(self.rsyslog.udp_log), records, UDP_FACILITY,
                          "aegis", UDP_HOSTNAME, "siem-udp")
        self.check_syslog(self.rsyslog.messages(self.rsyslog.tcp_log), records, TCP_FACILITY,
                          TCP_APP_NAME, hostname, "siem-tcp")

        # The webhook: the first batch failed twice (500) and went through on the third attempt,
        # the same NDJSON each time; every line arrived once.
        exchanges = self.collector.exchanges()
        self.assertGreaterEqual(len(exchanges), 3)
        self.assertEqual([s for _, s in exchanges[:3]], [500, 500, 200])
        first = exchanges[0][0]
        self.assertEqual(exchanges[1][0]["body"], first["body"])
        self.assertEqual(exchanges[2][0]["body"], first["body"])
        self.assertTrue(trail_text.startswith(first["body"]))
        self.assertEqual(self.webhook_bodies(), trail_text)
        for request, _ in exchanges:
            self.assertEqual(request["method"], "POST")
            self.assertEqual(request["path"], "/ingest/aegis?token=" + WEBHOOK_TOKEN)
            self.assertEqual(request["headers"]["content-type"], "application/x-ndjson")
            self.assertEqual(request["headers"]["authorization"], WEBHOOK_AUTH)
        # The retries were logged, naming the sink and the collector's origin, not its URL.
        # (Polled: "delivered" is logged once aegis has read the 200, a moment after the
        # collector sent it.)
        where = 'audit sink "hook" (webhook http://127.0.0.1:%d)' % self.collector.port
        n = len(first["body"].splitlines())
        for expected in ("aegis: warn: %s: attempt 1 of 5 failed: HTTP 500" % where,
                         "aegis: info: %s: %d %s delivered on attempt 3" %
                         (where, n, "line" if n == 1 else "lines")):
            self.assertTrue(deadline_poll(lambda: expected in self.server.output()),
                            "%r not logged:\n%s" % (expected, self.server.output()))

        # Log rotation: logrotate renames the file, then SIGHUP; later lines go to a new file at
        # the configured path, earlier ones stay in the renamed file.
        rotated = sink_file + ".1"
        os.rename(sink_file, rotated)
        self.server.signal(signal.SIGHUP)
        reopened = 'audit sink "archive" (file %s): reopened' % sink_file
        self.assertTrue(deadline_poll(lambda: reopened in self.server.output()),
                        self.server.output())
        ids += self.decide(SECOND_RUN)
        total = len(FIRST_RUN) + len(SECOND_RUN)
        all_records = deadline_poll(lambda: len(self.trail_records()) == total and
                                    self.trail_records())
        self.assertTrue(all_records, "the trail has %d records, expected %d" %
                        (len(self.trail_records()), total))
        self.assertEqual([json.loads(l)["decision_id"] for l in all_records], ids)
        later_text = b"".join(l + b"\n" for l in all_records[len(FIRST_RUN):])
        all_text = trail_text + later_text

        def everything_delivered():
            m = self.metrics()
            return all(sink_value(m, "aegis_audit_sink_delivered_total", s) == total and
                       sink_value(m, "aegis_audit_sink_queue_depth", s) == 0 for s in sinks)
        deadline_poll(everything_delivered)
        self.assertEqual(read_bytes(rotated), trail_text)
        self.assertEqual(read_bytes(sink_file), later_text)
        self.assertEqual(stat.S_IMODE(os.stat(sink_file).st_mode) & 0o077, 0)

        # /metrics: every line delivered by every sink, none dropped, the two failed attempts.
        m = self.metrics()
        for s in sinks:
            self.assertEqual(sink_value(m, "aegis_audit_sink_delivered_total", s), total, s)
            for reason in ("buffer_full", "delivery_failed", "shutdown"):
                self.assertEqual(
                    sink_value(m, "aegis_audit_sink_dropped_total", s, reason=reason), 0,
                    (s, reason))
            self.assertEqual(sink_value(m, "aegis_audit_sink_failures_total", s),
                             2 if s == "hook" else 0, s)
            self.assertEqual(sink_value(m, "aegis_audit_sink_truncated_total", s), 0, s)
            self.assertEqual(sink_value(m, "aegis_audit_sink_queue_depth", s), 0, s)

        self.assertEqual(self.webhook_bodies(), all_text)
        self.assertEqual(self.stdout_records(), all_records)
        udp = deadline_poll(lambda: len(self.rsyslog.messages(self.rsyslog.udp_log)) >= total and
                            self.rsyslog.messages(self.rsyslog.udp_log))
        tcp = deadline_poll(lambda: len(self.rsyslog.messages(self.rsyslog.tcp_log)) >= total and
                            self.rsyslog.messages(self.rsyslog.tcp_log))
        self.check_syslog(udp or [], all_records, UDP_FACILITY, "aegis", UDP_HOSTNAME, "siem-udp")
        self.check_syslog(tcp or [], all_records, TCP_FACILITY, TCP_APP_NAME, hostname,
                          "siem-tcp")
        severities = sorted({json.loads(l)["decision"] for l in all_records})
        self.assertEqual(severities, ["allow", "approval_needed", "deny", "sanitize"])

        # A clean stop; nothing more reaches the sinks, and the trail verifies.
        self.assertEqual(self.server.stop(), 0, self.server.output())
        trail = os.path.join(self.data, "audit")
        r = self.aegis("audit", "verify", trail)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ok: ", r.stdout)
        r = self.aegis("audit", "show", trail, "--limit", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.encode(), all_text)
        self.assertEqual(read_bytes(rotated) + read_bytes(sink_file), all_text)
        self.assertEqual(self.webhook_bodies(), all_text)
        self.assertEqual(self.stdout_records(), all_records)

        # The file sink alone is enough to re-verify the chain: each line's hash matches its
        # bytes and each prev is the hash before it, from the chain id on.
        with open(os.path.join(trail, "chain.json"), encoding="utf-8") as f:
            prev = json.load(f)["chain"]
        for line in (read_bytes(rotated) + read_bytes(sink_file)).splitlines():
            self.assertTrue(record_hash_ok(line), line)
            record = json.loads(line)
            self.assertEqual(record["prev"], prev, line)
            prev = record["hash"]

        # The raw PII is in none of the sinks' outputs, nor in aegis's own; neither is the
        # webhook's token in any log line.
        outputs = {
            "rsyslog udp": read_bytes(self.rsyslog.udp_log),
            "rsyslog tcp": read_bytes(self.rsyslog.tcp_log),
            "file sink": read_bytes(rotated) + read_bytes(sink_file),
            "webhook": b"".join(r["body"] for r, _ in self.collector.exchanges()),
            "aegis output": self.server.output().encode(),
        }
        for where, content in outputs.items():
            self.assertTrue(content, where)
            self.assertNotIn(SSN.encode(), content, where)
            self.assertNotIn(EMAIL.encode(), content, where)
        self.assertIn(b"[REDACTED:ssn]", outputs["file sink"])
        self.assertNotIn(WEBHOOK_TOKEN, self.server.output())
        self.assertNotIn(WEBHOOK_AUTH, self.server.output())

    # --- bad configurations ---------------------------------------------------------------------

    def serve_fails(self, audit, expected):
        """`aegis serve` with audit config `audit` exits non-zero at start, printing every
        string of `expected`."""
        path = os.path.join(self.tmp, "aegis.yaml")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"data_dir": self.data, "audit": audit}, f, indent=2)
        r = subprocess.run([AEGIS, "serve", "--config", path, "--bundle", self.bundle,
                            "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--proxy", "off"],
                           capture_output=True, text=True, timeout=30)
        output = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, output)
        self.assertNotIn("aegis: ready", output)
        for text in expected:
            self.assertIn(text, output)
        return output

    def test_a_sink_without_kind_is_refused(self):
        self.serve_fails({"sinks": {"siem": {"address": "127.0.0.1:514"}}},
                         ["sink siem needs a kind", "the configuration has errors"])

    def test_an_unknown_kind_is_refused(self):
        out = self.serve_fails({"sinks": {"siem": {"kind": "kafka"}}},
                               ["siem", "kind", "file, stdout, syslog or webhook"])
        self.assertNotIn("needs a kind", out)  # it has one, a wrong one

    def test_syslog_without_address_is_refused(self):
        self.serve_fails({"sinks": {"siem": {"kind": "syslog"}}},
                         ['audit sink "siem": address'])

    def test_syslog_address_without_port_is_refused(self):
        self.serve_fails({"sinks": {"siem": {"kind": "syslog", "address": "127.0.0.1"}}},
                         ['audit sink "siem": address "127.0.0.1"', "port"])

    def test_a_bad_webhook_url_is_refused_without_quoting_it(self):
        out = self.serve_fails(
            {"sinks": {"hook": {"kind": "webhook",
                                "url": "ftp://collector.example/ingest?token=" + WEBHOOK_TOKEN}}},
            ['audit sink "hook": url is invalid'])
        self.assertNotIn(WEBHOOK_TOKEN, out)

    def test_sinks_need_the_audit_trail(self):
        sink_file = os.path.join(self.tmp, "never.ndjson")
        self.serve_fails({"enabled": False, "sinks": {"archive": {"kind": "file",
                                                                  "path": sink_file}}},
                         ["archive", "audit.enabled: true"])
        self.assertFalse(os.path.exists(sink_file))

    def test_a_file_sink_that_cannot_be_opened_is_refused(self):
        path = os.path.join(self.tmp, "no-such-dir", "audit.ndjson")
        self.serve_fails({"sinks": {"archive": {"kind": "file", "path": path}}},
                         ['audit sink "archive": cannot open ' + path])


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
