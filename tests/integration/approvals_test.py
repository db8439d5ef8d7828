"""Agent tokens and human approvals through the real `aegis serve`: a verified agent, a $7,000
payment waiting for two approvers who are notified in Slack, Teams and a webhook (a local sink),
the override token that lets exactly that call through once; approvals surviving a restart
(SQLite) and shared by two servers (a real PostgreSQL); the `aegis token` and `aegis approvals`
commands.

Usage: approvals_test.py <path to aegis>
"""
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

AEGIS = None

POLICY = """\
apiVersion: aegis/v1
kind: Policy
metadata: {name: approvals-test}
tools:
  stripe:
    actions:
      create_payment: {cost_usd: 0.01}
agents:
  finance-agent: {tools: [stripe]}
  other-agent: {tools: [stripe]}
rules:
  - id: payment-ceiling
    match: {tools: [stripe], actions: [create_payment]}
    if: params.amount > 5000
    effect: approval_needed
    approval: {quorum: 2, ttl: 1h, notify: [finance-slack, finance-teams, audit-hook]}
    message: Payments above $5,000 need two approvers
  - id: payments
    match: {tools: [stripe]}
    effect: allow
"""

SECRETS = {"alice": "alice-secret-0123456789", "bob": "bob-secret-0123456789",
           "orchestrator": "orchestrator-secret-0123456789"}
JSON = {"Content-Type": "application/json"}


def sha256(s):
    return hashlib.sha256(s.encode()).hexdigest()


def config(data_dir, sink_port, extra=None):
    c = {
        "data_dir": data_dir,
        "identity": {
            "require_agent_token": True,
            "credentials": [
                {"name": "alice", "token_sha256": sha256(SECRETS["alice"]), "roles": ["approver"]},
                {"name": "bob", "token_sha256": sha256(SECRETS["bob"]), "roles": ["approver"]},
                {"name": "orchestrator", "token_sha256": sha256(SECRETS["orchestrator"]),
                 "roles": ["issuer"]},
            ],
        },
        "notifiers": {
            "finance-slack": {"kind": "slack", "url": "http://127.0.0.1:%d/slack" % sink_port},
            "finance-teams": {"kind": "teams", "url": "http://127.0.0.1:%d/teams" % sink_port},
            "audit-hook": {"kind": "webhook", "url": "http://127.0.0.1:%d/hook" % sink_port,
                           "headers": {"Authorization": "Bearer hook-secret"}},
        },
        "approvals": {"public_url": "http://aegis.example:8181"},
    }
    c.update(extra or {})
    return c


def payment(amount, agent=None):
    call = {"tool": "stripe", "action": "create_payment",
            "params": {"amount": amount, "currency": "usd", "customer": "cus_42",
                       "memo": "refund for SSN 123-45-6789, mail j.doe@example.com"}}
    if agent:
        call["agent"] = agent
    return call


class Gateway:
    """Helpers over one AegisServer."""

    def __init__(self, server):
        self.s = server

    def token(self, agent="finance-agent", secret=SECRETS["orchestrator"], ttl=None):
        body = {"agent": agent}
        if ttl:
            body["ttl_seconds"] = ttl
        status, _, data = self.s.request("POST", "/v1/tokens", body,
                                         dict(JSON, Authorization="Bearer " + secret))
        return status, json.loads(data)

    def decide(self, call, token=None, override=None, conn=None):
        headers = dict(JSON)
        if token:
            headers["Authorization"] = "Bearer " + token
        if override:
            headers["X-Aegis-Override"] = override
        if conn is not None:
            status, h, data = harness.do_request(conn, "POST", "/v1/decide", call, headers)
        else:
            status, h, data = self.s.request("POST", "/v1/decide", call, headers)
        return status, h, json.loads(data)

    def approval(self, approval_id, token=None, approver=None):
        headers = {}
        if token:
            headers["x-aegis-token"] = token
        if approver:
            headers["Authorization"] = "Bearer " + SECRETS[approver]
        status, _, data = self.s.request("GET", "/v1/approvals/" + approval_id, headers=headers)
        return status, json.loads(data)

    def vote(self, approval_id, approver_secret, verdict="approve", comment=None):
        body = {"comment": comment} if comment else None
        headers = dict(JSON, Authorization="Bearer " + approver_secret)
        status, _, data = self.s.request("POST", "/v1/approvals/%s/%s" % (approval_id, verdict),
                                         body, headers)
        return status, json.loads(data)


class ApprovalsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="aegis-approvals-")
        os.chmod(cls.tmp, 0o755)
        cls.bundle = os.path.join(cls.tmp, "bundle")
        os.makedirs(cls.bundle)
        with open(os.path.join(cls.bundle, "policy.yaml"), "w", encoding="utf-8") as f:
            f.write(POLICY)
        cls.sink = harness.RecordingUpstream().start()
        cls.data = os.path.join(cls.tmp, "data")
        cls.server = harness.AegisServer(AEGIS, cls.tmp, cls.bundle,
                                         config=config(cls.data, cls.sink.port)).start()
        cls.gw = Gateway(cls.server)

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        cls.sink.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, cls.server.output()

    def agent_token(self, agent="finance-agent"):
        status, body = self.gw.token(agent)
        self.assertEqual(status, 200, body)
        return body["token"]

    def approved(self, amount):
        """A payment of `amount` approved by alice and bob; returns (approval id, token)."""
        token = self.agent_token()
        status, headers, d = self.gw.decide(payment(amount), token)
        self.assertEqual(status, 403, d)
        approval_id = headers["x-aegis-approval-id"]
        for who in ("alice", "bob"):
            self.assertEqual(self.gw.vote(approval_id, SECRETS[who])[0], 200)
        status, a = self.gw.approval(approval_id, token)
        self.assertEqual(a["state"], "approved")
        return approval_id, token, a["override_token"]

    def sink_messages(self, approval_id, path, at_least, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            got = [r for r in self.sink.seen() if r["path"] == path and approval_id.encode() in r["body"]]
            if len(got) >= at_least or time.monotonic() > deadline:
                return [json.loads(r["body"]) for r in got], got
            time.sleep(0.05)

    def test_tokens_are_required_verified_and_bound_to_their_agent(self):
        # No token, a garbage token, a token of a key this gateway never had.
        status, _, body = self.gw.decide(payment(10, "finance-agent"))
        self.assertEqual(status, 401, body)
        status, _, body = self.gw.decide(payment(10, "finance-agent"), token="not.a.token")
        self.assertEqual(status, 401, body)
        # Issuing needs the issuer credential; an approver's credential is not one.
        self.assertEqual(self.gw.token(secret=SECRETS["alice"])[0], 403)
        self.assertEqual(self.gw.token(secret="wrong-secret-0123456789")[0], 403)
        self.assertEqual(self.gw.token(agent="nobody")[0], 404)
        status, body = self.gw.token(ttl=999999)
        self.assertEqual(status, 400, body)
        token = self.agent_token()
        status, _, d = self.gw.decide(payment(10), token)
        self.assertEqual(status, 200, d)
        self.assertEqual(d["agent"], "finance-agent")
        # An agent cannot claim to be another.
        status, _, d = self.gw.decide(payment(10, "other-agent"), token)
        self.assertEqual(status, 403, d)
        self.assertEqual(d["reasons"][0]["code"], "identity_mismatch")
        # JWKS publishes the key that signed it.
        status, _, data = self.server.request("GET", "/.well-known/jwks.json")
        self.assertEqual(status, 200)
        keys = json.loads(data)["keys"]
        header = json.loads(_b64(token.split(".")[0]))
        self.assertIn(header["kid"], [k["kid"] for k in keys])
        self.assertEqual(header["alg"], "EdDSA")

    def test_a_large_payment_waits_for_two_approvers_and_goes_through_once(self):
        token = self.agent_token()
        status, headers, d = self.gw.decide(payment(7000), token)
        self.assertEqual(status, 403, d)
        self.assertEqual(d["decision"], "approval_needed")
        approval_id = headers["x-aegis-approval-id"]
        self.assertEqual(d["approval"]["id"], approval_id)
        self.assertEqual(d["approval"]["poll"], "/v1/approvals/" + approval_id)
        # The identical call joins the pending approval.
        self.assertEqual(self.gw.decide(payment(7000), token)[1]["x-aegis-approval-id"], approval_id)

        # Notified: Slack, Teams and the webhook each got the new approval.
        slack, _ = self.sink_messages(approval_id, "/slack", 1)
        self.assertEqual(len(slack), 1)
        text = json.dumps(slack[0])
        for expected in ("finance-agent", "stripe", "create_payment", "payment-ceiling",
                         approval_id):
            self.assertIn(expected, text)
        self.assertIn("blocks", slack[0])
        teams, _ = self.sink_messages(approval_id, "/teams", 1)
        card = teams[0]["attachments"][0]
        self.assertEqual(card["contentType"], "application/vnd.microsoft.card.adaptive")
        self.assertEqual(card["content"]["type"], "AdaptiveCard")
        hook, raw = self.sink_messages(approval_id, "/hook", 1)
        self.assertEqual(hook[0]["event"], "approval.created")
        self.assertEqual(hook[0]["approval"]["id"], approval_id)
        self.assertEqual(hook[0]["approval"]["state"], "pending")
        self.assertEqual(hook[0]["approval"]["quorum"], 2)
        # The summary shows the call with its PII redacted, in every notification.
        summary = hook[0]["approval"]["summary"]["params"]
        self.assertEqual(summary["amount"], 7000)
        self.assertEqual(summary["customer"], "cus_42")
        self.assertIn("[REDACTED:ssn]", summary["memo"])
        self.assertIn("[REDACTED:email]", summary["memo"])
        for r in self.sink.seen():
            self.assertNotIn(b"123-45-6789", r["body"])
            self.assertNotIn(b"j.doe@example.com", r["body"])
        self.assertEqual(raw[0]["headers"]["authorization"], "Bearer hook-secret")

        # Pending: polling gives no override token.
        status, a = self.gw.approval(approval_id, token)
        self.assertEqual((status, a["state"]), (200, "pending"))
        self.assertNotIn("override_token", a)
        # Another agent cannot see it; the agent cannot vote (no approver credential).
        self.assertEqual(self.gw.approval(approval_id, self.agent_token("other-agent"))[0], 404)
        status, body = self.gw.vote(approval_id, token)
        self.assertEqual(status, 403, body)
        # Quorum 2: alice twice is still one approver.
        self.assertEqual(self.gw.vote(approval_id, SECRETS["alice"])[1]["state"], "pending")
        status, a = self.gw.vote(approval_id, SECRETS["alice"])
        self.assertEqual((status, a["state"], a["approvals"]), (200, "pending", 1))
        status, a = self.gw.vote(approval_id, SECRETS["bob"], comment="invoice checked")
        self.assertEqual((status, a["state"]), (200, "approved"))
        self.assertEqual([v["approver"] for v in a["votes"]], ["alice", "bob"])
        # Decided: more votes are refused.
        self.assertEqual(self.gw.vote(approval_id, SECRETS["alice"], "deny")[0], 409)
        hook, _ = self.sink_messages(approval_id, "/hook", 2)
        self.assertEqual([h["event"] for h in hook], ["approval.created", "approval.approved"])

        # The agent polls and gets its override token; the exact call goes through, once.
        status, a = self.gw.approval(approval_id, token)
        override = a["override_token"]
        status, _, d = self.gw.decide(payment(7001), token, override)  # one parameter changed
        self.assertEqual(status, 403, d)
        self.assertEqual(d["reasons"][-1]["code"], "override_invalid")
        status, _, d = self.gw.decide(payment(7000), token, override)
        self.assertEqual(status, 200, d)
        self.assertEqual(d["reasons"][0], {"code": "approved", "detail": approval_id})
        status, _, d = self.gw.decide(payment(7000), token, override)  # replayed
        self.assertEqual(status, 403, d)
        self.assertIn("used already", d["reasons"][-1]["detail"])
        # An agent token is not an override token, nor the reverse.
        status, _, d = self.gw.decide(payment(7000), token, token)
        self.assertEqual(d["reasons"][-1]["code"], "override_invalid")
        self.assertEqual(self.gw.decide(payment(10), override)[0], 401)

    def test_parallel_replays_of_one_override_token(self):
        _, token, override = self.approved(8000)
        local = threading.local()
        conns = []

        def one(_):
            if not hasattr(local, "conn"):
                local.conn = self.server.connect()
                conns.append(local.conn)
            return self.gw.decide(payment(8000), token, override, conn=local.conn)[0]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(100)))
        for c in conns:
            c.close()
        self.assertEqual(statuses.count(200), 1, statuses)
        self.assertEqual(statuses.count(403), 99)

    def test_denied_and_self_approval(self):
        token = self.agent_token()
        status, headers, d = self.gw.decide(payment(9000), token)
        approval_id = headers["x-aegis-approval-id"]
        status, a = self.gw.vote(approval_id, SECRETS["alice"], "deny", comment="no")
        self.assertEqual((status, a["state"]), (200, "denied"))
        status, a = self.gw.approval(approval_id, token)
        self.assertEqual(a["state"], "denied")
        self.assertNotIn("override_token", a)
        self.assertEqual(self.gw.approval("apr_" + "0" * 32, approver="alice")[0], 404)
        status, _, _ = self.server.request("GET", "/v1/approvals/../../etc/passwd")
        self.assertEqual(status, 404)

    def test_cli_lists_and_approves_and_issues_tokens(self):
        token = self.agent_token()
        _, headers, _ = self.gw.decide(payment(6000), token)
        approval_id = headers["x-aegis-approval-id"]
        env = dict(os.environ, AEGIS_CREDENTIAL=SECRETS["alice"])
        r = subprocess.run([AEGIS, "approvals", "list", "--state", "pending", "--server",
                            self.server.address], capture_output=True, text=True, env=env,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(approval_id, r.stdout)
        r = subprocess.run([AEGIS, "approvals", "approve", approval_id, "--comment", "ok",
                            "--server", self.server.address, "--json"],
                           capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["approvals"], 1)
        env["AEGIS_CREDENTIAL"] = "wrong-secret-0123456789"
        r = subprocess.run([AEGIS, "approvals", "list", "--server", self.server.address],
                           capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("403", r.stderr)
        # `aegis token issue` signs with the same keyring (the server's data dir).
        r = subprocess.run([AEGIS, "token", "issue", "--agent", "finance-agent", "--data-dir",
                            self.data], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        status, _, d = self.gw.decide(payment(10), r.stdout.strip())
        self.assertEqual(status, 200, d)


def _b64(segment):
    import base64
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


class DurableApprovalsTest(unittest.TestCase):
    """Approvals outlive the process (SQLite) and are shared by replicas (PostgreSQL)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="aegis-approvals-durable-")
        os.chmod(self.tmp, 0o755)
        self.bundle = os.path.join(self.tmp, "bundle")
        os.makedirs(self.bundle)
        with open(os.path.join(self.bundle, "policy.yaml"), "w", encoding="utf-8") as f:
            f.write(POLICY)
        self.sink = harness.RecordingUpstream().start()
        self.servers = []
        self.pg = self.redis = None

    def tearDown(self):
        for s in self.servers:
            s.stop()
        for dependency in (self.pg, self.redis):
            if dependency:
                dependency.stop()
        self.sink.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def serve(self, name, data_dir, extra=None):
        work = os.path.join(self.tmp, name)
        os.makedirs(work, exist_ok=True)
        # Replicas may share a data dir (the keyring) but each keeps its own audit trail.
        extra = dict(extra or {}, audit={"dir": os.path.join(work, "audit")})
        s = harness.AegisServer(AEGIS, work, self.bundle,
                                config=config(data_dir, self.sink.port, extra)).start()
        self.servers.append(s)
        return Gateway(s)

    def test_sqlite_approvals_survive_a_restart(self):
        data = os.path.join(self.tmp, "data")
        gw = self.serve("one", data)
        token = gw.token()[1]["token"]
        _, headers, _ = gw.decide(payment(7000), token)
        approval_id = headers["x-aegis-approval-id"]
        self.assertEqual(gw.vote(approval_id, SECRETS["alice"])[0], 200)
        self.assertEqual(gw.s.stop(), 0)
        gw = self.serve("two", data)
        status, a = gw.approval(approval_id, approver="bob")
        self.assertEqual((status, a["state"], a["approvals"]), (200, "pending", 1))
        self.assertEqual(gw.vote(approval_id, SECRETS["bob"])[1]["state"], "approved")
        # The agent's token from before the restart still verifies (same keyring on disk).
        status, a = gw.approval(approval_id, token)
        status, _, d = gw.decide(payment(7000), token, a["override_token"])
        self.assertEqual(status, 200, d)

    def test_two_servers_share_approvals_in_postgres_and_tokens_in_redis(self):
        self.pg = harness.Postgres(os.path.join(self.tmp, "pg")).start()
        self.redis = harness.Redis(os.path.join(self.tmp, "redis")).start()
        extra = {"approvals": {"store": "postgres", "postgres_url": self.pg.url},
                 "limit_store": {"store": "redis", "redis_url": self.redis.url}}
        # One keyring for both replicas (a shared data dir, as a shared volume would be).
        data = os.path.join(self.tmp, "shared-data")
        a = self.serve("a", data, extra)
        b = self.serve("b", data, extra)
        token = a.token()[1]["token"]
        _, headers, _ = a.decide(payment(7500), token)
        approval_id = headers["x-aegis-approval-id"]
        # The identical call on the other replica joins the same approval.
        self.assertEqual(b.decide(payment(7500), token)[1]["x-aegis-approval-id"], approval_id)
        self.assertEqual(a.vote(approval_id, SECRETS["alice"])[1]["state"], "pending")
        self.assertEqual(b.vote(approval_id, SECRETS["bob"])[1]["state"], "approved")
        status, ap = a.approval(approval_id, token)
        self.assertEqual(ap["state"], "approved")
        # 100 parallel replays of the override token, spread over both replicas: the used
        # token ids live in Redis, so exactly one call goes through.
        local = threading.local()
        conns = []

        def one(i):
            gw = (a, b)[i % 2]
            if not hasattr(local, "conns"):
                local.conns = [a.s.connect(), b.s.connect()]
                conns.extend(local.conns)
            return gw.decide(payment(7500), token, ap["override_token"],
                             conn=local.conns[i % 2])[0]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(100)))
        for c in conns:
            c.close()
        self.assertEqual(statuses.count(200), 1, statuses)
        self.assertEqual(statuses.count(403), 99)


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
