"""The sidecar / forward proxy front door of the real `aegis serve`, between a client and real
upstream servers: reverse-proxy routes that inject the tool's real credential (a header from the
environment, a query parameter from a 0600 file) and never pass on the agent's token; refusals
(403 deny and approval_needed, 429, 402) that reach no upstream; an approval approved by two
people and its override token used once through the proxy; sanitized request bodies; actual costs
from a response header settling the budget; HTTPS upstreams verified against a test CA (and
refused when the certificate names another host); PII redacted from responses; absolute-form
requests as an HTTP_PROXY client sends them; a table of hostile requests answered 400; metrics;
pooled upstream connections.

Usage: proxy_test.py <path to aegis>
"""
import hashlib
import http.client
import json
import os
import shutil
import ssl
import socket
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

AEGIS = None

POLICY = """\
apiVersion: aegis/v1
kind: Policy
metadata: {name: proxy-test}
tools:
  stripe:
    hosts: [localhost]
    actions:
      create_payment: {method: POST, path: /v1/payment_intents, cost_usd: 0.4}
      record_usage: {method: POST, path: /v1/usage_records, cost_usd: 1}
      read: {method: GET, path: "/v1/**"}
  records:
    hosts: [localhost]
    actions:
      create_patient: {method: POST, path: /v1/patients}
      upload: {method: PUT, path: "/v1/uploads/{name}"}
  ehr:
    hosts: [localhost]
    actions:
      read_patient: {method: GET, path: "/v1/patients/{id}"}
      connect: {}
  badtls:
    hosts: [localhost]
agents:
  finance-agent: {tools: [stripe]}
  proxy-agent: {tools: ["*"]}
  metrics-agent: {tools: [stripe]}
  chatty: {tools: [stripe], max_requests_per_second: 0.001, burst: 2}
  thrifty: {tools: [stripe], max_daily_budget_usd: 1}
  metered: {tools: [stripe], max_daily_budget_usd: 2}
rules:
  - id: amount-ceiling
    match: {tools: [stripe], actions: [create_payment]}
    if: params.amount > 10000
    effect: deny
    message: Payments above $10,000 are not made by agents
  - id: payment-approval
    match: {tools: [stripe], actions: [create_payment]}
    if: params.amount > 5000
    effect: approval_needed
    approval: {quorum: 2, ttl: 1h}
    message: Payments above $5,000 need two approvers
  - id: phi-fields
    match: {tools: [records]}
    effect: sanitize
    redact: {fields: [params.patient.ssn]}
  - id: tools-allowed
    match: {tools: [stripe, ehr, badtls]}
    effect: allow
  - id: uploads
    match: {tools: [records], actions: [upload]}
    effect: allow
"""

STRIPE_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
EHR_KEY = "ehr-key-0123456789abcdef"
SECRETS = {"alice": "alice-secret-0123456789", "bob": "bob-secret-0123456789",
           "orchestrator": "orchestrator-secret-0123456789"}
JSON = {"Content-Type": "application/json"}
SSN, EMAIL = "123-45-6789", "jane@example.com"


def sha256(s):
    return hashlib.sha256(s.encode()).hexdigest()


class Upstream(harness.RecordingUpstream):
    """A RecordingUpstream that also keeps each request's line and header block as received
    (every header, duplicates included), and answers with `answer(handler)` when given."""

    def __init__(self, answer=None):
        super().__init__()
        self.raw = []
        self.answer = answer

    def respond(self, handler):
        with self._lock:
            self.raw.append(handler.requestline + "\n" + str(handler.headers))
        if self.answer:
            return self.answer(handler)
        return super().respond(handler)

    def everything(self):
        """Every byte this upstream was sent: request lines, headers and bodies."""
        with self._lock:
            return ("\n".join(self.raw).encode() + b"\n" +
                    b"\n".join(r["body"] for r in self.requests))

    def count(self):
        return len(self.seen())


class TlsUpstream(Upstream):
    """The same, serving HTTPS with `cert` and `key` (the handshake runs when a connection is
    accepted, before any handler)."""

    def __init__(self, cert, key, answer=None):
        super().__init__(answer)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)


def make_pki(d):
    """A test CA, a server certificate for localhost and 127.0.0.1 and one for wrong.example,
    both signed by the CA, made with the openssl CLI. Returns {name: path}."""
    def openssl(*args):
        r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed:\n%s" % (args[0], r.stderr))

    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w", encoding="utf-8") as f:
        f.write("[req]\ndistinguished_name = dn\n[dn]\n"
                "[ca]\nbasicConstraints = critical,CA:TRUE\n"
                "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    paths = {"ca": os.path.join(d, "ca.pem"), "ca_key": os.path.join(d, "ca.key")}
    openssl("req", "-x509", "-config", cnf, "-extensions", "ca", *ec, "-keyout", paths["ca_key"],
            "-out", paths["ca"], "-days", "2", "-subj", "/CN=Aegis proxy test CA")
    for name, san in (("server", "DNS:localhost,IP:127.0.0.1"), ("wrong", "DNS:wrong.example")):
        key, csr, crt, ext = (os.path.join(d, name + s) for s in (".key", ".csr", ".pem", ".ext"))
        with open(ext, "w", encoding="utf-8") as f:
            f.write("subjectAltName = %s\nbasicConstraints = critical,CA:FALSE\n"
                    "keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n" % san)
        openssl("req", "-new", "-config", cnf, *ec, "-keyout", key, "-out", csr, "-subj",
                "/CN=" + san.split(",")[0].split(":")[1])
        openssl("x509", "-req", "-in", csr, "-CA", paths["ca"], "-CAkey", paths["ca_key"],
                "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
        paths[name], paths[name + "_key"] = crt, key
    return paths


def parse_metrics(text):
    """{'name{labels}': value} for every sample line of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def patient_answer(handler):
    return 200, [], json.dumps({"patient": {"id": "42", "ssn": SSN, "email": EMAIL,
                                            "name": "Jane Roe"}}).encode()


# A response larger than the proxy's max_body_bytes (10 MiB by default): it must be streamed.
BIG_EXPORT = bytes(range(256)) * (24 * 4096)  # 24 MiB


def stripe_answer(handler):
    """The stripe stand-in reports the actual cost of usage records: $0.25 each."""
    if handler.path == "/v1/exports/big":
        return 200, [("X-Upstream", "stripe")], BIG_EXPORT
    headers = [("X-Cost-Usd", "0.25")] if handler.path.startswith("/v1/usage_records") else []
    headers.append(("X-Upstream", "stripe"))
    return 200, headers, json.dumps({"upstream": "stripe", "path": handler.path}).encode()


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # urllib must really use the proxy it is given, whatever no_proxy says.
        cls.saved_env = {k: os.environ.pop(k) for k in ("no_proxy", "NO_PROXY") if k in os.environ}
        cls.tmp = tempfile.mkdtemp(prefix="aegis-proxy-")
        cls.upstreams = []
        cls.server = None
        try:
            cls._start()
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def _start(cls):
        pki = cls.pki = make_pki(cls.tmp)
        bundle = os.path.join(cls.tmp, "bundle")
        os.makedirs(bundle)
        with open(os.path.join(bundle, "policy.yaml"), "w", encoding="utf-8") as f:
            f.write(POLICY)
        secret_file = os.path.join(cls.tmp, "ehr.key")
        with open(secret_file, "w", encoding="utf-8") as f:
            f.write(EHR_KEY + "\n")
        os.chmod(secret_file, 0o600)

        def up(u):
            cls.upstreams.append(u)
            return u.start()

        cls.stripe = up(Upstream(stripe_answer))
        cls.records = up(Upstream())
        cls.ehr = up(TlsUpstream(pki["server"], pki["server_key"], patient_answer))
        cls.badtls = up(TlsUpstream(pki["wrong"], pki["wrong_key"], patient_answer))
        # Listens on a host no route serves and no tool lists: the proxy must never call it.
        cls.sentinel = up(Upstream())
        config = {
            "data_dir": os.path.join(cls.tmp, "data"),
            "identity": {
                "require_agent_token": False,
                "credentials": [
                    {"name": "alice", "token_sha256": sha256(SECRETS["alice"]),
                     "roles": ["approver"]},
                    {"name": "bob", "token_sha256": sha256(SECRETS["bob"]), "roles": ["approver"]},
                    {"name": "orchestrator", "token_sha256": sha256(SECRETS["orchestrator"]),
                     "roles": ["issuer"]},
                ],
            },
            "proxy": {
                "ca_file": pki["ca"],
                "routes": {
                    "stripe": {"upstream": "http://localhost:%d" % cls.stripe.port,
                               "credential": {"header": "Authorization",
                                              "format": "Bearer {secret}",
                                              "secret_env": "STRIPE_KEY"},
                               "cost_header": "X-Cost-Usd"},
                    "records": {"upstream": "http://localhost:%d" % cls.records.port},
                    "ehr": {"upstream": "https://localhost:%d" % cls.ehr.port,
                            "credential": {"query": "api_key", "secret_file": secret_file},
                            "redact_response": True, "tunnel": True},
                    "badtls": {"upstream": "https://localhost:%d" % cls.badtls.port},
                },
            },
        }
        cls.server = harness.AegisServer(AEGIS, cls.tmp, bundle, config=config,
                                         env={"STRIPE_KEY": STRIPE_KEY}).start()
        if cls.server.proxy_port is None:
            raise RuntimeError("aegis serve printed no proxy listening line:\n" +
                               cls.server.output())

    @classmethod
    def _cleanup(cls):
        code = cls.server.stop() if cls.server else 0
        for u in cls.upstreams:
            u.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        os.environ.update(cls.saved_env)
        return code

    @classmethod
    def tearDownClass(cls):
        output = cls.server.output()
        code = cls._cleanup()
        assert code == 0, "aegis serve exited with %s:\n%s" % (code, output)

    # --- helpers ---------------------------------------------------------------------------

    def proxy(self, method, target, body=None, headers=None, agent="proxy-agent"):
        """One request to the proxy on a new connection; (status, headers, body bytes)."""
        headers = dict(headers or {})
        if agent:
            headers["x-aegis-agent"] = agent
        conn = http.client.HTTPConnection("127.0.0.1", self.server.proxy_port, timeout=10)
        try:
            return harness.do_request(conn, method, target, body, headers)
        finally:
            conn.close()

    def raw(self, payload):
        r = harness.raw_exchange(self.server.proxy_port, payload)
        self.assertIsNotNone(r, "the proxy closed the connection without answering %r" % payload)
        return r

    def agent_token(self, agent="finance-agent"):
        status, _, data = self.server.request(
            "POST", "/v1/tokens", {"agent": agent},
            dict(JSON, Authorization="Bearer " + SECRETS["orchestrator"]))
        self.assertEqual(status, 200, data)
        return json.loads(data)["token"]

    def metrics(self):
        status, _, data = self.server.request("GET", "/metrics")
        self.assertEqual(status, 200)
        return parse_metrics(data.decode())

    def spend(self, agent):
        status, _, data = self.server.request("GET", "/v1/spend?agent=" + agent)
        self.assertEqual(status, 200, data)
        return [(r["key"], r["spent_usd"], r["limit_usd"]) for r in json.loads(data)["budgets"]]

    def with_marker(self, upstream, marker):
        return [r for r in upstream.seen() if marker.encode() in r["body"] or marker in r["path"]]

    def counts(self):
        return [u.count() for u in self.upstreams]

    def assertRefusal(self, status, headers, data, code, decision):
        """A refused decision: `code`, the decision JSON, and its headers."""
        self.assertEqual(status, code, data)
        self.assertEqual(headers.get("content-type"), "application/json")
        d = json.loads(data)
        self.assertEqual(d["decision"], decision, d)
        self.assertEqual(headers["x-aegis-decision"], decision)
        self.assertEqual(headers["x-aegis-decision-id"], d["decision_id"])
        self.assertEqual(headers["x-aegis-policy-version"], d["policy_version"])
        return d

    # --- 1. reverse route, credential injection ---------------------------------------------

    def test_allowed_call_reaches_upstream_with_the_route_credential_and_never_the_agent_token(self):
        token = self.agent_token()
        body = b'{"amount": 120,\n  "currency": "usd", "memo": "t1-reverse"}'
        # The token as Authorization, as x-aegis-token and as Proxy-Authorization.
        for i, header in enumerate([("Authorization", "Bearer " + token),
                                    ("x-aegis-token", token),
                                    ("Proxy-Authorization", "Bearer " + token)]):
            status, h, data = self.proxy("POST", "/stripe/v1/payment_intents", body,
                                         dict(JSON, **{header[0]: header[1],
                                                       "Idempotency-Key": "inv-%d" % i}),
                                         agent=None)
            self.assertEqual(status, 200, data)
            self.assertEqual(h["x-aegis-decision"], "allow")
            self.assertTrue(h["x-aegis-decision-id"])
            self.assertEqual(h["x-upstream"], "stripe")  # the upstream's own header comes back
            self.assertEqual(json.loads(data), {"upstream": "stripe",
                                                "path": "/v1/payment_intents"})
        got = self.with_marker(self.stripe, "t1-reverse")
        self.assertEqual(len(got), 3, got)
        for i, r in enumerate(got):
            self.assertEqual(r["method"], "POST")
            self.assertEqual(r["path"], "/v1/payment_intents")
            self.assertEqual(r["body"], body)  # byte for byte: an allow does not rewrite
            self.assertEqual(r["headers"]["authorization"], "Bearer " + STRIPE_KEY)
            self.assertEqual(r["headers"]["host"], "localhost:%d" % self.stripe.port)
            self.assertEqual(r["headers"]["idempotency-key"], "inv-%d" % i)
            self.assertNotIn("proxy-authorization", r["headers"])
        seen = self.stripe.everything().decode(errors="replace")
        self.assertNotIn(token, seen)
        self.assertNotIn("x-aegis", seen.lower())

    # --- 2. deny ------------------------------------------------------------------------------

    def test_denied_call_is_403_with_the_rule_and_reaches_no_upstream(self):
        status, h, data = self.proxy("POST", "/stripe/v1/payment_intents",
                                     {"amount": 20000, "currency": "usd", "memo": "t2-deny"}, JSON)
        d = self.assertRefusal(status, h, data, 403, "deny")
        self.assertEqual(d["reasons"][0]["rule"], "amount-ceiling")
        self.assertEqual(d["agent"], "proxy-agent")
        self.assertEqual(d["tool"], "stripe")
        self.assertEqual(d["action"], "create_payment")
        self.assertEqual(self.with_marker(self.stripe, "t2-deny"), [])

    # --- 3. rate limit and budget -------------------------------------------------------------

    def test_rate_limit_answers_429_with_retry_after(self):
        statuses = []
        for i in range(3):
            status, h, data = self.proxy("POST", "/stripe/v1/payment_intents",
                                         {"amount": 10, "memo": "t3-rate-%d" % i}, JSON,
                                         agent="chatty")
            statuses.append(status)
        self.assertEqual(statuses[:2], [200, 200])  # the burst
        d = self.assertRefusal(status, h, data, 429, "deny")
        self.assertEqual(d["reasons"][0]["code"], "rate_limited")
        self.assertGreater(int(h["retry-after"]), 0)
        self.assertEqual(len(self.with_marker(self.stripe, "t3-rate-")), 2)
        self.assertEqual(self.with_marker(self.stripe, "t3-rate-2"), [])

    def test_budget_answers_402(self):
        # $0.40 a payment against $1 a day: two fit, the third does not.
        results = [self.proxy("POST", "/stripe/v1/payment_intents",
                              {"amount": 10, "memo": "t3-budget-%d" % i}, JSON, agent="thrifty")
                   for i in range(3)]
        self.assertEqual([r[0] for r in results[:2]], [200, 200])
        d = self.assertRefusal(*results[2], 402, "deny")
        self.assertEqual(d["reasons"][0]["code"], "budget_exceeded")
        self.assertEqual(d["budget"]["remaining_usd"], 0.2)
        self.assertEqual(self.with_marker(self.stripe, "t3-budget-2"), [])
        self.assertEqual(self.spend("thrifty"), [("agent//thrifty", 0.8, 1)])

    # --- 4. approvals ---------------------------------------------------------------------

    def test_approval_through_the_proxy_and_its_override_token_used_once(self):
        token = self.agent_token()
        auth = dict(JSON, Authorization="Bearer " + token)
        payment = {"amount": 7000, "currency": "usd", "customer": "cus_42", "memo": "t4-approval"}
        status, h, data = self.proxy("POST", "/stripe/v1/payment_intents", payment, auth,
                                     agent=None)
        d = self.assertRefusal(status, h, data, 403, "approval_needed")
        approval_id = h["x-aegis-approval-id"]
        self.assertEqual(d["approval"]["id"], approval_id)
        self.assertEqual(d["agent"], "finance-agent")
        for who in ("alice", "bob"):
            status, _, body = self.server.request(
                "POST", "/v1/approvals/%s/approve" % approval_id, None,
                dict(JSON, Authorization="Bearer " + SECRETS[who]))
            self.assertEqual(status, 200, body)
        status, _, body = self.server.request("GET", "/v1/approvals/" + approval_id,
                                              headers={"x-aegis-token": token})
        self.assertEqual(status, 200, body)
        a = json.loads(body)
        self.assertEqual(a["state"], "approved")
        override = a["override_token"]
        self.assertEqual(self.with_marker(self.stripe, "t4-approval"), [])

        # Another call (one parameter changed) cannot ride on the approval.
        status, h, data = self.proxy("POST", "/stripe/v1/payment_intents",
                                     dict(payment, amount=7001),
                                     dict(auth, **{"x-aegis-override": override}), agent=None)
        self.assertEqual(status, 403, data)
        self.assertEqual(self.with_marker(self.stripe, "t4-approval"), [])

        # The approved call goes through, once.
        status, h, data = self.proxy("POST", "/stripe/v1/payment_intents", payment,
                                     dict(auth, **{"x-aegis-override": override}), agent=None)
        self.assertEqual(status, 200, data)
        self.assertEqual(h["x-aegis-decision"], "allow")
        got = self.with_marker(self.stripe, "t4-approval")
        self.assertEqual(len(got), 1)
        self.assertEqual(json.loads(got[0]["body"]), payment)
        self.assertNotIn("x-aegis-override", got[0]["headers"])
        self.assertEqual(got[0]["headers"]["authorization"], "Bearer " + STRIPE_KEY)
        seen = self.stripe.everything().decode(errors="replace")
        self.assertNotIn(override, seen)
        self.assertNotIn(token, seen)

        status, h, data = self.proxy("POST", "/stripe/v1/payment_intents", payment,
                                     dict(auth, **{"x-aegis-override": override}), agent=None)
        self.assertEqual(status, 403, data)
        self.assertEqual(json.loads(data)["reasons"][-1]["code"], "override_invalid", data)
        self.assertEqual(len(self.with_marker(self.stripe, "t4-approval")), 1)

    # --- 5. sanitize --------------------------------------------------------------------------

    def test_sanitized_body_reaches_the_upstream_without_the_ssn(self):
        body = {"patient": {"name": "Jane Roe", "ssn": SSN, "dob": "1980-01-02"},
                "note": "t5-sanitize"}
        status, h, data = self.proxy("POST", "/records/v1/patients", body, JSON)
        self.assertEqual(status, 200, data)
        self.assertEqual(h["x-aegis-decision"], "sanitize")
        got = self.with_marker(self.records, "t5-sanitize")
        self.assertEqual(len(got), 1)
        r = got[0]
        self.assertEqual(r["path"], "/v1/patients")
        self.assertEqual(int(r["headers"]["content-length"]), len(r["body"]))
        sent = json.loads(r["body"])
        self.assertIn("REDACTED", sent["patient"]["ssn"])
        self.assertEqual(sent["patient"]["name"], "Jane Roe")
        self.assertEqual(sent["patient"]["dob"], "1980-01-02")
        self.assertEqual(sent["note"], "t5-sanitize")
        self.assertNotIn(SSN.encode(), self.records.everything())

    # --- 6. actual cost -----------------------------------------------------------------------

    def test_actual_cost_from_the_response_header_settles_the_budget(self):
        # Estimated $1 a record against $2 a day; the upstream says each cost $0.25. Without
        # settling, the third call would be refused.
        for i in range(5):
            status, _, data = self.proxy("POST", "/stripe/v1/usage_records",
                                         {"quantity": 1, "memo": "t6-cost-%d" % i}, JSON,
                                         agent="metered")
            self.assertEqual(status, 200, (i, data))
        self.assertEqual(self.spend("metered"), [("agent//metered", 1.25, 2)])
        # $1.25 spent + $1 estimated > $2.
        status, h, data = self.proxy("POST", "/stripe/v1/usage_records",
                                     {"quantity": 1, "memo": "t6-cost-5"}, JSON, agent="metered")
        d = self.assertRefusal(status, h, data, 402, "deny")
        self.assertEqual(d["reasons"][0]["code"], "budget_exceeded")
        self.assertEqual(self.spend("metered"), [("agent//metered", 1.25, 2)])
        self.assertEqual(len(self.with_marker(self.stripe, "t6-cost-")), 5)

    # --- 7. HTTPS upstreams -------------------------------------------------------------------

    def test_https_upstream_gets_the_query_credential_and_response_pii_is_redacted(self):
        status, h, data = self.proxy("GET", "/ehr/v1/patients/42?fields=all")
        self.assertEqual(status, 200, data)
        self.assertEqual(h["x-aegis-decision"], "allow")
        self.assertNotIn(SSN.encode(), data)
        self.assertNotIn(EMAIL.encode(), data)
        patient = json.loads(data)["patient"]
        self.assertEqual(patient["ssn"], "[REDACTED:ssn]")
        self.assertEqual(patient["email"], "[REDACTED:email]")
        self.assertEqual(patient["name"], "Jane Roe")
        self.assertEqual(int(h["content-length"]), len(data))
        got = [r for r in self.ehr.seen() if r["path"].startswith("/v1/patients/42?")]
        self.assertEqual(len(got), 1, self.ehr.seen())
        self.assertEqual(got[0]["path"], "/v1/patients/42?fields=all&api_key=" + EHR_KEY)
        self.assertEqual(got[0]["headers"]["host"], "localhost:%d" % self.ehr.port)

    def test_https_upstream_with_a_certificate_for_another_name_is_502(self):
        status, h, data = self.proxy("GET", "/badtls/v1/patients/42")
        self.assertEqual(status, 502, data)
        self.assertEqual(json.loads(data)["error"], "upstream_unavailable")
        self.assertEqual(self.badtls.seen(), [])

    # --- 8. forward proxy (absolute form) ------------------------------------------------------

    def forward(self, url, headers=None):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler(
            {"http": "http://127.0.0.1:%d" % self.server.proxy_port}))
        req = urllib.request.Request(url, headers=dict(headers or {},
                                                       **{"x-aegis-agent": "proxy-agent"}))
        try:
            with opener.open(req, timeout=10) as resp:
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def test_forward_proxy_request_to_a_route_host_uses_the_route(self):
        status, h, data = self.forward(
            "http://localhost:%d/v1/charges/t8-forward" % self.stripe.port)
        self.assertEqual(status, 200, data)
        self.assertEqual(h["x-aegis-decision"], "allow")  # it did go through the proxy
        got = self.with_marker(self.stripe, "t8-forward")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["path"], "/v1/charges/t8-forward")
        self.assertEqual(got[0]["headers"]["authorization"], "Bearer " + STRIPE_KEY)
        self.assertNotIn("x-aegis-agent", got[0]["headers"])

    def test_forward_proxy_request_uses_the_route_of_that_host_and_port(self):
        # Several routes on one host: a request for the ehr upstream's port is the ehr route's
        # (TLS origination, its query credential, response redaction), and one for a port no
        # route serves is no route's; neither goes to the stripe upstream with its credential.
        problems = []
        status, h, data = self.forward("http://localhost:%d/v1/patients/t8-ehr" % self.ehr.port)
        if self.with_marker(self.stripe, "t8-ehr"):
            problems.append("GET http://localhost:%d/v1/patients/t8-ehr (the ehr route's "
                            "host:port) was sent to the stripe upstream, port %d, with the "
                            "stripe credential: %d %r" % (self.ehr.port, self.stripe.port,
                                                          status, data[:200]))
        got = [r["path"] for r in self.ehr.seen() if "t8-ehr" in r["path"]]
        if status != 200 or got != ["/v1/patients/t8-ehr?api_key=" + EHR_KEY]:
            problems.append("the ehr upstream got %r (status %d)" % (got, status))
        if SSN.encode() in data:
            problems.append("the response was not redacted: %r" % data[:200])
        port = harness.free_port()
        status, h, data = self.forward("http://localhost:%d/v1/charges/t8-free" % port)
        if self.with_marker(self.stripe, "t8-free"):
            problems.append("GET http://localhost:%d/v1/charges/t8-free (a port no route serves) "
                            "was sent to the stripe upstream, port %d, with the stripe "
                            "credential: %d %r" % (port, self.stripe.port, status, data[:200]))
        self.assertEqual(problems, [], "\n".join(problems))

    def test_forward_proxy_request_to_an_unknown_host_is_refused_and_not_sent(self):
        status, h, data = self.forward("http://127.0.0.1:%d/v1/t8-unknown" % self.sentinel.port)
        d = self.assertRefusal(status, h, data, 403, "deny")
        self.assertEqual(d["reasons"][0]["code"], "unresolved_call")
        self.assertEqual(self.sentinel.seen(), [])

    # --- 9. hostile requests ------------------------------------------------------------------

    def test_hostile_requests_are_400_and_reach_no_upstream(self):
        sp = self.stripe.port
        host = b"Host: 127.0.0.1:%d\r\n" % self.server.proxy_port
        agent = b"x-aegis-agent: proxy-agent\r\nConnection: close\r\n"

        def origin(target, extra=b"", body=b""):
            return b"GET " + target + b" HTTP/1.1\r\n" + host + agent + extra + b"\r\n" + body

        def absolute(target, host_value):
            return (b"GET " + target + b" HTTP/1.1\r\nHost: " + host_value + b"\r\n" + agent +
                    b"\r\n")

        payment = b'{"amount": 5, "currency": "usd"}'
        post_json = (b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(payment))
        rows = [
            ("userinfo", absolute(b"http://evil@localhost:%d/v1/charges" % sp,
                                  b"localhost:%d" % sp)),
            ("percent-encoded userinfo", absolute(b"http://evil%%40localhost:%d/v1/charges" % sp,
                                                  b"localhost:%d" % sp)),
            ("backslash", origin(b"/stripe/v1\\charges")),
            ("encoded dot segments", origin(b"/stripe/v1/%2e%2e/%2e%2e/records/v1/patients")),
            ("dot segments out of the prefix", origin(b"/stripe/../records/v1/patients")),
            ("encoded slash", origin(b"/stripe/v1%2Fcharges")),
            ("encoded NUL", origin(b"/stripe/v1/charges%00")),
            ("NUL", origin(b"/stripe/v1/\x00charges")),
            ("empty segment", origin(b"/stripe/v1//charges")),
            ("two Host headers", origin(b"/stripe/v1/charges", b"Host: localhost:%d\r\n" % sp)),
            ("no Host header", b"GET /stripe/v1/charges HTTP/1.1\r\n" + agent + b"\r\n"),
            ("Host disagreeing with the absolute URI",
             absolute(b"http://localhost:%d/v1/charges" % sp, b"evil.example")),
            ("Host port disagreeing with the absolute URI",
             absolute(b"http://localhost:%d/v1/charges" % sp, b"localhost:1")),
            ("decimal IPv4", absolute(b"http://2130706433/v1/charges", b"2130706433")),
            ("hex and short IPv4", absolute(b"http://0x7f.1/v1/charges", b"0x7f.1")),
            ("IPv4-mapped IPv6", absolute(b"http://[::ffff:127.0.0.1]/v1/charges",
                                          b"[::ffff:127.0.0.1]")),
            ("punycode look-alike", absolute(b"http://xn--pypal-4ve.com/v1/charges",
                                             b"xn--pypal-4ve.com")),
            ("CONNECT without a port",
             b"CONNECT localhost HTTP/1.1\r\nHost: localhost\r\n" + agent + b"\r\n"),
            ("network-path reference", origin(b"//evil.com/x")),
            ("invalid percent escape", origin(b"/stripe/v1/charges%zz")),
            ("truncated percent escape", origin(b"/stripe/v1/charges%4")),
            ("fragment", origin(b"/stripe/v1/charges#frag")),
            ("non-ASCII byte", origin(b"/stripe/v1/ch\xc3\xa9")),
            ("scheme other than http(s)", absolute(b"ftp://localhost:%d/v1/charges" % sp,
                                                   b"localhost:%d" % sp)),
            ("authority-form for GET", absolute(b"localhost:%d" % sp, b"localhost:%d" % sp)),
            ("asterisk-form", b"OPTIONS * HTTP/1.1\r\n" + host + agent + b"\r\n"),
            ("query key also in the body",
             b"POST /stripe/v1/payment_intents?amount=1 HTTP/1.1\r\n" + host + agent +
             post_json + b"\r\n" + payment),
            ("duplicate JSON key",
             b"POST /stripe/v1/payment_intents HTTP/1.1\r\n" + host + agent +
             b"Content-Type: application/json\r\nContent-Length: 25\r\n\r\n"
             b'{"amount":5,"amount":999}'),
            ("Content-Length and Transfer-Encoding",
             b"POST /stripe/v1/payment_intents HTTP/1.1\r\n" + host + agent +
             b"Content-Type: application/json\r\nContent-Length: 5\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(payment), payment)),
            # RFC 9112 section 6.1: a request whose body length cannot be determined MUST be
            # answered 400 (read as bodiless, its body would be the connection's next request).
            ("Transfer-Encoding without chunked last",
             b"POST /stripe/v1/usage_records HTTP/1.1\r\n" + host + agent +
             b"Content-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n"
             b'{"quantity": 1}'),
        ]
        before = self.counts()
        failures = []
        for name, payload in rows:
            r = harness.raw_exchange(self.server.proxy_port, payload)
            status = r[0] if r else None
            if status != 400:
                failures.append("%s: %r -> %s %r" % (name, payload, status, r[2][:200] if r else
                                                      "connection closed without an answer"))
            after = self.counts()
            if after != before:
                failures.append("%s: reached an upstream (requests per upstream %s -> %s)" %
                                (name, before, after))
                before = after
        self.assertEqual(failures, [], "\n".join(failures))
        # The proxy still serves.
        status, _, data = self.proxy("GET", "/stripe/v1/charges/t9-after")
        self.assertEqual(status, 200, data)

    # --- 10. no route, CONNECT ----------------------------------------------------------------

    def test_no_route_is_404_and_connect_without_tunnel_is_403(self):
        before = self.counts()
        status, _, data = self.proxy("GET", "/nowhere/v1/charges")
        self.assertEqual(status, 404, data)
        self.assertEqual(json.loads(data)["error"], "no_route")
        # A prefix is a whole path segment: /stripex is not /stripe.
        status, _, data = self.proxy("GET", "/stripex/v1/charges")
        self.assertEqual(status, 404, data)
        r = self.raw(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n"
                     b"x-aegis-agent: proxy-agent\r\n\r\n" % (self.stripe.port, self.stripe.port))
        self.assertEqual(r[0], 403, r)
        self.assertEqual(json.loads(r[2])["error"], "tunnel_not_allowed")
        self.assertEqual(self.counts(), before)

    def test_connect_tunnel_only_where_a_route_allows_it_and_the_policy_allows_connect(self):
        port = self.ehr.port
        connect = (b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n"
                   b"x-aegis-agent: %s\r\n\r\n")
        # An agent whose scope lacks the tool: refused by the policy, like any call.
        r = self.raw(connect % (port, port, b"finance-agent"))
        self.assertEqual(r[0], 403, r)
        self.assertEqual(json.loads(r[2])["reasons"][0]["code"], "tool_out_of_scope")
        # Allowed: the tunnel opens and TLS runs end to end through it, to the real host.
        before = self.ehr.count()
        sock = socket.create_connection(("127.0.0.1", self.server.proxy_port), timeout=10)
        try:
            sock.sendall(connect % (port, port, b"proxy-agent"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(1)
                self.assertTrue(chunk, head)
                head += chunk
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            tls = ssl.create_default_context(cafile=self.pki["ca"]).wrap_socket(
                sock, server_hostname="localhost")
            tls.sendall(b"GET /v1/patients/7 HTTP/1.1\r\nHost: localhost\r\n"
                        b"Connection: close\r\n\r\n")
            data = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        self.assertTrue(data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200"),
                        data[:100])
        # Opaque: nothing in a tunnel is inspected, redacted or given a credential.
        self.assertIn(SSN.encode(), data)
        self.assertEqual(self.ehr.count(), before + 1)
        self.assertNotIn("api_key", self.ehr.seen()[-1]["path"])

    # --- 11. metrics --------------------------------------------------------------------------

    def test_metrics_count_what_the_proxy_did(self):
        before = self.metrics()
        for i in range(3):
            self.assertEqual(self.proxy("GET", "/stripe/v1/charges/t11-%d" % i,
                                        agent="metrics-agent")[0], 200)
        for i in range(2):
            self.assertEqual(self.proxy("POST", "/stripe/v1/payment_intents",
                                        {"amount": 20000, "memo": "t11"}, JSON,
                                        agent="metrics-agent")[0], 403)
        self.assertEqual(self.proxy("GET", "/nowhere/x", agent="metrics-agent")[0], 404)
        self.assertEqual(self.proxy("GET", "/stripe/v1/%2e%2e/x", agent="metrics-agent")[0], 400)
        after = self.metrics()

        def delta(series):
            return after.get(series, 0) - before.get(series, 0)

        labels = 'front_door="proxy",decision="%s",enforced="true",tenant="",' \
                 'agent="metrics-agent",tool="stripe"'
        self.assertEqual(after.get("aegis_decisions_total{%s}" % (labels % "allow")), 3, after)
        self.assertEqual(after.get("aegis_decisions_total{%s}" % (labels % "deny")), 2)
        for result, n in (("forwarded", 3), ("refused", 2), ("no_route", 1), ("bad_request", 1),
                          ("upstream_error", 0), ("upstream_timeout", 0)):
            series = 'aegis_proxy_requests_total{result="%s"}' % result
            self.assertIn(series, after)
            self.assertEqual(delta(series), n, series)
        self.assertEqual(delta('aegis_bad_requests_total{front_door="proxy"}'), 2)
        self.assertEqual(after["aegis_proxy_active_requests"], 0)

    # --- 12. keep-alive and the upstream pool --------------------------------------------------

    def test_a_response_larger_than_max_body_bytes_is_streamed_whole(self):
        status, headers, data = self.proxy("GET", "/stripe/v1/exports/big")
        self.assertEqual(status, 200, data[:200])
        self.assertEqual(headers["x-aegis-decision"], "allow")
        self.assertEqual(int(headers["content-length"]), len(BIG_EXPORT))
        self.assertEqual(hashlib.sha256(data).hexdigest(), hashlib.sha256(BIG_EXPORT).hexdigest())

    def test_a_large_upload_that_is_not_json_streams_to_the_upstream_after_the_decision(self):
        upload = bytes(range(256)) * (12 * 4096)  # 12 MiB, more than max_body_bytes
        before = self.records.count()
        # Refused: the decision comes first, and nothing of the body reaches the upstream.
        status, _, data = self.proxy("PUT", "/records/v1/uploads/scan.bin", upload,
                                     {"Content-Type": "application/octet-stream"},
                                     agent="finance-agent")
        self.assertEqual(status, 403, data)
        self.assertEqual(self.records.count(), before)
        # Allowed: the whole body arrives, byte for byte, with its length.
        status, _, data = self.proxy("PUT", "/records/v1/uploads/scan.bin", upload,
                                     {"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 200, data)
        got = self.records.seen()[-1]
        self.assertEqual(got["method"], "PUT")
        self.assertEqual(got["headers"]["content-length"], str(len(upload)))
        self.assertEqual(hashlib.sha256(got["body"]).hexdigest(), hashlib.sha256(upload).hexdigest())

    def test_a_second_server_never_shares_the_proxy_port(self):
        # The I/O threads share the port with SO_REUSEPORT; another aegis on the same port would
        # otherwise silently take part of the traffic.
        other_dir = tempfile.mkdtemp(prefix="aegis-proxy-second-", dir=self.tmp)
        bundle = os.path.join(self.tmp, "bundle")
        second = harness.AegisServer(
            AEGIS, other_dir, bundle, config={"data_dir": os.path.join(other_dir, "data")},
            extra_args=["--proxy", "127.0.0.1:%d" % self.server.proxy_port])
        with self.assertRaises(RuntimeError) as refused:
            second.start()
        self.assertIn("cannot listen on 127.0.0.1:%d" % self.server.proxy_port,
                      str(refused.exception))
        status, _, _ = self.proxy("GET", "/stripe/v1/charges/after-second")
        self.assertEqual(status, 200)

    def test_keep_alive_client_connection_and_pooled_upstream_connections(self):
        before = self.metrics()
        conn = http.client.HTTPConnection("127.0.0.1", self.server.proxy_port, timeout=10)
        try:
            sock = None
            for i in range(50):
                status, h, data = harness.do_request(conn, "GET", "/stripe/v1/charges/t12-%d" % i,
                                                     headers={"x-aegis-agent": "proxy-agent"})
                self.assertEqual(status, 200, (i, data))
                self.assertEqual(json.loads(data)["path"], "/v1/charges/t12-%d" % i)
                if sock is None:
                    sock = conn.sock
                self.assertIs(conn.sock, sock, "the proxy closed the client connection at %d" % i)
        finally:
            conn.close()
        after = self.metrics()
        self.assertEqual(len(self.with_marker(self.stripe, "t12-")), 50)
        reused = (after['aegis_proxy_upstream_connections_total{kind="reused"}'] -
                  before.get('aegis_proxy_upstream_connections_total{kind="reused"}', 0))
        new = (after['aegis_proxy_upstream_connections_total{kind="new"}'] -
               before.get('aegis_proxy_upstream_connections_total{kind="new"}', 0))
        self.assertGreater(reused, 0)
        self.assertEqual(reused + new, 50)
        self.assertLessEqual(new, 2, "50 sequential calls opened %d upstream connections" % new)


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
