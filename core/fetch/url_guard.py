"""The SSRF guard: which URLs may be fetched, and sockets that connect only to addresses that were checked.

A URL given by a user must not make this service talk to itself, its private network or a cloud metadata
endpoint. Three layers, all here:

- `check_url` refuses anything but plain http(s) URLs (no other schemes, user:password@, odd IP spellings such as
  `http://2130706433/`) and IP literals that are not public;
- `Guard.connect` resolves a host, refuses it when ANY of its addresses is not public, and connects to one of
  the addresses it checked, so a DNS answer that changes between check and connect (rebinding) cannot slip in;
- every redirect hop goes through both again (the callers follow redirects themselves).

`Config.allow_private_urls` (tests, local use) lifts the address checks, never the URL syntax checks.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import BlockedURLError, FetchError, InputError

SCHEMES = ("http", "https")
MAX_URL_CHARS = 4096  # any URL: a job's, a form's, a redirect's

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Special-purpose ranges (IANA registries, RFC 6890 and successors) with a reason a user can read. Anything
# `ipaddress` does not call global is refused as well; this table only gives the common cases a clear name.
_BLOCKED_NETWORKS = [(ipaddress.ip_network(net), why) for net, why in (
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address (cloud metadata lives here)"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/96", "an unspecified, loopback or IPv4-compatible address"),
    ("::ffff:0:0:0/96", "an IPv4-translated address"),
    ("64:ff9b:1::/48", "a local NAT64 address"),
    ("100::/64", "a discard address"),
    ("2001::/23", "a reserved address (Teredo and IETF protocols)"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a unique-local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The Fetch standard's "bad ports": services that speak other protocols (mail, SSH, DNS...), which an http request
# could be abused to poke at. Browsers refuse them too.
BAD_PORTS = frozenset({1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102,
                       103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465,
                       512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993,
                       995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667,
                       6668, 6669, 6679, 6697, 10080})

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_DOTTED_QUAD = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")
_NUMERIC_LABEL = re.compile(r"\d+|0x[0-9a-f]*")


def address_problem(ip: IPAddress) -> str | None:
    """Why connecting to `ip` is refused ("a loopback address"...), or None for a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
            return address_problem(ip.ipv4_mapped)
        inner = _embedded_ipv4(ip)
        if inner is not None and (why := address_problem(inner)):
            return f"{why} inside an IPv6 address"
    for net, why in _BLOCKED_NETWORKS:
        if ip.version == net.version and ip in net:
            return why
    if ip.is_multicast:
        return "a multicast address"
    if not ip.is_global or ip.is_reserved or ip.is_private:
        return "not a public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64, 6to4 or Teredo address leads to, if any."""
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


@dataclass(frozen=True)
class Target:
    """A URL that passed `check_url`: its parts, with the host in ASCII (no brackets) and a known port."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as given ("/" when empty)
    ip: IPAddress | None  # set when the host is an IP literal

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 80 if self.scheme == "http" else 443
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}"


def check_url(url: str, *, allow_private: bool = False) -> Target:
    """Parse and vet a URL without touching the network.

    Raises InputError for anything that is not a plain http(s) URL, BlockedURLError when the host is an IP literal
    (or `localhost`) that is not public and `allow_private` is off.
    """
    if not isinstance(url, str):
        raise InputError("the URL must be text")
    url = url.strip()
    if not url:
        raise InputError("the URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise InputError(f"the URL is longer than {MAX_URL_CHARS} characters")
    if url.startswith("-"):
        raise InputError("the input starts with '-'; give an http(s) URL")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise InputError("the URL contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            shown = f"{scheme[:20]!r} URLs are" if scheme else "this input is"
            raise InputError(f"{shown} not supported; give an http or https URL")
        if not url[len(scheme) + 1:].startswith("//") or not parts.netloc:
            raise InputError("the URL has no host")
        if "@" in parts.netloc:
            raise InputError("URLs with a user name or password (user@host) are not accepted")
        port = parts.port if parts.port is not None else (80 if scheme == "http" else 443)
        raw_host = parts.hostname or ""
        if port == 0:
            raise InputError("the URL's port must be 1-65535")
    except InputError:  # an InputError is a ValueError too: keep its own message
        raise
    except ValueError:
        raise InputError("the URL is malformed (bad host or port)") from None
    host, ip = _normalize_host(raw_host)
    if not allow_private:
        if port in BAD_PORTS:
            raise BlockedURLError(f"port {port} is used by other services and cannot be fetched over http(s)")
        if ip is not None and (why := address_problem(ip)):
            raise BlockedURLError(f"{host} is {why}; only public addresses can be fetched")
        if ip is None and (host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost")):
            raise BlockedURLError(f"{host} is a loopback name; only public addresses can be fetched")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port, path, ip)


def _normalize_host(host: str) -> tuple[str, IPAddress | None]:
    """The ASCII form of a URL's host and its address when it is an IP literal; odd spellings are refused."""
    if not host:
        raise InputError("the URL has no host")
    if ":" in host:  # an IPv6 literal (urlsplit removed the brackets)
        if "%" in host:
            raise InputError("IPv6 zone identifiers (%) are not accepted in URLs")
        try:
            return host, ipaddress.IPv6Address(host)
        except ValueError:
            raise InputError("the URL's IPv6 address is malformed") from None
    try:
        ascii_host = host.encode("idna").decode("ascii").lower() if not host.isascii() else host.lower()
    except UnicodeError:
        raise InputError("the URL's host name is malformed") from None
    bare = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    labels = bare.split(".")
    if len(bare) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InputError("the URL's host name is malformed")
    # A host whose last label is a number is an IPv4 address to browsers, resolvers and inet_aton alike, in
    # decimal, octal or hex and with parts left out (127.1, 0x7f.1, 2130706433). Only a.b.c.d is accepted.
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        if not _DOTTED_QUAD.fullmatch(bare):
            raise InputError("write an IP address as four decimal numbers (like 203.0.113.7), without leading "
                             "zeros, hex or a single number")
        return bare, ipaddress.IPv4Address(bare)
    return ascii_host, None


@dataclass(frozen=True)
class Guard:
    """Connects only to checked addresses; one per fetch, built from the Config."""

    allow_private: bool = False
    connect_timeout_s: float = 15.0

    @classmethod
    def from_config(cls, config) -> "Guard":
        return cls(allow_private=config.allow_private_urls, connect_timeout_s=config.connect_timeout_s)

    def check_url(self, url: str) -> Target:
        return check_url(url, allow_private=self.allow_private)

    def resolve(self, host: str, port: int) -> list[tuple[int, tuple]]:
        """All (family, sockaddr) pairs for host:port; BlockedURLError when any address is not public."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError, OSError):
            raise FetchError(f"could not resolve {host}") from None
        out = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if not self.allow_private and (why := address_problem(ip)):
                raise BlockedURLError(f"{host} resolves to {why}; only public addresses can be fetched")
            out.append((family, sockaddr))
        if not out:
            raise FetchError(f"could not resolve {host}")
        return out

    def connect(self, host: str, port: int, timeout: float | None = None) -> socket.socket:
        """A TCP socket connected to one of host's checked addresses (never resolved a second time)."""
        timeout = self.connect_timeout_s if timeout is None else min(timeout, self.connect_timeout_s)
        last: OSError | None = None
        for family, sockaddr in self.resolve(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(timeout, 0.001))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                sock.close()
                last = e
        if isinstance(last, socket.timeout):
            raise FetchError(f"connecting to {host} timed out")
        raise FetchError(f"could not connect to {host}")


class Deadline:
    """A wall-clock budget for a whole fetch. When it runs out, every socket handed to `watch` is shut down, which
    wakes any thread blocked reading it; socket timeouts alone cannot bound a server that trickles bytes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._fired = threading.Event()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def expired(self) -> bool:
        return self._fired.is_set() or time.monotonic() >= self.expires_at

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    def error(self, host: str) -> FetchError:
        """The user-facing error for a fetch that ran out of time."""
        return FetchError(f"fetching from {host} took longer than {self.seconds:.0f} s (DOWNLOAD_TIMEOUT_S)")

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks = [s for s in self._socks if s.fileno() != -1]
            self._socks.append(sock)
        if self.expired:
            self.expire()

    def expire(self) -> None:
        self._fired.set()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:  # the plain-socket method: it acts on the fd even for an SSLSocket another thread is reading
                socket.socket.shutdown(s, socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._socks = []

    def __enter__(self) -> "Deadline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
