"""Alignment that runs while the ASR is still working: chunks are aligned in the background as their text arrives.

The ASR hands over each chunk's text the moment it is finished (`on_result`); a background thread aligns whatever
has arrived, a full aligner batch at a time (or what is left once the ASR is done). Results are the same as
aligning everything afterwards: each chunk is aligned on its own audio and text whatever batch it lands in
(core.align.aligner). The pipeline uses the same class without overlap (OVERLAP_ALIGN=0): it then gets every
chunk once the ASR is done.

Progress is reported only from `finish` (the caller's thread), so the job's progress bar moves through
"transcribe" and then "align"; the count moves after each aligner batch (a batch's chunks are done together).
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from core.languages import ALIGNER_LANGUAGES
from core.types import AlignRequest, Chunk, ChunkText, Progress, Word, no_progress

log = logging.getLogger("core")


class AlignStream:
    """Feed it (chunk, text) pairs from any thread with `add`; `finish` waits for the rest and returns the words."""

    def __init__(self, aligner, batch_size: int) -> None:
        self.aligner, self.batch_size = aligner, max(1, batch_size)
        self.words: dict[int, list[Word] | None] = {}  # by chunk index
        self.skipped_languages: set[str] = set()
        self.failed = 0
        self.busy_s = 0.0  # time the aligner spent on this job's chunks
        self._pending: list[tuple[Chunk, ChunkText, np.ndarray]] = []
        self._queued = self._done = 0
        self._closed = self._stopped = False
        self._error: BaseException | None = None
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="align-stream", daemon=True)
        self._thread.start()

    def add(self, chunk: Chunk, text: ChunkText | None, audio: np.ndarray) -> None:
        """Queue one transcribed chunk with its audio (ignored when it has no text or its language has no
        aligner)."""
        if text is None or not text.text.strip():
            return
        with self._cv:
            if text.language not in ALIGNER_LANGUAGES:
                self.skipped_languages.add(text.language)
                return
            self._pending.append((chunk, text, audio))
            self._queued += 1
            self._cv.notify()

    def finish(self, chunks: int, progress: Progress = no_progress) -> list[list[Word] | None]:
        """Wait until every queued chunk is aligned (reporting "align" progress) and return words for each of
        the job's `chunks` chunks (None where there are none)."""
        try:
            with self._cv:
                self._closed = True
                self._cv.notify_all()
                while self._thread.is_alive() and self._error is None:
                    progress("align", self._done, self._queued)
                    self._cv.wait(0.5)
            self._thread.join()
            if self._error is not None:
                raise self._error
            progress("align", self._done, self._queued)
            return [self.words.get(i) for i in range(chunks)]
        finally:
            self.stop()

    def stop(self) -> None:
        """Drop what is still queued and wait for the batch in hand (the job failed or was cancelled)."""
        with self._cv:
            self._closed = self._stopped = True
            self._pending.clear()
            self._cv.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and len(self._pending) < self.batch_size:
                    self._cv.wait()
                if not self._pending or self._stopped:
                    return
                todo, self._pending = self._pending, []
            try:
                self._align(todo)
            except BaseException as e:  # handed to the caller by finish()
                with self._cv:
                    self._error = e
                    self._cv.notify_all()
                return

    def _align(self, todo: list[tuple[Chunk, ChunkText, np.ndarray]]) -> None:
        reqs = [AlignRequest(audio, t.text, t.language) for _, t, audio in todo]
        t0 = time.perf_counter()
        before = self._done

        def batch_done(stage: str, done: float, total: float | None) -> None:  # the aligner, after each batch
            with self._cv:
                self._done = before + int(done)
                self._cv.notify_all()

        results = self.aligner.align(reqs, batch_done)
        with self._cv:
            self.busy_s += time.perf_counter() - t0
            for (chunk, _, _), words in zip(todo, results):
                if words is None:
                    self.failed += 1
                self.words[chunk.index] = words
            self._done = before + len(todo)
            self._cv.notify_all()
