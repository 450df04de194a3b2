"""ZeroGPU Spaces lend a GPU only while a function decorated with `@spaces.GPU` runs.

So on such a Space the job is split: fetch and decode stay in the app's process (CPU), and only
`Pipeline.transcribe_audio` (plain data in, a Transcript out) runs inside the decorated call. Outside ZeroGPU the
`spaces` decorator does nothing, so the same code path runs, and is tested, everywhere.
"""
from __future__ import annotations

import threading
import time

from core.config import Config
from core.errors import InputError
from core.options import TranscribeOptions, as_options
from core.pipeline import NO_DIARIZER, Pipeline, cancellable
from core.types import SAMPLE_RATE, Progress, Transcript, no_progress

_pipeline = None  # the local Pipeline, set once by `on_zerogpu`; module-level so the GPU call pickles nothing big


def zerogpu_module(config: Config):
    """The `spaces` module when running on a ZeroGPU Space (SPACES_ZERO_GPU=true), else None.

    Call before anything touches CUDA: `spaces` must patch torch first.
    """
    if not config.spaces_zero_gpu:
        return None
    import spaces

    return spaces


def gpu_seconds(samples, options) -> int:
    """GPU time to ask for: about a minute of GPU per 30 minutes of audio on a shared card, within ZeroGPU's cap."""
    minutes = len(samples) / SAMPLE_RATE / 60
    return int(min(300, 30 + 2 * minutes))


def _transcribe_on_gpu(samples, options):
    return _pipeline.transcribe_audio(samples, options)


class ZeroGpuPipeline:
    """The `core.transcriber.Transcriber` over a local Pipeline, with the model stage inside `spaces.GPU`."""

    def __init__(self, pipeline: Pipeline, spaces_module) -> None:
        global _pipeline
        _pipeline = pipeline
        self.pipeline = pipeline
        self.config = pipeline.config
        self._on_gpu = spaces_module.GPU(duration=gpu_seconds)(_transcribe_on_gpu)

    def describe(self) -> str:
        return f"{self.pipeline.describe()} on ZeroGPU"

    def warm_up(self) -> None:
        self.pipeline.warm_up()

    def close(self) -> None:
        self.pipeline.close()

    def transcribe(self, source, options: TranscribeOptions | dict | None = None, progress: Progress | None = None,
                   *, filename: str | None = None, allow_local: bool = True, on_audio=None,
                   cancel: threading.Event | None = None) -> Transcript:
        """Fetch and decode here, the models inside the GPU call; `cancel` is honoured up to the GPU call and
        right after it (the call itself runs in ZeroGPU's process). Speaker labels on a Space without a diarizer are
        refused before anything is fetched or any GPU time is asked for."""
        t0 = time.perf_counter()
        options = as_options(options)
        if options.diarize and not self.pipeline.can_diarize:
            raise InputError(NO_DIARIZER)
        progress = cancellable(progress or no_progress, cancel)
        samples, timings = self.pipeline.load_audio(source, progress, filename=filename, allow_local=allow_local)
        if on_audio is not None:
            on_audio(samples)
        progress("transcribe", 0, None)  # the GPU call runs in another process: no chunk counts from inside it
        transcript = self._on_gpu(samples, options)
        progress("merge", 1, 1)
        transcript.timings = {**timings, **transcript.timings, "total": round(time.perf_counter() - t0, 4)}
        return transcript
