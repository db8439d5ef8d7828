"""Every outcome of @aegis.policy_enforced against a real `aegis serve` that requires agent
tokens: allow, sanitize, deny, approval (raised, waited for and approved by two approvers through
the API, denied, expired, waited out), rate limits, budgets with usage settled, identity errors;
sync and async."""
import asyncio
import concurrent.futures
import os
import threading
import unittest
from unittest import mock

import support
import aegis


class OutcomesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = support.Gateway(support.identity_config, "outcomes").start()
        cls.clients = {}

    @classmethod
    def tearDownClass(cls):
        for c in cls.clients.values():
            c.close()
        code = cls.gw.stop()
        cls.gw.cleanup()
        assert code == 0, "aegis serve exited with %s" % code

    @classmethod
    def client(cls, agent="finance-agent", **kwargs):
        """A client whose tokens are minted for `agent` with the issuer credential."""
        key = (agent, tuple(sorted(kwargs.items())))
        if key not in cls.clients:
            provider = aegis.IssuerTokenProvider(cls.gw.url, support.SECRETS["orchestrator"],
                                                 agent)
            cls.clients[key] = aegis.Client(url=cls.gw.url, token_provider=provider,
                                            approval_poll_interval=0.05, timeout=5, **kwargs)
        return cls.clients[key]

    # ---- allow, sanitize, deny ---------------------------------------------------------------

    def test_allow_runs_the_function_with_its_arguments_as_params(self):
        seen = []

        @aegis.policy_enforced(tool="search", client=self.client())
        def query(q, filters=None, limit=10):
            seen.append(aegis.current_decision())
            return "results for %s" % q

        self.assertEqual(query("invoices", limit=3), "results for invoices")
        d = seen[0]
        self.assertEqual((d.outcome, d.rule, d.tool, d.action, d.agent),
                         ("allow", "read-only-tools", "search", "query", "finance-agent"))
        self.assertIsNone(aegis.current_decision())  # only while the function runs
        # The audit trail holds the params exactly as bound: named, defaults applied.
        record = self.gw.audit_record(d.decision_id)
        self.assertEqual(record["params"], {"q": "invoices", "filters": None, "limit": 3})

    def test_sanitize_runs_the_function_with_the_redacted_arguments(self):
        seen = []

        @aegis.policy_enforced(tool="crm", action="lookup_customer", client=self.client())
        def lookup(customer_id, ssn=None, note="", tags=("vip",)):
            seen.append((customer_id, ssn, note, tags))

        lookup("cus_42", "123-45-6789", note="write to j.doe@example.com")
        self.assertEqual(seen, [("cus_42", "[REDACTED]", "write to [REDACTED:email]", ("vip",))])

    def test_deny_raises_policy_denied_carrying_the_decision(self):
        ran = []

        @aegis.policy_enforced(tool="crm", client=self.client())
        def export_all(format="csv"):
            ran.append(format)

        with self.assertRaises(aegis.PolicyDenied) as cm:
            export_all()
        e = cm.exception
        self.assertEqual(ran, [])
        self.assertEqual(e.rule, "no-bulk-export")
        self.assertEqual(e.reasons[0]["message"], "Bulk exports are not allowed")
        self.assertTrue(e.decision_id)
        self.assertEqual(e.decision.decision, "deny")
        self.assertIn("no-bulk-export", str(e))
        self.assertNotIsInstance(e, aegis.RateLimited)

    def test_scope_and_identity_denials(self):
        c = self.client()

        @aegis.policy_enforced(tool="weather", action="forecast", agent="support-agent", client=c)
        def as_someone_else(city):
            pass

        with self.assertRaises(aegis.PolicyDenied) as cm:
            as_someone_else("Oslo")
        self.assertEqual(cm.exception.decision.reason_code, "identity_mismatch")

        @aegis.policy_enforced(tool="payroll", action="run", client=c)
        def payroll():
            pass

        with self.assertRaises(aegis.PolicyDenied) as cm:
            payroll()
        self.assertEqual(cm.exception.decision.reason_code, "unknown_tool")

    def test_explicit_client_decide_returns_every_decision_and_enforce_raises(self):
        c = self.client()
        d = c.decide("crm", "export_all", {"format": "csv"})
        self.assertEqual((d.outcome, d.status, d.allowed), ("deny", 403, False))
        d = c.decide("crm", "lookup_customer", {"ssn": "123-45-6789"})
        self.assertEqual((d.outcome, d.sanitized_params), ("sanitize", {"ssn": "[REDACTED]"}))
        self.assertEqual(c.enforce("search", "query", {"q": "x"}).outcome, "allow")
        with self.assertRaises(aegis.PolicyDenied):
            c.enforce("crm", "export_all")
        with self.assertRaises(aegis.InvalidCall) as cm:
            c.decide("not a tool name", "x")
        self.assertEqual(cm.exception.status, 400)
        with self.assertRaises(aegis.ParamsError):
            c.decide("search", "query", {"when": object()})

    def test_methods_leave_self_and_cls_out(self):
        c = self.client()
        calls = []

        class Search:
            @aegis.policy_enforced(tool="search", action="query", client=c)
            def query(self, q):
                calls.append(("method", q, aegis.current_decision().decision_id))

            @classmethod
            @aegis.policy_enforced(tool="search", action="query", client=c)
            def query_cls(cls, q):
                calls.append(("classmethod", q))

            @aegis.policy_enforced(tool="search", action="query", client=c)
            @staticmethod
            def query_static(q):
                calls.append(("staticmethod", q))

        Search().query("a")
        Search.query_cls("b")
        Search.query_static("c")
        self.assertEqual([x[:2] for x in calls],
                         [("method", "a"), ("classmethod", "b"), ("staticmethod", "c")])
        record = self.gw.audit_record(calls[0][2])
        self.assertEqual(record["params"], {"q": "a"})

    def test_arguments_that_are_not_json_fail_before_any_request(self):
        c = self.client()

        @aegis.policy_enforced(tool="search", action="query", client=c)
        def query(q, since=None):
            raise AssertionError("must not run")

        before = c.stats()["decisions"]
        with self.assertRaises(aegis.ParamsError) as cm:
            import datetime
            query("x", since=datetime.date(2026, 1, 1))
        self.assertEqual(cm.exception.path, "params.since")
        self.assertIn("date", str(cm.exception))
        self.assertEqual(c.stats()["decisions"], before)
        with self.assertRaises(TypeError):  # arguments that do not fit the signature
            query()

    # ---- authentication ------------------------------------------------------------------------

    def test_bad_or_missing_tokens_are_authentication_errors(self):
        for client in (aegis.Client(url=self.gw.url, agent_token="not.a.token"),
                       aegis.Client(url=self.gw.url, agent="finance-agent")):
            with client, self.subTest(client=client._tokens.get()):
                with self.assertRaises(aegis.AuthenticationError) as cm:
                    client.decide("search", "query", {"q": "x"})
                self.assertEqual(cm.exception.status, 401)
        bad = aegis.IssuerTokenProvider(self.gw.url, "wrong-secret-0123456789", "finance-agent")
        with aegis.Client(url=self.gw.url, token_provider=bad) as client:
            with self.assertRaises(aegis.AuthenticationError):
                client.decide("search", "query", {"q": "x"})
        unknown = aegis.IssuerTokenProvider(self.gw.url, support.SECRETS["orchestrator"], "nobody")
        with self.assertRaises(aegis.InvalidCall) as cm:
            unknown()
        self.assertEqual(cm.exception.code, "unknown_agent")

    def test_configure_reads_the_environment(self):
        env = {"AEGIS_URL": self.gw.url, "AEGIS_AGENT": "support-agent",
               "AEGIS_ISSUER_CREDENTIAL": support.SECRETS["orchestrator"],
               "AEGIS_TOKEN_TTL": "60", "AEGIS_FAIL_MODE": "fail_open",
               "AEGIS_FAIL_OPEN_TTL": "7", "AEGIS_TIMEOUT": "3"}
        with mock.patch.dict(os.environ, env):
            client = aegis.configure()
        self.addCleanup(lambda: (aegis.default_client().close(),
                                 setattr(aegis, "_default", None)))
        self.assertIs(aegis.default_client(), client)
        self.assertEqual((client.fail_mode, client.fail_open_ttl, client.timeout),
                         ("fail_open", 7.0, 3.0))

        @aegis.policy_enforced(tool="search", action="query")
        def query(q):
            return aegis.current_decision()

        d = query("x")
        self.assertEqual((d.agent, d.outcome), ("support-agent", "allow"))
        self.assertEqual(aegis.stats()["allow"], 1)
        with mock.patch.dict(os.environ, {"AEGIS_FAIL_MODE": "sometimes"}):
            with self.assertRaises(aegis.ConfigurationError):
                aegis.Client.from_env()

    def test_one_keep_alive_connection_per_thread(self):
        c = self.client()
        c.decide("search", "query", {"q": "warm-up"})
        here = c._transport.local_address()
        for i in range(20):
            c.decide("search", "query", {"q": i})
        self.assertEqual(c._transport.local_address(), here)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            names = set(pool.map(lambda i: (c.decide("search", "query", {"q": i}),
                                            c._transport.local_address())[1],
                                 range(40)))
        self.assertLessEqual(len(names), 4)
        self.assertNotIn(here, names)

    # ---- approvals -----------------------------------------------------------------------------

    def test_approval_needed_raises_with_the_approval_id(self):
        c = self.client()

        @aegis.policy_enforced(tool="stripe", client=c)
        def create_payment(amount, currency="usd"):
            raise AssertionError("must not run")

        with self.assertRaises(aegis.ApprovalRequired) as cm:
            create_payment(6001)
        e = cm.exception
        self.assertTrue(e.approval_id.startswith("apr_"))
        self.assertEqual(e.rule, "payment-ceiling")
        approval = self.gw.approval(e.approval_id)
        self.assertEqual(approval["state"], "pending")
        self.assertEqual(approval["call_digest"], aegis.call_digest(
            "", "finance-agent", "stripe", "create_payment", {"amount": 6001, "currency": "usd"}))

    def test_waiting_for_two_approvers_then_running_once(self):
        c = self.client()
        ran = []

        @aegis.policy_enforced(tool="stripe", client=c, wait_for_approval=30)
        def create_payment(amount, currency="usd", memo=None):
            ran.append(aegis.current_decision())
            return "paid"

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(create_payment, 7000, memo="invoice 7")
            approval_id = self.gw.pending_approval(aegis.call_digest(
                "", "finance-agent", "stripe", "create_payment",
                {"amount": 7000, "currency": "usd", "memo": "invoice 7"}))
            self.assertFalse(future.done())
            self.assertEqual(self.gw.vote(approval_id, "alice")[1]["state"], "pending")
            self.assertEqual(self.gw.vote(approval_id, "bob", comment="ok")[1]["state"],
                             "approved")
            self.assertEqual(future.result(timeout=30), "paid")
        self.assertEqual(len(ran), 1)
        self.assertEqual(ran[0].reasons[0], {"code": "approved", "detail": approval_id})
        # The override token was consumed: the same call needs a new approval.
        with self.assertRaises(aegis.ApprovalRequired) as cm:
            c.enforce("stripe", "create_payment",
                      {"amount": 7000, "currency": "usd", "memo": "invoice 7"})
        self.assertNotEqual(cm.exception.approval_id, approval_id)

    def test_waiting_async_does_not_block_the_event_loop(self):
        c = self.client()
        ran = []

        @aegis.policy_enforced(tool="stripe", client=c, wait_for_approval=30)
        async def create_payment(amount, currency="usd"):
            await asyncio.sleep(0)
            ran.append(amount)
            return "paid async"

        async def approve():
            # Runs on the same loop: if the waiting call blocked it, nobody would ever vote.
            loop = asyncio.get_running_loop()
            approval_id = await loop.run_in_executor(
                None, self.gw.pending_approval, aegis.call_digest(
                    "", "finance-agent", "stripe", "create_payment",
                    {"amount": 9100, "currency": "usd"}))
            for who in ("alice", "bob"):
                await loop.run_in_executor(None, self.gw.vote, approval_id, who)
            return approval_id

        async def main():
            return await asyncio.gather(create_payment(9100), approve())

        result, approval_id = asyncio.run(main())
        self.assertEqual((result, ran), ("paid async", [9100]))
        self.assertEqual(self.gw.approval(approval_id)["state"], "approved")

    def test_a_denied_approval_raises_approval_denied(self):
        c = self.client()

        @aegis.policy_enforced(tool="stripe", client=c, wait_for_approval=30)
        def create_payment(amount):
            raise AssertionError("must not run")

        def deny():
            approval_id = self.gw.pending_approval(aegis.call_digest(
                "", "finance-agent", "stripe", "create_payment", {"amount": 8800}))
            self.gw.vote(approval_id, "alice", "deny", comment="not this month")

        voter = threading.Thread(target=deny)
        voter.start()
        try:
            with self.assertRaises(aegis.ApprovalDenied) as cm:
                create_payment(8800)
        finally:
            voter.join()
        self.assertIn("alice: not this month", str(cm.exception))
        self.assertEqual(cm.exception.approval["state"], "denied")
        self.assertIsInstance(cm.exception, aegis.PolicyDenied)

    def test_an_approval_that_expires_or_outlasts_the_wait(self):
        c = self.client()

        @aegis.policy_enforced(tool="stripe", client=c, wait_for_approval=0.2)
        def create_payment(amount):
            raise AssertionError("must not run")

        with self.assertRaises(aegis.ApprovalTimeout) as cm:
            create_payment(5500)
        self.assertEqual(cm.exception.state, "pending")
        self.assertEqual(self.gw.approval(cm.exception.approval_id)["state"], "pending")

        # large-refund approvals live 3 s; nobody votes.
        @aegis.policy_enforced(tool="stripe", client=c, wait_for_approval=30)
        async def refund(amount):
            raise AssertionError("must not run")

        with self.assertRaises(aegis.ApprovalTimeout) as cm:
            asyncio.run(refund(2500))
        self.assertEqual(cm.exception.state, "expired")
        self.assertIsInstance(cm.exception, aegis.ApprovalRequired)

    # ---- limits and usage ----------------------------------------------------------------------

    def test_rate_limited_sync_and_async(self):
        for agent, run in (("finance-agent", lambda f: f("Oslo")),
                           ("support-agent", lambda f: asyncio.run(f("Oslo")))):
            c = self.client(agent)

            @aegis.policy_enforced(tool="weather", action="forecast", client=c)
            def sync_forecast(city):
                return "sunny"

            @aegis.policy_enforced(tool="weather", action="forecast", client=c)
            async def async_forecast(city):
                return "sunny"

            f = sync_forecast if agent == "finance-agent" else async_forecast
            self.assertEqual(run(f), "sunny")
            with self.assertRaises(aegis.RateLimited) as cm:
                run(f)
            self.assertGreater(cm.exception.retry_after, 900)
            self.assertEqual(cm.exception.decision.status, 429)

    def test_budget_exceeded_and_the_actual_cost_settled(self):
        budget = self.client("budget-agent")

        @aegis.policy_enforced(tool="llm", action="complete", cost=0.6, client=budget)
        def complete(prompt):
            return {"text": "ok", "usd": 0.6}

        complete("a")
        with self.assertRaises(aegis.BudgetExceeded) as cm:
            complete("b")
        self.assertEqual(cm.exception.budget["remaining_usd"], 0.4)
        self.assertEqual(cm.exception.decision.status, 402)

        # Estimated at $0.60 each, settled at what the result says: the budget follows.
        usage = self.client("usage-agent")

        @aegis.policy_enforced(tool="llm", action="complete", client=usage,
                               cost=lambda params: 0.6, actual_cost=lambda r: r["usd"])
        async def complete_async(prompt, usd):
            return {"text": "ok", "usd": usd}

        asyncio.run(complete_async("a", 0.1))
        asyncio.run(complete_async("b", 0.35))  # 0.1 spent + 0.6 reserved fits in $1
        with self.assertRaises(aegis.BudgetExceeded) as cm:  # 0.45 spent + 0.6 does not
            asyncio.run(complete_async("c", 0.6))
        self.assertAlmostEqual(cm.exception.budget["remaining_usd"], 0.55)
        self.assertEqual(usage.stats()["usage_reported"], 2)
        # Explicitly, from inside the function; a decision settles once.
        settled = []

        @aegis.policy_enforced(tool="llm", action="complete", client=usage, cost=0.5)
        def complete_explicit(prompt):
            d = aegis.current_decision()
            settled.append(usage.report_usage(d, 0.05))
            return d

        d = complete_explicit("d")
        self.assertEqual(settled, [True])
        with self.assertRaises(aegis.InvalidCall) as cm:
            usage.report_usage(d.decision_id, 0.05)
        self.assertEqual(cm.exception.status, 409)
        # A decision without a reservation has nothing to settle.
        self.assertFalse(self.client().report_usage(self.client().decide("search", "query"), 1))

    def test_a_failing_actual_cost_hook_does_not_lose_the_result(self):
        c = self.client()

        @aegis.policy_enforced(tool="llm", action="complete", client=c, cost=0.01,
                               actual_cost=lambda r: 1 / 0)
        def complete(prompt):
            return "answer"

        before = c.stats()["usage_errors"]
        with self.assertLogs("aegis", "WARNING"):
            self.assertEqual(complete("x"), "answer")
        self.assertEqual(c.stats()["usage_errors"], before + 1)

    def test_async_outcomes(self):
        c = self.client()

        @aegis.policy_enforced(tool="crm", action="lookup_customer", client=c)
        async def lookup(customer_id, ssn=None):
            return ssn

        @aegis.policy_enforced(tool="crm", action="export_all", client=c)
        async def export_all():
            raise AssertionError("must not run")

        @aegis.policy_enforced(tool="stripe", action="create_payment", client=c)
        async def pay(amount):
            raise AssertionError("must not run")

        async def main():
            self.assertEqual(await lookup("c", "123-45-6789"), "[REDACTED]")
            with self.assertRaises(aegis.PolicyDenied):
                await export_all()
            with self.assertRaises(aegis.ApprovalRequired):
                await pay(9999)
            with self.assertRaises(aegis.ParamsError):
                await lookup("c", {1, 2})
            return await asyncio.gather(*(lookup("c%d" % i) for i in range(10)))

        self.assertEqual(asyncio.run(main()), [None] * 10)


if __name__ == "__main__":
    unittest.main()
