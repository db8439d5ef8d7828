"""The sidecar proxy's HTTP/1.1 wire handling and timeouts, against the real `aegis serve`.

The proxy writes the heads it sends by hand (src/frontdoors/proxy/wire.cc) and times sockets out
with per-connection deadlines swept by one timer per I/O thread (deadlines.h). These tests check
what a client and an upstream see on the wire: chunked and close-delimited responses relayed
byte for byte, HEAD / 204 / 304 answers without stray body bytes, hop-by-hop fields (and those a
Connection field names) removed both ways whatever their case, a chunked upload streamed
upstream, pipelined requests answered in order, truncated upstream responses never completed,
interim 1xx responses, and the upstream, request and idle timeouts as a client notices them.

The upstreams are small raw-socket servers written here, so that every byte they send is chosen
and every byte they receive is recorded.

Usage: proxy_wire_test.py <path to aegis>
"""
import hashlib
import http.client
import itertools
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

AEGIS = None

POLICY = """\
apiVersion: aegis/v1
kind: Policy
metadata: {name: proxy-wire-test}
tools:
  wire:
    hosts: ["127.0.0.1"]
agents:
  wire-agent: {tools: ["*"]}
rules:
  - id: wire-allowed
    match: {tools: [wire]}
    effect: allow
"""

AGENT = "wire-agent"
ORCHESTRATOR_SECRET = "orchestrator-secret-0123456789"

# The chunked answer of /chunked: odd sizes, one larger than the proxy's 16 KiB relay buffer.
CHUNKS = [b"first-", bytes(range(256)) * 80 + b"!", b"x", b"0123456789abcdef" * 3 + b"tail"]
CHUNKED_BODY = b"".join(CHUNKS)
# The close-delimited answer of /close: every byte value, ~40 KB.
CLOSE_BODY = bytes(range(256)) * 160 + b"the end"
# What /head-with-body wrongly sends after its HEAD answer: 60 bytes that are a whole response.
FORGED = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Forged: 01234\r\n\r\nforge"
assert len(FORGED) == 60


# --- a socket with a read buffer: HTTP/1.1 messages parsed by hand, byte-exact ----------------

class Wire:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed (%d bytes unparsed: %r)" % (len(self.buf),
                                                                         self.buf[:200]))
        self.buf += data

    def read_until(self, delim):
        while delim not in self.buf:
            self._fill()
        i = self.buf.index(delim) + len(delim)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_close(self):
        out = [self.buf]
        self.buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return b"".join(out)
            out.append(data)

    def read_head(self):
        """(start line, [(name, value)] in order with duplicates, raw head bytes)."""
        raw = self.read_until(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        fields = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError("malformed header line %r in %r" % (line, raw))
            fields.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return lines[0].decode("latin-1"), fields, raw

    def read_chunked(self):
        """The de-chunked body and the chunk sizes, strictly (CRLF after every chunk)."""
        body, sizes = b"", []
        while True:
            line = self.read_until(b"\r\n")[:-2]
            size = int(line.split(b";")[0].strip(), 16)
            sizes.append(size)
            if size == 0:
                break
            body += self.read_exact(size)
            crlf = self.read_exact(2)
            if crlf != b"\r\n":
                raise ValueError("chunk data not followed by CRLF: %r" % crlf)
        while self.read_until(b"\r\n") != b"\r\n":  # trailer fields, if any
            pass
        return body, sizes


def values(fields, name):
    return [v for n, v in fields if n.lower() == name.lower()]


def names(fields):
    return [n.lower() for n, _ in fields]


class Response:
    def __init__(self, status_line, fields, body, raw_head):
        self.status_line = status_line
        self.version, status, _ = (status_line.split(" ", 2) + [""])[:3]
        self.status = int(status)
        self.fields = fields
        self.body = body
        self.raw_head = raw_head

    def get(self, name):
        v = values(self.fields, name)
        return v[0] if v else None


def read_response(w, head_request=False):
    """One response from `w`, its body framed as its head says (RFC 9112 section 6.3)."""
    start, fields, raw = w.read_head()
    r = Response(start, fields, b"", raw)
    te, cl = values(fields, "transfer-encoding"), values(fields, "content-length")
    if head_request or r.status in (204, 304) or 100 <= r.status < 200:
        pass
    elif te:
        if [t.lower() for t in te] != ["chunked"]:
            raise ValueError("unexpected Transfer-Encoding %r" % te)
        if cl:
            raise ValueError("both Transfer-Encoding and Content-Length in %r" % raw)
        r.body, _ = w.read_chunked()
    elif cl:
        r.body = w.read_exact(int(cl[0]))
    else:
        r.body = w.read_to_close()
    return r


def cut_chunked(w):
    """The data of a chunked body that must end with the connection before its last chunk."""
    data = b""
    try:
        while True:
            line = w.read_until(b"\r\n")[:-2]
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                raise AssertionError("a cut response was completed with a last chunk after %r"
                                     % data)
            data += w.read_exact(size)
            if w.read_exact(2) != b"\r\n":
                raise AssertionError("chunk data not followed by CRLF after %r" % data)
    except (EOFError, ConnectionResetError):
        return data


def read_request(w, ignore_get_body=False):
    """One request from `w` as the upstream receives it, its body de-chunked. With
    `ignore_get_body`, as a server that ignores GET bodies: a GET's body is left on the
    connection, where it reads as the next request."""
    start, fields, raw = w.read_head()
    method, target, version = start.split(" ")
    te, cl = values(fields, "transfer-encoding"), values(fields, "content-length")
    framing, sizes, body = None, [], b""
    if ignore_get_body and method == "GET":
        pass
    elif te:
        framing = "chunked"
        body, sizes = w.read_chunked()
    elif cl:
        framing = "length"
        body = w.read_exact(int(cl[0]))
    return {"method": method, "target": target, "path": target.split("?")[0],
            "version": version, "fields": fields, "raw_head": raw, "body": body,
            "framing": framing, "chunk_sizes": sizes}


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


# --- the upstream: a raw socket server whose answers are exact bytes ---------------------------

class RawUpstream:
    """Answers each request by its path with bytes chosen here (see answer()) and records every
    request it received, head bytes included, with the connection it came on ("conn", counted
    from 1) and its rank there ("nth", 0 for a connection's first request). One thread per
    connection; keep-alive unless the answer closes. With `ignore_get_bodies`, reads a GET's
    body as the next request, as some servers do."""

    def __init__(self, ignore_get_bodies=False):
        self.ignore_get_bodies = ignore_get_bodies
        # /idle-close: the test says when its connection closes, and learns that it has.
        self.close_idle = threading.Event()
        self.closed_idle = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.connections = 0

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                conn_id = self.connections
            threading.Thread(target=self._serve, args=(conn, conn_id), daemon=True).start()

    def _serve(self, conn, conn_id):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(30)
        w = Wire(conn)
        try:
            for nth in itertools.count():
                try:
                    req = read_request(w, self.ignore_get_bodies)
                except (EOFError, OSError, ValueError):
                    return
                req["conn"], req["nth"] = conn_id, nth
                with self.lock:
                    self.requests.append(req)
                if not self.answer(req, conn):
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def seen(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def answer(self, req, conn):
        """Writes the answer; returns whether the connection stays open for another request."""
        path, method = req["path"], req["method"]
        if path == "/chunked":
            # Split mid-size-line and mid-data, a delay between sends, a chunk extension and an
            # upper-case size.
            wire = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Transfer-Encoding: chunked\r\nX-Upstream: chunked\r\n\r\n")
            for i, c in enumerate(CHUNKS):
                size = ("%X" % len(c)).encode()
                wire += size + (b";ext=%d" % i if i == 1 else b"") + b"\r\n" + c + b"\r\n"
            wire += b"0\r\n\r\n"
            cuts = [60, 90, 91, 300, 9000, len(wire) - 40, len(wire) - 3]
            prev = 0
            for cut in cuts + [len(wire)]:
                conn.sendall(wire[prev:cut])
                prev = cut
                time.sleep(0.05)
            return True
        if path in ("/close", "/close-bare"):
            # No Content-Length, not chunked: the body ends when the connection does.
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            if path == "/close":
                head += b"Connection: close\r\n"
            conn.sendall(head + b"\r\n" + CLOSE_BODY[:1000])
            time.sleep(0.05)
            conn.sendall(CLOSE_BODY[1000:20000])
            time.sleep(0.05)
            conn.sendall(CLOSE_BODY[20000:])
            conn.shutdown(socket.SHUT_WR)
            return False
        if path == "/head":
            if method == "HEAD":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: 12345\r\nX-Upstream: head\r\n\r\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: 12345\r\n\r\n" + b"h" * 12345)
            return True
        if path == "/204":
            conn.sendall(b"HTTP/1.1 204 No Content\r\nX-Upstream: 204\r\n\r\n")
            return True
        if path == "/304":
            conn.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nX-Upstream: 304\r\n\r\n")
            return True
        if path == "/304-length":
            # A 304 may give the length of the representation it stands for; it has no body.
            conn.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"v2\"\r\nContent-Length: 42\r\n"
                         b"X-Upstream: 304-length\r\n\r\n")
            return True
        if path == "/hop":
            body = b"hop answer"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"connection: x-UP-hop\r\n"
                         b"X-Up-Hop: 1\r\n"
                         b"X-Up-Hopper: kept\r\n"
                         b"Keep-Alive: timeout=9\r\n"
                         b"X-Aegis-Decision: forged\r\n"
                         b"x-AEGIS-decision-id: forged\r\n"
                         b"Trailer: x\r\n"
                         b"Proxy-Authenticate: Basic realm=up\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return True
        if path == "/hang":
            # Reads the request, never answers.
            self.stopping.wait(15)
            return False
        if path in ("/stall-chunked", "/stall-length"):
            # The head and part of the body, then nothing.
            if path == "/stall-chunked":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"a\r\n0123456789\r\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"s" * 100)
            self.stopping.wait(15)
            return False
        if path in ("/truncated-chunked", "/truncated-length"):
            # The head and part of the body, then the connection closes: the response is cut.
            if path == "/truncated-chunked":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"a\r\n0123456789\r\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"t" * 50)
            time.sleep(0.05)
            conn.shutdown(socket.SHUT_WR)
            return False
        if path == "/early-hints":
            # An interim 103 before the final answer (RFC 8297): a client must get the final one.
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            time.sleep(0.05)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
                         b"\r\nfinal-hints")
            return True
        if path == "/interim-then-close":
            # A 103 and no final answer: the connection closes (reset with ?reset).
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            time.sleep(0.05)
            if "reset" in req["target"]:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if path == "/read-then-close":
            # The request reached the application, which then closed the connection unanswered.
            return False
        if path == "/idle-close":
            # Answered and kept alive; then, idle, the connection closes when the test says so.
            conn.sendall(summary_answer(req))
            self.close_idle.wait(10)
            conn.close()
            self.closed_idle.set()
            return False
        if path == "/head-with-body":
            # Wrong for a HEAD: the body too, itself a whole response; in the head's send
            # (?together) or a little later.
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(FORGED))
            if "together" in req["target"]:
                conn.sendall(head + FORGED)
            else:
                conn.sendall(head)
                time.sleep(0.02)
                conn.sendall(FORGED)
            req["stray_sent"] = True
            return True
        if path == "/smuggled":
            # A little slow: the answer arrives after the proxy is done with the connection.
            time.sleep(0.2)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n"
                         b"\r\nsmuggled answer")
            return True
        # Anything else: a JSON summary of what arrived.
        conn.sendall(summary_answer(req))
        return True


def summary_answer(req):
    """A 200 whose JSON body says what arrived (none for a HEAD)."""
    body = json.dumps({"method": req["method"], "target": req["target"],
                       "length": len(req["body"]),
                       "sha256": hashlib.sha256(req["body"]).hexdigest()}).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + (b"" if req["method"] == "HEAD" else body))


def summary(body):
    return json.loads(body)


# The upstream of route /wire, and the one of route /hints (its own origin, hence its own pooled
# connections: what an interim response does to them stays away from the other tests). Likewise
# route /edge, for the tests of which pooled connection serves what, and route /lax, to an upstream
# that reads a GET's body as a request.
UPSTREAM = HINTS = EDGE = LAX = None


def setUpModule():
    global UPSTREAM, HINTS, EDGE, LAX
    UPSTREAM = RawUpstream().start()
    HINTS = RawUpstream().start()
    EDGE = RawUpstream().start()
    LAX = RawUpstream(ignore_get_bodies=True).start()


def tearDownModule():
    for upstream in (UPSTREAM, HINTS, EDGE, LAX):
        upstream.stop()


class ProxyServer:
    """`aegis serve` with routes /wire, /hints, /edge and /lax (tool wire) to the raw upstreams,
    and the given proxy timeouts."""

    @classmethod
    def start_server(cls, timeouts, prefix):
        cls.tmp = tempfile.mkdtemp(prefix=prefix)
        cls.server = None
        try:
            bundle = os.path.join(cls.tmp, "bundle")
            os.makedirs(bundle)
            with open(os.path.join(bundle, "policy.yaml"), "w", encoding="utf-8") as f:
                f.write(POLICY)
            proxy = {"threads": 1,
                     "routes": {"wire": {"upstream": "http://127.0.0.1:%d" % UPSTREAM.port},
                                "hints": {"upstream": "http://127.0.0.1:%d" % HINTS.port,
                                          "tool": "wire"},
                                "edge": {"upstream": "http://127.0.0.1:%d" % EDGE.port,
                                         "tool": "wire"},
                                "lax": {"upstream": "http://127.0.0.1:%d" % LAX.port,
                                        "tool": "wire"}}}
            proxy.update(timeouts)
            config = {
                "data_dir": os.path.join(cls.tmp, "data"),
                "identity": {
                    "require_agent_token": False,
                    "credentials": [{"name": "orchestrator",
                                     "token_sha256": hashlib.sha256(
                                         ORCHESTRATOR_SECRET.encode()).hexdigest(),
                                     "roles": ["issuer"]}],
                },
                "proxy": proxy,
            }
            cls.server = harness.AegisServer(AEGIS, cls.tmp, bundle, config=config).start()
            if cls.server.proxy_port is None:
                raise RuntimeError("aegis serve printed no proxy listening line:\n" +
                                   cls.server.output())
        except BaseException:
            cls.stop_server()
            raise

    @classmethod
    def stop_server(cls):
        code = cls.server.stop() if cls.server else 0
        output = cls.server.output() if cls.server else ""
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, "aegis serve exited with %s:\n%s" % (code, output)

    # --- helpers ---------------------------------------------------------------------------

    def connect(self, timeout=5.0):
        sock = socket.create_connection(("127.0.0.1", self.server.proxy_port), timeout=timeout)
        self.addCleanup(sock.close)
        return Wire(sock)

    def request_bytes(self, method, target, extra=b"", body=None, agent=True):
        head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (
            method.encode(), target.encode(), self.server.proxy_port)
        if agent:
            head += b"x-aegis-agent: " + AGENT.encode() + b"\r\n"
        head += extra
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        return head + b"\r\n" + (body or b"")

    def http(self, timeout=5.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.proxy_port, timeout=timeout)
        self.addCleanup(conn.close)
        return conn

    def get(self, conn, target, method="GET", body=None, headers=None):
        h = {"x-aegis-agent": AGENT}
        h.update(headers or {})
        conn.request(method, target, body=body, headers=h)
        resp = conn.getresponse()
        return resp, resp.read()

    def metrics(self):
        status, _, data = self.server.request("GET", "/metrics")
        self.assertEqual(status, 200)
        return parse_metrics(data.decode())

    def assertAllowed(self, r):
        self.assertEqual(values(r.fields, "x-aegis-decision"), ["allow"], r.raw_head)

    def assertClosedWithin(self, w, low, high, what):
        """Waits for the proxy to close `w` (b"" or a 408 then b""); returns the time taken."""
        start = time.monotonic()
        w.sock.settimeout(high + 3)
        try:
            data = w.read_to_close()
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            self.fail("%s: the proxy did not close the connection within %.1f s" %
                      (what, high + 3))
        elapsed = time.monotonic() - start
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408 "),
                        "%s: unexpected bytes before the close: %r" % (what, data[:300]))
        self.assertGreaterEqual(elapsed, low, "%s: closed after %.2f s" % (what, elapsed))
        self.assertLess(elapsed, high, "%s: closed after %.2f s" % (what, elapsed))
        return elapsed

    def assertNothingToRead(self, w, what):
        """`w` is open and nothing has arrived on it."""
        self.assertEqual(w.buf, b"", what)
        timeout = w.sock.gettimeout()
        w.sock.setblocking(False)
        try:
            peek = w.sock.recv(200, socket.MSG_PEEK)
            self.fail("%s: read %r" % (what, peek))
        except BlockingIOError:
            pass  # open, nothing to read
        finally:
            w.sock.settimeout(timeout)

    def waitFor(self, predicate, what, timeout=3.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail("not within %.1f s: %s" % (timeout, what))
            time.sleep(0.01)


class WireTest(ProxyServer, unittest.TestCase):
    """Framing and header fields, on a server whose timeouts do not get in the way."""

    @classmethod
    def setUpClass(cls):
        cls.start_server({"idle_timeout_ms": 10000, "request_timeout_ms": 10000,
                          "connect_timeout_ms": 3000, "upstream_timeout_ms": 5000},
                         "aegis-proxy-wire-")

    @classmethod
    def tearDownClass(cls):
        cls.stop_server()

    # 1.
    def test_chunked_response_arrives_whole_and_the_connection_goes_on(self):
        conn = self.http()
        resp, data = self.get(conn, "/wire/chunked")
        self.assertEqual(resp.status, 200, data[:300])
        self.assertEqual(data, CHUNKED_BODY)
        self.assertEqual(resp.getheader("x-aegis-decision"), "allow")
        self.assertEqual(resp.getheader("x-upstream"), "chunked")
        self.assertIsNone(resp.getheader("content-length"))
        sock = conn.sock
        self.assertIsNotNone(sock, "the proxy closed the client connection after the response")
        # The same client connection, and (one I/O thread, pooled) the same upstream connection:
        # a second chunked answer and then an ordinary one arrive intact after the first.
        resp, data = self.get(conn, "/wire/chunked")
        self.assertEqual((resp.status, data), (200, CHUNKED_BODY))
        resp, data = self.get(conn, "/wire/after-chunked")
        self.assertEqual(resp.status, 200, data)
        self.assertEqual(summary(data)["target"], "/after-chunked")
        self.assertIs(conn.sock, sock, "the proxy closed the client connection")

    def test_chunked_response_reframed_exactly_on_the_wire(self):
        # The same answer read with a strict parser: well-formed chunks, no Content-Length, and
        # nothing after the last chunk.
        w = self.connect()
        w.sock.sendall(self.request_bytes("GET", "/wire/chunked"))
        r = read_response(w)
        self.assertEqual(r.status, 200)
        self.assertEqual(values(r.fields, "transfer-encoding"), ["chunked"])
        self.assertEqual(values(r.fields, "content-length"), [])
        self.assertAllowed(r)
        self.assertEqual(r.body, CHUNKED_BODY)
        w.sock.sendall(self.request_bytes("GET", "/wire/next"))
        r = read_response(w)
        self.assertEqual(r.status, 200, r.raw_head)
        self.assertEqual(summary(r.body)["target"], "/next")

    # 2.
    def test_close_delimited_response_arrives_whole(self):
        for path in ("/close", "/close-bare"):
            with self.subTest(path=path):
                conn = self.http()
                resp, data = self.get(conn, "/wire" + path)
                self.assertEqual(resp.status, 200)
                self.assertEqual(resp.getheader("x-aegis-decision"), "allow")
                self.assertEqual(len(data), len(CLOSE_BODY))
                self.assertEqual(data, CLOSE_BODY)
                # The upstream's end of body is not the client's end of connection.
                resp, data = self.get(conn, "/wire/after-close")
                self.assertEqual(resp.status, 200, data)
                self.assertEqual(summary(data)["target"], "/after-close")

    # 3.
    def test_head_keeps_the_length_and_sends_no_body(self):
        w = self.connect()
        w.sock.sendall(self.request_bytes("HEAD", "/wire/head"))
        r = read_response(w, head_request=True)
        self.assertEqual(r.status, 200, r.raw_head)
        self.assertEqual(values(r.fields, "content-length"), ["12345"])
        self.assertEqual(values(r.fields, "transfer-encoding"), [])
        self.assertEqual(r.get("x-upstream"), "head")
        self.assertAllowed(r)
        self.assertEqual(UPSTREAM.seen("/head")[-1]["method"], "HEAD")
        # No stray bytes: the next thing on the connection is the next answer's status line.
        time.sleep(0.2)
        w.sock.sendall(self.request_bytes("GET", "/wire/after-head"))
        r = read_response(w)
        self.assertEqual(r.status_line[:13], "HTTP/1.1 200 ", r.raw_head)
        self.assertEqual(summary(r.body)["target"], "/after-head")
        # http.client agrees: an empty body, the header's length.
        conn = self.http()
        resp, data = self.get(conn, "/wire/head", method="HEAD")
        self.assertEqual((resp.status, data, resp.getheader("content-length")),
                         (200, b"", "12345"))

    # 4.
    def test_204_and_304_have_no_body_and_the_connection_goes_on(self):
        w = self.connect()
        for path, status in (("/204", 204), ("/304", 304), ("/304-length", 304)):
            with self.subTest(path=path):
                w.sock.sendall(self.request_bytes("GET", "/wire" + path))
                r = read_response(w)
                self.assertEqual(r.status, status, r.raw_head)
                self.assertEqual(r.get("x-upstream"), path[1:])
                self.assertEqual(values(r.fields, "transfer-encoding"), [], r.raw_head)
                if path != "/304-length":
                    self.assertIn(values(r.fields, "content-length"), ([], ["0"]), r.raw_head)
                self.assertAllowed(r)
                w.sock.sendall(self.request_bytes("GET", "/wire/after" + path))
                r = read_response(w)
                self.assertEqual(r.status_line[:13], "HTTP/1.1 200 ", r.raw_head)
                self.assertEqual(summary(r.body)["target"], "/after" + path)
        self.assertEqual(UPSTREAM.seen("/304")[-1]["method"], "GET")

    # 5.
    def test_hop_by_hop_and_aegis_fields_are_removed_both_ways(self):
        status, _, data = self.server.request(
            "POST", "/v1/tokens", {"agent": AGENT},
            {"Authorization": "Bearer " + ORCHESTRATOR_SECRET})
        self.assertEqual(status, 200, data)
        token = json.loads(data)["token"]
        body = b"hello, hop by hop"
        extra = (b"CONNECTION: keep-alive, x-secret-HOP\r\n"
                 b"X-Secret-Hop: 1\r\n"
                 b"X-Secret-Hopper: passes\r\n"
                 b"KEEP-ALIVE: timeout=5\r\n"
                 b"te: trailers\r\n"
                 b"Upgrade: foo\r\n"
                 b"Proxy-Connection: x\r\n"
                 b"X-Aegis-Whatever: 1\r\n"
                 b"authorization: Bearer " + token.encode() + b"\r\n"
                 b"Content-Type: text/plain\r\n"
                 b"X-Passes: yes\r\n")
        payload = self.request_bytes("POST", "/wire/hop", extra, body, agent=False)
        payload = payload.replace(b"\r\n", b"\r\nx-AEGIS-agent: %s\r\n" % AGENT.encode(), 1)
        w = self.connect()
        w.sock.sendall(payload)
        r = read_response(w)
        self.assertEqual(r.status, 200, r.raw_head + r.body)
        self.assertEqual(r.body, b"hop answer")

        got = UPSTREAM.seen("/hop")[-1]
        raw = got["raw_head"].decode("latin-1")
        seen = names(got["fields"])
        for name in ("connection", "x-secret-hop", "keep-alive", "te", "upgrade",
                     "proxy-connection", "authorization", "transfer-encoding"):
            self.assertNotIn(name, seen, raw)
        self.assertFalse([n for n in seen if n.startswith("x-aegis")], raw)
        self.assertNotIn(token, raw)
        self.assertEqual(values(got["fields"], "host"), ["127.0.0.1:%d" % UPSTREAM.port], raw)
        self.assertEqual(values(got["fields"], "content-length"), [str(len(body))], raw)
        self.assertEqual(got["body"], body)
        self.assertEqual(values(got["fields"], "x-secret-hopper"), ["passes"], raw)
        self.assertEqual(values(got["fields"], "x-passes"), ["yes"], raw)
        self.assertEqual(values(got["fields"], "content-type"), ["text/plain"], raw)

        out = names(r.fields)
        for name in ("x-up-hop", "keep-alive", "trailer", "proxy-authenticate"):
            self.assertNotIn(name, out, r.raw_head)
        self.assertNotIn("x-up-hop", [v.lower() for v in values(r.fields, "connection")])
        self.assertEqual(values(r.fields, "x-aegis-decision"), ["allow"], r.raw_head)
        ids = values(r.fields, "x-aegis-decision-id")
        self.assertEqual(len(ids), 1, r.raw_head)
        self.assertNotEqual(ids[0], "forged")
        self.assertEqual(values(r.fields, "x-up-hopper"), ["kept"], r.raw_head)
        self.assertEqual(values(r.fields, "content-length"), [str(len(b"hop answer"))])
        # The client asked for keep-alive: the connection goes on.
        w.sock.sendall(self.request_bytes("GET", "/wire/after-hop"))
        self.assertEqual(summary(read_response(w).body)["target"], "/after-hop")

    # 9.
    def test_chunked_upload_is_streamed_upstream_chunked(self):
        parts = [b"alpha-", bytes(range(256)) * 70, b"-", b"omega" * 999 + b"!"]
        w = self.connect()
        w.sock.sendall(self.request_bytes(
            "PUT", "/wire/upload", b"Content-Type: application/octet-stream\r\n"
                                   b"Transfer-Encoding: chunked\r\n"))
        for i, part in enumerate(parts):
            w.sock.sendall(b"%x\r\n" % len(part) + part[:7])
            time.sleep(0.03)
            w.sock.sendall(part[7:] + b"\r\n")
        w.sock.sendall(b"0\r\n\r\n")
        r = read_response(w)
        self.assertEqual(r.status, 200, r.raw_head + r.body)
        self.assertAllowed(r)
        whole = b"".join(parts)
        self.assertEqual(summary(r.body)["length"], len(whole))
        got = UPSTREAM.seen("/upload")[-1]
        raw = got["raw_head"].decode("latin-1")
        self.assertEqual(got["framing"], "chunked", raw)
        self.assertEqual(values(got["fields"], "transfer-encoding"), ["chunked"], raw)
        self.assertEqual(values(got["fields"], "content-length"), [], raw)
        self.assertEqual(got["body"], whole)
        self.assertGreater(len(got["chunk_sizes"]), 1)  # streamed as it came, not buffered
        # The connection goes on after a streamed body.
        w.sock.sendall(self.request_bytes("GET", "/wire/after-upload"))
        self.assertEqual(summary(read_response(w).body)["target"], "/after-upload")

    # 10.
    def test_pipelined_requests_are_answered_in_order(self):
        w = self.connect()
        body = b"pipelined body"
        w.sock.sendall(self.request_bytes("GET", "/wire/p?n=1") +
                       self.request_bytes("POST", "/wire/p?n=2", b"Content-Type: text/plain\r\n",
                                          body) +
                       self.request_bytes("HEAD", "/wire/head") +
                       self.request_bytes("GET", "/wire/p?n=4"))
        r1 = read_response(w)
        r2 = read_response(w)
        r3 = read_response(w, head_request=True)
        r4 = read_response(w)
        self.assertEqual([r1.status, r2.status, r3.status, r4.status], [200] * 4)
        self.assertEqual(summary(r1.body)["target"], "/p?n=1")
        self.assertEqual((summary(r2.body)["target"], summary(r2.body)["method"],
                          summary(r2.body)["length"]), ("/p?n=2", "POST", len(body)))
        self.assertEqual(values(r3.fields, "content-length"), ["12345"])
        self.assertEqual(summary(r4.body)["target"], "/p?n=4")
        for r in (r1, r2, r3, r4):
            self.assertAllowed(r)

    # --- beyond the list: what a cut or interim answer does ---------------------------------

    def test_a_truncated_upstream_response_is_never_completed(self):
        # The upstream closes mid-body: the client must be able to tell (no last chunk, or fewer
        # bytes than the Content-Length, then the connection closes), never a clean short body.
        for path, framing in (("/truncated-chunked", "chunked"), ("/truncated-length", "length")):
            with self.subTest(path=path):
                w = self.connect()
                w.sock.sendall(self.request_bytes("GET", "/wire" + path))
                start, fields, raw = w.read_head()
                self.assertTrue(start.startswith("HTTP/1.1 200 "), raw)
                self.assertAllowed(Response(start, fields, b"", raw))
                if framing == "chunked":
                    self.assertEqual(values(fields, "transfer-encoding"), ["chunked"], raw)
                    self.assertEqual(cut_chunked(w), b"0123456789")
                else:
                    self.assertEqual(values(fields, "content-length"), ["100"], raw)
                    self.assertEqual(w.read_to_close(), b"t" * 50)

    def test_an_interim_1xx_response_is_followed_by_the_final_one(self):
        # RFC 9110 section 15.2: a proxy must pass on or drop a 1xx and then relay the final
        # response; the 103's connection must not serve the next request with a stale answer.
        w = self.connect(timeout=3)
        w.sock.sendall(self.request_bytes("GET", "/hints/early-hints"))
        interim = []
        try:
            r = read_response(w)
            while 100 <= r.status < 200:
                interim.append(r.status_line)
                r = read_response(w)
            final = (r.status, r.body)
        except (socket.timeout, EOFError) as e:
            final = "no final response (%r) after %r" % (e, interim)
        # Another client's request to the same upstream, next on the pooled connection: its own
        # answer, not the 103's final one.
        w2 = self.connect(timeout=3)
        w2.sock.sendall(self.request_bytes("GET", "/hints/after-hints"))
        r2 = read_response(w2)
        self.assertEqual(r2.status, 200, r2.raw_head + r2.body)
        self.assertEqual(r2.body[:1], b"{", "another request got %r" % r2.body)
        self.assertEqual(summary(r2.body)["target"], "/after-hints")
        self.assertEqual(final, (200, b"final-hints"))

    def test_an_http_1_0_client_gets_no_chunked_framing(self):
        # RFC 9112 section 6.1: no Transfer-Encoding in a response to an HTTP/1.0 request; a
        # body of unknown length is delimited by closing the connection.
        w = self.connect()
        w.sock.sendall(b"GET /wire/chunked HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                       b"x-aegis-agent: " + AGENT.encode() + b"\r\n\r\n")
        start, fields, raw = w.read_head()
        self.assertTrue(start.startswith("HTTP/1."), raw)
        self.assertIn(" 200 ", start)
        self.assertEqual(values(fields, "transfer-encoding"), [], raw)
        self.assertEqual(w.read_to_close(), CHUNKED_BODY)

    # --- which upstream connection serves what: retries, pooled connections, sizes ---------

    def test_a_post_on_a_pooled_connection_never_reaches_the_upstream_twice(self):
        # The upstream answers with an interim 103, or not at all, then closes or resets its
        # connection: the client gets a 502, and the request was not sent again on another
        # connection (it reached the application once: a second POST could be a second order).
        # A GET answered with a 103 counts as answered too: not retried either.
        cases = [("POST", "/interim-then-close?reset"), ("POST", "/interim-then-close?close"),
                 ("GET", "/interim-then-close?get"), ("POST", "/read-then-close?post")]
        for method, target in cases:
            with self.subTest(method=method, target=target):
                w = self.connect()
                # One I/O thread: the upstream connection of this answer is pooled, and the
                # next request on the route goes on it.
                w.sock.sendall(self.request_bytes("GET", "/edge/warm-up"))
                self.assertEqual(summary(read_response(w).body)["target"], "/warm-up")
                body = b'{"order": 1}' if method == "POST" else None
                extra = b"Content-Type: application/json\r\n" if body else b""
                w.sock.sendall(self.request_bytes(method, "/edge" + target, extra, body))
                r = read_response(w)
                while 100 <= r.status < 200:
                    r = read_response(w)
                seen = [q for q in EDGE.seen(target.split("?")[0]) if q["target"] == target]
                self.assertEqual(len(seen), 1, "the upstream got the %s %d times" %
                                 (method, len(seen)))
                self.assertGreater(seen[0]["nth"], 0, "not sent on a pooled connection")
                self.assertEqual(r.status, 502, r.raw_head + r.body)
                self.assertEqual(json.loads(r.body)["error"], "upstream_unavailable")
                self.assertAllowed(r)

    def test_a_post_is_not_sent_on_a_pooled_connection_the_upstream_closed(self):
        # Pooled connections idle for over a second are checked before use: the POST goes on a
        # live connection (a POST that failed on a closed one could not be retried).
        EDGE.close_idle.clear()
        EDGE.closed_idle.clear()
        w = self.connect()
        w.sock.sendall(self.request_bytes("GET", "/edge/idle-close"))
        self.assertEqual(summary(read_response(w).body)["target"], "/idle-close")
        pooled = EDGE.seen("/idle-close")[-1]["conn"]
        time.sleep(1.3)
        EDGE.close_idle.set()  # the upstream closes the idle connection
        self.assertTrue(EDGE.closed_idle.wait(5), "the upstream did not close its connection")
        time.sleep(0.1)
        body = b'{"after": "idle close"}'
        w.sock.sendall(self.request_bytes("POST", "/edge/after-idle-close",
                                          b"Content-Type: application/json\r\n", body))
        r = read_response(w)
        self.assertEqual(r.status, 200, r.raw_head + r.body)
        self.assertAllowed(r)
        self.assertEqual((summary(r.body)["method"], summary(r.body)["length"]),
                         ("POST", len(body)))
        seen = EDGE.seen("/after-idle-close")
        self.assertEqual(len(seen), 1)
        self.assertNotEqual(seen[0]["conn"], pooled)

    def test_a_body_sent_with_a_head_answer_never_answers_the_next_request(self):
        # The upstream wrongly sends a body after its HEAD answer, a body that reads as a whole
        # response: the connection must not serve another client, who would get it as theirs.
        for variant in ("later", "together"):
            with self.subTest(variant=variant):
                w = self.connect()
                w.sock.sendall(self.request_bytes("HEAD", "/edge/head-with-body?" + variant))
                r = read_response(w, head_request=True)
                self.assertEqual(r.status, 200, r.raw_head)
                self.assertEqual(values(r.fields, "content-length"), [str(len(FORGED))])
                self.assertAllowed(r)
                # The stray body has arrived at the proxy (and not at the client) before the
                # next request.
                self.waitFor(lambda: EDGE.seen("/head-with-body")[-1].get("stray_sent"),
                             "the upstream sent the body")
                time.sleep(0.05)
                self.assertNothingToRead(w, "after a HEAD answer")
                w2 = self.connect()
                w2.sock.sendall(self.request_bytes("GET", "/edge/after-head-body?" + variant))
                r2 = read_response(w2)
                self.assertNotIn(b"forge", r2.body, "another client got the HEAD's stray body")
                self.assertEqual(r2.status, 200, r2.raw_head + r2.body)
                self.assertEqual(summary(r2.body)["target"], "/after-head-body?" + variant)

    def test_a_get_body_never_turns_into_a_request_answering_another_client(self):
        # An upstream that ignores a GET's body reads it as the next request; its answer to that
        # must not go to the next client: the connection is not pooled after a GET with a body.
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        w = self.connect()
        w.sock.sendall(self.request_bytes("GET", "/lax/with-body",
                                          b"Content-Type: text/plain\r\n", smuggled))
        r = read_response(w)
        self.assertEqual(r.status, 200, r.raw_head + r.body)
        self.assertEqual(summary(r.body)["target"], "/with-body")
        first = LAX.seen("/with-body")[-1]
        # The trap is set: the upstream took the body for a request and answered it.
        self.waitFor(lambda: LAX.seen("/smuggled"), "the upstream read the body as a request")
        w2 = self.connect()
        w2.sock.sendall(self.request_bytes("GET", "/lax/after-smuggle"))
        r2 = read_response(w2)
        self.assertNotIn(b"smuggled", r2.body, "another client got the smuggled request's answer")
        self.assertEqual(r2.status, 200, r2.raw_head + r2.body)
        self.assertEqual(summary(r2.body)["target"], "/after-smuggle")
        after = LAX.seen("/after-smuggle")[-1]
        self.assertNotEqual(after["conn"], first["conn"])
        self.assertEqual(after["nth"], 0, "not on a new upstream connection")

    def test_a_chunk_size_line_that_never_ends_is_refused_not_buffered(self):
        # A chunked upload whose first size line goes on for 200 KiB: refused (or the connection
        # closed) at once, well before the 10 s request timeout; the upstream never gets a whole
        # request, and the proxy goes on serving.
        w = self.connect(timeout=8)
        start = time.monotonic()
        try:
            w.sock.sendall(self.request_bytes("PUT", "/edge/flood",
                                              b"Content-Type: application/octet-stream\r\n"
                                              b"Transfer-Encoding: chunked\r\n") +
                           b"1;" + b"a" * (200 * 1024))
            data = w.read_to_close()
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except socket.timeout:
            self.fail("the proxy neither refused the chunk size line nor closed within 8 s")
        elapsed = time.monotonic() - start
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 400 "), data[:300])
        self.assertLess(elapsed, 6.0)
        self.assertEqual(EDGE.seen("/flood"), [])
        conn = self.http()
        resp, data = self.get(conn, "/edge/after-flood")
        self.assertEqual(resp.status, 200, data)
        self.assertEqual(summary(data)["target"], "/after-flood")

    def test_a_refused_upload_gets_its_answer_not_a_reset(self):
        # A Content-Length over max_body_bytes (10 MiB, the default: the config here sets none)
        # is refused with a 413 before the body is read. A client that sends its whole body
        # before reading the answer, as http.client does, must get the 413: the proxy reads and
        # drops the body before closing (a close with unread bytes would reset the connection).
        size = (10 << 20) + (1 << 20)
        w = self.connect(timeout=10)
        w.sock.sendall(self.request_bytes("POST", "/edge/too-large",
                                          b"Content-Type: application/json\r\n"
                                          b"Content-Length: %d\r\n" % size))
        piece = b" " * 65536
        sent = 0
        try:
            while sent < size:
                w.sock.sendall(piece)
                sent += len(piece)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.fail("the connection was reset after %d of %d body bytes: %r" % (sent, size, e))
        r = read_response(w)
        self.assertEqual(r.status, 413, r.raw_head + r.body)
        self.assertEqual(json.loads(r.body)["error"], "invalid_request")
        self.assertEqual(w.read_to_close(), b"")
        self.assertEqual(EDGE.seen("/too-large"), [])


class TimeoutTest(ProxyServer, unittest.TestCase):
    """The proxy's timeouts, short: request 1 s, idle 3 s (so the two can be told apart),
    upstream and connect 1 s. One I/O thread: a stalled client must not hold up others."""

    REQUEST, IDLE, UPSTREAM_TIMEOUT = 1.0, 3.0, 1.0

    @classmethod
    def setUpClass(cls):
        cls.start_server({"idle_timeout_ms": int(cls.IDLE * 1000),
                          "request_timeout_ms": int(cls.REQUEST * 1000),
                          "connect_timeout_ms": 1000,
                          "upstream_timeout_ms": int(cls.UPSTREAM_TIMEOUT * 1000)},
                         "aegis-proxy-timeouts-")

    @classmethod
    def tearDownClass(cls):
        cls.stop_server()

    def served_meanwhile(self, stalled, marker):
        """Another client is served while the `stalled` connection is still open."""
        conn = self.http()
        resp, data = self.get(conn, "/wire/" + marker)
        self.assertEqual(resp.status, 200, data)
        self.assertEqual(summary(data)["target"], "/" + marker)
        timeout = stalled.sock.gettimeout()
        stalled.sock.setblocking(False)
        try:
            peek = stalled.sock.recv(1, socket.MSG_PEEK)
            self.fail("the stalled connection was closed before another client was served "
                      "(read %r)" % peek)
        except BlockingIOError:
            pass  # open, nothing to read
        finally:
            stalled.sock.settimeout(timeout)

    # 6.
    def test_upstream_that_never_answers_is_504_upstream_timeout(self):
        series = 'aegis_proxy_requests_total{result="upstream_timeout"}'
        before = self.metrics().get(series, 0)
        conn = self.http(timeout=10)
        start = time.monotonic()
        resp, data = self.get(conn, "/wire/hang")
        elapsed = time.monotonic() - start
        self.assertEqual(resp.status, 504, data)
        self.assertEqual(resp.getheader("content-type"), "application/json")
        self.assertEqual(json.loads(data)["error"], "upstream_timeout")
        self.assertEqual(resp.getheader("x-aegis-decision"), "allow")
        self.assertTrue(resp.getheader("x-aegis-decision-id"))
        self.assertTrue(resp.getheader("x-aegis-policy-version"))
        self.assertGreaterEqual(elapsed, self.UPSTREAM_TIMEOUT - 0.1)
        self.assertLess(elapsed, 5.0)
        self.assertTrue(UPSTREAM.seen("/hang"), "the upstream never got the request")
        self.assertEqual(self.metrics().get(series, 0), before + 1)

    def test_upstream_that_stalls_mid_body_is_cut_not_completed(self):
        # The upstream timeout covers the whole response: a body that stops coming is cut (the
        # client sees the connection close short of the end), not left open forever.
        for path in ("/stall-chunked", "/stall-length"):
            with self.subTest(path=path):
                w = self.connect(timeout=10)
                start = time.monotonic()
                w.sock.sendall(self.request_bytes("GET", "/wire" + path))
                head_start, fields, raw = w.read_head()
                self.assertTrue(head_start.startswith("HTTP/1.1 200 "), raw)
                self.assertAllowed(Response(head_start, fields, b"", raw))
                if path == "/stall-chunked":
                    self.assertEqual(values(fields, "transfer-encoding"), ["chunked"], raw)
                    self.assertEqual(cut_chunked(w), b"0123456789")
                else:
                    self.assertEqual(values(fields, "content-length"), ["1000"], raw)
                    self.assertEqual(w.read_to_close(), b"s" * 100)
                elapsed = time.monotonic() - start
                self.assertGreaterEqual(elapsed, self.UPSTREAM_TIMEOUT - 0.1)
                self.assertLess(elapsed, 5.0)

    # 7.
    def test_a_request_header_that_stalls_is_closed_after_request_timeout(self):
        # The first bytes of a request have arrived: from then on it has request_timeout to
        # arrive whole (docs/proxy.md), not idle_timeout.
        w = self.connect(timeout=10)
        w.sock.sendall(b"GET /wire/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nx-aeg")
        self.served_meanwhile(w, "while-header-stalls")
        self.assertClosedWithin(w, self.REQUEST - 0.3, self.REQUEST + 1.2, "a stalled header")
        self.assertEqual(UPSTREAM.seen("/slow"), [])

    def test_a_request_body_that_stalls_is_closed_after_request_timeout(self):
        w = self.connect(timeout=10)
        w.sock.sendall(self.request_bytes("POST", "/wire/slow-body",
                                          b"Content-Type: application/json\r\n"
                                          b"Content-Length: 40\r\n") + b'{"a": ')
        self.served_meanwhile(w, "while-body-stalls")
        self.assertClosedWithin(w, self.REQUEST - 0.3, self.REQUEST + 1.2, "a stalled body")
        self.assertEqual(UPSTREAM.seen("/slow-body"), [])

    def test_a_streamed_upload_that_stalls_is_the_clients_timeout_not_the_upstreams(self):
        # A chunked upload streams upstream as it arrives; when the client stops sending, the
        # proxy closes after request_timeout. The upstream did nothing wrong: the metric an
        # operator alerts on, upstream_timeout, must not count it.
        series = 'aegis_proxy_requests_total{result="upstream_timeout"}'
        before = self.metrics().get(series, 0)
        w = self.connect(timeout=10)
        w.sock.sendall(self.request_bytes("PUT", "/wire/upload-stall",
                                          b"Content-Type: application/octet-stream\r\n"
                                          b"Transfer-Encoding: chunked\r\n") + b"5\r\nhello\r\n")
        self.assertClosedWithin(w, self.REQUEST - 0.3, self.REQUEST + 1.2, "a stalled upload")
        self.assertEqual(UPSTREAM.seen("/upload-stall"), [])  # never completed upstream
        self.assertEqual(self.metrics().get(series, 0), before,
                         "a client that stopped sending was counted as an upstream timeout")

    # 8.
    def test_an_idle_keep_alive_connection_is_closed_after_idle_timeout(self):
        w = self.connect(timeout=10)
        w.sock.sendall(self.request_bytes("GET", "/wire/idle-1"))
        self.assertEqual(summary(read_response(w).body)["target"], "/idle-1")
        # Idle for longer than request_timeout but within idle_timeout: still open.
        time.sleep(self.REQUEST + 0.8)
        w.sock.sendall(self.request_bytes("GET", "/wire/idle-2"))
        self.assertEqual(summary(read_response(w).body)["target"], "/idle-2")
        # Then left idle: closed once idle_timeout has passed, with nothing sent.
        self.assertClosedWithin(w, self.IDLE - 0.5, self.IDLE + 2.5, "an idle connection")


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
