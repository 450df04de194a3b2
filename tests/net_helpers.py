"""Loopback servers for network tests: real sockets on 127.0.0.1, free ports, no outside network.

`MediaServer` is a threaded HTTP server whose routes are added per test (bytes, redirects, slow or lying
responses, endless chunked streams, HTML pages that embed media). `Canary` is a raw TCP listener that records
every connection it accepts, so an SSRF test can assert that nothing reached it at all, not even a half-open
connection or a TLS ClientHello.

    with MediaServer() as srv:
        srv.add_bytes("/a.wav", wav_bytes(), "audio/wav")
        url = srv.url("/a.wav")
"""
from __future__ import annotations

import io
import math
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import wave
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Handler = Callable[[BaseHTTPRequestHandler], None]


def wav_bytes(seconds: float = 0.25, rate: int = 8000, freq: float = 440.0) -> bytes:
    """A short real PCM WAV (a sine tone), small enough to serve in any test."""
    n = int(seconds * rate)
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(n))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


@dataclass
class Seen:
    """One request a server received."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # needed for chunked responses
    server: "_Server"

    def _dispatch(self) -> None:
        self.server.owner.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
        self.close_connection = True
        route = self.server.owner.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "9")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"not found")
            return
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass

    do_GET = do_HEAD = do_POST = _dispatch

    def log_message(self, format, *args) -> None:  # keep test output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: "MediaServer") -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def handle_error(self, request, client_address) -> None:  # clients that hang up or fail TLS are expected
        pass


def _head(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
    h.send_response(status)
    for k, v in headers.items():
        h.send_header(k, v)
    h.send_header("Connection", "close")
    h.end_headers()


def self_signed_cert(folder) -> tuple[str, str] | None:
    """(cert, key) files for CN/SAN "localhost" made with the openssl CLI, or None where it is missing."""
    if shutil.which("openssl") is None:
        return None
    cert, key = f"{folder}/cert.pem", f"{folder}/key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    return cert, key


class MediaServer:
    """A threaded HTTP server on 127.0.0.1 with routes added per test; records every request in `seen`.

    With `tls=(cert, key)` it speaks HTTPS and records the SNI names clients sent in `sni`."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self.sni: list[str | None] = []
        self.stopping = threading.Event()
        self._server = _Server(self)
        self.scheme = "https" if tls else "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            ctx.sni_callback = lambda sock, name, _ctx: self.sni.append(name)
            # handshake in the handler thread, so a client that stalls in TLS cannot block the accept loop
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # lifecycle
    def __enter__(self) -> "MediaServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def paths_seen(self) -> list[str]:
        return [s.path for s in self.seen]

    # routes
    def add(self, path: str, handler: Handler) -> str:
        """Register a raw handler; returns the route's URL."""
        self.routes[path] = handler
        return self.url(path)

    def add_bytes(self, path: str, data: bytes, content_type: str | None = "application/octet-stream",
                  status: int = 200, headers: dict[str, str] | None = None) -> str:
        """Serve `data` with a correct Content-Length (Content-Type omitted when None)."""
        def handle(h: BaseHTTPRequestHandler) -> None:
            hdrs = {"Content-Length": str(len(data)), **(headers or {})}
            if content_type is not None:
                hdrs["Content-Type"] = content_type
            _head(h, status, hdrs)
            if h.command != "HEAD":
                h.wfile.write(data)
        return self.add(path, handle)

    def add_redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.add(path, lambda h: _head(h, status, {"Location": location, "Content-Length": "0"}))

    def add_trickle(self, path: str, data: bytes, delay: float, content_type: str = "audio/wav",
                    piece: int = 1) -> str:
        """Send `data` `piece` bytes at a time, sleeping `delay` between pieces (a slow server)."""
        def handle(h: BaseHTTPRequestHandler) -> None:
            _head(h, 200, {"Content-Type": content_type, "Content-Length": str(len(data))})
            for i in range(0, len(data), piece):
                if self.stopping.wait(delay):
                    return
                h.wfile.write(data[i:i + piece])
                h.wfile.flush()
        return self.add(path, handle)

    def add_stream(self, path: str, total: int | None = None, content_type: str = "audio/mpeg",
                   content_length: int | None = None, chunked: bool | None = None, block: int = 64 * 1024) -> str:
        """Send `total` bytes of filler (None: until the client goes away or the server stops).

        `content_length` is what the header claims (None: no header). `chunked` defaults to True exactly when
        neither a total nor a length is given; with no length and no chunking the body ends when the server
        closes the connection. A length together with chunking is a lying length (chunking wins in HTTP/1.1)."""
        chunked = (total is None and content_length is None) if chunked is None else chunked

        def handle(h: BaseHTTPRequestHandler) -> None:
            hdrs = {"Content-Type": content_type}
            if content_length is not None:
                hdrs["Content-Length"] = str(content_length)
            if chunked:
                hdrs["Transfer-Encoding"] = "chunked"
            _head(h, 200, hdrs)
            sent, piece = 0, b"\0" * block
            while (total is None or sent < total) and not self.stopping.is_set():
                part = piece if total is None else piece[:total - sent]
                h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                sent += len(part)
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
        return self.add(path, handle)

    def add_status(self, path: str, status: int, body: bytes = b"secret body text") -> str:
        return self.add_bytes(path, body, "text/plain", status=status)

    def add_page(self, path: str, media_url: str, kind: str = "audio", title: str = "Test page") -> str:
        """An HTML page that links a media file: kind is "audio", "video" (an HTML5 tag) or "og" (og:audio)."""
        if kind == "og":
            head = (f'<meta property="og:title" content="{title}">'
                    f'<meta property="og:audio" content="{media_url}">'
                    f'<meta property="og:audio:type" content="audio/wav">')
            body = "<p>listen</p>"
        else:
            head = ""
            body = f'<{kind} controls><source src="{media_url}" type="{kind}/wav"></{kind}>'
        html = f"<!DOCTYPE html><html><head><title>{title}</title>{head}</head><body>{body}</body></html>"
        return self.add_bytes(path, html.encode(), "text/html; charset=utf-8")


class Canary:
    """A raw TCP listener on 127.0.0.1 that records every accepted connection and its first bytes."""

    def __init__(self) -> None:
        self.hits: list[bytes] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> "Canary":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    first = conn.recv(4096)
                except OSError:
                    first = b""
                self.hits.append(first)
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: 6\r\n"
                                 b"Connection: close\r\n\r\ncanary")
                except OSError:
                    pass


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll `predicate` until it is true or `timeout` passes (for assertions on server-side effects)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def free_port() -> int:
    """A loopback port nothing listens on (until someone binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
