"""Real servers for the integration tests: `aegis serve`, nginx, and small Python HTTP servers.

Everything binds to 127.0.0.1 on ports chosen at run time, lives in a temporary directory, and is
started and stopped by the test that uses it. Python standard library only.
"""
import http.client
import http.server
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

_LISTEN_RE = re.compile(r"aegis: (http|grpc|proxy) listening on (\S+):(\d+)\s*$")
_READY_RE = re.compile(r"aegis: ready \(policy (\S+) version (\S+)\)")


def free_port():
    """A port that was free a moment ago (for servers such as nginx that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class AegisServer:
    """`aegis serve` as a subprocess, with its output captured line by line.

    start() returns once the process has printed `aegis: ready`; http_port and grpc_port are the
    ports it reported. stop() sends SIGTERM and returns the exit code. `env` (optional) is merged
    into os.environ for the process, e.g. the secrets proxy routes read from the environment.
    """

    def __init__(self, binary, workdir, bundle, config=None, extra_args=(), env=None):
        self.binary = binary
        self.workdir = workdir
        self.bundle = bundle
        self.config = config  # dict written as aegis.yaml (JSON is YAML), or None
        self.extra_args = list(extra_args)
        self.env = dict(env) if env else None
        self.proc = None
        self._pump_thread = None
        self.lines = []
        self._lines_q = queue.Queue()
        self.http_host = self.http_port = self.grpc_port = self.proxy_port = None
        self.policy_name = self.ready_version = None

    def start(self, timeout=15.0):
        args = [self.binary, "serve"]
        if self.config is not None:
            path = os.path.join(self.workdir, "aegis.yaml")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(self.config, f, indent=2)
            args += ["--config", path]
        args += ["--bundle", self.bundle, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
                 "--proxy", "127.0.0.1:0"]
        args += self.extra_args
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise RuntimeError("aegis serve did not become ready:\n" + self.output())
            try:
                line = self._lines_q.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError("aegis serve exited with %d:\n%s" %
                                       (self.proc.returncode, self.output()))
                continue
            if line is None:
                raise RuntimeError("aegis serve closed its output:\n" + self.output())
            m = _LISTEN_RE.search(line)
            if m and m.group(1) == "http":
                self.http_host, self.http_port = m.group(2), int(m.group(3))
            elif m and m.group(1) == "grpc":
                self.grpc_port = int(m.group(3))
            elif m:
                self.proxy_port = int(m.group(3))
            m = _READY_RE.search(line)
            if m:
                self.policy_name, self.ready_version = m.group(1), m.group(2)
                break
        if self.http_port is None:
            self.kill()
            raise RuntimeError("aegis serve printed no http listening line:\n" + self.output())
        return self

    def _pump(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._lines_q.put(line)
        self._lines_q.put(None)

    def output(self):
        return "\n".join(self.lines)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.http_port

    def connect(self, timeout=10.0):
        return http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """One request on a fresh connection. Returns (status, headers dict lower-cased, body)."""
        conn = self.connect(timeout)
        try:
            return do_request(conn, method, path, body, headers)
        finally:
            conn.close()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=20.0):
        code = self.proc.wait(timeout=timeout)
        self._close()
        return code

    def _close(self):
        # The pump thread sees EOF once the process is gone; wait for it so output() is whole.
        if self._pump_thread is not None:
            self._pump_thread.join(5)
        if self.proc.stdout is not None and not self._pump_thread.is_alive():
            self.proc.stdout.close()

    def stop(self, timeout=20.0):
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self._close()
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self._close()


def do_request(conn, method, path, body=None, headers=None):
    """Sends one request on `conn` (kept open). A dict or list body is sent as JSON."""
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def raw_exchange(port, payload, timeout=10.0, read_response=True):
    """Sends raw bytes on a new connection and parses one HTTP response (status, headers, body).

    Returns None when the server closed the connection without answering."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything we send
        if not read_response:
            return None
        return read_raw_response(sock)
    finally:
        sock.close()


def read_raw_response(sock):
    resp = http.client.HTTPResponse(sock)
    try:
        resp.begin()
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return None
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


class RecordingUpstream:
    """A tiny HTTP API that answers 200 with a JSON body and records every request it gets.
    Subclasses change the answer by overriding respond()."""

    def __init__(self):
        self.requests = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.requests.append({
                        "method": self.command, "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    })
                status, headers, out = outer.respond(self)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def respond(self, handler):
        """(status, [(header, value)], body bytes) for one request."""
        return 200, [], json.dumps({"upstream": "ok", "path": handler.path}).encode()

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def seen(self):
        with self._lock:
            return list(self.requests)


class ScriptedDecisionService(RecordingUpstream):
    """Stands in for aegis behind nginx when a test needs answers aegis does not give yet (429,
    402): the status comes from the request header x-test-aegis-status."""

    def respond(self, handler):
        status = int(handler.headers.get("x-test-aegis-status") or 200)
        decision = "allow" if status == 200 else "deny"
        headers = [("x-aegis-decision", decision),
                   ("x-aegis-decision-id", "0190b7c0-0000-7000-8000-00000000%04d" % status),
                   ("x-aegis-policy-version", "feedfacefeedface"),
                   ("x-aegis-enforced", "true")]
        if status == 429:
            headers.append(("Retry-After", "7"))
        return status, headers, json.dumps({"decision": decision}).encode()


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                  else None)


class Nginx:
    """nginx running deploy/nginx/nginx.conf + aegis-auth.conf from a temporary prefix, with the
    three addresses of aegis-auth.conf rewritten to the test's ports."""

    # The addresses in deploy/nginx/aegis-auth.conf that the test replaces.
    DEFAULT_AEGIS = "127.0.0.1:8181"
    DEFAULT_API = "127.0.0.1:9000"
    DEFAULT_LISTEN = "127.0.0.1:8080"

    def __init__(self, prefix, aegis_address, api_address):
        self.prefix = prefix
        self.port = free_port()
        src = os.path.join(REPO, "deploy", "nginx")
        with open(os.path.join(src, "aegis-auth.conf"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        replacements = {self.DEFAULT_AEGIS: aegis_address, self.DEFAULT_API: api_address,
                        self.DEFAULT_LISTEN: "127.0.0.1:%d" % self.port}
        hits = dict.fromkeys(replacements, 0)
        for i, line in enumerate(lines):
            if line.lstrip().startswith("#"):
                continue
            for old, new in replacements.items():
                if old in line:
                    lines[i] = line = line.replace(old, new)
                    hits[old] += 1
        # Exactly one directive each: if the deploy config changes shape, the test must be
        # updated rather than silently test something else.
        for old, n in hits.items():
            if n != 1:
                raise AssertionError("deploy/nginx/aegis-auth.conf: expected %s in one directive, "
                                     "found %d" % (old, n))
        conf = "\n".join(lines)
        os.makedirs(prefix, exist_ok=True)
        os.chmod(prefix, 0o755)  # workers may run as another user when the tests run as root
        with open(os.path.join(prefix, "aegis-auth.conf"), "w", encoding="utf-8") as f:
            f.write(conf)
        shutil.copy(os.path.join(src, "nginx.conf"), os.path.join(prefix, "nginx.conf"))
        self.proc = None
        self.log = os.path.join(prefix, "nginx.stderr")

    def start(self):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [NGINX, "-p", self.prefix, "-c", "nginx.conf", "-g", "daemon off;"],
                stdout=log, stderr=subprocess.STDOUT)
        if not wait_for_port("127.0.0.1", self.port):
            self.stop()
            raise RuntimeError("nginx did not start:\n" + self.stderr())
        return self

    def stderr(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            return do_request(conn, method, path, body, headers)
        finally:
            conn.close()


REDIS_SERVER = shutil.which("redis-server")


class Redis:
    """redis-server on a loopback port, its data (append-only file, fsync on every write) in
    `dir`, so a restart after SIGKILL keeps every write it acknowledged."""

    def __init__(self, dir):
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed (scripts/install-deps.sh installs it)")
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self):
        with open(os.path.join(self.dir, "redis.log"), "ab") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
                 "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.command("PING") == "+PONG":
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def command(self, *args):
        """One command over RESP; the first line of the answer, or None when unreachable."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                out = b"*%d\r\n" % len(args)
                for a in args:
                    a = a.encode() if isinstance(a, str) else a
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
                s.sendall(out)
                return s.makefile("rb").readline().decode().rstrip("\r\n")
        except OSError:
            return None

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


PG_BIN = "/usr/lib/postgresql/15/bin"


class Postgres:
    """A PostgreSQL 15 cluster of its own in `dir`, on a loopback port, trust authentication,
    database `aegis`. As root (CI), initdb and postgres run as the `postgres` system user."""

    def __init__(self, dir):
        if not os.path.exists(os.path.join(PG_BIN, "initdb")):
            raise RuntimeError("PostgreSQL 15 is not installed (scripts/install-deps.sh installs it)")
        self.dir = dir
        self.data = os.path.join(dir, "data")
        self.port = free_port()
        self.proc = None
        self._as = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
        os.makedirs(dir, exist_ok=True)
        if self._as:
            shutil.chown(dir, "postgres", "postgres")
        subprocess.run(self._as + [os.path.join(PG_BIN, "initdb"), "-D", self.data, "-A", "trust",
                                   "-U", "aegis", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def url(self):
        return "postgresql://aegis@127.0.0.1:%d/postgres" % self.port

    def start(self):
        log = open(os.path.join(self.dir, "postgres.log"), "ab")
        self.proc = subprocess.Popen(
            self._as + [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p", str(self.port),
                        "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + self.dir,
                        "-c", "fsync=off"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if not wait_for_port("127.0.0.1", self.port, timeout=30):
            self.stop()
            raise RuntimeError("postgres did not start")
        # Accepting connections is not yet accepting queries: wait for pg_isready.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-h", "127.0.0.1", "-p",
                                str(self.port)], stdout=subprocess.DEVNULL)
            if r.returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("postgres did not become ready")

    def stop(self):
        if self.proc is None:
            return
        # pg_ctl finds the postmaster through its pid file: stopping `runuser` alone may leave
        # postgres running.
        subprocess.run(self._as + [os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast",
                                   "-w", "-t", "20", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
