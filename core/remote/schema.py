"""The job schema shared by the RunPod worker (which validates jobs) and the remote client (which builds them).

Input: exactly one of `audio_url` / `audio_base64` (+ optional `filename`), `language`, `word_timestamps`, `context`,
`formats`, `chunk_seconds`, and speaker labels: `diarize`, `num_speakers` or `min_speakers`/`max_speakers`. Output:
the Transcript's JSON (core.output.transcript_json: `speaker` on words and segments and a `speakers` list when
diarized) plus the requested formats as strings.
One table (`FIELDS`) describes every field once (the JSON types, defaults and the README table come from it); the
options' values are checked by `TranscribeOptions`, as for every other front end. The progress messages the worker
sends and the client reads are defined here too, both directions side by side.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from core.errors import InputError
from core.fetch.url_guard import MAX_URL_CHARS
from core.options import (CHUNK_SECONDS_RANGE, MAX_CONTEXT_CHARS, MAX_SPEAKERS, OPTION_NAMES, TranscribeOptions,
                          as_options)
from core.output.writers import FORMATS, to_string, transcript_from_dict, transcript_to_dict
from core.types import MAX_ALIGN_SECONDS, Transcript

# RunPod's documented request limits: 10 MB for /run, 20 MB for /runsync (the whole JSON body).
RUN_PAYLOAD_LIMIT = 10 * 1000 * 1000
RUNSYNC_PAYLOAD_LIMIT = 20 * 1000 * 1000
TEXT_FORMATS = tuple(f for f in FORMATS if f != "json")  # the JSON is the answer itself


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
    "chunk_seconds": Field((int, float), None, f"target chunk length in seconds, {CHUNK_SECONDS_RANGE[0]:g} to "
                                               f"{MAX_ALIGN_SECONDS:g} (default: server setting)"),
    "diarize": Field(bool, False, "label who speaks when: 'speaker' on words and segments, a 'speakers' list "
                                  "(the worker needs DIARIZER_MODEL)"),
    "num_speakers": Field((int, float), None, f"how many speakers there are, 1 to {MAX_SPEAKERS} (with diarize; "
                                              "default: found automatically)"),
    "min_speakers": Field((int, float), None, f"at least this many speakers, 1 to {MAX_SPEAKERS} (with diarize)"),
    "max_speakers": Field((int, float), None, f"at most this many speakers, 1 to {MAX_SPEAKERS} (with diarize)"),
}


@dataclass(frozen=True)
class JobInput:
    """A validated job: where the audio comes from, which renderings to return, and the checked options."""

    audio_url: str | None = None
    audio_base64: str | None = None
    filename: str | None = None
    formats: tuple[str, ...] = ()
    options: TranscribeOptions = field(default_factory=TranscribeOptions)

    def to_payload(self) -> dict:
        """The `input` object of a RunPod request; defaults left out."""
        out: dict[str, Any] = {k: v for k, v in (("audio_url", self.audio_url), ("audio_base64", self.audio_base64),
                                                 ("filename", self.filename)) if v is not None}
        if self.formats:
            out["formats"] = list(self.formats)
        o = self.options
        for name in OPTION_NAMES:
            value = getattr(o, name)
            if value is not None and value != FIELDS[name].default:
                out[name] = value
        return out


def check_type(name: str, value: Any, kind: type | tuple | None = None) -> None:
    """`value` has field `name`'s JSON type (FIELDS' unless `kind` is given), or an InputError says which it needs."""
    kind = FIELDS[name].type if kind is None else kind
    kinds = kind if isinstance(kind, tuple) else (kind,)
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
        check_type(name, value)

    url, b64 = values.get("audio_url"), values.get("audio_base64")
    if bool(url) == bool(b64):
        raise InputError("give exactly one of 'audio_url' or 'audio_base64'")
    if url is not None and len(url) > MAX_URL_CHARS:
        raise InputError(f"'audio_url' is longer than {MAX_URL_CHARS} characters")
    if b64 is not None and len(b64) > RUNSYNC_PAYLOAD_LIMIT:
        raise InputError("'audio_base64' is larger than RunPod's 20 MB request limit; upload the file somewhere "
                         "and pass its address as 'audio_url' instead")

    formats = values.get("formats", [])
    bad = [f for f in formats if not isinstance(f, str) or f.lower() not in TEXT_FORMATS]
    if bad:
        raise InputError(f"unknown format(s) {bad!r:.100}; 'formats' takes any of {', '.join(TEXT_FORMATS)}")
    formats = tuple(dict.fromkeys(f.lower() for f in formats))

    options = as_options({name: values[name] for name in OPTION_NAMES if name in values})  # the one options gate
    return JobInput(audio_url=url, audio_base64=b64, filename=values.get("filename"), formats=formats,
                    options=options)


def job_output(transcript: Transcript, formats: tuple[str, ...] = ()) -> dict:
    """The worker's answer: the transcript JSON plus each requested rendering as a string."""
    out = transcript_to_dict(transcript)
    for fmt in formats:
        out[fmt] = to_string(transcript, fmt)
    return out


def transcript_from_output(output: Any) -> Transcript:
    """Rebuild the Transcript from a worker's output (the remote client's side); malformed -> InputError."""
    if not isinstance(output, dict):
        raise InputError("the endpoint returned something that is not a transcript")
    return transcript_from_dict({k: v for k, v in output.items() if k not in TEXT_FORMATS})


# Progress travels as the IN_PROGRESS status's `output`: "<stage> <done>[/<total>]", downloads in MB.
_PROGRESS_TEXT = re.compile(r"^\s*([A-Za-z_]+)(?:\s+(\d+(?:\.\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?)?\s*$")


def format_progress(stage: str, done: float, total: float | None) -> str:
    """The worker's side: 'transcribe 3/12', 'decode 1/1'; downloads in MB ('download 4.2/31.5', or 'download 4.2'
    of unknown size)."""
    if stage == "download":
        done, total = done / 1e6, None if total is None else total / 1e6
        return f"download {done:.1f}" + ("" if total is None else f"/{total:.1f}")
    return f"{stage} {done:g}" + ("" if total is None else f"/{total:g}")


def parse_progress(value) -> tuple[str, float, float | None] | None:
    """The client's side: a progress message as (stage, done, total), downloads back in bytes. Anything else is
    None: progress never fails a job."""
    m = _PROGRESS_TEXT.match(value) if isinstance(value, str) else None
    if not m:
        return None
    stage, done, total = m.groups()
    stage, done, total = stage.lower(), float(done or 0), None if total is None else float(total)
    if stage == "download":  # the worker counts megabytes; progress callbacks count bytes
        done, total = done * 1e6, None if total is None else total * 1e6
    return stage, done, total
