"""The one interface every front end types against: the local `Pipeline`, the RunPod client (`RemotePipeline`) and
the ZeroGPU wrapper all implement it, so the web app, the worker and the CLI never ask which one they hold.
"""
from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from core.config import Config
from core.options import TranscribeOptions
from core.types import Progress, Transcript


@runtime_checkable
class Transcriber(Protocol):
    config: Config

    def describe(self) -> str:
        """One line for people: what runs the models and where."""

    def warm_up(self) -> None:
        """Start what the first job would otherwise wait for (worker processes); servers call it once."""

    def transcribe(self, source, options: TranscribeOptions | dict | None = None, progress: Progress | None = None,
                   *, filename: str | None = None, allow_local: bool = True, on_audio=None,
                   cancel: threading.Event | None = None) -> Transcript:
        """Transcribe a path, URL, page URL or raw bytes; temporary files are gone when this returns or raises.

        `progress(stage, done, total)` hears each stage; `on_audio(samples)` receives the decoded 16 kHz mono audio
        (the web player re-encodes it); once `cancel` is set the job stops at its next step and raises
        `core.errors.JobCancelled`.
        """

    def close(self) -> None:
        """Release worker processes and connections; the object is not used afterwards."""
