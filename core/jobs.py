"""The job schema shared by the RunPod worker (which validates jobs) and the remote client (which builds them).

Input: exactly one of `audio_url` / `audio_base64` (+ optional `filename`), `language`, `word_timestamps`, `context`,
`formats`, `chunk_seconds`. Output: the Transcript's JSON (`dataclasses.asdict`) plus the requested formats as strings.
One table (`FIELDS`) describes every field once; validation, defaults and the README table come from it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .errors import InputError
from .languages import normalize_language
from .types import TranscribeOptions, Transcript

# RunPod's documented request limits: 10 MB for /run, 20 MB for /runsync (the whole JSON body).
RUN_PAYLOAD_LIMIT = 10 * 1000 * 1000
RUNSYNC_PAYLOAD_LIMIT = 20 * 1000 * 1000
TEXT_FORMATS = ("srt", "vtt", "txt")
MAX_CONTEXT_CHARS = 4000
MAX_URL_CHARS = 4096
CHUNK_SECONDS_RANGE = (5.0, 180.0)


@dataclass(frozen=True)
class Field:
    type: type | tuple
    default: Any
    doc: str


FIELDS: dict[str, Field] = {
    "audio_url": Field(str, None, "http(s) URL of a media file or of a page yt-dlp understands (YouTube, podcasts)"),
    "audio_base64": Field(str, None, "the file itself, base64 (an optional data: URI prefix is accepted)"),
    "filename": Field(str, None, "original file name of audio_base64, used only for its extension"),
    "language": Field(str, "auto", "'auto' or one of the 30 language names / ISO 639-1 codes"),
    "word_timestamps": Field(bool, True, "align words with Qwen3-ForcedAligner (11 languages)"),
    "context": Field(str, "", f"names and terms to help recognition (at most {MAX_CONTEXT_CHARS} characters)"),
    "formats": Field(list, (), "subtitle/text renderings to return as strings: any of srt, vtt, txt"),
    "chunk_seconds": Field((int, float), None, "target chunk length in seconds, 5 to 180 (default: server setting)"),
}


@dataclass(frozen=True)
class JobInput:
    audio_url: str | None = None
    audio_base64: str | None = None
    filename: str | None = None
    language: str | None = None  # normalised model name, None = detect
    word_timestamps: bool = True
    context: str = ""
    formats: tuple[str, ...] = ()
    chunk_seconds: float | None = None

    def options(self) -> TranscribeOptions:
        return TranscribeOptions(language=self.language, context=self.context,
                                 word_timestamps=self.word_timestamps, chunk_seconds=self.chunk_seconds)

    def to_payload(self) -> dict:
        """The `input` object of a RunPod request; defaults left out."""
        out = {k: v for k, v in asdict(self).items() if v is not None and v != FIELDS[k].default and v != ()}
        if "formats" in out:
            out["formats"] = list(out["formats"])
        if self.language is None:
            out.pop("language", None)
        return out


def _check_type(name: str, value: Any) -> None:
    spec = FIELDS[name]
    kinds = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if isinstance(value, bool) and bool not in kinds:  # bool is an int: keep True out of numeric fields
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = {str: "string", bool: "boolean (true/false)", list: "list", int: "number", float: "number"}
        want = " or ".join(dict.fromkeys(names[k] for k in kinds))
        raise InputError(f"'{name}' must be a {want}, not {type(value).__name__}")


def parse_job_input(raw: Any) -> JobInput:
    """Validate a job's `input` object; every problem is an InputError whose message says what to change."""
    if not isinstance(raw, dict):
        raise InputError("the job input must be a JSON object, e.g. {\"audio_url\": \"https://...\"}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown input field(s): {', '.join(map(str, unknown))[:200]}; "
                         f"valid fields: {', '.join(FIELDS)}")
    values = {k: v for k, v in raw.items() if v is not None}
    for name, value in values.items():
        _check_type(name, value)

    url, b64 = values.get("audio_url"), values.get("audio_base64")
    if bool(url) == bool(b64):
        raise InputError("give exactly one of 'audio_url' or 'audio_base64'")
    if url is not None and len(url) > MAX_URL_CHARS:
        raise InputError(f"'audio_url' is longer than {MAX_URL_CHARS} characters")
    if b64 is not None and len(b64) > RUNSYNC_PAYLOAD_LIMIT:
        raise InputError("'audio_base64' is larger than RunPod's 20 MB request limit; upload the file somewhere "
                         "and pass its address as 'audio_url' instead")

    context = values.get("context", "")
    if len(context) > MAX_CONTEXT_CHARS:
        raise InputError(f"'context' is longer than {MAX_CONTEXT_CHARS} characters")

    formats = values.get("formats", [])
    bad = [f for f in formats if not isinstance(f, str) or f.lower() not in TEXT_FORMATS]
    if bad:
        raise InputError(f"unknown format(s) {bad!r:.100}; 'formats' takes any of {', '.join(TEXT_FORMATS)}")
    formats = tuple(dict.fromkeys(f.lower() for f in formats))

    chunk = values.get("chunk_seconds")
    if chunk is not None:
        lo, hi = CHUNK_SECONDS_RANGE
        if not (math.isfinite(chunk) and lo <= chunk <= hi):
            raise InputError(f"'chunk_seconds' must be between {lo:g} and {hi:g}")
        chunk = float(chunk)

    return JobInput(audio_url=url, audio_base64=b64, filename=values.get("filename"),
                    language=normalize_language(values.get("language", "auto")),
                    word_timestamps=values.get("word_timestamps", True), context=context,
                    formats=formats, chunk_seconds=chunk)


def job_output(transcript: Transcript, formats: tuple[str, ...] = ()) -> dict:
    """The worker's answer: the transcript JSON plus each requested rendering as a string."""
    from .writers import to_string, transcript_to_dict

    out = transcript_to_dict(transcript)
    for fmt in formats:
        out[fmt] = to_string(transcript, fmt)
    return out


def transcript_from_output(output: Any) -> Transcript:
    """Rebuild the Transcript from a worker's output (the remote client's side); malformed -> InputError."""
    from .writers import transcript_from_dict

    if not isinstance(output, dict):
        raise InputError("the endpoint returned something that is not a transcript")
    return transcript_from_dict({k: v for k, v in output.items() if k not in TEXT_FORMATS})
