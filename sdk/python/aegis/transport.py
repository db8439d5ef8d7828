"""HTTP to Aegis: one keep-alive connection per thread, reconnected on failure.

`Transport.request` returns `(status, headers, body)` for any answer and raises
`AegisUnavailable` when there is none (refused, reset, timed out) and `ProtocolError` when what
came back is not HTTP. A request on a reused connection that the server had closed meanwhile
(idle timeout) is sent again once on a new connection; nothing else is retried.
"""
import http.client
import socket
import threading
import urllib.parse
import weakref

from .errors import AegisUnavailable, ConfigurationError, ProtocolError

USER_AGENT = "aegis-python/0.1"

# The server closed a kept-alive connection before reading the request: safe to send again.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)


class _Connection(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        # Requests are small and answered at once: no Nagle delay.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _TlsConnection(http.client.HTTPSConnection):
    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Holder:
    """A thread's connection; closed when the thread ends and its locals are dropped."""

    __slots__ = ("conn", "__weakref__")

    def __init__(self, conn):
        self.conn = conn

    def __del__(self):
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class Transport:
    """Requests to one Aegis base URL (`http://host:port[/prefix]` or `https://...`).

    Thread-safe: each thread uses its own connection. `timeout` (seconds) bounds connecting and
    each read. `stats` (optional) is a callable counting events by name ("reconnects")."""

    def __init__(self, url, timeout, count=None):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("aegis: url must be http://HOST:PORT or https://HOST:PORT, "
                                     "got %r" % url)
        if parts.query or parts.fragment:
            raise ConfigurationError("aegis: url may not have a query or fragment: %r" % url)
        self.url = url
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigurationError("aegis: bad port in url %r" % url) from None
        self.prefix = parts.path.rstrip("/")
        self.tls = parts.scheme == "https"
        self.timeout = timeout
        self._count = count or (lambda name: None)
        self._local = threading.local()
        self._connections = weakref.WeakSet()
        self._lock = threading.Lock()

    def _new_connection(self):
        cls = _TlsConnection if self.tls else _Connection
        conn = cls(self.host, self.port, timeout=self.timeout)
        with self._lock:
            self._connections.add(conn)
        return conn

    def request(self, method, path, body=None, headers=None):
        """Sends one request; returns (status, headers: http.client.HTTPMessage, body bytes)."""
        holder = getattr(self._local, "holder", None)
        reused = holder is not None
        if holder is None:
            holder = self._local.holder = _Holder(self._new_connection())
        conn = holder.conn
        target = self.prefix + path
        for attempt in (0, 1):
            try:
                conn.request(method, target, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
            except _STALE as e:
                conn.close()
                if reused and attempt == 0:
                    self._count("reconnects")
                    conn = holder.conn = self._new_connection()
                    reused = False
                    continue
                raise AegisUnavailable("aegis: %s %s: connection lost: %s" % (
                    method, self._where(), e or type(e).__name__)) from e
            except socket.timeout as e:
                conn.close()
                raise AegisUnavailable("aegis: %s %s: no answer within %g s" % (
                    method, self._where(), self.timeout)) from e
            except http.client.HTTPException as e:
                conn.close()
                raise ProtocolError("aegis: %s %s: not an HTTP answer: %s: %s" % (
                    method, self._where(), type(e).__name__, e)) from e
            except OSError as e:
                conn.close()
                raise AegisUnavailable("aegis: %s %s: %s" % (
                    method, self._where(), e.strerror or e)) from e
            if resp.will_close:
                conn.close()
            return resp.status, resp.msg, data
        raise AssertionError("unreachable")

    def local_address(self):
        """(host, port) of this thread's open connection, or None: which TCP connection the
        next request goes out on."""
        holder = getattr(self._local, "holder", None)
        sock = holder.conn.sock if holder is not None else None
        return sock.getsockname() if sock is not None else None

    def _where(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def close(self):
        """Closes every connection (of every thread). Later requests reconnect."""
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            c.close()
