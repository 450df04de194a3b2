"""A batch's items and their output names.

Every item gets an output name, relative to the output folder and unique in the batch, that is the same on every
run (a folder's files keep their subfolders, a feed's episodes are named by date and title): a rerun finds what
is already written.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from core.fetch.sources import MEDIA_EXTENSIONS
from core.output.writers import safe_stem

NAME_CHARS = 120


@dataclass(frozen=True)
class BatchItem:
    """One recording to transcribe. `name` is its output path without extension ("season 1/ep01"); `refused` is
    why it will not be sent at all (a feed's enclosure on a private address), empty when it will."""
    source: str
    name: str
    origin: str  # what the user gave that led here: the path, the list line, the feed URL
    title: str = ""
    published: str = ""  # ISO date, for a feed's episodes
    duration_s: float | None = None  # from the file's header or the feed; None when unknown before decoding
    refused: str = ""


@dataclass
class Plan:
    items: list[BatchItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # inputs that gave nothing usable, said for people
    expanded: bool = False  # a folder, list or feed was among the inputs

    @property
    def known_duration_s(self) -> float:
        return sum(i.duration_s for i in self.items if i.duration_s)

    @property
    def unknown_durations(self) -> int:
        return sum(1 for i in self.items if not i.duration_s and not i.refused)


def clean_name(text: str) -> str:
    """A file name (no folders) from any text: the writers' rule (`safe_stem`), spaces collapsed, length bounded."""
    return safe_stem(safe_stem(" ".join(text.split()))[:NAME_CHARS])


def stem_for(source: str) -> str:
    """Output name for a single file or URL: the file name without extension, or the URL path's last part."""
    name = unquote(source.rstrip("/").split("?")[0].split("#")[0].rsplit("/", 1)[-1])
    stem = Path(name).stem if name else ""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem).strip("._")
    return safe or "transcript"


def is_media_file(path: Path) -> bool:
    return path.suffix.lower().lstrip(".") in MEDIA_EXTENSIONS


def unique_names(items: list[BatchItem]) -> list[BatchItem]:
    """Second and later items with the same name (any letter case) get "-2", "-3"…, in input order."""
    seen: set[str] = set()
    out = []
    for item in items:
        name, n = item.name, 1
        while name.lower() in seen:
            n += 1
            name = f"{item.name}-{n}"
        seen.add(name.lower())
        out.append(item if name == item.name else replace(item, name=name))
    return out


def output_parts(name: str) -> tuple[str, str]:
    """An item's name as (subfolder, stem): "season 1/ep01" -> ("season 1", "ep01")."""
    pure = PurePosixPath(name)
    return str(pure.parent) if str(pure.parent) != "." else "", pure.name
