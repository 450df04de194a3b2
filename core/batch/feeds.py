"""Podcast feeds: RSS or Atom, fetched through the URL guard, read with feedparser, one item per audio enclosure.

A feed is third-party content that names more URLs. Each enclosure is vetted before anything is sent: it must be
plain http(s), and with ALLOW_PRIVATE_URLS (tests, a home network) it may reach a non-public address only on the
feed's own host, so a feed cannot point this machine (or the RunPod worker) at the rest of a private network or
a cloud metadata address. A refused enclosure refuses that episode only.
"""
from __future__ import annotations

import calendar
import datetime as dt
import logging
from dataclasses import dataclass
from urllib.parse import urljoin

from core.batch.items import BatchItem, Plan, clean_name, is_media_file, stem_for
from core.config import Config
from core.errors import BlockedURLError, CoreError, InputError
from core.fetch.url_guard import Guard, check_url

log = logging.getLogger("core.batch")

PEEK_BYTES = 64 * 1024  # how much of a URL is read to tell a feed from audio or a page
MAX_FEED_BYTES = 32 * 1024 * 1024  # the largest podcast feeds (thousands of episodes) are around 10 MB
FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml",
              "application/x-rss+xml", "application/feed+xml"}
_FEED_TAGS = (b"<rss", b"<feed", b"<rdf:rdf")


@dataclass(frozen=True)
class FeedOptions:
    limit: int | None = None  # the newest N episodes (after `since`)
    since: dt.date | None = None  # episodes published on or after this day


@dataclass(frozen=True)
class FeedSource:
    """A URL that serves a feed: what it served on the first read (the whole feed when it was small)."""
    url: str
    fetched: object  # core.fetch.sources.Fetched


def looks_like_feed(url: str, config: Config) -> FeedSource | None:
    """A FeedSource when the URL serves RSS or Atom, else None (audio, a video page: one item). Known video sites
    are not asked; a URL that cannot be read here is left for the transcriber, which says why."""
    from core.fetch import pages
    from core.fetch.sources import read_url

    try:
        if pages.site_extractor(url) is not None:
            return None
        fetched = read_url(url, config=config, max_bytes=PEEK_BYTES, truncate=True)
    except CoreError:
        return None
    return FeedSource(url, fetched) if _is_feed(fetched.content_type, fetched.data) else None


def _is_feed(content_type: str, data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not head.startswith(b"<"):
        return False
    return content_type in FEED_TYPES or (content_type in ("", "text/plain", "application/octet-stream")
                                          and any(tag in head for tag in _FEED_TAGS))


def parse_since(text: str) -> dt.date:
    """--since: a day as YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since takes a day as YYYY-MM-DD, not {text[:40]!r}") from None


def feed_items(source: FeedSource, options: FeedOptions, config: Config, plan: Plan) -> None:
    """Add the feed's episodes with audio, newest first, to `plan`; a feed problem becomes one message."""
    from core.fetch.sources import read_url

    url = source.url
    try:
        fetched = source.fetched
        if fetched.truncated:
            fetched = read_url(url, config=config, max_bytes=MAX_FEED_BYTES)
        episodes = parse_feed(fetched.data, fetched.url)
    except CoreError as e:
        plan.problems.append(f"{url}: {e}")
        return
    if not episodes:
        plan.problems.append(f"{url}: this feed lists no episodes with an audio or video enclosure")
        return
    if options.since is not None:
        episodes = [e for e in episodes if e.published is not None and e.published.date() >= options.since]
        if not episodes:
            plan.problems.append(f"{url}: no episode was published on or after {options.since.isoformat()}")
            return
    if options.limit is not None:
        episodes = episodes[:options.limit]
    feed_host = check_url(fetched.url, allow_private=True).host
    vetted: dict[str, str] = {}  # one check per enclosure host, not one per episode
    for episode in episodes:
        host = episode.url.split("://", 1)[-1].split("/", 1)[0]
        if host not in vetted or vetted[host]:
            vetted[host] = enclosure_problem(episode.url, feed_host, config)
        plan.items.append(BatchItem(episode.url, episode.name, url, title=episode.title,
                                    published=episode.published.date().isoformat() if episode.published else "",
                                    duration_s=episode.duration_s, refused=vetted[host]))


@dataclass(frozen=True)
class Episode:
    url: str
    title: str
    published: dt.datetime | None
    duration_s: float | None

    @property
    def name(self) -> str:
        day = f"{self.published:%Y-%m-%d} " if self.published else ""
        return clean_name(day + (self.title or stem_for(self.url)))


def parse_feed(data: bytes, base_url: str) -> list[Episode]:
    """Episodes with an audio or video enclosure, newest first (undated ones last, in the feed's order)."""
    import feedparser

    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    if not parsed.get("version"):
        reason = parsed.get("bozo_exception")
        kind = "it is not XML" if reason is not None and not parsed.get("entries") else "it is XML of another kind"
        raise InputError(f"this is not an RSS or Atom feed ({kind}); give the podcast's feed URL, the one a podcast "
                         "app subscribes to")
    episodes = []
    for entry in parsed.entries:
        href = _enclosure(entry)
        if href is None:
            continue
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        published = dt.datetime.fromtimestamp(calendar.timegm(stamp), dt.timezone.utc) if stamp else None
        episodes.append(Episode(urljoin(base_url, href), str(entry.get("title") or "").strip(), published,
                                parse_duration(entry.get("itunes_duration"))))
    dated = sorted((e for e in episodes if e.published), key=lambda e: e.published, reverse=True)
    return dated + [e for e in episodes if not e.published]


def _enclosure(entry) -> str | None:
    """The entry's first audio or video enclosure (by type, else by file extension)."""
    enclosures = [e for e in entry.get("enclosures", []) if e.get("href")]
    for e in enclosures:
        if str(e.get("type", "")).lower().startswith(("audio/", "video/")):
            return e["href"]
    for e in enclosures:
        if is_media_file(_path_of(e["href"])):
            return e["href"]
    return None


def _path_of(url: str):
    from pathlib import PurePosixPath

    return PurePosixPath(url.split("?", 1)[0].split("#", 1)[0])


def parse_duration(value) -> float | None:
    """itunes:duration: seconds, MM:SS or HH:MM:SS; None when absent or unreadable."""
    if value is None:
        return None
    try:
        parts = [float(p) for p in str(value).strip().split(":")]
    except ValueError:
        return None
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts):
        return None
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds or None


def enclosure_problem(url: str, feed_host: str, config: Config) -> str:
    """Why the enclosure at `url` may not be fetched, or "" when it may (see the module's docstring)."""
    try:
        target = check_url(url, allow_private=True)  # the syntax: plain http(s), no credentials, no odd IPs
        if config.allow_private_urls and target.host == feed_host:
            return ""
        guard = Guard(allow_private=False, connect_timeout_s=config.connect_timeout_s)
        guard.check_url(url)
        guard.resolve(target.host, target.port)
    except BlockedURLError as e:
        return f"the feed points this episode at a non-public address, which is refused: {e}"
    except InputError as e:
        return f"the feed gives this episode an unusable URL: {e}"
    except CoreError as e:  # the name does not resolve here: the fetch will say so for this episode
        log.info("enclosure %s not resolved while planning: %s", url[:200], e)
    return ""
