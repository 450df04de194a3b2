"""Plain data that flows one way through the pipeline: chunks in, words and segments out.

Times are seconds from the start of the original audio, except where a field says otherwise.
Every result type serialises with `dataclasses.asdict`; nothing copies fields by hand.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

SAMPLE_RATE = 16000
# The forced aligner's longest input (the Qwen toolkit's limit per call): no chunk is ever longer.
MAX_ALIGN_SECONDS = 180.0


@dataclass
class Word:
    start: float
    end: float
    text: str
    speaker: str | None = None  # a name from Transcript.speakers once diarized


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None


@dataclass
class Transcript:
    language: str
    duration: float
    text: str
    segments: list[Segment] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)  # diarized: the speakers' names in order of first appearance
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Turn:
    """Who spoke over [start, end): one stretch of one speaker from the diarizer, in seconds."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Chunk:
    """A slice of the decoded audio, in samples at SAMPLE_RATE; chunks tile the audio exactly."""

    index: int
    start: int
    end: int

    @property
    def offset(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def duration(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


@dataclass
class ChunkText:
    """What the ASR backend returns for one chunk: its language (a name from core.languages) and text."""

    language: str
    text: str
    truncated: bool = False  # generation hit the token cap or a repetition loop was cut


@dataclass(frozen=True)
class AsrRequest:
    """One chunk for an ASR backend: the audio plus what the model is told."""

    audio: "object"  # numpy float32 mono at SAMPLE_RATE (typed loosely to keep numpy out of this module)
    language: str | None = None  # a name from core.languages.LANGUAGES, or None for detection
    context: str = ""


@dataclass(frozen=True)
class AlignRequest:
    """One chunk for the aligner: audio, the text the ASR produced and its language."""

    audio: "object"
    text: str
    language: str


# progress(stage, done, total): stages are "download", "decode", "chunk", "transcribe", "align", "merge", "diarize",
# "write".
# `total` is None when unknown (a download without Content-Length). Callbacks must be cheap. An exception raised
# from a callback cancels the job: it propagates out of `transcribe` and temporary files are still removed.
Progress = Callable[[str, float, "float | None"], None]


def no_progress(stage: str, done: float, total: float | None) -> None:
    """The default progress callback: ignore."""
