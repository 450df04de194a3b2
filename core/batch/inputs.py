"""Inputs -> the batch's items: files, folders (recursively, media files only), list files and podcast feeds.

Problems with an input (an empty folder, a list line that is neither a file nor a URL, a URL that is not a feed)
are collected as messages and never stop the other inputs.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.batch.feeds import FeedOptions, feed_items, looks_like_feed
from core.batch.items import BatchItem, Plan, clean_name, is_media_file, stem_for, unique_names
from core.audio.decode import probe_duration
from core.config import Config
from core.fetch.sources import is_url

LIST_SUFFIXES = (".txt", ".list", ".lst", ".m3u")  # a local file with one of these is a list of inputs

def collect(inputs, config: Config, *, limit: int | None = None, since=None) -> Plan:
    """The items of every input, in order, named uniquely. `limit` and `since` apply to each feed."""
    plan = Plan()
    feed_options = FeedOptions(limit=limit, since=since)
    for raw in inputs:
        text = str(raw).strip()
        if not text:
            plan.problems.append("an empty input was given")
            continue
        if is_url(text):
            kind = looks_like_feed(text, config)
            if kind is None:
                plan.items.append(BatchItem(text, stem_for(text), text))
            else:
                plan.expanded = True
                feed_items(kind, feed_options, config, plan)
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            plan.expanded = True
            _folder(path, plan)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            plan.expanded = True
            _list_file(path, plan)
        elif path.is_file():
            plan.items.append(_file_item(path, path.stem, text))
        else:
            plan.problems.append(f"{text}: the input is neither an existing file or folder nor an http(s) URL")
    plan.items = unique_names(_once(plan.items))
    return plan


def _once(items: list[BatchItem]) -> list[BatchItem]:
    """Each recording once, however many inputs lead to it (a folder and a list naming the same file)."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.source if is_url(item.source) else os.path.realpath(item.source)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _file_item(path: Path, name: str, origin: str) -> BatchItem:
    return BatchItem(str(path), name, origin, duration_s=probe_duration(path))  # the header's, not decoded


def _folder(folder: Path, plan: Plan) -> None:
    """Media files under `folder`, in path order, named by their path inside it; hidden files and folders skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            path = Path(root) / f
            if not f.startswith(".") and is_media_file(path) and path.is_file():
                found.append(path)
    if not found:
        kinds = ", ".join("." + e for e in ("mp3", "m4a", "wav", "flac", "ogg", "opus", "mp4", "webm"))
        plan.problems.append(f"{folder}: no audio or video files in this folder or below it (looked for {kinds} "
                             "and other media extensions)")
        return
    for path in found:
        rel = path.relative_to(folder).with_suffix("")
        plan.items.append(_file_item(path, "/".join(clean_name(p) for p in rel.parts), str(path)))


def _list_file(path: Path, plan: Plan) -> None:
    """One path or URL a line; blank lines and lines starting with '#' are skipped; relative paths are read from
    the list's own folder. Bad lines are named with their numbers; the good ones still run."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        plan.problems.append(f"{path}: this list is not UTF-8 text; give one path or URL a line")
        return
    except OSError as e:
        plan.problems.append(f"{path}: cannot read this list ({e.strerror or type(e).__name__})")
        return
    bad, count = [], 0
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        count += 1
        if is_url(entry):
            plan.items.append(BatchItem(entry, stem_for(entry), f"{path}:{number}"))
            continue
        target = Path(entry).expanduser()
        target = target if target.is_absolute() else path.parent / target
        if target.is_file() and is_media_file(target):
            plan.items.append(_file_item(target, target.stem, f"{path}:{number}"))
        elif target.is_dir():
            _folder(target, plan)
        elif target.is_file():
            bad.append(f"line {number}: {_shown(entry)} is not an audio or video file (by its extension)")
        else:
            bad.append(f"line {number}: {_shown(entry)} is neither an existing file nor an http(s) URL")
    for message in bad:
        plan.problems.append(f"{path} {message}")
    if not count:
        plan.problems.append(f"{path}: this list is empty; give one path or URL a line ('#' starts a comment)")


def _shown(entry: str) -> str:
    return repr(entry if len(entry) <= 80 else entry[:77] + "...")


