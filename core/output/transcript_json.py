"""A Transcript as the JSON writer's dict, and back (`transcript_from_dict`, for results that crossed a network).

The dict is `dataclasses.asdict` with seconds rounded to the millisecond, except that speaker labels appear only
where there are some: a word's or segment's `speaker` when it is set, the top-level `speakers` when not empty. A
transcript without speaker labels therefore has the same JSON as before diarization existed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, is_dataclass
from functools import lru_cache

from core.errors import InputError
from core.output.speakers import name_problem
from core.types import Segment, Transcript, Word

SPEAKER_FIELDS = frozenset({"speaker", "speakers"})  # left out of the JSON while None / empty


def transcript_to_dict(transcript: Transcript) -> dict:
    """The JSON shape of a transcript: `asdict` with seconds rounded to the millisecond and unset speaker labels
    left out."""
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
            if not v and name in SPEAKER_FIELDS:
                continue
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


# --- JSON back to a Transcript ----------------------------------------------------------------------------------


def transcript_from_dict(d) -> Transcript:
    """The inverse of the JSON writer; a malformed dict is an InputError naming the bad field."""
    obj = _expect(d, dict, "the transcript", "an object")
    speakers = _speakers(obj.get("speakers", []))
    segments = [_segment(s, f"segments[{i}]", speakers)
                for i, s in enumerate(_expect(obj.get("segments"), list, "segments", "a list"))]
    warnings = _expect(obj.get("warnings", []), list, "warnings", "a list")
    timings = _expect(obj.get("timings", {}), dict, "timings", "an object")
    return Transcript(
        language=_expect(obj.get("language"), str, "language", "a string"),
        duration=_seconds(obj.get("duration"), "duration"),
        text=_expect(obj.get("text"), str, "text", "a string"),
        segments=segments,
        speakers=speakers,
        warnings=[_expect(w, str, f"warnings[{i}]", "a string") for i, w in enumerate(warnings)],
        timings={_expect(k, str, "timings", "an object with text keys"): _seconds(v, f"timings.{k}")
                 for k, v in timings.items()},
    )


def _speakers(value) -> list[str]:
    names = _expect(value, list, "speakers", "a list")
    for i, name in enumerate(names):
        problem = name_problem(name)
        if problem:
            raise InputError(f"malformed transcript: speakers[{i}] must be a speaker's name ({problem})")
    if len(set(names)) != len(names):
        raise InputError("malformed transcript: speakers must be a list of different names")
    return list(names)


def _speaker(value, where: str, speakers: list[str]) -> str | None:
    if value is not None and (not isinstance(value, str) or value not in speakers):
        raise InputError(f"malformed transcript: {where[:60]} must be one of the names in speakers")
    return value


def _segment(d, where: str, speakers: list[str]) -> Segment:
    obj = _expect(d, dict, where, "an object")
    words = _expect(obj.get("words", []), list, f"{where}.words", "a list")
    return Segment(start=_seconds(obj.get("start"), f"{where}.start"), end=_seconds(obj.get("end"), f"{where}.end"),
                   text=_expect(obj.get("text"), str, f"{where}.text", "a string"),
                   words=[_word(w, f"{where}.words[{i}]", speakers) for i, w in enumerate(words)],
                   speaker=_speaker(obj.get("speaker"), f"{where}.speaker", speakers))


def _word(d, where: str, speakers: list[str]) -> Word:
    obj = _expect(d, dict, where, "an object")
    return Word(start=_seconds(obj.get("start"), f"{where}.start"), end=_seconds(obj.get("end"), f"{where}.end"),
                text=_expect(obj.get("text"), str, f"{where}.text", "a string"),
                speaker=_speaker(obj.get("speaker"), f"{where}.speaker", speakers))


def _expect(value, kind: type, where: str, what: str):
    if not isinstance(value, kind):
        raise InputError(f"malformed transcript: {where[:60]} must be {what}")
    return value


def _seconds(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"malformed transcript: {where[:60]} must be a non-negative number of seconds")
    return float(value)
