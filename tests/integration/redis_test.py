"""Limits on a real Redis shared by two `aegis serve` processes: one budget and one burst across
both under 1,000 concurrent calls, Redis killed and restarted under each fail mode, spend and
metrics read back.

Usage: redis_test.py <path to aegis>
"""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

AEGIS = None
ROUNDS = 5

POLICY = """\
apiVersion: aegis/v1
kind: Policy
metadata: {name: redis-test, tenant: acme}
tools:
  llm:
    actions:
      complete: {cost_usd: 1}
agents:
%s
  steady: {tools: [llm], max_daily_budget_usd: 1000}
  open: {tools: [llm], max_daily_budget_usd: 3}
  unlimited: {tools: [llm]}
rules:
  - {id: ok, match: {tools: [llm]}, effect: allow}
""" % "\n".join(
    ["  spender%d: {tools: [llm], max_daily_budget_usd: 100}" % i for i in range(ROUNDS)] +
    ["  burster%d: {tools: [llm], max_requests_per_second: 0.001, burst: 10}" % i
     for i in range(ROUNDS)])

JSON = {"Content-Type": "application/json"}


def call(agent):
    return {"tenant": "acme", "agent": agent, "tool": "llm", "action": "complete"}


class SharedRedisTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="aegis-redis-")
        bundle = os.path.join(cls.tmp, "bundle")
        os.makedirs(bundle)
        with open(os.path.join(bundle, "policy.yaml"), "w", encoding="utf-8") as f:
            f.write(POLICY)
        cls.redis = harness.Redis(os.path.join(cls.tmp, "redis")).start()
        cls.servers = []
        # Two replicas sharing Redis, fail_closed (the default), the URL given as a flag ...
        for name in ("a", "b"):
            work = os.path.join(cls.tmp, name)
            os.makedirs(work)
            cls.servers.append(harness.AegisServer(
                AEGIS, work, bundle, config={"data_dir": os.path.join(work, "data")},
                extra_args=["--redis", cls.redis.url]).start())
        # ... and one fail_open replica configured in aegis.yaml.
        work = os.path.join(cls.tmp, "open")
        os.makedirs(work)
        cls.open_server = harness.AegisServer(
            AEGIS, work, bundle,
            config={"data_dir": os.path.join(work, "data"),
                    "limit_store": {"store": "redis", "redis_url": cls.redis.url,
                                    "redis_timeout_ms": 200, "fail_mode": "fail_open"}}).start()

    @classmethod
    def tearDownClass(cls):
        codes = [s.stop() for s in cls.servers + [cls.open_server]]
        cls.redis.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        for s, code in zip(cls.servers + [cls.open_server], codes):
            assert code == 0, s.output()

    def decide(self, server, agent):
        status, headers, data = server.request("POST", "/v1/decide", call(agent), JSON)
        return status, headers, json.loads(data)

    def spent(self, server, agent):
        status, _, data = server.request("GET", "/v1/spend?agent=%s&window=day" % agent)
        self.assertEqual(status, 200, data)
        rows = json.loads(data)["budgets"]
        return rows[0]["spent_usd"] if rows else 0

    def storm(self, agent, calls=1000, workers=32):
        """`calls` decisions for `agent`, spread over both replicas from `workers` threads with
        keep-alive connections. Returns the list of statuses."""
        local = threading.local()
        servers = self.servers

        def one(i):
            if not hasattr(local, "conns"):
                local.conns = [s.connect() for s in servers]
            conn = local.conns[i % 2]
            status, _, _ = harness.do_request(conn, "POST", "/v1/decide", call(agent), JSON)
            return status

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, range(calls)))

    def test_one_budget_holds_across_two_replicas(self):
        for r in range(ROUNDS):
            statuses = self.storm("spender%d" % r)
            self.assertEqual(statuses.count(200), 100, "round %d" % r)
            self.assertEqual(statuses.count(402), 900, "round %d" % r)
            # Both replicas report the same spend: Redis's.
            for s in self.servers:
                self.assertEqual(self.spent(s, "spender%d" % r), 100)

    def test_one_burst_holds_across_two_replicas(self):
        for r in range(ROUNDS):
            statuses = self.storm("burster%d" % r)
            self.assertEqual(statuses.count(200), 10, "round %d" % r)
            self.assertEqual(statuses.count(429), 990, "round %d" % r)

    def test_spend_and_budget_metrics(self):
        a = self.servers[0]
        for _ in range(3):
            self.assertEqual(self.decide(a, "steady")[0], 200)
        status, _, data = a.request("GET", "/metrics")
        text = data.decode()
        self.assertEqual(status, 200)
        self.assertIn('aegis_limits_store_up{store="redis"} 1', text)
        line = [l for l in text.splitlines()
                if l.startswith("aegis_budget_remaining_usd{") and 'agent="steady"' in l]
        self.assertEqual(len(line), 1, text)
        self.assertIn('scope="agent",tenant="acme"', line[0])
        self.assertIn('window="day"', line[0])
        remaining = float(line[0].rsplit(" ", 1)[1])
        self.assertEqual(remaining, 1000 - self.spent(a, "steady"))

    def test_every_series_the_grafana_dashboard_queries_exists(self):
        a = self.servers[0]
        for agent in ("steady", "unlimited"):
            self.assertEqual(self.decide(a, agent)[0], 200)
        status, _, data = a.request("GET", "/metrics")
        self.assertEqual(status, 200)
        exposed = set()
        for line in data.decode().splitlines():
            if line.startswith("# TYPE "):
                name, kind = line.split()[2:4]
                exposed.add(name)
                if kind == "histogram":
                    exposed.update(name + s for s in ("_bucket", "_sum", "_count"))
        with open(os.path.join(harness.REPO, "deploy", "grafana", "aegis.json")) as f:
            dashboard = json.load(f)
        queried = set()
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                queried.update(re.findall(r"aegis_[a-z_]+", target["expr"]))
        self.assertTrue(queried)
        self.assertEqual(sorted(queried - exposed), [])

    def test_redis_killed_and_restarted(self):
        a, b = self.servers
        before = self.spent(a, "steady")
        admitted = 0
        for i in range(20):
            status, _, d = self.decide((a, b)[i % 2], "steady")
            self.assertEqual(status, 200, d)
            admitted += 1
        self.redis.stop(signal.SIGKILL)
        try:
            # fail_closed: a call with limits is refused with 503; a call without limits does
            # not need Redis and goes through.
            for server in (a, b):
                status, headers, d = self.decide(server, "steady")
                self.assertEqual(status, 503, d)
                self.assertEqual(d["reasons"][0]["code"], "limits_unavailable")
                self.assertEqual(headers["x-aegis-decision"], "deny")
                self.assertEqual(self.decide(server, "unlimited")[0], 200)
            status, _, data = a.request("GET", "/v1/spend")
            self.assertEqual(status, 503, data)
            status, _, data = a.request("GET", "/metrics")
            self.assertIn('aegis_limits_store_up{store="redis"} 0', data.decode())
            # fail_open: the local fallback admits within the same limits, per replica, and
            # marks every such decision.
            o = self.open_server
            marked = [self.decide(o, "open") for _ in range(4)]
            self.assertEqual([m[0] for m in marked], [200, 200, 200, 402])
            self.assertTrue(all(m[2].get("limits_fail_open") for m in marked))
            status, _, data = o.request("GET", "/metrics")
            self.assertIn("aegis_limits_fail_open_total 4", data.decode())
        finally:
            self.redis.start()
        # Recovery without restarting aegis: within the store's pause (at most 2 s).
        deadline = time.monotonic() + 15
        recovered = {}
        while len(recovered) < 2 and time.monotonic() < deadline:
            for server in (a, b):
                if server not in recovered:
                    status, _, d = self.decide(server, "steady")
                    if status == 200:
                        recovered[server] = True
                        admitted += 1
                    else:
                        self.assertEqual(status, 503, d)
            time.sleep(0.05)
        self.assertEqual(len(recovered), 2, "a replica did not reconnect to Redis")
        # Nothing lost and nothing charged twice: Redis kept every charge it acknowledged.
        self.assertEqual(self.spent(a, "steady"), before + admitted)
        self.assertEqual(self.spent(b, "steady"), before + admitted)
        # The fail_open replica is back on Redis too: its decisions are no longer marked.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status, _, d = self.decide(self.open_server, "unlimited")
            status, _, d = self.decide(self.open_server, "steady")
            if status == 200 and not d.get("limits_fail_open"):
                break
            time.sleep(0.05)
        self.assertFalse(d.get("limits_fail_open"), d)


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
