"""Answers Aegis never gives, from a scripted stand-in: garbage, 5xx, wrong statuses, bytes that
are not HTTP, a closed connection, no answer at all. Each must be a typed error — never a run of
the function — except under fail_open for an allowlisted call."""
import json
import threading
import unittest

import support
import aegis

ALLOW = {"decision_id": "01a2", "decision": "allow", "effective_decision": "allow",
         "enforced": True, "mode": "enforce", "reasons": [{"code": "rule", "rule": "r"}],
         "tenant": "", "agent": "a", "tool": "t", "action": "x", "cost_usd": 0}
JSON = [("Content-Type", "application/json")]


def answer(status, body, headers=JSON):
    return status, list(headers), body if isinstance(body, bytes) else json.dumps(body).encode()


# name -> (answer, expected error class, words in the message)
BAD = {
    "not json": (answer(200, b"<html>hello</html>", [("Content-Type", "text/html")]),
                 aegis.ProtocolError, "without a decision"),
    "json, not a decision": (answer(200, {"ok": True}), aegis.ProtocolError, "without a decision"),
    "an unknown decision": (answer(200, dict(ALLOW, decision="maybe")), aegis.ProtocolError,
                            "malformed"),
    "reasons not a list": (answer(200, dict(ALLOW, reasons="rule")), aegis.ProtocolError,
                           "malformed"),
    "sanitize without an object": (answer(200, dict(ALLOW, decision="sanitize",
                                                    effective_decision="sanitize",
                                                    sanitized_params=[1])),
                                   aegis.ProtocolError, "malformed"),
    "429 without a body": (answer(429, b""), aegis.ProtocolError, "without a decision"),
    "500": (answer(500, {"error": {"code": "internal", "message": "boom"}}),
            aegis.AegisUnavailable, "500 internal: boom"),
    "502 from a proxy": (answer(502, b"<html>Bad Gateway</html>", [("Content-Type", "text/html")]),
                         aegis.AegisUnavailable, "502"),
    "503 not ready": (answer(503, {"error": {"code": "not_ready", "message": "no policy"}}),
                      aegis.AegisUnavailable, "not_ready"),
    "503 limits unavailable": (answer(503, dict(ALLOW, decision="deny", effective_decision="deny",
                                                reasons=[{"code": "limits_unavailable"}])),
                               aegis.AegisUnavailable, "limits_unavailable"),
    "404": (answer(404, {"error": {"code": "not_found", "message": "no such route"}}),
            aegis.ProtocolError, "404"),
    "not http": ((None, [], b"SSH-2.0-OpenSSH_9.2\r\n\r\n"), aegis.ProtocolError,
                 "not an HTTP answer"),
    "closed without an answer": (None, aegis.AegisUnavailable, "connection lost"),
}


class BadAnswersTest(unittest.TestCase):
    def setUp(self):
        self.script = None
        self.fake = support.FakeAegis(lambda handler: self.script(handler))
        self.addCleanup(self.fake.stop)

    def client(self, **kwargs):
        c = aegis.Client(url=self.fake.url, agent="a", timeout=kwargs.pop("timeout", 2),
                         **kwargs)
        self.addCleanup(c.close)
        return c

    def test_each_bad_answer_is_a_typed_error_and_the_function_never_runs(self):
        for name, (canned, error, words) in BAD.items():
            with self.subTest(name):
                self.script = lambda handler, canned=canned: canned
                c = self.client()
                ran = []

                @aegis.policy_enforced(tool="t", action="x", client=c)
                def tool():
                    ran.append(1)

                with self.assertRaises(error) as cm:
                    tool()
                self.assertIn(words, str(cm.exception))
                self.assertEqual(ran, [])
                if error is aegis.AegisUnavailable:
                    self.assertNotIsInstance(cm.exception, aegis.ProtocolError)

    def test_refusals_of_the_request_itself_are_not_unavailability(self):
        for status, error in ((400, aegis.InvalidCall), (413, aegis.InvalidCall),
                              (415, aegis.InvalidCall), (401, aegis.AuthenticationError)):
            with self.subTest(status=status):
                self.script = lambda handler, status=status: answer(
                    status, {"error": {"code": "c", "message": "m"}})
                c = self.client(fail_mode="fail_open")
                with self.assertRaises(error) as cm:
                    c.decide("t", "x")
                self.assertNotIsInstance(cm.exception, aegis.AegisUnavailable)
                self.assertEqual(cm.exception.status, status)

    def test_no_answer_within_the_timeout(self):
        def hang(handler):
            self.fake.release.wait(10)
            return None
        self.script = hang
        c = self.client(timeout=0.2)
        with self.assertRaises(aegis.AegisUnavailable) as cm:
            c.decide("t", "x")
        self.assertIn("no answer within 0.2 s", str(cm.exception))

    def test_fail_open_runs_an_allowlisted_call_through_garbage_and_a_hang(self):
        self.script = lambda handler: answer(200, ALLOW)
        c = self.client(fail_mode="fail_open", timeout=0.2)
        ran = []

        @aegis.policy_enforced(tool="t", action="x", client=c)
        def tool(n):
            ran.append(n)

        tool(1)
        release = threading.Event()
        self.addCleanup(release.set)
        for i, script in enumerate((lambda h: answer(200, b"garbage"),
                                    lambda h: answer(500, b"oops"),
                                    lambda h: release.wait(10) and None)):
            self.script = script
            with self.assertLogs("aegis", "WARNING"):
                tool(i + 2)
        self.assertEqual(ran, [1, 2, 3, 4])
        self.assertEqual(c.stats()["fail_open_allowed"], 3)
        self.assertEqual(c.stats()["fail_open_pending"], 3)


if __name__ == "__main__":
    unittest.main()
