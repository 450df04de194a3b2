"""The one gate for a job's options: every front end (CLI, web form, job schema, Python callers) builds a
`TranscribeOptions`, and building one is the check. An instance is therefore always valid, and the pipeline never
checks it again; a bad value is an `InputError` with one wording, whichever door it came in by.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from core.languages import normalize_language
from core.types import MAX_ALIGN_SECONDS

CHUNK_SECONDS_RANGE = (5.0, MAX_ALIGN_SECONDS)  # below 5 s the model loses context; above, the aligner cannot follow
MAX_CONTEXT_CHARS = 4000


@dataclass(frozen=True)
class TranscribeOptions:
    """Per-job choices, checked when built.

    `language`: 'auto'/None to detect, or any name or ISO code of core.languages; stored as the model's name
    ("en" -> "English"). `context`: names and terms that help recognition. `chunk_seconds`: target chunk length,
    None = the configured default.
    """

    language: str | None = None
    context: str = ""
    word_timestamps: bool = True
    chunk_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", normalize_language(self.language))
        if not isinstance(self.context, str):
            raise InputError("the context must be text")
        if len(self.context) > MAX_CONTEXT_CHARS:
            raise InputError(f"the context is {len(self.context)} characters long; the limit is "
                             f"{MAX_CONTEXT_CHARS}")
        if not isinstance(self.word_timestamps, bool):
            raise InputError("word_timestamps must be true or false")
        chunk = self.chunk_seconds
        if chunk is not None:
            lo, hi = CHUNK_SECONDS_RANGE
            number = isinstance(chunk, (int, float)) and not isinstance(chunk, bool) and math.isfinite(chunk)
            if not (number and lo <= chunk <= hi):
                raise InputError(f"chunk_seconds must be between {lo:g} and {hi:g} seconds")
            object.__setattr__(self, "chunk_seconds", float(chunk))


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(TranscribeOptions))


def as_options(value: TranscribeOptions | dict[str, Any] | None) -> TranscribeOptions:
    """A caller's options as `TranscribeOptions`: None means the defaults, a dict is checked field by field."""
    if value is None:
        return TranscribeOptions()
    if isinstance(value, TranscribeOptions):
        return value
    if isinstance(value, dict):
        unknown = sorted(map(str, set(value) - set(OPTION_NAMES)))
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(unknown)[:200]}; valid: {', '.join(OPTION_NAMES)}")
        return TranscribeOptions(**value)
    raise InputError(f"options must be TranscribeOptions or a dict, not {type(value).__name__}")
