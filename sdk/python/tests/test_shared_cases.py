"""Runs sdk/cases/cases.json — the calls and outcomes every Aegis SDK must agree on — through
@aegis.policy_enforced against a real `aegis serve` with sdk/cases/bundle (format:
sdk/cases/README.md)."""
import inspect
import json
import math
import os
import unittest

import support
import aegis

with open(os.path.join(support.CASES_DIR, "cases.json"), encoding="utf-8") as f:
    CASES = json.load(f)

ERRORS = {"deny": aegis.PolicyDenied, "approval_needed": aegis.ApprovalRequired,
          "rate_limited": aegis.RateLimited, "budget_exceeded": aegis.BudgetExceeded,
          "params_error": aegis.ParamsError}


def native(value):
    """The case file's placeholders for values JSON cannot hold, as Python values."""
    if isinstance(value, dict):
        if set(value) == {"$unencodable"}:
            return object()
        if set(value) == {"$number"}:
            return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value["$number"]]
        return {k: native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [native(v) for v in value]
    return value


def make_function(spec, received):
    """A function with the case's signature that records the arguments it runs with."""
    params = [inspect.Parameter(p["name"], inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=p["default"] if "default" in p else
                                inspect.Parameter.empty)
              for p in spec["parameters"]]
    signature = inspect.Signature(params)

    def fn(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        received.append((dict(bound.arguments), aegis.current_decision()))
        return "ran"
    fn.__signature__ = signature
    fn.__name__ = spec["action"]
    return fn


class SharedCasesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = support.Gateway(CASES["serve_config"], "cases").start()
        cls.client = aegis.Client(url=cls.gw.url, timeout=5)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        code = cls.gw.stop()
        cls.gw.cleanup()
        assert code == 0, "aegis serve exited with %s" % code

    def test_cases(self):
        self.assertGreaterEqual(len(CASES["cases"]), 10)
        approvals = {}  # case name -> approval id
        seen = set()
        for case in CASES["cases"]:
            seen.add(case["name"])
            received = []
            fn = make_function(case["function"], received)
            for i, call in enumerate(case["calls"]):
                with self.subTest(case=case["name"], call=i):
                    expect = call["expect"]
                    wrapped = aegis.policy_enforced(
                        tool=case["function"]["tool"], action=case["function"]["action"],
                        agent=case["agent"], tenant=case.get("tenant"), cost=call.get("cost"),
                        client=self.client)(fn)
                    requests_before = self.client.stats()["decisions"]
                    received.clear()
                    error, result = None, None
                    try:
                        result = wrapped(*native(call["args"]))
                    except aegis.AegisError as e:
                        error = e
                    if error is None:
                        self.assertEqual(result, "ran")
                        self.assertEqual(len(received), 1)
                    else:
                        self.assertIsInstance(error, ERRORS[expect["outcome"]], error)
                        self.assertEqual(received, [], "the function ran despite %r" % error)
                    if expect["outcome"] == "params_error":
                        self.assertEqual(error.path, expect["path"])
                        self.assertEqual(self.client.stats()["decisions"], requests_before,
                                         "a request was sent")
                        continue
                    # What was sent, and its digest.
                    params = expect["params"]
                    self.assertEqual(
                        aegis.call_digest(case.get("tenant", ""), case["agent"],
                                          case["function"]["tool"], case["function"]["action"],
                                          params), expect["digest"])
                    d = error.decision if error is not None else received[0][1]
                    self.assertEqual(d.outcome, expect["outcome"], d.raw)
                    if "rule" in expect:
                        self.assertEqual(d.rule, expect["rule"])
                    if "reason" in expect:
                        self.assertEqual(d.reason_code, expect["reason"])
                    if "decision" in expect:
                        self.assertEqual(d.decision, expect["decision"])
                    if "message" in expect:
                        self.assertEqual(d.message, expect["message"])
                    if "ran_with" in expect:
                        self.assertEqual(received[0][0], expect["ran_with"])
                    if "redacted_paths" in expect:
                        self.assertEqual(d.redacted_paths, expect["redacted_paths"])
                    if "cost_usd" in expect:
                        self.assertEqual(d.cost_usd, expect["cost_usd"])
                    if "retry_after_min_seconds" in expect:
                        self.assertGreaterEqual(error.retry_after,
                                                expect["retry_after_min_seconds"])
                    if "remaining_usd" in expect:
                        self.assertEqual(error.budget["remaining_usd"], expect["remaining_usd"])
                    if expect["outcome"] == "approval_needed":
                        approval = self.gw.approval(error.approval_id)
                        # The gateway's digest of the call is the one computed here.
                        self.assertEqual(approval["call_digest"], expect["digest"])
                        if "quorum" in expect:
                            self.assertEqual(approval["quorum"], expect["quorum"])
                        if "same_approval_as" in expect:
                            self.assertEqual(error.approval_id,
                                             approvals[expect["same_approval_as"]])
                        approvals[case["name"]] = error.approval_id
        for outcome in ("allow", "sanitize", "deny", "approval_needed", "rate_limited",
                        "budget_exceeded", "params_error"):
            self.assertTrue(any(c["expect"]["outcome"] == outcome
                                for case in CASES["cases"] for c in case["calls"]), outcome)


if __name__ == "__main__":
    unittest.main()
