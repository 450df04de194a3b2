"""The SSRF guard: URL vetting, address checks, guarded connects, the deadline and the guarded proxy.

Only loopback is used. Tests that must reach a loopback server set allow_private; the SSRF tests keep the
default and check that a raw TCP canary saw no connection at all.
"""
from __future__ import annotations

import base64
import http.client
import ipaddress
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import BlockedURLError, FetchError, InputError, TooLargeError
from core.fetch.proxy import GuardedProxy
from core.fetch.url_guard import Deadline, Guard, address_problem, check_url
from net_helpers import Canary, MediaServer, self_signed_cert, wait_until, wav_bytes

# --- URL syntax: refused whatever allow_private says -------------------------------------------------------

BAD_SYNTAX = [
    "", "   ", "-i", "--help", "-http://example.com/",
    "file:///etc/passwd", "FILE:///etc/passwd", "ftp://example.com/a.mp3", "data:audio/wav;base64,UklGRg==",
    "concat:/a.wav|/b.wav", "subfile:,start,0,end,0,:/etc/passwd", "crypto:http://example.com/",
    "javascript:alert(1)", "gopher://example.com/", "rtmp://example.com/live", "async:http://example.com/",
    "//example.com/a.mp3", "example.com/a.mp3", "/etc/passwd", "C:\\audio\\a.wav",
    "http:example.com/a", "http://", "http:///a.mp3", "https://:443/",
    "http://user:pw@example.com/", "http://user@example.com/", "http://@example.com/",
    "http://example.com\\@127.0.0.1/", "http://exa mple.com/", "http://example.com/a b", "http://example.com/\n/x", "http://exam\tple.com/",
    "http://example.com:99999/", "http://example.com:0/", "http://example.com:port/",
    "http://[::1%25lo]/", "http://[fe80::1%eth0]/", "http://[::1/", "http://[zz::1]/",
    "http://ex..ample.com/", "http://" + "a" * 64 + ".com/", "http://exa$mple.com/",
    # IPv4 spelled the way only resolvers and browsers understand: refused even where private URLs are allowed
    "http://2130706433/", "http://0x7f.1/", "http://0x7f000001/", "http://017700000001/", "http://0177.0.0.1/",
    "http://127.1/", "http://127.0.1/", "http://0/", "http://127.000.000.001/", "http://0x7f.0x0.0x0.0x1/",
    "http://3232235777/", "http://1.2.3.04/", "http://8.8.8.8.8/", "http://example.0x10/", "http://example.123/",
    "http://256.1.1.1/",
]


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("url", BAD_SYNTAX)
def test_bad_syntax_is_an_input_error(url, allow_private):
    with pytest.raises(InputError):
        check_url(url, allow_private=allow_private)


# --- addresses: refused by default, allowed with allow_private ----------------------------------------------

BLOCKED = [
    "http://127.0.0.1/", "http://127.255.255.254:8080/", "http://127.0.0.1./", "http://localhost/",
    "http://LOCALHOST./", "http://api.localhost/", "http://10.1.2.3/", "http://172.16.0.1/", "http://172.31.255.255/",
    "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://100.127.0.1/",
    "http://0.0.0.0/", "http://224.0.0.1/", "http://239.255.255.250/", "http://255.255.255.255/", "http://240.0.0.1/",
    "http://192.0.2.1/", "http://198.18.0.1/",
    "http://[::1]/", "http://[::]/", "http://[0:0:0:0:0:0:0:1]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/", "http://[::ffff:a9fe:a9fe]/", "http://[::ffff:10.0.0.1]/", "http://[::127.0.0.1]/",
    "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://[fe80::1]/", "http://[fec0::1]/", "http://[ff02::1]/",
    "http://[2002:7f00:1::1]/", "http://[2002:a9fe:a9fe::1]/", "http://[2002:c0a8:101::]/",
    "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/", "http://[2001:db8::1]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "http://[100::1]/",
    "http://１２７.０.０.１/",  # full-width digits: IDNA folds them to 127.0.0.1
    "http://example.com:25/", "http://8.8.8.8:22/", "http://mail.example.com:587/",  # other services' ports
]


@pytest.mark.parametrize("url", BLOCKED)
def test_private_addresses_are_blocked_by_default(url):
    with pytest.raises((BlockedURLError, InputError)):
        check_url(url)


@pytest.mark.parametrize("url", [u for u in BLOCKED if "１" not in u])
def test_allow_private_lifts_only_the_address_check(url):
    target = check_url(url, allow_private=True)
    assert target.url.startswith(target.scheme + "://") and target.port in (80, 8080, 25, 22, 587)


@pytest.mark.parametrize("url, host, port, path", [
    ("http://8.8.8.8/", "8.8.8.8", 80, "/"),
    ("HTTPS://Example.COM:8443/a/b.mp3?x=1#frag", "example.com", 8443, "/a/b.mp3?x=1"),
    ("https://[2606:4700:4700::1111]/x", "2606:4700:4700::1111", 443, "/x"),
    ("http://[::ffff:8.8.8.8]/", "::ffff:8.8.8.8", 80, "/"),
    ("  https://bücher.example/ton.ogg  ", "xn--bcher-kva.example", 443, "/ton.ogg"),
    ("http://9.9.9.9:8080", "9.9.9.9", 8080, "/"),
])
def test_public_urls_pass(url, host, port, path):
    target = check_url(url)
    assert (target.host, target.port, target.path) == (host, port, path)


def test_target_url_round_trips():
    target = check_url("https://[2606:4700:4700::1111]:8443/a?b=c")
    assert target.url == "https://[2606:4700:4700::1111]:8443/a?b=c"
    assert check_url(target.url) == target


@pytest.mark.parametrize("ip, blocked", [
    ("8.8.8.8", False), ("1.1.1.1", False), ("2606:4700:4700::1111", False), ("::ffff:8.8.8.8", False),
    ("127.0.0.1", True), ("10.0.0.1", True), ("169.254.169.254", True), ("100.64.0.1", True), ("0.0.0.0", True),
    ("224.0.0.251", True), ("::1", True), ("::ffff:169.254.169.254", True), ("fd00::1", True), ("fe80::1", True),
    ("2002:0a00:0001::", True), ("64:ff9b::0a00:1", True), ("ff05::1", True),
])
def test_address_problem(ip, blocked):
    assert (address_problem(ipaddress.ip_address(ip)) is not None) == blocked


# --- resolution and connects --------------------------------------------------------------------------------

def test_names_that_resolve_to_loopback_are_blocked_without_connecting():
    with Canary() as canary:
        names = ["localhost", socket.gethostname()]
        for name in names:
            try:
                addrs = {ipaddress.ip_address(a[4][0]) for a in socket.getaddrinfo(name, None)}
            except OSError:
                continue
            if not any(address_problem(a) for a in addrs):
                continue  # this machine's name resolves to a public address: nothing to test with it
            with pytest.raises(BlockedURLError):
                Guard().connect(name, canary.port)
        assert not wait_until(lambda: canary.hits, 0.3)


def test_connect_refuses_loopback_and_allows_it_when_switched_on():
    with Canary() as canary:
        with pytest.raises(BlockedURLError):
            Guard().connect("127.0.0.1", canary.port)
        assert not wait_until(lambda: canary.hits, 0.3)
        with Guard(allow_private=True).connect("127.0.0.1", canary.port) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
        assert wait_until(lambda: canary.hits)


def test_connect_to_a_closed_port_is_a_fetch_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(FetchError) as e:
        Guard(allow_private=True).connect("127.0.0.1", port)
    assert not isinstance(e.value, BlockedURLError)


def test_deadline_wakes_a_blocked_reader():
    with MediaServer() as srv:
        srv.add_trickle("/silent", b"x" * 10, delay=30)  # headers, then nothing for 30 s
        sock = Guard(allow_private=True).connect("127.0.0.1", srv.port)
        sock.settimeout(20)
        sock.sendall(b"GET /silent HTTP/1.1\r\nHost: x\r\n\r\n")
        with Deadline(0.5) as deadline:
            deadline.watch(sock)
            got = b""
            try:
                while chunk := sock.recv(4096):
                    got += chunk
            except OSError:
                pass
            assert deadline.expired
        sock.close()
        assert b"x" not in got.partition(b"\r\n\r\n")[2]  # woken by the deadline, not by data


# --- the guarded proxy (yt-dlp's only way out) --------------------------------------------------------------

def _proxy_auth(proxy: GuardedProxy) -> str:
    userinfo = proxy.url.split("//", 1)[1].split("@", 1)[0]
    return "Basic " + base64.b64encode(userinfo.encode()).decode()


def _proxy_conn(proxy: GuardedProxy) -> http.client.HTTPConnection:
    hostport = proxy.url.rsplit("@", 1)[1]
    host, port = hostport.split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def test_proxy_requires_its_password():
    with Deadline(10) as dl, GuardedProxy(Guard(allow_private=True), dl, 10**6) as proxy, MediaServer() as srv:
        url = srv.add_bytes("/a.wav", b"abc", "audio/wav")
        conn = _proxy_conn(proxy)
        conn.request("GET", url)
        assert conn.getresponse().status == 407
        conn = _proxy_conn(proxy)
        conn.request("GET", url, headers={"Proxy-Authorization": "Basic " + base64.b64encode(b"proxy:x").decode()})
        assert conn.getresponse().status == 407
        assert srv.seen == []


def test_proxy_blocks_private_targets_for_get_and_connect():
    with Deadline(10) as dl, GuardedProxy(Guard(), dl, 10**6) as proxy, Canary() as canary:
        auth = {"Proxy-Authorization": _proxy_auth(proxy)}
        for spelled in (f"127.0.0.1:{canary.port}", f"localhost:{canary.port}", f"[::ffff:127.0.0.1]:{canary.port}",
                        f"0x7f.1:{canary.port}"):
            conn = _proxy_conn(proxy)
            conn.request("GET", f"http://{spelled}/a.wav", headers=auth)
            assert conn.getresponse().status == 403
            conn = _proxy_conn(proxy)
            conn.request("CONNECT", spelled, headers=auth)
            assert conn.getresponse().status == 403
        assert isinstance(proxy.failure, (BlockedURLError, InputError))
        assert not wait_until(lambda: canary.hits, 0.3)


def test_proxy_forwards_http_and_tunnels_connect_when_allowed():
    data = wav_bytes()
    with Deadline(10) as dl, GuardedProxy(Guard(allow_private=True), dl, 10**6) as proxy, MediaServer() as srv:
        url = srv.add_bytes("/a.wav", data, "audio/wav")
        auth = {"Proxy-Authorization": _proxy_auth(proxy)}
        conn = _proxy_conn(proxy)
        conn.request("GET", url, headers=auth)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == data
        assert "proxy-authorization" not in {k.lower() for k in srv.seen[-1].headers}

        tunnel = _proxy_conn(proxy)
        tunnel.set_tunnel("127.0.0.1", srv.port, headers=auth)
        tunnel.request("GET", "/a.wav")
        resp = tunnel.getresponse()
        assert resp.status == 200 and resp.read() == data
        assert proxy.bytes_in >= 2 * len(data)


def test_proxy_keeps_tls_end_to_end(tmp_path):
    """Through the proxy's CONNECT tunnel the client still verifies the site's certificate for its host name."""
    requests = pytest.importorskip("requests")
    tls = self_signed_cert(tmp_path)
    if tls is None:
        pytest.skip("openssl is not installed")
    data = wav_bytes()
    with Deadline(10) as dl, GuardedProxy(Guard(allow_private=True), dl, 10**6) as proxy, \
            MediaServer(tls=tls) as srv:
        url = srv.add_bytes("/a.wav", data, "audio/wav").replace("127.0.0.1", "localhost")
        proxies = {"https": proxy.url}
        assert requests.get(url, proxies=proxies, verify=tls[0], timeout=10).content == data
        assert srv.sni == ["localhost"]
        with pytest.raises(requests.exceptions.SSLError):  # same tunnel, certificate not trusted: refused
            requests.get(url, proxies=proxies, timeout=10)


def test_proxy_enforces_the_byte_cap_across_requests():
    with Deadline(10) as dl, GuardedProxy(Guard(allow_private=True), dl, 200_000) as proxy, MediaServer() as srv:
        url = srv.add_stream("/endless.mp3")
        auth = {"Proxy-Authorization": _proxy_auth(proxy)}
        conn = _proxy_conn(proxy)
        conn.request("GET", url, headers=auth)
        resp = conn.getresponse()
        got = 0
        try:
            while chunk := resp.read1(65536):
                got += len(chunk)
        except (http.client.HTTPException, OSError):
            pass
        assert got <= 200_000 and isinstance(proxy.failure, TooLargeError)
        conn = _proxy_conn(proxy)  # once the cap is hit, everything later is refused
        conn.request("GET", srv.add_bytes("/small.wav", b"abc", "audio/wav"), headers=auth)
        assert conn.getresponse().status == 503


def test_proxy_stops_at_the_deadline():
    with Deadline(0.5) as dl, GuardedProxy(Guard(allow_private=True), dl, 10**9) as proxy, MediaServer() as srv:
        url = srv.add_trickle("/slow.wav", b"x" * 10_000, delay=0.05)
        conn = _proxy_conn(proxy)
        conn.request("GET", url, headers={"Proxy-Authorization": _proxy_auth(proxy)})
        resp = conn.getresponse()
        with pytest.raises((http.client.IncompleteRead, OSError)):
            resp.read()
        assert dl.expired


# --- fuzzing the validator ----------------------------------------------------------------------------------

PRIVATE_NETS = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
                "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"]


@st.composite
def private_ipv4(draw):
    net = ipaddress.ip_network(draw(st.sampled_from(PRIVATE_NETS)))
    return ipaddress.IPv4Address(int(net.network_address) + draw(st.integers(0, net.num_addresses - 1)))


@st.composite
def host_spellings(draw):
    """Private IPv4 addresses written every way a resolver or browser might accept, plus IPv6 wrappers."""
    ip = draw(private_ipv4())
    n, parts = int(ip), str(ip).split(".")
    return draw(st.sampled_from([
        str(ip), str(n), hex(n), oct(n).replace("0o", "0"), ".".join(hex(int(p)) for p in parts),
        ".".join("0" + oct(int(p))[2:] for p in parts), f"{parts[0]}.{int(''.join(f'{int(p):02x}' for p in parts[1:]), 16)}",
        f"[::ffff:{ip}]", f"[::{ip}]", f"[64:ff9b::{ip}]", f"[2002:{n >> 16:x}:{n & 0xffff:x}::1]",
        str(ip) + ".", str(ip).upper(),
    ]))


def _embedded_or_self(ip):
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return [ip.ipv4_mapped]
        if ip.sixtofour:
            return [ip, ip.sixtofour]
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            return [ip, ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return [ip]


url_text = st.one_of(
    st.text(max_size=60),
    st.builds(lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
              st.sampled_from(["http", "https", "HTTP", "ftp", "file", "", "http:", "hTTps"]),
              st.one_of(host_spellings(), st.text(max_size=20), st.from_regex(r"[a-z0-9.\-\[\]:@%]{0,25}", fullmatch=True)),
              st.sampled_from(["", ":80", ":0", ":65536", ":8080", ":-1", ":x"]),
              st.text(max_size=15)),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url_text)
def test_fuzz_validator_only_raises_user_errors_and_never_passes_a_private_literal(url):
    try:
        target = check_url(url)
    except (InputError, BlockedURLError):
        return
    assert target.scheme in ("http", "https")
    assert target.host and "@" not in target.host
    if target.ip is not None:
        # an independent oracle: the standard library's idea of a public address, embedded IPv4 included
        for ip in _embedded_or_self(target.ip):
            assert ip.is_global and not ip.is_multicast, url
    else:
        assert target.host.rstrip(".") != "localhost"
        # a name, never something a resolver reads as a number
        with pytest.raises(OSError):
            socket.inet_aton(target.host.rstrip("."))


@settings(max_examples=300, deadline=None)
@given(host_spellings())
def test_fuzz_private_spellings_never_pass(host):
    with pytest.raises((InputError, BlockedURLError)):
        check_url(f"http://{host}/a.mp3")
