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
MAX_SPEAKERS = 20  # beyond this, clustering short windows cannot tell voices apart; a typo like 100 is refused


@dataclass(frozen=True)
class TranscribeOptions:
    """Per-job choices, checked when built.

    `language`: 'auto'/None to detect, or any name or ISO code of core.languages; stored as the model's name
    ("en" -> "English"). `context`: names and terms that help recognition. `chunk_seconds`: target chunk length,
    None = the configured default. `diarize`: label who spoke when; `num_speakers` fixes the count, or
    `min_speakers`/`max_speakers` bound it (automatic otherwise), each only with `diarize`.
    """

    language: str | None = None
    context: str = ""
    word_timestamps: bool = True
    chunk_seconds: float | None = None
    diarize: bool = False
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

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
        self._check_speakers()

    def _check_speakers(self) -> None:
        if not isinstance(self.diarize, bool):
            raise InputError("diarize must be true or false")
        counts = {name: getattr(self, name) for name in ("num_speakers", "min_speakers", "max_speakers")}
        for name, value in counts.items():
            if value is None:
                continue
            if isinstance(value, float) and value.is_integer():
                value = int(value)
                object.__setattr__(self, name, value)
            if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SPEAKERS):
                raise InputError(f"{name} must be a whole number from 1 to {MAX_SPEAKERS}")
            if not self.diarize:
                raise InputError(f"{name} needs diarize (speaker labels) to be on")
        if self.num_speakers is not None and (self.min_speakers is not None or self.max_speakers is not None):
            raise InputError("give num_speakers, or min_speakers and/or max_speakers, not both")
        if self.min_speakers is not None and self.max_speakers is not None and self.min_speakers > self.max_speakers:
            raise InputError(f"min_speakers ({self.min_speakers}) is more than max_speakers ({self.max_speakers})")

    def speaker_range(self) -> tuple[int, int]:
        """(fewest, most) speakers the diarizer may find: equal when `num_speakers` is set."""
        if self.num_speakers is not None:
            return self.num_speakers, self.num_speakers
        return self.min_speakers or 1, self.max_speakers or MAX_SPEAKERS


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
