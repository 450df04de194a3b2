"""Speaker labels in the outputs: the rules for a name, renaming speakers, and grouping segments into turns.

A transcript is diarized when its segments carry speakers (`Transcript.speakers` lists them in order of first
appearance; the JSON carries both only then, core.output.transcript_json). A turn is a run of consecutive segments
of one speaker; the writers label each turn once (SRT, TXT) or every cue (WebVTT voice spans).
"""
from __future__ import annotations

import unicodedata
from dataclasses import replace
from typing import Iterator

from core.errors import InputError
from core.types import Segment, Transcript

MAX_NAME_CHARS = 60
# Control characters, line and paragraph separators, lone surrogates: each would break a subtitle cue or a file.
_FORBIDDEN = frozenset({"Cc", "Cs", "Zl", "Zp"})


def name_problem(name) -> str | None:
    """What is wrong with `name` as a speaker's name (already stripped), or None when it is fine."""
    if not isinstance(name, str):
        return f"a speaker name must be text, not {type(name).__name__}"
    if not name:
        return "a speaker name cannot be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"the speaker name {name[:20]!r}… is {len(name)} characters long; the limit is {MAX_NAME_CHARS}"
    if any(unicodedata.category(ch) in _FORBIDDEN for ch in name):
        return f"the speaker name {name[:40]!r} holds a control character (a line break, tab or similar)"
    if name != name.strip():
        return f"the speaker name {name[:40]!r} starts or ends with a space"
    return None


def check_speaker_name(name) -> str:
    """`name` stripped, if it makes a speaker's name (text, 1 to MAX_NAME_CHARS characters, no control
    characters); else an InputError that says what is wrong."""
    cleaned = name.strip() if isinstance(name, str) else name
    problem = name_problem(cleaned)
    if problem:
        raise InputError(problem)
    return cleaned


def rename_speakers(transcript: Transcript, names: dict[str, str]) -> Transcript:
    """A copy of `transcript` with speakers renamed (`names` maps a current name to a new one; names it leaves out
    stay). Two speakers given the same name become one. Bad names, and names of speakers the transcript does not
    have, are InputErrors; the transcript itself is never changed."""
    if not isinstance(names, dict):
        raise InputError("speaker names must map each current name to its new name")
    unknown = [old for old in names if old not in transcript.speakers]
    if unknown:
        have = ", ".join(transcript.speakers)[:200] or "none: it has no speaker labels"
        raise InputError(f"this transcript has no speaker {str(unknown[0])[:40]!r}; its speakers are {have}")
    new = {old: check_speaker_name(value) for old, value in names.items()}

    def renamed(speaker):
        return new.get(speaker, speaker) if speaker is not None else None

    segments = [replace(seg, speaker=renamed(seg.speaker),
                        words=[replace(w, speaker=renamed(w.speaker)) for w in seg.words])
                for seg in transcript.segments]
    return replace(transcript, segments=segments, speakers=list(dict.fromkeys(map(renamed, transcript.speakers))),
                   warnings=list(transcript.warnings), timings=dict(transcript.timings))


def is_diarized(transcript: Transcript) -> bool:
    return any(seg.speaker is not None for seg in transcript.segments)


def label(speaker: str) -> str:
    """A speaker's name as printed: on one line, single spaces (whatever a caller put in the name)."""
    return " ".join(speaker.split())


def voice_annotation(speaker: str) -> str:
    """The name inside a WebVTT voice span `<v …>`: '&', '<' and '>' as character references, one line."""
    return label(speaker).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def turns(segments: list[Segment]) -> Iterator[tuple[str | None, list[str]]]:
    """(speaker, texts) per run of consecutive segments of one speaker; segments without text are skipped."""
    speaker, texts = None, []
    for seg in segments:
        text = " ".join(seg.text.split())
        if not text:
            continue
        if texts and seg.speaker != speaker:
            yield speaker, texts
            texts = []
        speaker = seg.speaker
        texts.append(text)
    if texts:
        yield speaker, texts


def join_texts(texts: list[str]) -> str:
    """Segment texts as one paragraph: a space between them, except between two wide (CJK) characters."""
    out = texts[0]
    for text in texts[1:]:
        wide = _is_wide(out[-1]) and _is_wide(text[0])
        out += text if wide else " " + text
    return out


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")
