"""`batch.json`: what happened to each item of the batches written to one output folder.

It is rewritten (whole, atomically) after every item, so an interrupted batch leaves a true record. Entries are
keyed by output name: a rerun updates the entries it touches and keeps the others, so the file describes the
folder, and `--retry-failed` finds the failures of earlier runs there.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core.batch.items import BatchItem
from core.errors import InputError

BATCH_FILE = "batch.json"
RECORD_VERSION = 1
STATUSES = ("done", "skipped", "failed", "refused", "cancelled")
RETRIED = ("failed", "cancelled")  # what --retry-failed runs again; "refused" would only be refused again
UNFINISHED = ("failed", "refused", "cancelled")


@dataclass
class ItemResult:
    source: str
    name: str
    status: str
    origin: str = ""
    title: str = ""
    published: str = ""
    duration_s: float | None = None  # the recording's length: measured when done, else what was known before
    seconds: float | None = None  # wall time of this item's job
    error: str = ""
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, item: BatchItem, status: str, **values) -> "ItemResult":
        known = dict(source=item.source, name=item.name, status=status, origin=item.origin, title=item.title,
                     published=item.published, duration_s=item.duration_s)
        return cls(**{**known, **values})

    def item(self) -> BatchItem:
        return BatchItem(self.source, self.name, self.origin, self.title, self.published, self.duration_s)


@dataclass
class BatchReport:
    results: list[ItemResult]
    problems: list[str]
    wall_s: float
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failures(self) -> list[ItemResult]:
        return [r for r in self.results if r.status in UNFINISHED]

    @property
    def audio_s(self) -> float:
        """Audio transcribed in this run (skipped items not counted)."""
        return sum(r.duration_s or 0.0 for r in self.results if r.status == "done")

    @property
    def ok(self) -> bool:
        return not self.failures and not self.problems and not self.interrupted


def read_record(output_dir) -> list[ItemResult]:
    """The entries of `<output_dir>/batch.json`; [] when there is none. A damaged file is an InputError."""
    path = Path(output_dir) / BATCH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError):
        raise InputError(f"{path} is not a batch record this program wrote; move it away to start afresh") from None
    names = {f.name for f in fields(ItemResult)}
    try:
        entries = [ItemResult(**{k: v for k, v in entry.items() if k in names}) for entry in data["items"]]
    except (KeyError, TypeError, AttributeError):
        entries = None
    if entries is None or not all(isinstance(e.name, str) and isinstance(e.source, str) and e.status in STATUSES
                                  for e in entries):
        raise InputError(f"{path} is not a batch record this program wrote; move it away to start afresh")
    return entries


class Record:
    """The output folder's batch.json while a batch runs: earlier entries plus this run's, written on each change."""

    def __init__(self, output_dir, previous: list[ItemResult], *, keep: bool = True) -> None:
        self.path = Path(output_dir) / BATCH_FILE
        self.entries: dict[str, ItemResult] = {e.name: e for e in previous}
        self.existed = bool(previous)
        self.keep = keep  # False: nothing is written (a single file's run leaves no batch.json behind)
        self.problems: list[str] = []

    def update(self, result: ItemResult) -> None:
        old = self.entries.get(result.name)
        if result.status == "skipped" and old is not None:
            if old.status == "done":  # the run that wrote the files says more than "skipped": keep its entry
                return
            result.duration_s = old.duration_s or result.duration_s
        self.entries[result.name] = result
        self.write()

    def write(self, wall_s: float | None = None) -> None:
        if not self.keep:
            return
        entries = list(self.entries.values())
        data = {"version": RECORD_VERSION, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "counts": {s: sum(1 for e in entries if e.status == s) for s in STATUSES},
                "problems": self.problems, "items": [asdict(e) for e in entries]}
        if wall_s is not None:
            data["last_run_wall_s"] = round(wall_s, 3)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_name(self.path.name + ".part")
        try:
            part.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
            os.replace(part, self.path)
        finally:
            part.unlink(missing_ok=True)
