"""Best audio from a web page (YouTube, podcasts, a page with an <audio> tag...) through yt-dlp, kept on a leash.

yt-dlp parses pages an attacker may control and makes many requests of its own, so:
- every request it makes passes `url_guard.check_url` in `_GuardedYoutubeDL.urlopen` and then goes through a
  `GuardedProxy`, which re-checks the target and connects to the checked address (yt-dlp is never given a route
  around it: per-request proxy overrides are dropped);
- it may only download over plain http(s) (`[protocol^=http]`), with no postprocessors, no fixups, no external
  downloader and an ffmpeg location that does not exist, so it never starts ffmpeg or any other program on
  attacker-chosen input; decoding happens later, on the local file, with PyAV;
- one item per URL (no playlists), no live streams, the size cap and the deadline hold across all requests.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import yt_dlp
from yt_dlp.networking import Request
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import DownloadCancelled, UnsupportedError, sanitize_url

from core.config import Config
from core.errors import BlockedURLError, CoreError, FetchError, InputError, TooLargeError
from core.fetch.proxy import GuardedProxy
from core.fetch.url_guard import Deadline, Guard, Target

log = logging.getLogger("core.fetch.sources")

FORMAT = "bestaudio[protocol^=http]/best[protocol^=http]"
_LIVE = {"is_live", "is_upcoming", "post_live"}


@functools.lru_cache(maxsize=1)
def _site_extractors():
    return [ie for ie in yt_dlp.extractor.gen_extractor_classes() if ie.ie_key() != "Generic"]


def site_extractor(url: str) -> str | None:
    """The yt-dlp extractor made for this URL's site (e.g. "Youtube"), or None for any other URL.

    Such URLs go straight to yt-dlp: a plain GET of them would only fetch a page (or be refused as a bot)."""
    return next((ie.ie_key() for ie in _site_extractors() if ie.suitable(url)), None)


class _GuardedYoutubeDL(yt_dlp.YoutubeDL):
    """YoutubeDL whose every request is vetted and forced through the guarded proxy."""

    def __init__(self, params: dict, guard: Guard, proxy: GuardedProxy, start: Target) -> None:
        self._guard, self._proxy, self._start = guard, proxy, start
        super().__init__(params)

    def urlopen(self, req):
        if isinstance(req, str):
            req = Request(req)
        if not isinstance(req, Request):
            raise FetchError("an unsupported request type was refused")
        try:
            self._guard.check_url(sanitize_url(req.url))
        except CoreError:
            error = led_astray(self._start)
            self._proxy.record(error)
            raise error from None
        req.headers.pop("Ytdl-Request-Proxy", None)  # an extractor's way to pick another proxy
        req.proxies = {"all": self._proxy.url}
        return super().urlopen(req)


class _Logger:
    """yt-dlp's output goes to our log (never to stdout); the last messages are kept to classify failures."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def _keep(self, msg: str) -> None:
        self.messages = (self.messages + [msg])[-20:]

    def debug(self, msg: str) -> None:
        self._keep(msg)
        log.debug("yt-dlp: %s", msg)

    info = debug

    def warning(self, msg: str) -> None:
        self._keep(msg)
        log.info("yt-dlp: %s", msg)

    error = warning  # reported to the user as our own error, see _explain


def download(url: str, start: Target, *, guard: Guard, deadline: Deadline, config: Config, progress,
             dest: Path) -> Path:
    """Download the best audio of the page at `url` into `dest`; returns the file."""
    logger = _Logger()

    def check(info: dict, incomplete: bool = False) -> None:
        if info.get("is_live") or info.get("live_status") in _LIVE:
            raise InputError(f"the media at {start.host} is a live stream (or not yet processed); "
                             "only recordings can be transcribed")
        size = info.get("filesize") or info.get("filesize_approx")
        if not incomplete and size and size > config.max_download_bytes:
            raise TooLargeError.over_download_limit(config.max_download_bytes)

    stopped: list[BaseException] = []

    def hook(d: dict) -> None:
        total = d.get("total_bytes") or d.get("total_bytes_estimate")
        try:
            progress(d.get("downloaded_bytes") or 0, total, final=d.get("status") == "finished")
        except BaseException as e:  # the caller cancels by raising from its progress callback
            stopped.append(e)
            raise DownloadCancelled("stopped by the caller") from None

    with GuardedProxy(guard, deadline, config.max_download_bytes) as proxy:
        params = {
            "format": FORMAT, "noplaylist": True, "playlist_items": "1", "match_filter": check,
            "outtmpl": {"default": str(dest / "media.%(ext)s")},
            "proxy": proxy.url, "socket_timeout": max(60.0, 2 * config.connect_timeout_s),
            "retries": 1, "fragment_retries": 1, "extractor_retries": 0, "file_access_retries": 0,
            "max_filesize": config.max_download_bytes, "progress_hooks": [hook],
            "postprocessors": [], "fixup": "never", "external_downloader": {},
            "ffmpeg_location": str(dest / "no-ffmpeg"), "cachedir": False, "noprogress": True, "quiet": True,
            "no_warnings": False, "logger": logger, "color": "no_color", "overwrites": True,
        }
        try:
            with _GuardedYoutubeDL(params, guard, proxy, start) as ydl:
                ydl.extract_info(url, download=True)
        except Exception as e:
            if stopped:
                raise stopped[0]
            raise _explain(e, start, proxy, deadline) from None
        if isinstance(proxy.failure, TooLargeError):  # a cut-off stream can look finished to yt-dlp
            raise proxy.failure
        if deadline.expired:
            raise deadline.error(start.host)
        files = [p for p in dest.iterdir() if p.is_file() and not p.is_symlink() and p.name.startswith("media.")
                 and not p.name.endswith((".part", ".ytdl", ".temp"))]
        if not files:
            if any("max-filesize" in m for m in logger.messages):
                raise TooLargeError.over_download_limit(config.max_download_bytes)
            raise FetchError(f"no audio or video was downloaded from {start.host}")
        return files[0]


def led_astray(start: Target) -> BlockedURLError:
    """A request the page led to was refused (the user's own URL was vetted before yt-dlp started)."""
    return BlockedURLError(f"the page at {start.host} leads to a private, local or malformed address, "
                           "which is not fetched")


def _explain(e: Exception, start: Target, proxy: GuardedProxy, deadline: Deadline) -> CoreError:
    """Turn yt-dlp's failure into an error a user can act on (its own text may hold paths, URLs and tracebacks)."""
    failure = proxy.failure
    if isinstance(failure, TooLargeError):
        return failure
    if isinstance(e, CoreError):  # ours, raised inside yt-dlp (a refused request, a live stream, the size)
        return e
    log.info("yt-dlp failed on %s: %r", start.host, e)
    if isinstance(failure, (BlockedURLError, InputError)):
        return led_astray(start)
    if deadline.expired:
        return deadline.error(start.host)
    causes = _causes(e)
    if any(isinstance(c, UnsupportedError) for c in causes):
        return FetchError(f"found no audio or video at {start.host} (yt-dlp does not support this page)")
    if "requested format is not available" in str(e).lower():
        return FetchError(f"{start.host} offers no audio that can be downloaded over plain http(s)")
    status = next((c.status for c in causes if isinstance(c, HTTPError)), None)
    if status is not None:
        return FetchError(f"{start.host} answered HTTP {status}")
    return failure or FetchError(f"could not get media from {start.host}")


def _causes(e: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (yt-dlp nests errors in exc_info, cause and __cause__)."""
    seen: list[BaseException] = []
    todo = [e]
    while todo and len(seen) < 20:
        cur = todo.pop()
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        exc_info = getattr(cur, "exc_info", None)
        todo += [getattr(cur, "cause", None), cur.__cause__, cur.__context__,
                 exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None]
        todo = [c for c in todo if isinstance(c, BaseException)]
    return seen
