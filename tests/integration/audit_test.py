"""The audit trail and the traces of a real `aegis serve`: every decision recorded, PII never
written, the trail verified and read by `aegis audit`, an edit by hand detected; one span per
decision exported over OTLP/HTTP to a local receiver, joined to the caller's trace.

Usage: audit_test.py <path to aegis>
"""
import glob
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
metadata: {name: audit-test}
tools:
  ehr: {actions: {export: {}}}
agents:
  clinic-agent: {tools: [ehr]}
rules:
  - id: phi
    match: {tools: [ehr]}
    effect: sanitize
    redact: {detectors: [ssn, email]}
"""

SSN = "123-45-6789"
EMAIL = "ann.smith@example.com"


class AuditTest(unittest.TestCase):
    def setUp(self):
        self.receiver = harness.RecordingUpstream().start()
        self.tmp = tempfile.mkdtemp(prefix="aegis-audit-")
        bundle = os.path.join(self.tmp, "bundle")
        os.makedirs(bundle)
        with open(os.path.join(bundle, "policy.yaml"), "w", encoding="utf-8") as f:
            f.write(POLICY)
        self.data = os.path.join(self.tmp, "data")
        tracing = {"enabled": True, "service_name": "aegis-test",
                   "endpoint": "http://127.0.0.1:%d/v1/traces" % self.receiver.port}
        self.server = harness.AegisServer(AEGIS, self.tmp, bundle,
                                          config={"data_dir": self.data,
                                                  "tracing": tracing}).start()

    def tearDown(self):
        self.server.stop()
        self.receiver.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def aegis(self, *args):
        return subprocess.run([AEGIS, *args], capture_output=True, text=True, timeout=60)

    def test_every_decision_is_recorded_without_pii_and_verifies(self):
        ids = []
        for i in range(50):
            call = {"agent": "clinic-agent", "tool": "ehr", "action": "export",
                    "params": {"patient": {"ssn": SSN, "mail": EMAIL}, "n": i}}
            status, headers, data = self.server.request("POST", "/v1/decide", call,
                                                        {"Content-Type": "application/json"})
            self.assertEqual(status, 200, data)
            d = json.loads(data)
            self.assertEqual(d["sanitized_params"]["patient"]["ssn"], "[REDACTED:ssn]")
            ids.append(headers["x-aegis-decision-id"])
        status, _, _ = self.server.request("POST", "/v1/decide", {"agent": "nobody", "tool": "ehr"},
                                           {"Content-Type": "application/json"})
        self.assertEqual(status, 403)
        self.assertEqual(self.server.stop(), 0)

        trail = os.path.join(self.data, "audit")
        r = self.aegis("audit", "verify", trail)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ok: ", r.stdout)
        r = self.aegis("audit", "show", trail, "--agent", "clinic-agent", "--limit", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        records = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(len(records), 50)
        self.assertEqual([rec.get("decision_id") for rec in records], ids)
        self.assertEqual(records[0]["decision"], "sanitize")
        r = self.aegis("audit", "show", trail, "--decision", "deny")
        self.assertEqual(len(r.stdout.splitlines()), 1)

        # The raw PII is nowhere in the trail, nor in the server's own output.
        for path in glob.glob(os.path.join(trail, "*")):
            with open(path, "rb") as f:
                content = f.read()
            self.assertNotIn(SSN.encode(), content, path)
            self.assertNotIn(EMAIL.encode(), content, path)
        self.assertNotIn(SSN, self.server.output())

        # An edit by hand is found, and named.
        segment = sorted(glob.glob(os.path.join(trail, "*.log")))[0]
        with open(segment, "r+b") as f:
            lines = f.read().split(b"\n")
            target = next(i for i, l in enumerate(lines) if b'"n":20' in l)
            lines[target] = lines[target].replace(b'"n":20', b'"n":21')
            f.seek(0)
            f.write(b"\n".join(lines))
        r = self.aegis("audit", "verify", trail)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("first bad record", r.stdout)


    def test_each_decision_is_a_span_in_the_callers_trace(self):
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        parent = "00-%s-00f067aa0ba902b7-01" % trace_id
        call = {"agent": "clinic-agent", "tool": "ehr", "action": "export",
                "params": {"patient": {"ssn": SSN}}}
        status, headers, _ = self.server.request(
            "POST", "/v1/decide", call, {"Content-Type": "application/json", "traceparent": parent})
        self.assertEqual(status, 200)
        self.assertTrue(headers["traceparent"].startswith("00-%s-" % trace_id), headers)
        self.assertNotEqual(headers["traceparent"], parent)  # the decision's own span
        self.assertEqual(self.server.stop(), 0)  # drains the exporter
        posts = [r for r in self.receiver.seen() if r["path"] == "/v1/traces"]
        self.assertTrue(posts, "no span exported")
        body = b"".join(r["body"] for r in posts)
        self.assertEqual(posts[0]["headers"]["content-type"], "application/x-protobuf")
        self.assertIn(bytes.fromhex(trace_id), body)
        self.assertIn(bytes.fromhex("00f067aa0ba902b7"), body)  # the parent span id
        for expected in (b"aegis.decide", b"aegis-test", b"clinic-agent", b"sanitize", b"phi"):
            self.assertIn(expected, body)
        self.assertNotIn(SSN.encode(), body)
        # The audit record names the trace.
        r = self.aegis("audit", "show", os.path.join(self.data, "audit"), "--agent", "clinic-agent")
        self.assertIn(trace_id, r.stdout)


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
