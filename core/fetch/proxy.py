"""A guarded HTTP forward proxy on loopback, so that connections yt-dlp opens itself obey the SSRF guard.

yt-dlp makes its own requests (the page, API calls, redirects, the media). Given this proxy, each of them arrives
here as a CONNECT (https) or an absolute-URI request (http); the proxy vets the target with `url_guard` and
connects to the address it checked. TLS stays end to end between yt-dlp and the site, so certificates are still
verified for the real host name. The proxy also enforces the job's byte cap and wall-clock deadline across all
of yt-dlp's connections, whatever yt-dlp believes about sizes. It lives for one fetch and needs a random password,
so other local processes cannot borrow it.
"""
from __future__ import annotations

import base64
import hmac
import http.client
import logging
import secrets
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from core.errors import BlockedURLError, CoreError, FetchError, InputError, TooLargeError
from core.fetch.url_guard import Deadline, Guard, Target

log = logging.getLogger("core.fetch.sources")

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "proxy-connection", "te",
               "trailer", "transfer-encoding", "upgrade", "host"}
_BLOCK = 64 * 1024


class GuardedProxy:
    """Context manager: an HTTP proxy on 127.0.0.1 that only reaches addresses `guard` allows.

    `failure` holds the most serious problem seen (the size cap hit, a refused target, an unreachable host) so the
    caller can report it instead of yt-dlp's generic error; the deadline is the caller's to check.
    """

    def __init__(self, guard: Guard, deadline: Deadline, max_bytes: int) -> None:
        self.guard = guard
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.bytes_in = 0
        self.failure: CoreError | None = None
        self._rank = 0
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._secret = secrets.token_urlsafe(18)
        self._server = _ProxyServer(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://proxy:{self._secret}@{host}:{port}"

    def __enter__(self) -> "GuardedProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:  # wake handler threads still relaying
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def watch(self, sock: socket.socket) -> None:
        """Track a socket so that the deadline and `__exit__` can shut it down."""
        self.deadline.watch(sock)
        with self._lock:
            self._socks = [s for s in self._socks if s.fileno() != -1] + [sock]

    # bookkeeping shared by the handler threads
    def authorized(self, header: str | None) -> bool:
        expected = "Basic " + base64.b64encode(f"proxy:{self._secret}".encode()).decode()
        return header is not None and hmac.compare_digest(header.strip().encode(), expected.encode())

    def record(self, error: CoreError) -> None:
        """Keep the most serious problem: the size cap first, then refusals, then unreachable hosts."""
        rank = 3 if isinstance(error, TooLargeError) else 2 if isinstance(error, (BlockedURLError, InputError)) else 1
        with self._lock:
            if rank > self._rank:
                self.failure, self._rank = error, rank

    @property
    def stopped(self) -> bool:
        """True once the cap or the deadline was hit: later requests are refused so yt-dlp gives up quickly."""
        return self._rank == 3 or self.deadline.expired

    def count(self, n: int) -> bool:
        """Add n received bytes to the job's total; False once it passes the cap."""
        with self._lock:
            self.bytes_in += n
            over = self.bytes_in > self.max_bytes
        if over:
            self.record(TooLargeError.over_download_limit(self.max_bytes))
        return not over


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: GuardedProxy) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(60)
        self.server.owner.watch(self.connection)

    def log_message(self, format, *args) -> None:
        log.debug("proxy: " + format, *args)

    def _refuse(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        if status == 407:
            self.send_header("Proxy-Authenticate", 'Basic realm="guard"')
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _open(self, url: str) -> tuple[Target, socket.socket] | None:
        """Vet and connect to the target, or answer the client with an error and return None."""
        owner = self.server.owner
        log.debug("proxy: %s %s", self.command, url)
        if not owner.authorized(self.headers.get("Proxy-Authorization")):
            self._refuse(407, "proxy authentication required")
            return None
        if owner.stopped:
            self._refuse(503, "download stopped")
            return None
        try:
            target = owner.guard.check_url(url)
            sock = owner.guard.connect(target.host, target.port, timeout=owner.deadline.remaining())
        except CoreError as e:
            owner.record(e)
            self._refuse(403 if isinstance(e, (BlockedURLError, InputError)) else 502, "refused by guard")
            return None
        owner.watch(sock)
        return target, sock

    def do_CONNECT(self) -> None:
        opened = self._open(f"https://{self.path}/")
        if opened is None:
            return
        with opened[1] as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            self.close_connection = True
            self._relay(upstream)

    def _relay(self, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes; bytes from the site count against the cap."""
        owner, client = self.server.owner, self.connection
        while not owner.stopped:
            try:
                ready, _, _ = select.select([client, upstream], [], [], 0.25)
                for src in ready:
                    data = src.recv(_BLOCK)
                    if not data:
                        return
                    if src is upstream and not owner.count(len(data)):
                        return
                    (upstream if src is client else client).sendall(data)
            except (OSError, ValueError):
                return

    def _forward(self) -> None:
        """A plain-http request: rebuilt for the vetted address, answered with `Connection: close`."""
        parts = urlsplit(self.path)
        if parts.scheme.lower() != "http":
            self._refuse(400, "absolute http URL expected")
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411, "length required")
            return
        opened = self._open(self.path)
        if opened is None:
            return
        owner, (target, upstream) = self.server.owner, opened
        with upstream:
            upstream.settimeout(max(owner.deadline.remaining(), 0.001))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            named = {h.strip().lower() for h in self.headers.get("Connection", "").split(",")}
            lines = [f"{self.command} {target.path} HTTP/1.1", f"Host: {target.netloc}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | named]
            try:
                upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
                resp = http.client.HTTPResponse(upstream, method=self.command)
                resp.begin()
            except (OSError, http.client.HTTPException, UnicodeError):
                owner.record(FetchError(f"could not get a response from {target.host}"))
                self._refuse(502, "bad gateway")
                return
            self.send_response_only(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP_BY_HOP:
                    self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                while not owner.stopped and (data := resp.read1(_BLOCK)):
                    if not owner.count(len(data)):
                        break
                    self.wfile.write(data)
            except (OSError, http.client.HTTPException):
                pass

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _forward
