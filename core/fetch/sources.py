"""Any input (path, URL, web page, bytes, base64) -> a local file the decoder can open.

`open_source` is a context manager that owns every temporary file it creates: they live in one directory under
the system temp dir (prefix `TEMP_PREFIX`) that is removed on exit, whether the job succeeded or raised.
URLs are fetched through the SSRF guard (`core.fetch.url_guard`) with the limits from `Config`; pages go to yt-dlp
(`core.fetch.pages`). Decoding only ever happens later, on the local file.
"""
from __future__ import annotations

import base64
import binascii
import http.client
import logging
import os
import re
import shutil
import ssl
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, urljoin

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from core.config import Config
from core.errors import BlockedURLError, CoreError, FetchError, InputError, TooLargeError
from core.fetch.url_guard import Deadline, Guard, Target
from core.types import Progress, no_progress

log = logging.getLogger("core.fetch.sources")

TEMP_PREFIX = "asr-source-"
MAX_REDIRECTS = 10
STALL_TIMEOUT_S = 60.0  # a server silent this long is given up on (the total deadline still applies)
_BLOCK = 64 * 1024
_USER_AGENT = "Mozilla/5.0 (compatible; qwen3-asr-transcriber)"

# Handed to yt-dlp: web pages, and the manifests and feeds it knows how to read (it rejects live manifests).
_PAGE_TYPES = {"text/html", "application/xhtml+xml", "application/vnd.apple.mpegurl", "application/x-mpegurl",
               "audio/mpegurl", "audio/x-mpegurl", "application/dash+xml", "application/rss+xml",
               "application/atom+xml", "application/xml", "text/xml"}
_MEDIA_TYPES = {"application/octet-stream", "binary/octet-stream", "application/ogg", "application/mp4",
                "application/x-matroska", "application/x-flac", "application/flac", "application/x-wav",
                "application/mxf", "application/x-download", "application/force-download", "application/x-mpegaudio"}
MEDIA_EXTENSIONS = {"aac", "aif", "aiff", "amr", "ape", "au", "avi", "caf", "flac", "flv", "m4a", "m4b", "m4v",
                    "mka", "mkv", "mov", "mp2", "mp3", "mp4", "mpeg", "mpg", "oga", "ogg", "ogv", "opus", "spx",
                    "ts", "wav", "weba", "webm", "wma", "wmv", "3gp"}
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")
_DATA_URI = re.compile(r"data:[\w.+-]*/?[\w.+-]*(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)


def is_url(source) -> bool:
    """Whether an input is an http(s) URL (as text), rather than a path or bytes."""
    return isinstance(source, str) and source.strip().lower().startswith(("http://", "https://"))


@contextmanager
def open_source(source: str | bytes | os.PathLike, *, config: Config, filename: str | None = None,
                progress: Progress = no_progress, allow_local: bool = True) -> Iterator[Path]:
    """Yield a local file for any input; every temp file is removed on exit, on success or error.

    bytes -> a temp file (suffix from `filename`); an existing local file -> itself (only with `allow_local`);
    an http(s) URL -> a guarded download, or yt-dlp's best audio when the URL is a web page.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise InputError("the input is empty")
        with _temp_dir() as tmp:
            path = tmp / ("upload" + safe_suffix(filename))
            path.write_bytes(data)
            yield path
        return
    if isinstance(source, os.PathLike):
        yield _local_file(os.fspath(source), allow_local)
        return
    if not isinstance(source, str):
        raise InputError("the input must be a path, an http(s) URL or bytes")
    text = source.strip()
    if not text:
        raise InputError("the input is empty")
    if text.startswith("-"):
        raise InputError("the input starts with '-'; give a file or an http(s) URL")
    scheme = text.split(":", 1)[0].lower() if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text) else ""
    if scheme not in ("http", "https"):
        if allow_local and os.path.isfile(text):  # a path, even one with a colon such as "take:1.wav"
            yield _local_file(text, allow_local)
            return
        if scheme:
            raise InputError(f"{scheme[:20]!r} inputs are not supported; give an http or https URL")
        if allow_local:
            raise InputError("the input is neither an existing file nor an http(s) URL")
        raise InputError("only http and https URLs are accepted here")
    with _temp_dir() as tmp:
        yield _fetch_url(text, config, progress, tmp)


def decode_base64_audio(data: str, *, max_bytes: int) -> bytes:
    """Decode base64 audio, with or without a `data:<type>;base64,` prefix; standard or URL-safe alphabet."""
    if not isinstance(data, str):
        raise InputError("base64 audio must be a string")
    text = data.strip()
    if m := _DATA_URI.match(text):
        text = text[m.end():]
    elif text[:5].lower() == "data:":
        raise InputError("the data URI is not base64 (expected 'data:<type>;base64,<data>')")
    text = re.sub(r"\s+", "", text)
    if not text:
        raise InputError("the base64 audio is empty")
    if len(text) * 3 // 4 > max_bytes + 2:
        raise TooLargeError.over_download_limit(max_bytes, "audio data")
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        out = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("the audio is not valid base64") from None
    if not out:
        raise InputError("the base64 audio is empty")
    if len(out) > max_bytes:
        raise TooLargeError.over_download_limit(max_bytes, "audio data")
    return out


def safe_suffix(filename: str | None) -> str:
    """'.mp3' from 'talk.MP3'; '' for anything odd (the suffix is only a hint for the decoder)."""
    suffix = Path(filename or "").suffix
    return suffix.lower() if _SUFFIX.fullmatch(suffix) else ""


@contextmanager
def _temp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _local_file(path: str, allow_local: bool) -> Path:
    if not allow_local:
        raise InputError("local files are not accepted here; give an http(s) URL")
    if not os.path.isfile(path):
        raise InputError("the input file does not exist or is not a regular file")
    # Absolute, so that no later tool can read "concat:..." or "subfile:..." as a protocol instead of a name.
    return Path(os.path.abspath(path))


class _Throttle:
    """Calls progress("download", ...) at most every `interval` seconds, plus the final call."""

    def __init__(self, progress: Progress, interval: float = 0.25) -> None:
        self.progress, self.interval, self.last = progress, interval, 0.0

    def __call__(self, done: float, total: float | None, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self.last >= self.interval:
            self.last = now
            self.progress("download", done, total)


def _fetch_url(url: str, config: Config, progress: Progress, tmp: Path) -> Path:
    guard = Guard.from_config(config)
    start = guard.check_url(url)
    throttle = _Throttle(progress)
    with Deadline(config.download_timeout_s) as deadline:
        try:
            from core.fetch import pages

            if pages.site_extractor(start.url) is None:
                path = _download_direct(start, guard, deadline, config, throttle, tmp)
                if path is not None:
                    return path
            else:  # straight to yt-dlp; vet the user's own host here so that its errors name it plainly
                guard.resolve(start.host, start.port)
            return pages.download(url, start, guard=guard, deadline=deadline, config=config, progress=throttle,
                                 dest=tmp)
        except CoreError as e:
            if deadline.expired and not isinstance(e, TooLargeError):
                raise deadline.error(start.host) from None
            raise


@dataclass(frozen=True)
class Fetched:
    """A small resource read whole (a feed): where it ended up after redirects, its type and its bytes."""
    url: str
    host: str
    content_type: str
    data: bytes
    truncated: bool = False


def read_url(url: str, *, config: Config, max_bytes: int, truncate: bool = False) -> Fetched:
    """GET a URL into memory through the same guard and limits as every download.

    More than `max_bytes` is a TooLargeError, or with `truncate` the first `max_bytes` only (a peek at what a URL
    serves: the connection is closed there, so peeking at an hour of audio costs one read).
    """
    guard = Guard.from_config(config)
    start = guard.check_url(url)
    with Deadline(config.download_timeout_s) as deadline:
        try:
            target, conn, resp = _follow(start, guard, deadline)
            try:
                ctype = (resp.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
                data = bytearray()
                while chunk := resp.read1(_BLOCK):
                    data += chunk
                    if len(data) > max_bytes:
                        if truncate:
                            return Fetched(target.url, start.host, ctype, bytes(data[:max_bytes]), True)
                        raise TooLargeError(f"{start.host} sent more than {max_bytes / 1e6:g} MB")
                return Fetched(target.url, start.host, ctype, bytes(data))
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as e:
            raise _network_error(start, e, deadline) from None
        except CoreError as e:
            if deadline.expired and not isinstance(e, TooLargeError):
                raise deadline.error(start.host) from None
            raise


def _download_direct(start: Target, guard: Guard, deadline: Deadline, config: Config, throttle: _Throttle,
                     tmp: Path) -> Path | None:
    """Stream a media response to a file; None when the URL is a web page (yt-dlp's job)."""
    target, conn, resp = _follow(start, guard, deadline)
    try:
        ctype = (resp.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype in _PAGE_TYPES:
            return None
        if not _is_media(ctype, target.path):
            raise FetchError(f"{start.host} returned {ctype[:60] or 'data of no stated type'}, "
                             "not audio, video or a web page")
        try:
            length = int(resp.headers.get("Content-Length", ""))
        except ValueError:
            length = None
        if length is not None and length > config.max_download_bytes:
            raise TooLargeError.over_download_limit(config.max_download_bytes)
        path = tmp / ("download" + (safe_suffix(target.path.split("?", 1)[0]) or _type_suffix(ctype)))
        done = 0
        throttle(0, length)
        with open(path, "wb") as out:
            while chunk := resp.read1(_BLOCK):
                done += len(chunk)
                if done > config.max_download_bytes:
                    raise TooLargeError.over_download_limit(config.max_download_bytes)
                out.write(chunk)
                throttle(done, length)
        if done == 0:
            raise FetchError(f"{start.host} returned an empty file")
        throttle(done, length or done, final=True)
        return path
    except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as e:
        raise _network_error(start, e, deadline) from None
    finally:
        conn.close()


def _follow(start: Target, guard: Guard, deadline: Deadline):
    """GET the URL, following redirects ourselves so that every hop is vetted; returns the final response."""
    target = start
    for hop in range(MAX_REDIRECTS + 1):
        conn = None
        try:
            conn = _connection(target, guard, deadline)
            conn.request("GET", quote(target.path, safe="/%:@!$&'()*+,;=?-._~"), headers={
                "Accept-Encoding": "identity", "Accept": "*/*", "User-Agent": _USER_AGENT},
                preload_content=False, decode_content=False)
            resp = conn.getresponse()
        except BlockedURLError:
            if hop:
                raise _redirect_blocked(start) from None
            raise
        except FetchError:
            if hop:
                raise FetchError(f"could not connect to the server {start.host} redirected to") from None
            raise
        except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as e:
            if conn is not None:
                conn.close()
            raise _network_error(start, e, deadline) from None
        location = resp.headers.get("Location")
        if resp.status in (301, 302, 303, 307, 308) and location:
            conn.close()
            target = check_redirect(target, location, guard, start)
            continue
        if resp.status != 200:
            conn.close()
            reason = f" {resp.reason}" if resp.reason and resp.reason.isprintable() else ""
            raise FetchError(f"{start.host} answered HTTP {resp.status}{reason[:40]}")
        return target, conn, resp
    raise FetchError(f"{start.host} redirected more than {MAX_REDIRECTS} times")


def check_redirect(current: Target, location: str, guard: Guard, start: Target | None = None) -> Target:
    """Vet one redirect hop exactly like the first URL; the error names the user's host, not the hop's."""
    start = start or current
    try:
        return guard.check_url(urljoin(current.url, location.strip()))
    except BlockedURLError:
        raise _redirect_blocked(start) from None
    except InputError:
        raise BlockedURLError(f"{start.host} redirected to a URL that is not plain http(s), "
                              "which is not followed") from None


def _redirect_blocked(start: Target) -> BlockedURLError:
    return BlockedURLError(f"{start.host} redirected to a private, local or reserved address, which is not allowed")


def _connection(target: Target, guard: Guard, deadline: Deadline) -> HTTPConnection:
    timeout = min(guard.connect_timeout_s, deadline.remaining())
    if target.scheme == "https":
        conn: HTTPConnection = _GuardedHTTPSConnection(target.host, target.port, guard=guard, timeout=timeout,
                                                       ca_certs=certifi.where())
    else:
        conn = _GuardedHTTPConnection(target.host, target.port, guard=guard, timeout=timeout)
    conn.connect()
    deadline.watch(conn.sock)
    conn.timeout = max(min(STALL_TIMEOUT_S, deadline.remaining()), 0.001)  # read timeout from here on
    return conn


class _GuardedHTTPConnection(HTTPConnection):
    """urllib3's connection, but the TCP socket comes from the guard: resolved, checked, then connected to."""

    def __init__(self, *args, guard: Guard, **kwargs) -> None:
        self._guard = guard
        super().__init__(*args, **kwargs)

    def _new_conn(self):
        return self._guard.connect(self.host, self.port, timeout=self.timeout)


class _GuardedHTTPSConnection(HTTPSConnection):
    """As above; TLS SNI and certificate checks still use the host name, not the address."""

    def __init__(self, *args, guard: Guard, **kwargs) -> None:
        self._guard = guard
        super().__init__(*args, **kwargs)

    def _new_conn(self):
        return self._guard.connect(self.host, self.port, timeout=self.timeout)


def _network_error(start: Target, e: BaseException, deadline: Deadline) -> FetchError:
    if deadline.expired:
        return deadline.error(start.host)
    if isinstance(e, (ssl.SSLCertVerificationError, urllib3.exceptions.SSLError, ssl.SSLError)):
        return FetchError(f"the TLS connection to {start.host} failed (certificate or protocol error)")
    if isinstance(e, (TimeoutError, urllib3.exceptions.TimeoutError)):
        return FetchError(f"{start.host} stopped sending data")
    return FetchError(f"the connection to {start.host} failed before the download finished")


def _is_media(ctype: str, path: str) -> bool:
    if ctype.startswith(("audio/", "video/")) or ctype in _MEDIA_TYPES:
        return True
    ext = path.split("?", 1)[0].rsplit("/", 1)[-1].rpartition(".")[2].lower()
    return ext in MEDIA_EXTENSIONS


def _type_suffix(ctype: str) -> str:
    sub = ctype.partition("/")[2]
    sub = {"mpeg": "mp3", "x-wav": "wav", "wave": "wav", "x-matroska": "mkv", "quicktime": "mov"}.get(sub, sub)
    return f".{sub}" if sub in MEDIA_EXTENSIONS else ""
