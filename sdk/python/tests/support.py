"""What the SDK tests share: the SDK from this tree, the `aegis` binary, and a real `aegis serve`
running sdk/cases/bundle (through tests/integration/harness.py, the repository's launcher).

The binary is $AEGIS_BIN (tests/CMakeLists.txt sets it); without it, the release build
(build/release/src/cli/aegis) is used when present.
"""
import hashlib
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(SDK))
CASES_DIR = os.path.join(REPO, "sdk", "cases")
BUNDLE = os.path.join(CASES_DIR, "bundle")

sys.path.insert(0, SDK)  # this tree's aegis, not an installed one
sys.path.insert(1, os.path.join(REPO, "tests", "integration"))
import harness  # noqa: E402  (tests/integration/harness.py)


def aegis_binary():
    path = os.environ.get("AEGIS_BIN")
    if not path:
        for preset in ("release", "debug", "asan-ubsan"):
            candidate = os.path.join(REPO, "build", preset, "src", "cli", "aegis")
            if os.path.exists(candidate):
                path = candidate
                break
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("set AEGIS_BIN to the aegis binary (got %r)" % path)
    return os.path.abspath(path)


SECRETS = {"alice": "alice-secret-0123456789", "bob": "bob-secret-0123456789",
           "orchestrator": "orchestrator-secret-0123456789"}


def sha256(s):
    return hashlib.sha256(s.encode()).hexdigest()


def identity_config(data_dir, require_agent_token=True):
    """aegis.yaml with agent tokens (leeway 0, so an expired token is refused at once), two
    approvers and an issuer."""
    return {
        "data_dir": data_dir,
        "identity": {
            "require_agent_token": require_agent_token,
            "leeway_seconds": 0,
            "credentials": [
                {"name": "alice", "token_sha256": sha256(SECRETS["alice"]), "roles": ["approver"]},
                {"name": "bob", "token_sha256": sha256(SECRETS["bob"]), "roles": ["approver"]},
                {"name": "orchestrator", "token_sha256": sha256(SECRETS["orchestrator"]),
                 "roles": ["issuer"]},
            ],
        },
        "limits": {"drain_timeout_ms": 2000},
        "policy": {"watch": False},
    }


class Gateway:
    """`aegis serve` on the cases bundle in a temporary directory, with helpers for what a test
    does around the SDK: issue tokens, vote on approvals, read the audit trail."""

    def __init__(self, config=None, name="sdk"):
        self.tmp = tempfile.mkdtemp(prefix="aegis-%s-" % name)
        os.chmod(self.tmp, 0o755)
        self.data = os.path.join(self.tmp, "data")
        self.config = config(self.data) if callable(config) else dict(config or {},
                                                                        data_dir=self.data)
        self.binary = aegis_binary()
        self.server = None
        self.port = None

    def start(self):
        """Starts the server; a restart reuses the port the first start got."""
        extra = ["--http", "127.0.0.1:%d" % self.port] if self.port else []
        self.server = harness.AegisServer(self.binary, self.tmp, BUNDLE, config=self.config,
                                          extra_args=extra)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.server.start()
                break
            except RuntimeError:
                # The old port may not be free again yet (a restart right after a stop).
                if not extra or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.port = self.server.http_port
        return self

    def stop(self):
        if self.server is not None:
            code = self.server.stop()
            self.server = None
            return code
        return None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def request(self, method, path, body=None, headers=None):
        status, _, data = self.server.request(method, path, body, headers)
        return status, (json.loads(data) if data else None)

    def token(self, agent, ttl=None, tenant=None):
        body = {"agent": agent}
        if ttl:
            body["ttl_seconds"] = ttl
        if tenant:
            body["tenant"] = tenant
        status, answer = self.request("POST", "/v1/tokens", body,
                                      {"Content-Type": "application/json",
                                       "Authorization": "Bearer " + SECRETS["orchestrator"]})
        if status != 200:
            raise AssertionError("POST /v1/tokens: %d %r" % (status, answer))
        return answer["token"]

    def vote(self, approval_id, who, verdict="approve", comment=None):
        body = {"comment": comment} if comment else None
        return self.request("POST", "/v1/approvals/%s/%s" % (approval_id, verdict), body,
                            {"Content-Type": "application/json",
                             "Authorization": "Bearer " + SECRETS[who]})

    def approval(self, approval_id, who="alice"):
        return self.request("GET", "/v1/approvals/" + approval_id, None,
                            {"Authorization": "Bearer " + SECRETS[who]})[1]

    def pending_approval(self, call_digest, timeout=10):
        """The id of the pending approval of the call with this digest, once there is one."""
        deadline = time.monotonic() + timeout
        while True:
            status, answer = self.request("GET", "/v1/approvals?state=pending", None,
                                          {"Authorization": "Bearer " + SECRETS["alice"]})
            found = [a for a in (answer or {}).get("approvals", [])
                     if a["call_digest"] == call_digest]
            if found:
                return found[0]["id"]
            if time.monotonic() > deadline:
                raise AssertionError("no pending approval for call digest " + call_digest)
            time.sleep(0.02)

    def audit_record(self, decision_id, timeout=10):
        """The audit record of a decision, once it is on disk (written in group commits)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.audit_records() if r["decision_id"] == decision_id]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError("decision %s is not in the audit trail" % decision_id)
            time.sleep(0.02)

    def audit_records(self):
        """Every record of the audit trail written so far."""
        audit = os.path.join(self.data, "audit")
        records = []
        for name in sorted(os.listdir(audit)):
            if not name.endswith(".log"):
                continue
            with open(os.path.join(audit, name), encoding="utf-8") as f:
                for line in f:
                    rec = json.loads(line)
                    if "seq" in rec:
                        records.append(rec)
        return records


class FakeAegis:
    """A tiny HTTP server standing in for Aegis where a test needs answers Aegis never gives.

    `respond(handler)` (the request body in handler.body) returns (status, headers, body):
    status None sends the body as raw bytes, not HTTP; None instead of a tuple closes the
    connection without answering. A handler may wait on `release`, which stop() sets."""

    def __init__(self, respond):
        self.requests = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                self.body = body
                outer.requests.append((self.command, self.path, body))
                answer = respond(self)
                if answer is None:
                    self.close_connection = True
                    return
                status, headers, out = answer
                if status is None:  # raw bytes, not HTTP
                    self.wfile.write(out)
                    self.close_connection = True
                    return
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
