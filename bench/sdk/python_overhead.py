#!/usr/bin/env python3
"""Per-call overhead of @aegis.policy_enforced against calling the function bare, with
keep-alive to a local `aegis serve` (started here, on the SDK's case bundle, agent tokens on).

Measured in one run, interleaved call by call so that both see the same machine state:
  bare       the undecorated function
  raw http   one POST /v1/decide with a prebuilt body on a kept-alive http.client connection:
             the floor any Python client pays (network stack + gateway)
  decorated  the decorated function: binding and encoding the arguments, the decision, the
             outcome, the function
Overhead = decorated - bare, per call. Prints p50 and p99 per run and the median over runs,
and the SDK's own share (decorated - raw http). Target: p50 overhead <= 300 us.

Usage: bench/sdk/python_overhead.py [--aegis PATH] [--runs 5] [--calls 2000]
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "sdk", "python"))
sys.path.insert(0, os.path.join(REPO, "sdk", "python", "tests"))
import aegis  # noqa: E402
import support  # noqa: E402  (starts aegis serve through tests/integration/harness.py)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aegis", default=os.environ.get("AEGIS_BIN"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    if args.aegis:
        os.environ["AEGIS_BIN"] = args.aegis

    gw = support.Gateway(lambda data: dict(support.identity_config(data),
                                           log_level="warn"), "bench").start()
    try:
        token = gw.token("finance-agent")
        client = aegis.Client(url=gw.url, agent_token=token, timeout=5)

        def bare(q, filters=None, limit=10):
            return q

        decorated = aegis.policy_enforced(tool="search", action="query", client=client)(bare)
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        body = json.dumps({"tool": "search", "action": "query",
                           "params": {"q": "invoices", "filters": None, "limit": 10}}).encode()
        headers = {"Content-Type": "application/json", "x-aegis-token": token}

        def raw():
            conn.request("POST", "/v1/decide", body, headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200

        clock = time.perf_counter_ns
        for _ in range(300):  # warm up: connections, token cache, allocator
            decorated("invoices")
            raw()
        rows = []
        for run in range(args.runs):
            b, r, d = [], [], []
            for _ in range(args.calls):
                t0 = clock()
                bare("invoices")
                t1 = clock()
                raw()
                t2 = clock()
                decorated("invoices")
                t3 = clock()
                b.append(t1 - t0)
                r.append(t2 - t1)
                d.append(t3 - t2)
            bare_p50 = statistics.median(b)
            over = [x - bare_p50 for x in d]
            row = {"bare_p50": bare_p50 / 1e3, "raw_p50": statistics.median(r) / 1e3,
                   "raw_p99": percentile(r, 99) / 1e3,
                   "over_p50": statistics.median(over) / 1e3,
                   "over_p99": percentile(over, 99) / 1e3}
            row["sdk_p50"] = row["over_p50"] - row["raw_p50"]
            rows.append(row)
            print("run %d: bare p50 %.2f us | raw http p50 %.1f p99 %.1f us | decorator overhead "
                  "p50 %.1f p99 %.1f us | SDK's own share p50 %.1f us"
                  % (run + 1, row["bare_p50"], row["raw_p50"], row["raw_p99"], row["over_p50"],
                     row["over_p99"], row["sdk_p50"]))
        med = {k: statistics.median(x[k] for x in rows) for k in rows[0]}
        print()
        print("median of %d runs x %d calls (Python %s, keep-alive, agent token, audit on):"
              % (args.runs, args.calls, sys.version.split()[0]))
        print("  decorator overhead  p50 %7.1f us   p99 %7.1f us   (target p50 <= 300 us)"
              % (med["over_p50"], med["over_p99"]))
        print("  raw POST /v1/decide p50 %7.1f us   p99 %7.1f us   (the floor)"
              % (med["raw_p50"], med["raw_p99"]))
        print("  SDK's own share     p50 %7.1f us   ratio decorated/raw %.2fx"
              % (med["sdk_p50"], (med["over_p50"]) / med["raw_p50"]))
        conn.close()
        client.close()
        ok = med["over_p50"] <= 300
        print("  %s" % ("PASS" if ok else "ABOVE TARGET"))
        return 0 if ok else 1
    finally:
        gw.cleanup()


if __name__ == "__main__":
    sys.exit(main())
