"""Which chunks hold speech at all, told while the chunks are already being transcribed.

Energy rules out silence and hiss at once: a chunk whose every 10 ms frame is below _ACTIVE_DB never goes to the ASR.
Whether a chunk that sounds holds speech or only noise, tones or music is silero's call (`core.audio.vad`), and that
is most of the chunker's CPU time (0.6-0.7 s of main-thread work an hour, the critical path of a streamed job, run
19). So the pipeline sends every sounding chunk to the ASR as soon as it is cut, `SpeechCheck` listens on a thread
beside it, and a chunk found to hold no speech is withdrawn from the ASR (`unwanted` in `core.models.engine`) and its
text, if it was made anyway, dropped once the ASR is done: the transcript is the one checking first gives. The cost
is the ASR's time on the music and noise chunks before the check rules them out (an intro jingle or two in a
podcast), and it is bounded: one still queued never starts, and the generation of one a streaming model (vLLM) holds
is aborted once the check rules it out, typically within a fraction of a second, so a chunk the model loops on no
longer runs to the generation cap (MAX_TOKENS_PER_SECOND of its length, ~3x a spoken chunk's tokens). A batch model
(transformers) finishes a batch it has started.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from core.audio.chunking import FRAME, frame_levels
from core.audio.vad import any_speech
from core.types import Chunk

_ACTIVE_DB = -55.0  # a chunk whose every 10 ms frame is below this is silence (or hiss) without asking the VAD
FLAG_GROUPS = (8, 32, 64)  # sounding chunks the VAD hears in one batch: the first few, then more each time


def sounding_span(chunk: Chunk, levels: np.ndarray) -> tuple[int, int] | None:
    """The samples from the chunk's first to its last frame above _ACTIVE_DB (all the VAD needs to hear), or None
    when none is; `levels` are the chunk's own frames (`frame_levels` of its samples)."""
    loud = np.flatnonzero(levels > _ACTIVE_DB)
    if not len(loud):
        return None
    return chunk.start + int(loud[0]) * FRAME, min(chunk.end, chunk.start + (int(loud[-1]) + 1) * FRAME)


def speech_flags(samples: np.ndarray, chunks: list[Chunk]) -> list[bool]:
    """Whether each chunk holds speech at all, all chunks in one VAD batch; silent, noise, tone and music chunks
    are False."""
    spans = [sounding_span(c, frame_levels(samples[c.start:c.end])) for c in chunks]
    todo = [(i, s) for i, s in enumerate(spans) if s is not None]
    flags = [False] * len(chunks)
    if todo:
        for (i, _), heard in zip(todo, any_speech(samples, [s for _, s in todo])):
            flags[i] = heard
    return flags


class SpeechCheck:
    """`speech_flags` over chunks that arrive in time order, heard on a background thread.

    `add(samples, chunks, final)` takes the chunks just cut and returns the ones that sound (send those on); the VAD
    hears them FLAG_GROUPS at a time, so its batches are the same however the chunks arrived (a small first group
    is heard early, larger ones later keep a step's cost shared: one costs about the same for 8 rows as for 64).
    `heard(i)` is a chunk's flag if known yet; `flags(n)` waits for the rest and returns all n; `close()` drops
    what is queued (a failed or cancelled job).
    """

    def __init__(self) -> None:
        self.busy_s = 0.0  # time the VAD spent on this job's chunks
        self._heard: dict[int, bool] = {}
        self._waiting: list[tuple[int, tuple[int, int]]] = []  # sounding chunks not in a group yet
        self._todo: list[tuple[np.ndarray, list[tuple[int, tuple[int, int]]]]] = []
        self._samples = np.zeros(0, np.float32)
        self._groups = 0
        self._closed = self._stopped = False
        self._error: BaseException | None = None
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="speech-check", daemon=True)
        self._thread.start()

    def add(self, samples: np.ndarray, chunks: list[Chunk], final: bool, levels: np.ndarray | None = None
            ) -> list[Chunk]:
        """`levels`: the file's frame levels as far as the chunks (the planner's), else they are computed here."""
        spans = [sounding_span(c, frame_levels(samples[c.start:c.end]) if levels is None
                               else levels[c.start // FRAME:-(-c.end // FRAME)]) for c in chunks]
        with self._cv:
            self._samples = samples
            for c, span in zip(chunks, spans):
                if span is None:
                    self._heard[c.index] = False
                else:
                    self._waiting.append((c.index, span))
            self._group(samples, final)
        return [c for c, span in zip(chunks, spans) if span is not None]

    def heard(self, index: int) -> bool | None:
        with self._cv:
            return self._heard.get(index)

    def flags(self, n: int) -> list[bool]:
        """The flags of chunks 0..n-1, once the VAD has heard every group (raises what the VAD raised)."""
        with self._cv:
            if self._waiting:  # never told the audio was final: what is left is the last group
                self._group(self._samples, final=True)
            self._closed = True
            self._cv.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return [self._heard[i] for i in range(n)]

    def close(self) -> None:
        with self._cv:
            self._closed = self._stopped = True
            self._todo.clear()
            self._cv.notify_all()
        self._thread.join()

    def _group(self, samples: np.ndarray, final: bool) -> None:
        while self._waiting:
            size = FLAG_GROUPS[min(self._groups, len(FLAG_GROUPS) - 1)]
            if not final and len(self._waiting) < size:
                break
            self._todo.append((samples, self._waiting[:size]))
            del self._waiting[:size]
            self._groups += 1
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._todo and not self._closed:
                    self._cv.wait()
                if self._stopped or not self._todo:
                    return
                samples, group = self._todo.pop(0)
            t0 = time.perf_counter()
            try:
                heard = any_speech(samples, [span for _, span in group])
            except BaseException as e:  # handed to the caller by flags()
                with self._cv:
                    self._error = e
                return
            with self._cv:
                self.busy_s += time.perf_counter() - t0
                self._heard.update((i, h) for (i, _), h in zip(group, heard))
