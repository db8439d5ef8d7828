"""Integration tests of the `aegis` command as a policy author and a CI job use it.

Usage: cli_test.py <path to aegis>. Each test runs the real binary on real files in a
temporary directory and checks what the user sees: exit codes, diagnostics, decisions.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

AEGIS = None
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

CATALOG = textwrap.dedent("""\
    apiVersion: aegis/v1
    kind: Policy
    metadata: {name: cli-test}
    tools:
      stripe:
        hosts: [api.stripe.com]
        actions:
          create_payment: {method: POST, path: /v1/payment_intents, cost_usd: 0.002}
    agents:
      finance-agent: {tools: [stripe]}
    """)


def run(*args, stdin=None):
    return subprocess.run([AEGIS, *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


class AegisCliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_redact_text_and_json(self):
        r = run("redact", stdin="SSN 123-45-6789, card 4111 1111 1111 1111, "
                                "not a card 4111 1111 1111 1112\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "SSN [REDACTED:ssn], card [REDACTED:card], "
                                   "not a card 4111 1111 1111 1112\n")
        self.assertIn("2 values redacted", r.stderr)
        r = run("redact", "--json", "--style", "partial", "--fields", "params.patient.id",
                stdin='{"patient": {"id": "A-99", "ssn": "123-45-6789"}, "mail": "\\u0061@b.com"}')
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["patient"]["ssn"], "***-**-6789")
        self.assertNotIn("A-99", r.stdout)
        self.assertNotIn("a@b.com", r.stdout)
        r = run("redact", "--style", "hash", stdin="x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("key", r.stderr)
        r = run("redact", "--json", stdin="{not json")
        self.assertEqual(r.returncode, 1)

    def test_version_and_usage(self):
        r = run("version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^aegis \d+\.\d+\.\d+")
        r = run()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: aegis", r.stderr)
        r = run("frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command frobnicate", r.stderr)
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("check <bundle-dir>", r.stdout)

    def test_check_reports_every_error_with_location(self):
        self.write("a/catalog.yaml", CATALOG)
        self.write("a/rules.yaml", textwrap.dedent("""\
            apiVersion: aegis/v1
            kind: Policy
            rules:
              - id: one
                match: {tools: [stripe]}
                efect: deny
              - id: two
                match: {tools: [paypal]}
                if: params.amount >> 3
                effect: allow
            """))
        r = run("check", os.path.join(self.dir, "a"))
        self.assertEqual(r.returncode, 1)
        lines = [l for l in r.stderr.splitlines() if "error[" in l]
        rules = os.path.join(self.dir, "a", "rules.yaml")
        self.assertIn(f'{rules}:6:5: error[unknown-key]: unknown key "efect" in a rule; '
                      'did you mean "effect"?', lines)
        self.assertTrue(any(l.startswith(f"{rules}:8:21: error[unknown-tool]") for l in lines),
                        lines)
        self.assertTrue(any(re.match(re.escape(rules) + r":9:\d+: error\[expr-syntax\]", l)
                            for l in lines), lines)
        for line in lines:
            self.assertRegex(line, r"^.+:\d+:\d+: error\[[a-z-]+\]: .+$")
        self.assertIn(f"{len(lines)} errors", r.stderr)

    def test_check_accepts_a_valid_bundle(self):
        self.write("b/p.yaml", CATALOG + "rules:\n  - {id: ok, match: {tools: [stripe]}, effect: allow}\n")
        r = run("check", os.path.join(self.dir, "b"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^ok: cli-test version [0-9a-f]{16}: 1 rules, 0 tests")

    def test_test_command_reports_failures_and_untested_rules(self):
        self.write("c/p.yaml", CATALOG + textwrap.dedent("""\
            rules:
              - id: big
                match: {tools: [stripe]}
                if: params.amount > 5000
                effect: approval_needed
              - id: deny-eur
                match: {tools: [stripe]}
                if: params.currency == "EUR"
                effect: deny
              - id: unlucky
                match: {tools: [stripe]}
                if: params.amount == 13
                effect: deny
              - id: ok
                match: {tools: [stripe]}
                effect: allow
            tests:
              - name: small
                input: {agent: finance-agent, tool: stripe, action: create_payment, params: {amount: 1, currency: USD}}
                expect: {decision: allow, rule: ok}
              - name: wrong on purpose
                input: {agent: finance-agent, tool: stripe, action: create_payment, params: {amount: 9000, currency: USD}}
                expect: {decision: allow}
              - name: a missing field fails safe
                input: {agent: finance-agent, tool: stripe, action: create_payment, params: {amount: 1}}
                expect: {decision: deny, rule: deny-eur, reason: condition_error}
            """))
        r = run("test", os.path.join(self.dir, "c"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("wrong on purpose: expected allow, got approval_needed by rule big (rule)",
                      r.stdout)
        self.assertIn("rule unlucky is not exercised by any test", r.stdout)
        self.assertIn("cli-test: 2 passed, 1 failed", r.stdout)

    def test_require_tested_fails_on_untested_rules(self):
        bundle = self.write("e/p.yaml", CATALOG + textwrap.dedent("""\
            rules:
              - {id: ok, match: {tools: [stripe]}, effect: allow}
              - {id: big, match: {tools: [stripe]}, if: params.amount > 9, effect: deny}
            tests:
              - name: small
                input: {agent: finance-agent, tool: stripe, action: create_payment, params: {amount: 1}}
                expect: {decision: allow}
            """))
        r = run("test", os.path.join(self.dir, "e"))
        self.assertEqual(r.returncode, 0, r.stdout)
        r = run("test", bundle, "--require-tested")  # a single file is a bundle too
        self.assertEqual(r.returncode, 1)
        self.assertIn("rule big is not exercised by any test", r.stdout)
        self.assertIn("1 rules not exercised by any test (--require-tested)", r.stdout)

    def test_examples_pass(self):
        r = run("test", os.path.join(REPO, "examples", "quickstart"), "-v")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("PASS large payment waits for a human", r.stdout)

    def test_eval_prints_the_decision(self):
        call = self.write("call.json", json.dumps({
            "agent": "finance-agent", "tool": "stripe", "action": "create_payment",
            "params": {"amount": 7000}}))
        r = run("eval", os.path.join(REPO, "examples", "quickstart"), "--input", call)
        self.assertEqual(r.returncode, 0, r.stderr)
        d = json.loads(r.stdout)
        self.assertEqual(d["decision"], "approval_needed")
        self.assertEqual(d["reasons"][0]["rule"], "payment-ceiling")
        self.assertRegex(d["policy_version"], r"^[0-9a-f]{16}$")
        self.assertEqual(d["approval"]["quorum"], 2)
        # --explain lists every matching rule on stderr; stdout stays the decision alone.
        r = run("eval", os.path.join(REPO, "examples", "quickstart"), "--input", call, "--explain")
        self.assertEqual(json.loads(r.stdout)["decision"], "approval_needed")
        self.assertRegex(r.stderr, r"matched: .*policy.yaml:\d+: rule payment-ceiling "
                                   r"\(approval_needed\) decides")
        self.assertRegex(r.stderr, r"matched: .*policy.yaml:\d+: rule payments \(allow\)\n")
        # Same call on stdin.
        r = run("eval", os.path.join(REPO, "examples", "quickstart"), "--input", "-",
                stdin=open(call).read())
        self.assertEqual(json.loads(r.stdout)["decision"], "approval_needed")

    def test_eval_refuses_hostile_input_and_never_allows(self):
        bundle = os.path.join(REPO, "examples", "quickstart")
        cases = {
            "duplicate key": ('{"agent":"finance-agent","tool":"stripe","action":"create_payment",'
                              '"params":{"amount":1,"amount":9000}}', "duplicate key"),
            "invalid utf-8": (b'{"agent":"finance-agent\xff","tool":"stripe"}', "UTF-8"),
            "not json": ("agent=finance-agent", "invalid JSON"),
            "too deep": ('{"agent":"a","tool":"stripe","params":' + "[" * 200 + "]" * 200 + "}",
                         "nesting"),
        }
        for name, (payload, expected) in cases.items():
            with self.subTest(name):
                path = os.path.join(self.dir, "bad.json")
                with open(path, "wb") as f:
                    f.write(payload if isinstance(payload, bytes) else payload.encode())
                r = run("eval", bundle, "--input", path)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(r.stdout, "")
                self.assertIn(expected, r.stderr)
        r = run("eval", bundle, "--input", os.path.join(self.dir, "missing.json"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read", r.stderr)
        r = run("eval", bundle)
        self.assertEqual(r.returncode, 2)

    def test_bundle_errors_never_yield_a_decision(self):
        self.write("d/p.yaml", "apiVersion: aegis/v1\nkind: Policy\nrules: [\n")
        call = self.write("call.json", '{"agent":"a","tool":"t"}')
        r = run("eval", os.path.join(self.dir, "d"), "--input", call)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertIn("error[yaml-syntax]", r.stderr)
        r = run("check", os.path.join(self.dir, "missing"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("error[not-a-bundle]", r.stderr)


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
