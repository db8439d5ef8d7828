"""Rate limits and budgets through the real `aegis serve`: 429 with Retry-After, 402, settling
with POST /v1/usage, and `aegis spend` reading a running server.

Usage: limits_test.py <path to aegis>
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

AEGIS = None

POLICY = """\
apiVersion: aegis/v1
kind: Policy
metadata: {name: limits-test}
tools:
  llm:
    actions:
      complete: {cost_usd: 2}
agents:
  chatty: {tools: [llm], max_requests_per_second: 0.001, burst: 3}
  thrifty: {tools: [llm], max_daily_budget_usd: 5}
rules:
  - {id: ok, match: {tools: [llm]}, effect: allow}
"""


def call(agent, cost=None):
    c = {"agent": agent, "tool": "llm", "action": "complete"}
    if cost is not None:
        c["cost_usd"] = cost
    return c


class LimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="aegis-limits-")
        bundle = os.path.join(cls.tmp, "bundle")
        os.makedirs(bundle)
        with open(os.path.join(bundle, "policy.yaml"), "w", encoding="utf-8") as f:
            f.write(POLICY)
        cls.aegis = harness.AegisServer(AEGIS, cls.tmp, bundle,
                                        config={"data_dir": os.path.join(cls.tmp, "data")}).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.aegis.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, cls.aegis.output()

    def decide(self, body):
        status, headers, data = self.aegis.request("POST", "/v1/decide", body,
                                                   {"Content-Type": "application/json"})
        return status, headers, json.loads(data)

    def test_rate_limit_answers_429_with_retry_after(self):
        statuses = [self.decide(call("chatty"))[0] for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 200])  # the burst
        status, headers, d = self.decide(call("chatty"))
        self.assertEqual(status, 429)
        self.assertEqual(d["reasons"][0]["code"], "rate_limited")
        self.assertGreater(int(headers["retry-after"]), 0)
        self.assertGreater(d["retry_after_ms"], 0)

    def test_budget_answers_402_and_usage_settles(self):
        first = self.decide(call("thrifty"))           # $2 reserved
        self.assertEqual(first[0], 200)
        self.assertTrue(first[2]["reserved"])
        self.assertEqual(self.decide(call("thrifty"))[0], 200)  # $4
        status, _, d = self.decide(call("thrifty"))    # $6 > $5
        self.assertEqual(status, 402)
        self.assertEqual(d["reasons"][0]["code"], "budget_exceeded")
        self.assertEqual(d["budget"]["remaining_usd"], 1)
        # The first call actually cost $0.25: settling frees room for one more.
        decision_id = first[2]["decision_id"]
        status, _, body = self.aegis.request("POST", "/v1/usage",
                                             {"decision_id": decision_id, "cost_usd": 0.25},
                                             {"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        status, _, body = self.aegis.request("POST", "/v1/usage",
                                             {"decision_id": decision_id, "cost_usd": 0.25},
                                             {"Content-Type": "application/json"})
        self.assertEqual(status, 409, body)
        for bad in ({"decision_id": decision_id, "cost_usd": -1},
                    {"decision_id": decision_id, "cost_usd": "1"},
                    {"decision_id": decision_id}):
            status, _, body = self.aegis.request("POST", "/v1/usage", bad,
                                                 {"Content-Type": "application/json"})
            self.assertEqual(status, 400, body)
        self.assertEqual(self.decide(call("thrifty"))[0], 200)  # $0.25 + $2 + $2 fits $5
        # `aegis spend` reads the same figures from the running server.
        r = subprocess.run([AEGIS, "spend", "--server", self.aegis.address,
                            "--prefix", "agent//thrifty", "--json"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = json.loads(r.stdout)["budgets"]
        self.assertEqual([(x["key"], x["spent_usd"], x["limit_usd"]) for x in rows],
                         [("agent//thrifty", 4.25, 5)])
        r = subprocess.run([AEGIS, "spend", "--server", self.aegis.address],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("agent//thrifty", r.stdout)


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
