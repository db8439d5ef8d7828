"""Fail modes with the real `aegis serve` stopped and started again: fail_closed raises and never
runs the function; fail_open runs only calls on its allowlist (recently allowed by a rule, never
refused since) and reports every one of them to POST /v1/fail-open once Aegis is back, where they
land in the audit trail under front door fail_open_report. The allowlist's TTL and the report
are also checked against a scripted stand-in, with an injected clock."""
import json
import select
import time
import unittest

import support
import aegis


class FailModesTest(unittest.TestCase):
    def setUp(self):
        self.gw = support.Gateway(support.identity_config, "failmodes").start()
        self.addCleanup(self.gw.cleanup)
        self.token = self.gw.token("finance-agent")  # 900 s; the keyring outlives a restart
        self.decisions = []

    def client(self, **kwargs):
        c = aegis.Client(url=self.gw.url, agent_token=self.token, timeout=2, **kwargs)
        self.addCleanup(c.close)
        return c

    def functions(self, c, ran):
        @aegis.policy_enforced(tool="search", client=c, actual_cost=lambda r: 0.5)
        def query(q):
            ran.append(("query", q))
            self.decisions.append(aegis.current_decision())
            return "results"

        @aegis.policy_enforced(tool="stripe", client=c)
        def create_payment(amount, currency="usd"):
            ran.append(("create_payment", amount))

        @aegis.policy_enforced(tool="crm", client=c)
        def lookup_customer(customer_id, ssn=None):
            ran.append(("lookup_customer", customer_id))

        @aegis.policy_enforced(tool="weather", client=c)
        def forecast(city):
            ran.append(("forecast", city))

        return query, create_payment, lookup_customer, forecast

    def test_fail_closed_raises_and_recovers_when_aegis_is_back(self):
        c = self.client()
        ran = []
        query, create_payment, _, _ = self.functions(c, ran)
        query("before")
        self.assertEqual(self.gw.stop(), 0)
        for fn, arg in ((query, "during"), (create_payment, 10)):
            with self.assertRaises(aegis.AegisUnavailable) as cm:
                fn(arg)
            self.assertNotIsInstance(cm.exception, aegis.ProtocolError)
        self.assertEqual(ran, [("query", "before")])
        self.assertEqual(c.stats()["unavailable"], 2)
        self.assertEqual(c.stats()["fail_open_allowed"], 0)
        self.gw.start()
        query("after")
        self.assertEqual(ran, [("query", "before"), ("query", "after")])

    def test_fail_open_runs_allowlisted_calls_only_and_reports_them_when_back(self):
        c = self.client(fail_mode="fail_open")
        ran = []
        query, create_payment, lookup_customer, forecast = self.functions(c, ran)
        query("before")                                 # allowed by rule read-only-tools
        create_payment(10)                              # allowed by rule payments, but ...
        with self.assertRaises(aegis.ApprovalRequired):
            create_payment(7000)                        # ... conditionally: off the list
        lookup_customer("cus_1", "123-45-6789")         # sanitize: never on the list
        self.assertEqual(c.fail_open_allowlist(), [(None, None, "search", "query")])

        self.assertEqual(self.gw.stop(), 0)
        ran.clear()
        with self.assertLogs("aegis", "WARNING") as logs:
            self.assertEqual(query("outage 1"), "results")
        self.assertIn("fail_open: running search/query without a decision", logs.output[0])
        d = self.decisions[-1]
        self.assertTrue(d.fail_open and d.decision_id.startswith("fail-open-"), d.raw)
        self.assertEqual(d.reasons[0]["code"], "fail_open")
        with self.assertLogs("aegis", "WARNING"):
            query("outage 2")
        for fn, arg in ((create_payment, 10), (lookup_customer, "cus_2"), (forecast, "Oslo")):
            with self.assertRaises(aegis.AegisUnavailable):
                fn(arg)
        self.assertEqual(ran, [("query", "outage 1"), ("query", "outage 2")])
        stats = c.stats()
        self.assertEqual((stats["fail_open_allowed"], stats["fail_open_refused"],
                          stats["fail_open_pending"]), (2, 3, 2))
        with self.assertRaises(aegis.AegisUnavailable):
            c.flush()                                   # still down: kept
        self.assertEqual(c.stats()["fail_open_pending"], 2)

        self.gw.start()
        query("after")                                  # the first answer sends the report
        stats = c.stats()
        self.assertEqual((stats["fail_open_pending"], stats["fail_open_reported"],
                          stats["fail_open_report_refused"]), (0, 2, 0))
        reported = [r for r in self._records_until(2) if r["front_door"] == "fail_open_report"]
        self.assertEqual([r["params"] for r in reported], [{"q": "outage 1"}, {"q": "outage 2"}])
        for r in reported:
            self.assertEqual((r["agent"], r["tool"], r["action"], r["decision"]),
                             ("finance-agent", "search", "query", "allow"))
            # The actual cost from the actual_cost hook went with the report.
            self.assertEqual(r["cost_micros"], 500000)

    def test_a_kept_alive_connection_the_server_closed_is_replaced(self):
        gw = support.Gateway(lambda data: dict(support.identity_config(data),
                                               limits={"idle_timeout_ms": 100}), "idle").start()
        self.addCleanup(gw.cleanup)
        c = aegis.Client(url=gw.url, agent_token=gw.token("finance-agent"))
        self.addCleanup(c.close)
        c.decide("search", "query", {"q": 1})
        # Wait until the server has closed the idle connection (its end reads as EOF).
        sock = c._transport._local.holder.conn.sock
        deadline = time.monotonic() + 10
        while select.select([sock], [], [], 0.05)[0] == [] and time.monotonic() < deadline:
            pass
        self.assertEqual(c.decide("search", "query", {"q": 2}).outcome, "allow")
        self.assertEqual(c.stats()["reconnects"], 1)

    def _records_until(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            records = self.gw.audit_records()
            if sum(r["front_door"] == "fail_open_report" for r in records) >= n or \
                    time.monotonic() > deadline:
                return records
            time.sleep(0.02)


class FailOpenAllowlistTest(unittest.TestCase):
    """The allowlist's rules and the report's body, against a scripted stand-in whose answers the
    test chooses, with an injected clock."""

    def setUp(self):
        self.up = True
        self.reports = []
        # What the stand-in decides, by action.
        self.kinds = {"query": "allow", "pay": "allow_default", "export": "deny",
                      "shadow": "shadow", "cond": "allow_condition_error"}
        self.fake = support.FakeAegis(self.respond)
        self.addCleanup(self.fake.stop)
        self.now = [1000.0]
        self.client = aegis.Client(url=self.fake.url, agent="finance-agent",
                                   fail_mode="fail_open", fail_open_ttl=60, timeout=2)
        self.client._clock = lambda: self.now[0]
        self.addCleanup(self.client.close)

    def respond(self, handler):
        if not self.up:
            return 502, [("Content-Type", "text/html")], b"<html>bad gateway</html>"
        path, raw = handler.path, handler.body
        if path == "/v1/fail-open":
            calls = json.loads(raw)["calls"]
            self.reports.append(calls)
            out = {"decisions": [decision(c["tool"], c["action"], "allow") for c in calls]}
            return 200, [("Content-Type", "application/json")], json.dumps(out).encode()
        call = json.loads(raw)
        kind = self.kinds[call["action"]]
        return 200, [("Content-Type", "application/json")], json.dumps(
            decision(call["tool"], call["action"], kind)).encode()

    def test_which_allows_put_a_pair_on_the_list_and_for_how_long(self):
        c = self.client
        for action in ("query", "pay", "export", "shadow", "cond"):
            c.decide("t", action, {})
        # Only an enforced allow whose deciding reason is a rule (not a default, a shadow
        # mode allow, or one with a condition error among its reasons).
        self.assertEqual(c.fail_open_allowlist(), [("finance-agent", None, "t", "query")])
        self.up = False
        with self.assertLogs("aegis", "WARNING"):
            self.assertTrue(c.decide("t", "query", {"n": 1}).fail_open)
        for action in ("pay", "export", "shadow", "cond"):
            with self.assertRaises(aegis.AegisUnavailable):
                c.decide("t", action, {})
        self.now[0] += 61                                # past fail_open_ttl
        with self.assertRaises(aegis.AegisUnavailable):
            c.decide("t", "query", {"n": 2})
        self.assertEqual(c.stats()["fail_open_allowed"], 1)
        self.assertEqual(c.stats()["fail_open_refused"], 5)
        # Back: the explicit flush sends exactly the call that ran, cost included.
        self.up = True
        self.assertEqual(c.flush(), 1)
        self.assertEqual(self.reports, [[{"agent": "finance-agent", "tool": "t",
                                          "action": "query", "params": {"n": 1}}]])
        self.assertEqual(c.flush(), 0)

    def test_a_refusal_takes_the_pair_off_the_list(self):
        c = self.client
        c.decide("t", "query", {})
        self.assertEqual(len(c.fail_open_allowlist()), 1)
        # The same pair denied later (for other params): off the list for fail_open_ttl.
        self.kinds["query"] = "deny"
        c.decide("t", "query", {"amount": 10 ** 6})
        self.kinds["query"] = "allow"
        c.decide("t", "query", {})
        self.assertEqual(c.fail_open_allowlist(), [])
        self.now[0] += 61
        c.decide("t", "query", {})
        self.assertEqual(len(c.fail_open_allowlist()), 1)

    def test_the_queue_is_bounded_and_drops_are_counted(self):
        c = aegis.Client(url=self.fake.url, agent="finance-agent", fail_mode="fail_open",
                         max_fail_open_queue=3)
        self.addCleanup(c.close)
        c.decide("t", "query", {})
        self.up = False
        with self.assertLogs("aegis", "WARNING"):
            for i in range(5):
                c.decide("t", "query", {"i": i})
        self.assertEqual((c.stats()["fail_open_pending"], c.stats()["fail_open_dropped"]), (3, 2))
        self.up = True
        c.decide("t", "query", {})
        self.assertEqual([[call["params"]["i"] for call in r] for r in self.reports], [[2, 3, 4]])


def decision(tool, action, kind):
    reasons = {"allow": [{"code": "rule", "rule": "r"}],
               "allow_default": [{"code": "default"}],
               "deny": [{"code": "rule", "rule": "d"}],
               "shadow": [{"code": "rule", "rule": "d"}, {"code": "shadow_mode"}],
               "allow_condition_error": [{"code": "rule", "rule": "r"},
                                         {"code": "condition_error", "rule": "x"}]}[kind]
    decided = {"deny": "deny", "shadow": "deny"}.get(kind, "allow")
    shadow = kind == "shadow"
    return {"decision_id": "01a2-%s" % kind, "decision": decided,
            "effective_decision": "allow" if shadow else decided, "enforced": not shadow,
            "mode": "shadow" if shadow else "enforce", "reasons": reasons, "policy": "p",
            "policy_version": "v", "tenant": "", "agent": "finance-agent", "tool": tool,
            "action": action, "cost_usd": 0}


if __name__ == "__main__":
    unittest.main()
