"""Transcript -> JSON, SRT, WebVTT or plain text: one small writer class per format, over a text stream.

Subtitle cues come from segments: each is wrapped at word boundaries into lines of at most MAX_LINE_WIDTH columns;
a segment that needs more than two lines becomes several cues, timed from its words (or by character share when it
has none). The JSON dict and its inverse, `transcript_from_dict`, live in core.output.transcript_json.

Speaker labels (a diarized transcript, core.output.speakers): SRT starts the first cue of each speaker's turn with
"Name: ", WebVTT puts every cue in a voice span `<v Name>`, TXT writes a "Name: text" paragraph per turn with a
blank line between turns. Without labels every format is as it was before diarization existed.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, TextIO

from core.errors import InputError
from core.output.speakers import is_diarized, join_texts, label, turns, voice_annotation
from core.output.text import MAX_LINE_WIDTH, display_width, ends_clause, ends_sentence
from core.output.transcript_json import transcript_from_dict, transcript_to_dict  # noqa: F401 (re-exported)
from core.types import Segment, Transcript

FORMATS = ("json", "srt", "vtt", "txt")
MAX_LINES = 2
_WORD = re.compile(r"\S+")
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
        if not is_diarized(transcript):  # a line per segment
            for seg in transcript.segments:
                line = " ".join(seg.text.split())
                if line:
                    stream.write(line + "\n")
            return
        for number, (speaker, texts) in enumerate(turns(transcript.segments)):  # a paragraph per turn
            head = f"{label(speaker)}: " if speaker is not None else ""
            stream.write(("\n" if number else "") + head + join_texts(texts) + "\n")


class WriteJSON(ResultWriter):
    extension = "json"

    def write(self, transcript: Transcript, stream: TextIO) -> None:
        try:
            text = json.dumps(transcript_to_dict(transcript), ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise InputError("the transcript holds a time that is not a finite number") from None
        stream.write(text + "\n")


class SubtitlesWriter(ResultWriter):
    """Cue timing and line breaking shared by SRT and WebVTT; subclasses only format a cue."""

    always_include_hours = True
    decimal_marker = "."
    label_turns = False  # put "Name: " in front of the first cue of each speaker's turn

    def timestamp(self, seconds: float) -> str:
        return format_timestamp(seconds, always_include_hours=self.always_include_hours,
                                decimal_marker=self.decimal_marker)

    def write(self, transcript: Transcript, stream: TextIO) -> None:
        for number, cue in enumerate(cues(transcript, label_turns=self.label_turns), start=1):
            stream.write(self.format_cue(number, cue.start, cue.end, cue.lines, cue.speaker))

    def format_cue(self, number: int, start: float, end: float, lines: list[str], speaker: str | None = None) -> str:
        raise NotImplementedError


class WriteSRT(SubtitlesWriter):
    extension = "srt"
    decimal_marker = ","
    label_turns = True

    def format_cue(self, number: int, start: float, end: float, lines: list[str], speaker: str | None = None) -> str:
        body = "\n".join(line.replace("-->", "->") for line in lines)
        return f"{number}\n{self.timestamp(start)} --> {self.timestamp(end)}\n{body}\n\n"


class WriteVTT(SubtitlesWriter):
    extension = "vtt"

    def write(self, transcript: Transcript, stream: TextIO) -> None:
        stream.write("WEBVTT\n\n")
        super().write(transcript, stream)

    def format_cue(self, number: int, start: float, end: float, lines: list[str], speaker: str | None = None) -> str:
        # Cue text is markup in WebVTT: a bare "<" or "&" would be read as a tag or an entity.
        body = "\n".join(line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in lines)
        voice = voice_annotation(speaker) if speaker is not None else ""
        if voice:  # the whole cue in the speaker's voice span; a span that ends with its cue needs no </v>
            body = f"<v {voice}>{body}"
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


def output_paths(out_dir, stem: str, formats: Iterable[str]) -> list[Path]:
    """Where `write_files` puts each format: `<out_dir>/<stem>.<ext>`, one path per distinct extension."""
    extensions = dict.fromkeys(get_writer(f).extension for f in formats)  # every format is checked first
    name = safe_stem(stem)
    return [Path(out_dir) / f"{name}.{ext}" for ext in extensions]


def write_files(transcript: Transcript, out_dir, stem: str, formats: Iterable[str]) -> list[Path]:
    """Write `output_paths(...)`; each file appears whole or not at all. Returns the paths."""
    writers = {get_writer(f).extension: get_writer(f) for f in formats}
    paths = output_paths(out_dir, stem, formats)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in paths:
        writer = writers[path.suffix[1:]]
        part = path.with_name(path.name + ".part")
        try:
            with open(part, "w", encoding="utf-8", newline="") as stream:
                writer.write(transcript, stream)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
    return paths


def safe_stem(stem: str) -> str:
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


class Cue(NamedTuple):
    start: float
    end: float
    lines: list[str]
    speaker: str | None  # the segment's speaker


def subtitle_cues(transcript: Transcript, max_width: int = MAX_LINE_WIDTH,
                  max_lines: int = MAX_LINES) -> Iterator[tuple[float, float, list[str]]]:
    """(start, end, lines) per cue: times never go backwards, cues never overlap, all inside the duration."""
    for cue in cues(transcript, max_width, max_lines):
        yield cue.start, cue.end, cue.lines


def cues(transcript: Transcript, max_width: int = MAX_LINE_WIDTH, max_lines: int = MAX_LINES, *,
         label_turns: bool = False) -> Iterator[Cue]:
    """The cues of `subtitle_cues` with their speaker; with `label_turns`, the text of the first cue of each
    speaker's turn starts with "Name: " (kept on one line, counted in the line's width)."""
    limit = transcript.duration if transcript.duration > 0 else math.inf
    prev_end, prev_speaker = 0.0, None
    for seg in transcript.segments:
        text = " ".join(seg.text.split())
        if not text:
            continue
        name = label(seg.speaker) if label_turns and seg.speaker is not None and seg.speaker != prev_speaker else ""
        prev_speaker = seg.speaker
        keep = len(name) + 1 if name else 0  # "Name:", one unit
        if keep:
            text = f"{name}: {text}"
        units = _units(text, max_width, keep)
        lines = _wrap(text, units, max_width)
        groups = [_balanced(text, [u for line in lines[i:i + max_lines] for u in line], max_width,
                            bool(keep) and i == 0)
                  for i in range(0, len(lines), max_lines)]
        anchors = _anchors(text, seg, keep)
        for group in groups:
            start = min(max(_time_at(anchors, group[0][0].start, True), prev_end), limit)
            end = min(max(_time_at(anchors, group[-1][-1].end, False), start), limit)
            prev_end = end
            yield Cue(start, end, [_line_text(text, line) for line in group], seg.speaker)


@lru_cache(maxsize=None)
def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _units(text: str, max_width: int, keep: int = 0) -> list[_Unit]:
    """Words; a word holding wide characters, or too wide for a line, splits into characters (punctuation and
    combining marks stay with the character before, opening brackets with the one after). `text[:keep]` (a
    speaker's label) is one unit, never broken."""
    units: list[_Unit] = [_Unit(0, keep, False, display_width(text[:keep]))] if keep else []
    for m in _WORD.finditer(text, keep):
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


def _balanced(text: str, units: list[_Unit], max_width: int, labelled: bool = False) -> list[list[_Unit]]:
    """One line if it fits, else the two-line split with the shorter longer line, counting a first line that ends
    at punctuation as PUNCTUATION_BONUS columns shorter (ties: the longer second line). A `labelled` first unit (a
    speaker's "Name:") keeps a word after it on its line."""
    upto = [0]  # upto[k]: the width of the first k units as one line
    for k, u in enumerate(units):
        upto.append(upto[-1] + u.width + (1 if u.spaced and k else 0))
    total = upto[-1]
    if total <= max_width:
        return [units]
    best, best_key = _wrap(text, units, max_width), None
    for k in range(1 + labelled, len(units)):
        w1, w2 = upto[k], total - upto[k] - (1 if units[k].spaced else 0)  # no space opens the second line
        if w1 > max_width or w2 > max_width:
            continue
        first = _line_text(text, units[:k])
        key = (max(w1, w2) - (PUNCTUATION_BONUS if ends_clause(first) or ends_sentence(first) else 0), w1)
        if best_key is None or key < best_key:
            best, best_key = [units[:k], units[k:]], key
    return best


def _anchors(text: str, seg: Segment, pos: int = 0) -> tuple[list[int], list[float]]:
    """Character positions and times from the segment's edges and each word found in its text from `pos` on (after
    a speaker's label); times made non-decreasing."""
    where, times = [0], [seg.start]
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
