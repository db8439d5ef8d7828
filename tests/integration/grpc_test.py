"""Envoy ext_authz over gRPC against the real `aegis serve`, with the client built from proto/.

Usage: grpc_test.py <path to aegis> <path to extauthz_client>. The client sends CheckRequests
shaped as Envoy sends them (with and without a body) and the gRPC health check.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import AegisServer  # noqa: E402

AEGIS = CLIENT = None
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class ExtAuthzGrpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="aegis-grpc-")
        bundle = os.path.join(cls.tmp, "bundle")
        shutil.copytree(os.path.join(REPO, "examples", "quickstart"), bundle)
        cls.server = AegisServer(AEGIS, cls.tmp, bundle).start()
        cls.addr = "127.0.0.1:%d" % cls.server.grpc_port

    @classmethod
    def tearDownClass(cls):
        cls.server.signal(signal.SIGTERM)
        code = cls.server.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, "aegis serve exited with %d" % code

    def check(self, *args):
        r = subprocess.run([CLIENT, "check", "--addr", self.addr, *args], capture_output=True,
                           text=True, timeout=30)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return r.returncode, json.loads(r.stdout)

    def test_health_is_serving(self):
        r = subprocess.run([CLIENT, "health", "--addr", self.addr], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_allow_without_body(self):
        code, out = self.check("--method", "GET", "--host", "api.stripe.com",
                               "--path", "/v1/payment_intents/pi_1", "--ext", "agent=finance-agent")
        self.assertEqual(code, 0, out)
        self.assertTrue(out["allowed"])
        self.assertEqual(out["headers"]["x-aegis-decision"], "allow")
        self.assertEqual(out["headers"]["x-aegis-policy-version"], self.server.ready_version)

    def test_large_payment_in_body_needs_approval(self):
        code, out = self.check("--method", "POST", "--host", "api.stripe.com",
                               "--path", "/v1/payment_intents", "--ext", "agent=finance-agent",
                               "--header", "content-type:application/json",
                               "--body", '{"amount":7000}')
        self.assertEqual(code, 1, out)
        self.assertFalse(out["allowed"])
        self.assertEqual(out["grpc_code"], 0)          # the call itself succeeds
        self.assertEqual(out["status"]["code"], 7)     # PERMISSION_DENIED
        self.assertEqual(out["http_status"], 403)
        self.assertEqual(out["headers"]["x-aegis-decision"], "approval_needed")
        self.assertEqual(json.loads(out["body"])["reasons"][0]["rule"], "payment-ceiling")

    def test_small_payment_in_body_is_allowed(self):
        code, out = self.check("--method", "POST", "--host", "api.stripe.com",
                               "--path", "/v1/payment_intents", "--ext", "agent=finance-agent",
                               "--header", "content-type:application/json",
                               "--body", '{"amount":12}')
        self.assertEqual(code, 0, out)

    def test_bad_input_is_refused_never_allowed(self):
        code, out = self.check("--method", "POST", "--host", "api.stripe.com",
                               "--path", "/v1/../admin", "--ext", "agent=finance-agent")
        self.assertEqual(code, 1, out)
        self.assertEqual(out["status"]["code"], 3)     # INVALID_ARGUMENT
        code, out = self.check("--method", "POST", "--host", "api.stripe.com",
                               "--path", "/v1/payment_intents", "--ext", "agent=finance-agent",
                               "--header", "content-type:application/json",
                               "--body", '{"amount":1,"amount":9000}')
        self.assertEqual(code, 1, out)
        self.assertEqual(out["status"]["code"], 3)


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    CLIENT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
