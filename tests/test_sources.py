"""open_source and decode_base64_audio against real loopback servers and real yt-dlp.

Every test runs with the temp dir pointed at its own folder and checks at the end that open_source left nothing
behind there, whether the test's call succeeded or raised.
"""
from __future__ import annotations

import base64
import gzip
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

import pytest

from core.config import config_from_env
from core.errors import BlockedURLError, CoreError, FetchError, InputError, TooLargeError
from core.fetch.url_guard import Guard, check_url
from core.fetch.sources import TEMP_PREFIX, check_redirect, decode_base64_audio, open_source
from net_helpers import Canary, MediaServer, self_signed_cert, wait_until, wav_bytes

LOOPBACK = config_from_env({}, allow_private_urls=True)
DEFAULT = config_from_env({})
WAV = wav_bytes()


pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind


@pytest.fixture(scope="module")
def srv():
    with MediaServer() as server:
        server.add_bytes("/tone.wav", WAV, "audio/wav")
        yield server


def fetch(url, config=LOOPBACK, **kw) -> bytes:
    with open_source(url, config=config, **kw) as path:
        assert path.is_file() and path.name.startswith(("download", "media", "upload"))
        assert path.parent.name.startswith(TEMP_PREFIX)
        return path.read_bytes()


def assert_clean_message(err: CoreError, tmp: Path | None = None):
    msg = str(err)
    assert msg and "Traceback" not in msg and "secret body text" not in msg
    assert tempfile.gettempdir() not in msg and "/tmp" not in msg
    if tmp is not None:
        assert str(tmp) not in msg


# --- direct downloads ---------------------------------------------------------------------------------------

def test_media_url_is_downloaded_byte_for_byte_with_progress(srv, own_tempdir):
    calls = []
    with open_source(srv.url("/tone.wav"), config=LOOPBACK, progress=lambda *a: calls.append(a)) as path:
        assert path.read_bytes() == WAV and path.suffix == ".wav"
        kept = path
    assert not kept.exists()
    assert calls and all(stage == "download" for stage, _, _ in calls)
    assert calls[-1][1] == len(WAV) and calls[-1][2] == len(WAV)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls)
    assert srv.seen[-1].headers.get("Accept-Encoding") == "identity"


@pytest.mark.parametrize("path, ctype", [
    ("/plain.mp3", "text/plain"), ("/untyped.wav", None), ("/blob", "application/octet-stream"),
    ("/x.bin", "audio/ogg; codecs=opus"), ("/v", "video/mp4"), ("/o", "application/ogg"),
])
def test_media_is_recognised_by_type_or_extension(srv, path, ctype):
    srv.add_bytes(path, WAV, ctype)
    assert fetch(srv.url(path)) == WAV


def test_other_content_is_refused(srv):
    srv.add_bytes("/data.json", b'{"secret body text": 1}', "application/json")
    with pytest.raises(FetchError) as e:
        fetch(srv.url("/data.json"))
    assert "application/json" in str(e.value)
    assert_clean_message(e.value)


def test_redirects_are_followed(srv):
    srv.add_redirect("/r3", srv.url("/r2"), 301)
    srv.add_redirect("/r2", "/r1", 307)
    srv.add_redirect("/r1", "tone.wav", 302)
    assert fetch(srv.url("/r3")) == WAV


def test_redirect_loop_is_a_fetch_error(srv):
    srv.add_redirect("/loop", "/loop")
    with pytest.raises(FetchError, match="redirected more than"):
        fetch(srv.url("/loop"))


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/a.wav", "concat:/a|/b",
                                      "http://user:pw@127.0.0.1/", "http://0x7f.1:{canary}/a.wav",
                                      "http://2130706433:{canary}/a.wav", "gopher://127.0.0.1:{canary}/"])
def test_redirect_to_a_refused_url_is_blocked_even_with_private_allowed(srv, location):
    with Canary() as canary:
        srv.add_redirect("/bad-redirect", location.format(canary=canary.port))
        with pytest.raises(BlockedURLError) as e:
            fetch(srv.url("/bad-redirect"))
        assert "127.0.0.1" in str(e.value)  # the host the user gave, not the hop's
        assert not wait_until(lambda: canary.hits, 0.3)


@pytest.mark.parametrize("location", ["http://127.0.0.1:{canary}/x.wav", "http://localhost:{canary}/",
                                      "//[::1]:{canary}/x", "http://169.254.169.254/latest/meta-data/",
                                      "https://10.0.0.1/", "http://[::ffff:192.168.0.1]/", "http://0x7f.1/"])
def test_each_redirect_hop_from_a_public_host_is_checked(location):
    """The per-hop check with the switch off: a public first hop (an IP literal, so no DNS) redirecting inward."""
    guard = Guard.from_config(DEFAULT)
    public = check_url("http://93.184.215.14/start.mp3")
    with Canary() as canary:
        with pytest.raises(BlockedURLError) as e:
            check_redirect(public, location.format(canary=canary.port), guard)
        assert "93.184.215.14" in str(e.value) and "169.254" not in str(e.value)
        assert not wait_until(lambda: canary.hits, 0.3)
    assert check_redirect(public, "/next.mp3", guard).url == "http://93.184.215.14/next.mp3"
    assert check_redirect(public, "https://9.9.9.9/a", guard).host == "9.9.9.9"


@pytest.mark.parametrize("status", [404, 403, 500, 503])
def test_http_errors_name_the_status_but_not_the_body(srv, status):
    srv.add_status(f"/status{status}", status)
    with pytest.raises(FetchError) as e:
        fetch(srv.url(f"/status{status}"))
    assert str(status) in str(e.value) and not isinstance(e.value, BlockedURLError)
    assert_clean_message(e.value)


def test_unreachable_server_is_a_fetch_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(FetchError) as e:
        fetch(f"http://127.0.0.1:{port}/a.wav")
    assert_clean_message(e.value)


def test_https_checks_the_certificate_for_the_host_name_not_the_address(tmp_path):
    """The guard connects to the checked IP, yet TLS still sends SNI and verifies the certificate for the name."""
    tls = self_signed_cert(tmp_path)
    if tls is None:
        pytest.skip("openssl is not installed")
    with MediaServer(tls=tls) as https:
        https.add_bytes("/tone.wav", WAV, "audio/wav")
        with pytest.raises(FetchError, match="TLS connection to localhost failed") as e:
            fetch(https.url("/tone.wav", host="localhost"))
        assert_clean_message(e.value)
        assert wait_until(lambda: https.sni) and https.sni[0] == "localhost"
        assert https.seen == []  # the self-signed certificate was refused before any request was sent


# --- limits -------------------------------------------------------------------------------------------------

def test_slow_server_hits_the_total_timeout(srv):
    srv.add_trickle("/trickle.wav", WAV, delay=0.05)  # ~200 s for the whole file, a byte at a time
    srv.add_trickle("/silent.wav", WAV, delay=60)  # headers, then silence
    config = config_from_env({}, allow_private_urls=True, download_timeout_s=1.0)
    for path in ("/trickle.wav", "/silent.wav"):
        t0 = time.monotonic()
        with pytest.raises(FetchError, match="took longer than 1 s") as e:
            fetch(srv.url(path), config=config)
        assert time.monotonic() - t0 < 15  # a functional bound (it would take minutes otherwise)
        assert_clean_message(e.value)


CAP = 300_000


@pytest.mark.parametrize("route", [
    dict(total=None),  # endless chunked stream
    dict(total=None, chunked=False),  # endless, no length: ends when the server closes
    dict(total=2_000_000, content_length=2_000_000),  # honest length over the cap: refused before reading
    dict(total=None, content_length=1000, chunked=True),  # lying length: chunking wins, stream is endless
    dict(total=2_000_000, content_length=None, chunked=False),
])
def test_downloads_stop_at_the_cap(srv, route):
    path = f"/big{len(srv.routes)}.mp3"
    srv.add_stream(path, **route)
    config = config_from_env({}, allow_private_urls=True, max_download_bytes=CAP)
    sizes = []
    with pytest.raises(TooLargeError) as e:
        fetch(srv.url(path), config=config, progress=lambda s, done, total: sizes.append(done))
    assert max(sizes, default=0) <= CAP
    assert "MAX_DOWNLOAD_BYTES" in str(e.value)


def test_a_length_smaller_than_the_body_reads_only_that_length(srv):
    srv.add_stream("/short-claim.mp3", total=CAP * 4, content_length=1000, chunked=False)
    config = config_from_env({}, allow_private_urls=True, max_download_bytes=CAP)
    assert fetch(srv.url("/short-claim.mp3"), config=config) == b"\0" * 1000


def test_compressed_bodies_are_never_inflated(srv):
    bomb = gzip.compress(b"\0" * 20_000_000)  # 20 MB inflated, ~20 KB on the wire
    srv.add_bytes("/bomb.wav", bomb, "audio/wav", headers={"Content-Encoding": "gzip"})
    config = config_from_env({}, allow_private_urls=True, max_download_bytes=CAP)
    assert fetch(srv.url("/bomb.wav"), config=config) == bomb


# --- SSRF through open_source with the default config -------------------------------------------------------

def _loopback_urls(port):
    urls = [f"http://127.0.0.1:{port}/a.wav", f"http://localhost:{port}/a.wav", f"http://[::ffff:127.0.0.1]:{port}/",
            f"http://2130706433:{port}/", f"http://0x7f.1:{port}/", f"http://127.1:{port}/", f"http://[::1]:{port}/",
            f"https://127.0.0.1:{port}/", f"http://0.0.0.0:{port}/", f"HTTP://127.0.0.1:{port}/page.html"]
    name = socket.gethostname()
    try:
        if all(ip.startswith("127.") for *_, (ip, *_) in socket.getaddrinfo(name, port, socket.AF_INET)):
            urls.append(f"http://{name}:{port}/a.wav")  # resolves to loopback through /etc/hosts
    except OSError:
        pass
    return urls


def test_private_targets_are_refused_and_never_contacted(own_tempdir):
    with Canary() as canary:
        for url in _loopback_urls(canary.port):
            with pytest.raises((BlockedURLError, InputError)) as e:
                fetch(url, config=DEFAULT, allow_local=False)
            assert_clean_message(e.value, own_tempdir)
        assert not wait_until(lambda: canary.hits, 0.3)


# --- web pages through yt-dlp -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["audio", "video", "og"])
def test_page_with_embedded_media_goes_through_ytdlp_and_the_proxy(srv, kind, caplog):
    media = "/tone.wav" if kind != "og" else srv.url("/tone.wav")
    page = srv.add_page(f"/page-{kind}.html", media, kind)
    calls = []
    with caplog.at_level(logging.DEBUG, logger="core.fetch.sources"):
        with open_source(page, config=LOOPBACK, progress=lambda *a: calls.append(a)) as path:
            assert path.read_bytes() == WAV and path.name.startswith("media.")
    proxied = [r.getMessage() for r in caplog.records if r.getMessage().startswith("proxy:")]
    assert any("/tone.wav" in m for m in proxied) and any(f"/page-{kind}.html" in m for m in proxied)
    assert calls and calls[-1][1] == len(WAV)


def test_page_without_media_is_a_fetch_error(srv):
    srv.add_bytes("/empty.html", b"<html><head><title>t</title></head><body>secret body text</body></html>",
                  "text/html")
    with pytest.raises(FetchError) as e:
        fetch(srv.url("/empty.html"))
    assert "127.0.0.1" in str(e.value)
    assert_clean_message(e.value)


def test_page_linking_a_refused_address_never_reaches_it(srv):
    with Canary() as canary:
        page = srv.add_page("/evil.html", f"http://0x7f.1:{canary.port}/a.wav")
        with pytest.raises(CoreError) as e:
            fetch(page)
        assert_clean_message(e.value)
        assert not wait_until(lambda: canary.hits, 0.3)


HLS = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n/seg1.ts\n#EXTINF:10.0,\n/seg2.ts\n"


def test_live_streams_are_refused(srv):
    srv.add_bytes("/live.m3u8", HLS.encode(), "application/vnd.apple.mpegurl")  # no ENDLIST: still running
    with pytest.raises(InputError, match="live stream"):
        fetch(srv.url("/live.m3u8"))
    assert not any(p.startswith("/seg") for p in srv.paths_seen())


def test_only_plain_http_formats_are_downloaded(srv):
    """An HLS recording needs yt-dlp's segment downloader (or ffmpeg); the format filter refuses it."""
    srv.add_bytes("/vod.m3u8", (HLS + "#EXT-X-ENDLIST\n").encode(), "audio/x-mpegurl")
    with pytest.raises(FetchError, match="plain http"):
        fetch(srv.url("/vod.m3u8"))
    assert not any(p.startswith("/seg") for p in srv.paths_seen())


def test_page_media_over_the_cap_is_too_large(srv):
    srv.add_stream("/endless-page-media.wav", content_type="audio/wav")
    page = srv.add_page("/big.html", "/endless-page-media.wav")
    config = config_from_env({}, allow_private_urls=True, max_download_bytes=CAP)
    with pytest.raises(TooLargeError):
        fetch(page, config=config)


def test_page_media_that_trickles_hits_the_timeout(srv):
    srv.add_trickle("/slow-page-media.wav", WAV, delay=0.05)
    page = srv.add_page("/slow.html", "/slow-page-media.wav")
    config = config_from_env({}, allow_private_urls=True, download_timeout_s=2.0)
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="took longer than 2 s"):
        fetch(page, config=config)
    assert time.monotonic() - t0 < 20


class Stop(Exception):
    """What a front end raises from its progress callback to cancel a job."""


@pytest.mark.parametrize("page", [False, True])
def test_an_exception_from_progress_cancels_and_passes_through(srv, page):
    srv.add_trickle("/cancel.wav", WAV, delay=0.01, piece=256)
    url = srv.add_page("/cancel.html", "/cancel.wav") if page else srv.url("/cancel.wav")

    def progress(stage, done, total):
        if done > 0:
            raise Stop()
    with pytest.raises(Stop):
        fetch(url, progress=progress)


# --- bytes, base64, local files, bad input ------------------------------------------------------------------

@pytest.mark.parametrize("filename, suffix", [("talk.MP3", ".mp3"), ("../../etc/x.wav", ".wav"), (None, ""),
                                              ("evil.$(rm -rf)", ""), ("a.verylongextension", ""), (".wav", "")])
def test_bytes_become_a_temp_file(filename, suffix, own_tempdir):
    with open_source(WAV, config=DEFAULT, filename=filename, allow_local=False) as path:
        assert path.read_bytes() == WAV and path.suffix == suffix
        assert path.parent.parent == own_tempdir
        kept = path
    assert not kept.exists()


def test_temp_files_go_even_when_the_caller_raises(srv):
    for source in (WAV, srv.url("/tone.wav")):
        with pytest.raises(RuntimeError):
            with open_source(source, config=LOOPBACK):
                raise RuntimeError("decoder failed")


def test_base64_with_and_without_data_uri():
    b64 = base64.b64encode(WAV).decode()
    assert decode_base64_audio(b64, max_bytes=10**6) == WAV
    assert decode_base64_audio("data:audio/wav;base64," + b64, max_bytes=10**6) == WAV
    assert decode_base64_audio("DATA:audio/x-wav;codecs=1;base64," + b64, max_bytes=10**6) == WAV
    assert decode_base64_audio("  " + "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76)), max_bytes=10**6) == WAV
    assert decode_base64_audio(base64.urlsafe_b64encode(WAV).decode().rstrip("="), max_bytes=10**6) == WAV


@pytest.mark.parametrize("bad", ["", "   ", "not base64!!", "data:audio/wav,plain-text", "data:audio/wav;base64,",
                                 "QUJD$", "====", "a"])
def test_bad_base64_is_an_input_error(bad):
    with pytest.raises(InputError):
        decode_base64_audio(bad, max_bytes=10**6)


def test_base64_over_the_limit_is_too_large():
    with pytest.raises(TooLargeError):
        decode_base64_audio(base64.b64encode(b"\0" * 5000).decode(), max_bytes=4000)


def test_local_files_only_when_allowed(tmp_path, monkeypatch):
    audio = tmp_path / "take:1.wav"
    audio.write_bytes(WAV)
    monkeypatch.chdir(tmp_path)
    for source in (str(audio), audio, "take:1.wav", f"  {audio}  "):
        with open_source(source, config=DEFAULT) as path:
            assert path == audio and path.is_absolute()
        assert audio.exists()  # the caller's file is never removed
        with pytest.raises(InputError) as e:
            with open_source(source, config=DEFAULT, allow_local=False):
                pass
        assert str(tmp_path) not in str(e.value)


@pytest.mark.parametrize("source", ["file:///etc/passwd", "/etc/passwd", "missing.wav", "-i", "--output=/x",
                                    "", "  ", "ftp://example.com/a.mp3", "concat:/a.wav|/b.wav", Path("/etc")])
def test_bad_inputs_without_local_access(source):
    with pytest.raises(InputError) as e:
        fetch(source, config=DEFAULT, allow_local=False)
    assert_clean_message(e.value)


@pytest.mark.parametrize("source", ["missing.wav", "-rf", "file:///etc/hostname", "/", b"", 12])
def test_bad_inputs_with_local_access(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError):
        fetch(source, config=DEFAULT)


def test_leading_dash_local_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "-i.wav").write_bytes(WAV)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError):
        fetch("-i.wav", config=DEFAULT)
    with open_source(Path("./-i.wav"), config=DEFAULT) as path:  # an explicit path is unambiguous
        assert path.read_bytes() == WAV and os.path.isabs(path)
