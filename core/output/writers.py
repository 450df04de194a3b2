"""Transcript -> JSON, SRT, WebVTT or plain text: one small writer class per format, over a text stream.

Subtitle cues come from segments: each is wrapped at word boundaries into lines of at most MAX_LINE_WIDTH columns;
a segment that needs more than two lines becomes several cues, timed from its words (or by character share when it
has none). `transcript_from_dict` is the JSON writer's inverse, for results that crossed a network.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass, fields, is_dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from core.errors import InputError
from core.output.text import MAX_LINE_WIDTH, display_width, ends_clause, ends_sentence
from core.types import Segment, Transcript, Word

FORMATS = ("json", "srt", "vtt", "txt")
MAX_LINES = 2
PUNCTUATION_BONUS = 10  # columns of imbalance worth accepting to break a two-line cue after a comma or full stop


def format_timestamp(seconds: float, *, always_include_hours: bool = False, decimal_marker: str = ".") -> str:
    """`[HH:]MM:SS.mmm`, rounded to the millisecond; hours appear when asked for or when there are any."""
    if not math.isfinite(seconds) or seconds < -0.0005:
        raise InputError(f"a timestamp must be a non-negative number of seconds, not {seconds!r}")
    ms = round(max(seconds, 0.0) * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    head = f"{hours:02d}:" if always_include_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


class ResultWriter:
    """Writes one transcript to an open text stream in one format."""

    extension: str = ""

    def write(self, transcript: Transcript, stream: TextIO) -> None:
        raise NotImplementedError


class WriteTXT(ResultWriter):
    extension = "txt"

    def write(self, transcript: Transcript, stream: TextIO) -> None:
        for seg in transcript.segments:
            line = " ".join(seg.text.split())
            if line:
                stream.write(line + "\n")


class WriteJSON(ResultWriter):
    extension = "json"

    def write(self, transcript: Transcript, stream: TextIO) -> None:
        try:
            text = json.dumps(transcript_to_dict(transcript), ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise InputError("the transcript holds a time that is not a finite number") from None
        stream.write(text + "\n")


def transcript_to_dict(transcript: Transcript) -> dict:
    """The JSON shape of a transcript: `asdict` with seconds rounded to the millisecond."""
    if _field_names(type(transcript)) is None:
        return _rounded(asdict(transcript))  # not a dataclass: asdict raises as it always did
    return _plain(transcript)


@lru_cache(maxsize=None)
def _field_names(kind: type) -> tuple[str, ...] | None:
    return tuple(f.name for f in fields(kind)) if is_dataclass(kind) else None


@dataclass
class _Box:
    value: object


def _plain(value):
    """`_rounded(asdict(...))` in one walk: asdict deep-copies every leaf and looks up fields per object, which made
    the JSON of an hour (9,000 words) cost 50 ms. Types a transcript does not hold take that old path."""
    kind = type(value)
    if kind is float:
        return round(value, 3)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is list:
        return [_plain(v) for v in value]
    if kind is dict and all(type(k) is str for k in value):
        return {k: _plain(v) for k, v in value.items()}
    names = _field_names(kind)
    if names is not None:
        out = {}
        for name in names:  # a Word's floats and text without a call each: a quarter less time
            v = getattr(value, name)
            out[name] = round(v, 3) if type(v) is float else v if type(v) is str else _plain(v)
        return out
    return _rounded(asdict(_Box(value)).pop("value"))  # what asdict makes of a field holding this value


def _rounded(value):
    """Seconds to the millisecond: sub-millisecond digits are noise and bloat long transcripts."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


class SubtitlesWriter(ResultWriter):
    """Cue timing and line breaking shared by SRT and WebVTT; subclasses only format a cue."""

    always_include_hours = True
    decimal_marker = "."

    def timestamp(self, seconds: float) -> str:
        return format_timestamp(seconds, always_include_hours=self.always_include_hours,
                                decimal_marker=self.decimal_marker)

    def write(self, transcript: Transcript, stream: TextIO) -> None:
        for number, (start, end, lines) in enumerate(subtitle_cues(transcript), start=1):
            stream.write(self.format_cue(number, start, end, lines))

    def format_cue(self, number: int, start: float, end: float, lines: list[str]) -> str:
        raise NotImplementedError


class WriteSRT(SubtitlesWriter):
    extension = "srt"
    decimal_marker = ","

    def format_cue(self, number: int, start: float, end: float, lines: list[str]) -> str:
        body = "\n".join(line.replace("-->", "->") for line in lines)
        return f"{number}\n{self.timestamp(start)} --> {self.timestamp(end)}\n{body}\n\n"


class WriteVTT(SubtitlesWriter):
    extension = "vtt"

    def write(self, transcript: Transcript, stream: TextIO) -> None:
        stream.write("WEBVTT\n\n")
        super().write(transcript, stream)

    def format_cue(self, number: int, start: float, end: float, lines: list[str]) -> str:
        # Cue text is markup in WebVTT: a bare "<" or "&" would be read as a tag or an entity.
        body = "\n".join(line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in lines)
        return f"{self.timestamp(start)} --> {self.timestamp(end)}\n{body}\n\n"


_WRITERS: dict[str, type[ResultWriter]] = {"json": WriteJSON, "srt": WriteSRT, "vtt": WriteVTT, "txt": WriteTXT}


def get_writer(fmt: str) -> ResultWriter:
    """The writer for 'json', 'srt', 'vtt' or 'txt' (any case, leading dot allowed)."""
    key = str(fmt).strip().lower().lstrip(".")
    if key not in _WRITERS:
        raise InputError(f"unknown output format {str(fmt)[:20]!r}; use one of: {', '.join(FORMATS)}")
    return _WRITERS[key]()


def to_string(transcript: Transcript, fmt: str) -> str:
    """The transcript rendered in one format, as a string."""
    buffer = io.StringIO()
    get_writer(fmt).write(transcript, buffer)
    return buffer.getvalue()


def write_files(transcript: Transcript, out_dir, stem: str, formats: Iterable[str]) -> list[Path]:
    """Write `<out_dir>/<stem>.<ext>` per format; each file appears whole or not at all. Returns the paths."""
    writers = [get_writer(f) for f in formats]  # every format is checked before anything is written
    writers = list({w.extension: w for w in writers}.values())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = _safe_stem(stem)
    paths = []
    for writer in writers:
        path = out / f"{name}.{writer.extension}"
        part = path.with_name(path.name + ".part")
        try:
            with open(part, "w", encoding="utf-8", newline="") as stream:
                writer.write(transcript, stream)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
        paths.append(path)
    return paths


def _safe_stem(stem: str) -> str:
    """A file name that stays inside out_dir whatever the stem came from (an upload's name, a URL)."""
    name = re.sub(r'[\x00-\x1f/\\:*?"<>|]', "_", str(stem)).strip(" .")[:150]
    return name or "transcript"


# --- subtitle cues ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Unit:
    """A run of segment text a line may not break inside: a word, or one character of a CJK run."""

    start: int
    end: int
    spaced: bool  # whitespace separated it from the unit before
    width: int = 0  # display columns


def subtitle_cues(transcript: Transcript, max_width: int = MAX_LINE_WIDTH,
                  max_lines: int = MAX_LINES) -> Iterator[tuple[float, float, list[str]]]:
    """(start, end, lines) per cue: times never go backwards, cues never overlap, all inside the duration."""
    limit = transcript.duration if transcript.duration > 0 else math.inf
    prev_end = 0.0
    for seg in transcript.segments:
        text = " ".join(seg.text.split())
        units = _units(text, max_width)
        if not units:
            continue
        lines = _wrap(text, units, max_width)
        groups = [_balanced(text, [u for line in lines[i:i + max_lines] for u in line], max_width)
                  for i in range(0, len(lines), max_lines)]
        anchors = _anchors(text, seg)
        for group in groups:
            start = min(max(_time_at(anchors, group[0][0].start, True), prev_end), limit)
            end = min(max(_time_at(anchors, group[-1][-1].end, False), start), limit)
            prev_end = end
            yield start, end, [_line_text(text, line) for line in group]


@lru_cache(maxsize=None)
def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _units(text: str, max_width: int) -> list[_Unit]:
    """Words; a word holding wide characters, or too wide for a line, splits into characters (punctuation and
    combining marks stay with the character before, opening brackets with the one after)."""
    units: list[_Unit] = []
    for m in re.finditer(r"\S+", text):
        a, b = m.span()
        word = m.group()
        if b - a <= max_width and word.isascii():  # the common case, settled without a look-up
            units.append(_Unit(a, b, bool(units), b - a))
            continue
        if display_width(word) <= max_width and not any(map(_is_wide, word)):
            units.append(_Unit(a, b, bool(units), display_width(word)))
            continue
        glue, first = False, len(units)
        for k in range(a, b):
            cat = unicodedata.category(text[k])
            trailing = cat[0] == "M" or (cat[0] == "P" and cat not in ("Ps", "Pi"))
            if k > a and (glue or trailing):
                units[-1].end = k + 1
            else:
                units.append(_Unit(k, k + 1, bool(units) and k == a))
            glue = cat in ("Ps", "Pi")
        for u in units[first:]:
            u.width = display_width(text[u.start:u.end])
    return units


def _line_text(text: str, line: list[_Unit]) -> str:
    """The units of a line with a space where the text had one: a slice, as `text` has single spaces only."""
    return text[line[0].start:line[-1].end]


def _wrap(text: str, units: list[_Unit], max_width: int) -> list[list[_Unit]]:
    """Greedy line filling."""
    lines: list[list[_Unit]] = []
    cur: list[_Unit] = []
    width = 0
    for u in units:
        w = u.width
        sep = 1 if cur and u.spaced else 0
        if cur and width + sep + w > max_width:
            lines.append(cur)
            cur, width, sep = [], 0, 0
        cur.append(u)
        width += sep + w
    if cur:
        lines.append(cur)
    return lines


def _balanced(text: str, units: list[_Unit], max_width: int) -> list[list[_Unit]]:
    """One line if it fits, else the two-line split with the shorter longer line, counting a first line that ends
    at punctuation as PUNCTUATION_BONUS columns shorter (ties: the longer second line)."""
    upto = [0]  # upto[k]: the width of the first k units as one line
    for k, u in enumerate(units):
        upto.append(upto[-1] + u.width + (1 if u.spaced and k else 0))
    total = upto[-1]
    if total <= max_width:
        return [units]
    best, best_key = _wrap(text, units, max_width), None
    for k in range(1, len(units)):
        w1, w2 = upto[k], total - upto[k] - (1 if units[k].spaced else 0)  # no space opens the second line
        if w1 > max_width or w2 > max_width:
            continue
        first = _line_text(text, units[:k])
        key = (max(w1, w2) - (PUNCTUATION_BONUS if ends_clause(first) or ends_sentence(first) else 0), w1)
        if best_key is None or key < best_key:
            best, best_key = [units[:k], units[k:]], key
    return best


def _anchors(text: str, seg: Segment) -> tuple[list[int], list[float]]:
    """Character positions and times from the segment's edges and each word found in its text; times made
    non-decreasing."""
    where, times, pos = [0], [seg.start], 0
    for word in seg.words:
        needle = " ".join(word.text.split())
        at = text.find(needle, pos) if needle else -1
        if at >= 0:
            pos = at + len(needle)
            where += (at, pos)
            times += (word.start, word.end)
    where.append(len(text))
    times.append(seg.end)
    return where, list(accumulate(times, max, initial=-math.inf))[1:]


def _time_at(anchors: tuple[list[int], list[float]], p: int, is_start: bool) -> float:
    """Time at character `p`; where two anchors share it, a cue start takes the later and a cue end the earlier."""
    where, times = anchors
    i = bisect_right(where, p) - 1 if is_start else bisect_left(where, p)
    if 0 <= i < len(where) and where[i] == p:
        return times[i]
    a, b = bisect_left(where, p) - 1, bisect_right(where, p)
    return times[a] + (times[b] - times[a]) * (p - where[a]) / (where[b] - where[a])


# --- JSON back to a Transcript ----------------------------------------------------------------------------------


def transcript_from_dict(d) -> Transcript:
    """The inverse of the JSON writer; a malformed dict is an InputError naming the bad field."""
    obj = _expect(d, dict, "the transcript", "an object")
    segments = [_segment(s, f"segments[{i}]") for i, s in enumerate(_expect(obj.get("segments"), list,
                                                                              "segments", "a list"))]
    warnings = _expect(obj.get("warnings", []), list, "warnings", "a list")
    timings = _expect(obj.get("timings", {}), dict, "timings", "an object")
    return Transcript(
        language=_expect(obj.get("language"), str, "language", "a string"),
        duration=_seconds(obj.get("duration"), "duration"),
        text=_expect(obj.get("text"), str, "text", "a string"),
        segments=segments,
        warnings=[_expect(w, str, f"warnings[{i}]", "a string") for i, w in enumerate(warnings)],
        timings={_expect(k, str, "timings", "an object with text keys"): _seconds(v, f"timings.{k}")
                 for k, v in timings.items()},
    )


def _segment(d, where: str) -> Segment:
    obj = _expect(d, dict, where, "an object")
    words = _expect(obj.get("words", []), list, f"{where}.words", "a list")
    return Segment(start=_seconds(obj.get("start"), f"{where}.start"), end=_seconds(obj.get("end"), f"{where}.end"),
                   text=_expect(obj.get("text"), str, f"{where}.text", "a string"),
                   words=[_word(w, f"{where}.words[{i}]") for i, w in enumerate(words)])


def _word(d, where: str) -> Word:
    obj = _expect(d, dict, where, "an object")
    return Word(start=_seconds(obj.get("start"), f"{where}.start"), end=_seconds(obj.get("end"), f"{where}.end"),
                text=_expect(obj.get("text"), str, f"{where}.text", "a string"))


def _expect(value, kind: type, where: str, what: str):
    if not isinstance(value, kind):
        raise InputError(f"malformed transcript: {where[:60]} must be {what}")
    return value


def _seconds(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"malformed transcript: {where[:60]} must be a non-negative number of seconds")
    return float(value)
