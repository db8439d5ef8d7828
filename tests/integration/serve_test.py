"""Integration tests of `aegis serve` as agents, operators and nginx use it.

Usage: serve_test.py <path to aegis> [unittest args]. Each test class starts the real binary on
127.0.0.1 with port 0 and a bundle in a temporary directory, reads the `listening` lines, and talks
to it over real sockets: the decide API, the policy API, health and metrics, limits on hostile
clients, hot reload under load, graceful drain, and nginx auth_request in front of an API
(deploy/nginx). Python standard library only. gRPC is tested elsewhere.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

AEGIS = None

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# One agent, one tool. `limit` is the amount above which a payment is denied outright; the reload
# tests vary it so two valid versions decide the same call differently. No rate limits or
# budgets: the load tests send thousands of calls.
POLICY = """\
apiVersion: aegis/v1
kind: Policy
metadata: {{name: serve-test}}
mode: enforce
default: deny
tools:
  stripe:
    hosts: [api.stripe.com]
    actions:
      create_payment: {{method: POST, path: /v1/payment_intents, cost_usd: 0.002}}
      get_payment: {{method: GET, path: "/v1/payment_intents/{{id}}"}}
agents:
  finance-agent:
    tools: [stripe]
    allowed_domains: [api.stripe.com]
rules:
  - id: payment-limit
    match: {{agents: [finance-agent], tools: [stripe], actions: [create_payment]}}
    if: params.amount > {limit}
    effect: deny
    message: Payments above {limit} are refused
  - id: payment-ceiling
    match: {{agents: [finance-agent], tools: [stripe], actions: [create_payment]}}
    if: params.amount > 5000
    effect: approval_needed
    approval: {{quorum: 2, ttl: 1h, notify: [finance-slack]}}
    message: Payments above $5,000 need two approvers
  - id: payments
    match: {{agents: [finance-agent], tools: [stripe]}}
    effect: allow
"""

# Broken bundles: each must be refused as a whole, never half-applied.
BROKEN = [
    POLICY.format(limit=10000).replace("effect: allow", "efect: allow"),
    POLICY.format(limit=10000) + "  - id: payments\n    match: {tools: [stripe]}\n    effect: deny\n",
    POLICY.format(limit=10000).replace("params.amount > 5000", "params.amount >> 5000"),
    "apiVersion: aegis/v1\nkind: Policy\nrules: [\n",
]


def payment(amount, agent="finance-agent"):
    return {"agent": agent, "tool": "stripe", "action": "create_payment",
            "params": {"amount": amount, "currency": "usd"}}


class ServerTestCase(unittest.TestCase):
    """Starts one `aegis serve` per test class; subclasses set CONFIG and LIMIT."""

    CONFIG = {}
    LIMIT = 10000

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="aegis-serve-test-")
        cls.bundle = os.path.join(cls.tmp, "bundle")
        os.makedirs(cls.bundle)
        cls.write_policy(POLICY.format(limit=cls.LIMIT))
        config = {"data_dir": os.path.join(cls.tmp, "data"), "log_level": "warn"}
        config.update(cls.CONFIG)
        cls.aegis = harness.AegisServer(AEGIS, cls.tmp, cls.bundle, config=config).start()

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.aegis.stop()
            if code != 0:
                raise AssertionError("aegis serve exited %s:\n%s" % (code, cls.aegis.output()))
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def write_policy(cls, text):
        """Replaces the bundle's policy file atomically (as editors and config management do),
        so a reader never sees a half-written file."""
        staging = os.path.join(cls.tmp, "policy.yaml.new")
        with open(staging, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(staging, os.path.join(cls.bundle, "policy.yaml"))

    def decide(self, call, conn=None, headers=None):
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        if conn is None:
            status, h, body = self.aegis.request("POST", "/v1/decide", call, hdrs)
        else:
            status, h, body = harness.do_request(conn, "POST", "/v1/decide", call, hdrs)
        return status, h, json.loads(body) if body else None

    def get_json(self, path):
        status, h, body = self.aegis.request("GET", path)
        self.assertEqual(h.get("content-type", "").split(";")[0], "application/json", body)
        return status, json.loads(body)

    def assert_error(self, result, status):
        got, headers, body = result
        self.assertEqual(got, status, body)
        self.assertNotIn("x-aegis-decision", headers, "a refused input must carry no decision")
        err = json.loads(body)["error"]
        self.assertTrue(err["code"] and err["message"], err)
        return err

    def assert_serving(self):
        status, headers, decision = self.decide(payment(100))
        self.assertEqual(status, 200)
        self.assertEqual(decision["decision"], "allow")


class DecideApiTest(ServerTestCase):
    CONFIG = {"limits": {"max_header_bytes": 8192, "max_body_bytes": 65536,
                         "request_timeout_ms": 1500, "idle_timeout_ms": 5000},
              "policy": {"watch": False}}

    def test_allow_carries_the_decision_in_headers_and_body(self):
        status, h, d = self.decide(payment(120))
        self.assertEqual(status, 200)
        self.assertEqual(d["decision"], "allow")
        self.assertEqual(d["reasons"][0]["rule"], "payments")
        self.assertEqual(h["x-aegis-decision"], "allow")
        self.assertEqual(h["x-aegis-decision-id"], d["decision_id"])
        self.assertRegex(d["decision_id"], UUID_RE)
        self.assertEqual(h["x-aegis-policy-version"], d["policy_version"])
        self.assertEqual(d["policy_version"], self.aegis.ready_version)
        self.assertEqual(h["x-aegis-enforced"], "true")
        self.assertEqual(d["policy"], "serve-test")
        self.assertEqual(d["cost_usd"], 0.002)

    def test_every_decision_has_its_own_id(self):
        conn = self.aegis.connect()
        ids = {self.decide(payment(1), conn)[2]["decision_id"] for _ in range(50)}
        conn.close()
        self.assertEqual(len(ids), 50)

    def test_deny_and_approval_needed_are_403_with_the_decision(self):
        status, h, d = self.decide(payment(20000))
        self.assertEqual((status, h["x-aegis-decision"], d["decision"]), (403, "deny", "deny"))
        self.assertEqual(d["reasons"][0]["rule"], "payment-limit")
        status, h, d = self.decide(payment(7000))
        self.assertEqual(status, 403)
        self.assertEqual((h["x-aegis-decision"], d["decision"]),
                         ("approval_needed", "approval_needed"))
        self.assertEqual(d["reasons"][0]["rule"], "payment-ceiling")
        self.assertEqual(d["approval"]["quorum"], 2)
        status, h, d = self.decide(payment(1, agent="intern-bot"))
        self.assertEqual((status, d["decision"], d["reasons"][0]["code"]),
                         (403, "deny", "unknown_agent"))
        self.assertEqual(h["x-aegis-decision-id"], d["decision_id"])

    def test_raw_http_call_resolves_through_the_catalog(self):
        call = {"agent": "finance-agent",
                "request": {"method": "GET", "host": "API.Stripe.com.",
                            "path": "/v1/payment_intents/pi_123?expand=customer"}}
        status, _, d = self.decide(call)
        self.assertEqual((status, d["decision"], d["tool"], d["action"]),
                         (200, "allow", "stripe", "get_payment"))

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        conn = self.aegis.connect()
        sock_before = None
        for i in range(200):
            status, _, d = self.decide(payment(i), conn)
            self.assertEqual(status, 200)
            if sock_before is None:
                sock_before = conn.sock
            self.assertIs(conn.sock, sock_before, "the server closed a keep-alive connection")
        conn.close()

    def test_bad_input_is_an_error_never_a_decision(self):
        json_h = {"Content-Type": "application/json"}
        cases = [
            ("not JSON", "POST", "/v1/decide", b"{agent: finance-agent}", json_h, 400),
            ("duplicate key", "POST", "/v1/decide",
             b'{"agent":"finance-agent","agent":"x","tool":"stripe"}', json_h, 400),
            ("unknown field", "POST", "/v1/decide",
             b'{"agent":"finance-agent","tool":"stripe","bogus":1}', json_h, 400),
            ("no agent", "POST", "/v1/decide", b'{"tool":"stripe"}', json_h, 400),
            ("identity from the caller", "POST", "/v1/decide",
             b'{"agent":"finance-agent","tool":"stripe","identity":{"sub":"x"}}', json_h, 400),
            ("lone surrogate", "POST", "/v1/decide",
             b'{"agent":"finance-agent","tool":"stripe","params":{"a":"\\ud800"}}', json_h, 400),
            ("empty body", "POST", "/v1/decide", b"", json_h, 400),
            ("not JSON content type", "POST", "/v1/decide",
             json.dumps(payment(1)).encode(), {"Content-Type": "text/plain"}, 415),
            ("no content type", "POST", "/v1/decide", json.dumps(payment(1)).encode(), {}, 415),
            ("unknown route", "GET", "/v1/nope", None, {}, 404),
            ("wrong method", "GET", "/v1/decide", None, {}, 405),
            ("wrong method on reload", "GET", "/v1/policy/reload", None, {}, 405),
        ]
        for name, method, path, body, headers, want in cases:
            with self.subTest(name):
                self.assert_error(self.aegis.request(method, path, body, headers), want)
        self.assert_serving()

    def test_body_over_the_limit_is_413(self):
        big = payment(1)
        big["params"]["memo"] = "x" * 70000  # limits.max_body_bytes is 65536 here
        self.assert_error(self.aegis.request("POST", "/v1/decide", big), 413)
        # Announced but not sent: refused on the Content-Length alone, without waiting.
        result = harness.raw_exchange(
            self.aegis.http_port,
            b"POST /v1/decide HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n{", timeout=5)
        self.assertIsNotNone(result, "the server closed without answering")
        self.assertEqual(result[0], 413)
        self.assert_serving()

    def test_header_flood_is_431(self):
        flood = b"".join(b"X-Flood-%d: %s\r\n" % (i, b"y" * 100) for i in range(200))
        result = harness.raw_exchange(
            self.aegis.http_port,
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + flood + b"\r\n", timeout=5)
        self.assertIsNotNone(result, "the server closed without answering")
        self.assertEqual(result[0], 431)
        one_huge = b"GET /healthz HTTP/1.1\r\nHost: t\r\nCookie: " + b"c" * 20000 + b"\r\n\r\n"
        result = harness.raw_exchange(self.aegis.http_port, one_huge, timeout=5)
        self.assertEqual(result[0] if result else None, 431)
        self.assert_serving()

    def test_malformed_http_gets_400_and_the_server_keeps_serving(self):
        for payload in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                        b"POST /v1/decide HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n"):
            with self.subTest(payload=payload):
                result = harness.raw_exchange(self.aegis.http_port, payload, timeout=5)
                if result is not None:  # closing without an answer is acceptable too
                    self.assertEqual(result[0], 400, result)
        self.assert_serving()

    def test_slow_clients_do_not_block_others_and_are_cut_off(self):
        slow = []
        try:
            for i in range(20):
                s = socket.create_connection(("127.0.0.1", self.aegis.http_port), timeout=10)
                if i % 2:  # headers that never finish
                    s.sendall(b"POST /v1/decide HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                else:  # a body that never finishes
                    s.sendall(b"POST /v1/decide HTTP/1.1\r\nHost: t\r\n"
                              b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
                slow.append(s)
            started = time.monotonic()
            conn = self.aegis.connect(timeout=2)
            for _ in range(100):
                status, _, _ = self.decide(payment(1), conn)
                self.assertEqual(status, 200)
            conn.close()
            self.assertLess(time.monotonic() - started, 5.0)
            # limits.request_timeout_ms is 1500: every slow connection is answered 408 or closed.
            for s in slow:
                s.settimeout(10)
                start = time.monotonic()
                data = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except ConnectionResetError:
                    pass
                self.assertLess(time.monotonic() - start, 9.0, "slow client was never cut off")
                if data:
                    self.assertTrue(data.startswith(b"HTTP/1.1 408"), data[:80])
        finally:
            for s in slow:
                s.close()
        self.assert_serving()

    def test_idle_keep_alive_connection_is_closed(self):
        conn = self.aegis.connect()
        self.assertEqual(self.decide(payment(1), conn)[0], 200)
        sock = conn.sock
        sock.settimeout(15)
        start = time.monotonic()
        self.assertEqual(sock.recv(1), b"")  # idle_timeout_ms is 5000
        self.assertGreater(time.monotonic() - start, 3.0)
        conn.close()


class PolicyApiTest(ServerTestCase):
    CONFIG = {"policy": {"watch": False, "keep_versions": 3}}

    def test_health_and_readiness(self):
        status, _, body = self.aegis.request("GET", "/healthz")
        self.assertEqual(status, 200)
        status, body = self.get_json("/readyz")
        self.assertEqual(status, 200)
        self.assertIn(self.aegis.ready_version, json.dumps(body))

    def test_policy_reload_and_rollback(self):
        status, info = self.get_json("/v1/policy")
        self.assertEqual(status, 200)
        first = info["version"]
        self.assertEqual(first, self.aegis.ready_version)
        self.assertEqual(info["name"], "serve-test")
        self.assertEqual(info["rules"], 3)
        self.assertIsNone(info["last_error"])
        self.assertEqual(self.decide(payment(1000))[2]["decision"], "allow")

        # A new valid version: active at once, and the decisions follow it.
        self.write_policy(POLICY.format(limit=500))
        status, _, body = self.aegis.request("POST", "/v1/policy/reload")
        self.assertEqual(status, 200, body)
        second = json.loads(body)["version"]
        self.assertNotEqual(second, first)
        status, h, d = self.decide(payment(1000))
        self.assertEqual((status, d["decision"], h["x-aegis-policy-version"]),
                         (403, "deny", second))

        # Reloading identical content keeps the same version.
        status, _, body = self.aegis.request("POST", "/v1/policy/reload")
        self.assertEqual((status, json.loads(body)["version"]), (200, second))

        # A broken bundle is refused with its diagnostics; the good version keeps serving.
        self.write_policy(BROKEN[0])
        status, _, body = self.aegis.request("POST", "/v1/policy/reload")
        err = json.loads(body)["error"]
        self.assertEqual(status, 422, body)
        self.assertIn("policy.yaml:", err["message"])
        self.assertIn("efect", err["message"])
        self.assertEqual(self.decide(payment(1000))[1]["x-aegis-policy-version"], second)
        status, info = self.get_json("/v1/policy")
        self.assertEqual(info["version"], second)
        self.assertIn("efect", info["last_error"]["message"])
        self.assertGreaterEqual(info["reloads"]["failed"], 1)

        status, versions = self.get_json("/v1/policy/versions")
        self.assertEqual(versions["active"], second)
        listed = [v["version"] for v in versions["versions"]]
        self.assertEqual(listed[:2], [second, first], "versions must be newest first")
        self.assertEqual([v["version"] for v in versions["versions"] if v["active"]], [second])

        # Rollback: the first version decides again.
        status, _, body = self.aegis.request("POST", "/v1/policy/rollback", {"version": first})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["active"], first)
        status, h, d = self.decide(payment(1000))
        self.assertEqual((status, d["decision"], h["x-aegis-policy-version"]),
                         (200, "allow", first))
        self.assert_error(self.aegis.request("POST", "/v1/policy/rollback",
                                             {"version": "0000000000000000"}), 404)
        self.assert_error(self.aegis.request("POST", "/v1/policy/rollback", {"v": first}), 400)
        self.assertEqual(self.get_json("/v1/policy")[1]["version"], first)

        # Recovery: fix the file, reload.
        self.write_policy(POLICY.format(limit=500))
        status, _, body = self.aegis.request("POST", "/v1/policy/reload")
        self.assertEqual((status, json.loads(body)["version"]), (200, second))
        self.assertIsNone(self.get_json("/v1/policy")[1]["last_error"])

    def test_sighup_reloads(self):
        self.write_policy(POLICY.format(limit=123))
        before = self.get_json("/v1/policy")[1]["version"]
        self.aegis.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.get_json("/v1/policy")[1]["version"] != before:
                break
            time.sleep(0.05)
        status, _, d = self.decide(payment(200))
        self.assertEqual((status, d["decision"], d["reasons"][0]["rule"]),
                         (403, "deny", "payment-limit"))
        self.write_policy(POLICY.format(limit=self.LIMIT))
        self.aegis.request("POST", "/v1/policy/reload")

    def test_metrics_count_decisions(self):
        def scrape():
            status, h, body = self.aegis.request("GET", "/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(h["content-type"].startswith("text/plain"), h)
            return body.decode()

        def total(text, outcome):
            n = 0.0
            for line in text.splitlines():
                if line.startswith("#") or "decisions" not in line.split("{")[0]:
                    continue
                if 'decision="%s"' % outcome in line or 'outcome="%s"' % outcome in line:
                    n += float(line.rsplit(" ", 1)[1])
            return n

        before = scrape()
        for _ in range(5):
            self.decide(payment(1))
        self.decide(payment(1, agent="intern-bot"))
        self.aegis.request("GET", "/v1/nope")
        after = scrape()
        self.assertIn("# TYPE", after)
        self.assertRegex(after, r"(?m)^aegis_\w+")
        self.assertEqual(total(after, "allow") - total(before, "allow"), 5, after)
        self.assertEqual(total(after, "deny") - total(before, "deny"), 1, after)
        self.assertRegex(after, r"(?m)^aegis_\w*_bucket\{.*le=\"\+Inf\"")
        self.assertRegex(after, r'(?m)^aegis_policy_info\{.*version="%s"'
                         % self.get_json("/v1/policy")[1]["version"])


class ReloadUnderLoadTest(ServerTestCase):
    """Decisions keep flowing, correct and attributable, while the bundle is rewritten."""

    CONFIG = {"policy": {"watch": True, "debounce_ms": 20, "keep_versions": 10}}
    LIMIT = 10000  # version A: a 1000 payment is allowed

    def test_hot_reload_under_load(self):
        version_a = self.aegis.ready_version
        self.write_policy(POLICY.format(limit=500))  # version B: the same payment is denied
        status, _, body = self.aegis.request("POST", "/v1/policy/reload")
        self.assertEqual(status, 200, body)
        version_b = json.loads(body)["version"]
        self.assertNotEqual(version_a, version_b)
        expected = {version_a: (200, "allow"), version_b: (403, "deny")}

        stop = threading.Event()
        failures, counts, seen_versions = [], [0], set()
        lock = threading.Lock()

        def client():
            conn = self.aegis.connect(timeout=10)
            body = json.dumps(payment(1000)).encode()
            n, local_failures, versions = 0, [], set()
            while not stop.is_set():
                try:
                    conn.request("POST", "/v1/decide", body, {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    version = resp.getheader("x-aegis-policy-version")
                    decision = json.loads(data)["decision"]
                    if expected.get(version) != (resp.status, decision):
                        local_failures.append((resp.status, version, data[:200]))
                    versions.add(version)
                    n += 1
                except (OSError, http.client.HTTPException, ValueError) as e:
                    local_failures.append(repr(e))
                    conn.close()
                    conn = self.aegis.connect(timeout=10)
            conn.close()
            with lock:
                failures.extend(local_failures)
                counts[0] += n
                seen_versions.update(versions)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            # 100 rewrites: A, broken, B, broken, ... The last valid one is B (write 98).
            for i in range(100):
                kind = i % 4
                if kind == 0:
                    self.write_policy(POLICY.format(limit=10000))
                elif kind == 2:
                    self.write_policy(POLICY.format(limit=500))
                else:
                    self.write_policy(BROKEN[(i // 2) % len(BROKEN)])
                time.sleep(0.03)
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(failures[:10], [], "%d of %d requests failed or named a wrong version"
                         % (len(failures), counts[0]))
        self.assertGreater(counts[0], 1000)
        self.assertEqual(seen_versions, {version_a, version_b},
                         "both versions should have served during the rewrites")

        # The last write was broken: B (the last valid one) serves, and the error is reported.
        status, h, d = self.decide(payment(1000))
        self.assertEqual((status, d["decision"], h["x-aegis-policy-version"]),
                         (403, "deny", version_b))
        info = self.get_json("/v1/policy")[1]
        self.assertEqual(info["version"], version_b)
        self.assertIsNotNone(info["last_error"], "the final broken write was not reported")
        self.assertGreater(info["reloads"]["ok"], 2, info)
        self.assertGreater(info["reloads"]["failed"], 2, info)

        # Rollback restores A's decisions.
        status, _, body = self.aegis.request("POST", "/v1/policy/rollback",
                                             {"version": version_a})
        self.assertEqual(status, 200, body)
        status, h, d = self.decide(payment(1000))
        self.assertEqual((status, d["decision"], h["x-aegis-policy-version"]),
                         (200, "allow", version_a))


class DrainTest(unittest.TestCase):
    """SIGTERM: requests already under way get their answers, then the process exits 0."""

    def test_in_flight_request_is_answered_after_sigterm(self):
        with tempfile.TemporaryDirectory(prefix="aegis-drain-") as tmp:
            bundle = os.path.join(tmp, "bundle")
            os.makedirs(bundle)
            with open(os.path.join(bundle, "policy.yaml"), "w", encoding="utf-8") as f:
                f.write(POLICY.format(limit=10000))
            aegis = harness.AegisServer(
                AEGIS, tmp, bundle,
                config={"data_dir": os.path.join(tmp, "data"),
                        "limits": {"drain_timeout_ms": 5000}}).start()
            try:
                idle = aegis.connect()
                self.assertEqual(harness.do_request(idle, "GET", "/healthz")[0], 200)
                # A request whose headers and half its body have arrived when SIGTERM comes.
                body = json.dumps(payment(120)).encode()
                half = len(body) // 2
                s = socket.create_connection(("127.0.0.1", aegis.http_port), timeout=10)
                s.sendall(b"POST /v1/decide HTTP/1.1\r\nHost: t\r\n"
                          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                          % len(body) + body[:half])
                time.sleep(0.2)
                aegis.signal(signal.SIGTERM)
                time.sleep(0.3)
                self.assertIsNone(aegis.proc.poll(), "exited with a request in flight")
                # New connections are no longer accepted.
                with self.assertRaises(OSError):
                    c = socket.create_connection(("127.0.0.1", aegis.http_port), timeout=2)
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                    if not c.recv(1):
                        raise ConnectionResetError("closed")
                    c.close()
                s.sendall(body[half:])
                result = harness.read_raw_response(s)
                s.close()
                self.assertIsNotNone(result, "the in-flight request got no answer")
                status, headers, data = result
                self.assertEqual((status, json.loads(data)["decision"]), (200, "allow"))
                self.assertEqual(headers.get("connection", "").lower(), "close")
                self.assertEqual(aegis.wait(timeout=10), 0, aegis.output())
                idle.close()
            finally:
                aegis.kill()


@unittest.skipIf(harness.NGINX is None, "nginx is not installed (scripts/install-deps.sh)")
class NginxAuthRequestTest(ServerTestCase):
    """deploy/nginx/aegis-auth.conf, run by a real nginx between clients and an API."""

    CONFIG = {"policy": {"watch": False}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = harness.RecordingUpstream().start()
        try:
            cls.nginx = harness.Nginx(os.path.join(cls.tmp, "nginx"), cls.aegis.address,
                                      "127.0.0.1:%d" % cls.api.port).start()
        except Exception:
            cls.api.stop()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.nginx.stop()
        cls.api.stop()
        super().tearDownClass()

    def call(self, method, path, agent="finance-agent", host="api.stripe.com", body=None):
        headers = {"Host": host}
        if agent:
            headers["x-aegis-agent"] = agent
        return self.nginx.request(method, path, body, headers)

    def test_allowed_call_reaches_the_api_with_the_decision_headers(self):
        before = len(self.api.seen())
        status, h, body = self.call("GET", "/v1/payment_intents/pi_42?expand=customer")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["upstream"], "ok")
        self.assertEqual(h["x-aegis-decision"], "allow")
        self.assertRegex(h["x-aegis-decision-id"], UUID_RE)
        self.assertEqual(h["x-aegis-policy-version"], self.aegis.ready_version)
        seen = self.api.seen()[before:]
        self.assertEqual(len(seen), 1)
        self.assertEqual((seen[0]["method"], seen[0]["path"]),
                         ("GET", "/v1/payment_intents/pi_42?expand=customer"))
        self.assertEqual(seen[0]["headers"]["x-aegis-decision-id"], h["x-aegis-decision-id"])

    def test_denied_calls_get_403_and_never_reach_the_api(self):
        before = len(self.api.seen())
        cases = [
            ("unknown agent", "GET", "/v1/payment_intents/pi_1", "intern-bot", "api.stripe.com",
             "deny"),
            ("host outside scope", "GET", "/v1/payment_intents/pi_1", "finance-agent",
             "evil.example.com", "deny"),
            ("route not in the catalog", "DELETE", "/v1/customers/c_1", "finance-agent",
             "api.stripe.com", "deny"),
            # auth_request never sends the body, so params.amount is missing: the approval
            # rule's condition errors, and errors fail safe.
            ("payment without its body", "POST", "/v1/payment_intents", "finance-agent",
             "api.stripe.com", "deny"),
        ]
        for name, method, path, agent, host, decision in cases:
            with self.subTest(name):
                status, h, body = self.call(method, path, agent, host,
                                            body={"amount": 1} if method == "POST" else None)
                self.assertEqual(status, 403, body)
                self.assertIn(h.get("x-aegis-decision"), ("deny", "approval_needed"), h)
                self.assertRegex(h.get("x-aegis-decision-id", ""), UUID_RE)
                self.assertEqual(h.get("x-aegis-policy-version"), self.aegis.ready_version)
                refusal = json.loads(body)
                self.assertEqual(refusal["decision_id"], h["x-aegis-decision-id"])
        # No agent header: not a call aegis can decide, so a 400 error, and still no API call.
        status, h, body = self.call("GET", "/v1/payment_intents/pi_1", agent=None)
        self.assertEqual(status, 400, body)
        self.assertIn("error", json.loads(body))
        self.assertEqual(self.api.seen()[before:], [], "a refused call reached the API")

    def test_client_cannot_forge_the_original_request(self):
        before = len(self.api.seen())
        status, h, _ = self.nginx.request(
            "DELETE", "/v1/customers/c_1",
            headers={"Host": "api.stripe.com", "x-aegis-agent": "finance-agent",
                     "X-Original-URI": "/v1/payment_intents/pi_1", "X-Original-Method": "GET"})
        self.assertEqual(status, 403)
        self.assertEqual(self.api.seen()[before:], [])


@unittest.skipIf(harness.NGINX is None, "nginx is not installed (scripts/install-deps.sh)")
class NginxConfigStatusMappingTest(unittest.TestCase):
    """The statuses aegis will give once limits arrive (429, 402) and its absence, through the
    same nginx config; a scripted stand-in answers for aegis."""

    def test_statuses_reach_the_client_and_failures_close(self):
        with tempfile.TemporaryDirectory(prefix="aegis-nginx-") as tmp:
            fake = harness.ScriptedDecisionService().start()
            api = harness.RecordingUpstream().start()
            nginx = harness.Nginx(os.path.join(tmp, "nginx"), "127.0.0.1:%d" % fake.port,
                                  "127.0.0.1:%d" % api.port).start()
            try:
                for aegis_status, want in ((200, 200), (403, 403), (429, 429), (402, 402),
                                           (400, 400), (500, 503)):
                    with self.subTest(aegis_status=aegis_status):
                        status, h, body = nginx.request(
                            "GET", "/v1/x?y=1",
                            headers={"Host": "api.example.com", "x-aegis-agent": "a",
                                     "x-test-aegis-status": str(aegis_status)})
                        self.assertEqual(status, want, body)
                        self.assertEqual(h.get("x-aegis-decision-id"),
                                         "0190b7c0-0000-7000-8000-00000000%04d" % aegis_status)
                        if want == 429:
                            self.assertEqual(h.get("retry-after"), "7")
                        if want in (403, 429, 402):
                            self.assertEqual(json.loads(body)["decision"], "deny")
                asked = fake.seen()[0]["headers"]
                self.assertEqual((asked["x-original-method"], asked["x-original-uri"],
                                  asked["x-original-host"], asked["x-aegis-agent"]),
                                 ("GET", "/v1/x?y=1", "api.example.com", "a"))
                self.assertEqual(len(api.seen()), 1, "only the allowed call may reach the API")
                fake.stop()
                fake = None
                status, h, body = nginx.request("GET", "/v1/x", headers={"x-aegis-agent": "a"})
                self.assertEqual(status, 503, body)  # aegis down: fail closed
                self.assertEqual(len(api.seen()), 1)
            finally:
                nginx.stop()
                api.stop()
                if fake is not None:
                    fake.stop()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: serve_test.py <path to aegis> [unittest args]")
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
