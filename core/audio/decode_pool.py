"""Decode a long file in time slices across worker processes, sample for sample what `audio.decode_audio` returns,
and hand the audio on as it comes.

Why processes: decoding is the slowest CPU stage (an MP3 hour takes 4-10 s on one core) and threads do not help
(see `core.audio.decode`). Why it is exact: `core.audio.slices`. A long file is cut into more slices than there are
workers (about a minute each), sent in time order, so the first minutes are decoded while the rest still is:
`DecodeStream` hands out the audio as far as every slice before it is done, and the pipeline cuts chunks and starts
the ASR on them at once (`core.pipeline`).

Anything irregular makes the stream decode serially instead. If part of the audio had already been handed out and
the serial result differs there (AAC's noise bands can, and so can a file replaced while it is read),
`SamplesChanged` carries the serial audio so that the caller starts over on it; otherwise the stream goes on with
the serial samples as if nothing happened.

The workers are spawned, never forked, start without the parent's main module and end with their parent
(`core.audio.worker_processes` says why).
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from core.audio import decode as audio
from core.audio.slice_gate import FairGate
from core.audio.slices import MIN_PARALLEL_S, MIN_SLICE_S, SLICE_S, Irregular, decode_slice, out_index, plan_slices, \
    slice_samples
from core.audio.worker_processes import WorkerContext, exit_with_parent

log = logging.getLogger("core.audio.decode")


def default_workers() -> int:
    """One decode process per core this process may use, at most 16 (an MP3 hour: 1.3-1.5 s on an H100 host)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))


def _warm(_=None) -> int:
    return os.getpid()


class SamplesChanged(Exception):
    """The stream fell back to the serial decoder and its audio differs from what was already handed out: start
    over on `samples`."""

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__("the audio changed when decoded serially")
        self.samples = samples


class DecodePool:
    """Worker processes that decode long files in slices; `decode` falls back to the serial decoder when needed."""

    def __init__(self, workers: int, *, min_file_s: float = MIN_PARALLEL_S, min_slice_s: float = MIN_SLICE_S,
                 slice_s: float = SLICE_S) -> None:
        self.workers = max(1, int(workers))
        self.min_file_s, self.min_slice_s, self.slice_s = min_file_s, min_slice_s, max(slice_s, min_slice_s)
        self._pool: ProcessPoolExecutor | None = None
        self._gate = FairGate(self.workers)

    def start(self) -> None:
        """Spawn the workers now rather than in the first long job."""
        if self.workers > 1 and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=WorkerContext(),
                                             initializer=exit_with_parent)
            list(self._pool.map(_warm, range(self.workers)))

    def worker_pids(self) -> list[int]:
        """The process ids of this pool's live worker processes: empty before `start`, after `close`, and with one
        worker (which decodes in this process). For health checks and tests: a worker that dies costs the next long
        file a serial decode, and the decode after it starts fresh workers, whose pids then show here."""
        if self._pool is None:
            return []
        processes = self._pool._processes or {}  # the executor names no public way to its processes
        return [pid for pid, proc in list(processes.items()) if proc.is_alive()]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def decode(self, path, *, max_duration_s: float | None = None) -> np.ndarray:
        """What `audio.decode_audio(path, max_duration_s=...)` returns, decoded in slices when that pays."""
        with self.stream(path, max_duration_s=max_duration_s) as stream:
            for _ in stream:
                pass
            return stream.samples

    def stream(self, path, *, max_duration_s: float | None = None) -> DecodeStream:
        """The file's audio as it is decoded: see `DecodeStream`."""
        return DecodeStream(self, Path(path), max_duration_s)


class DecodeStream:
    """Iterate for `(available, final)`: `samples[:available]` is decoded and will not change; the last pair has
    `final` True and `samples` is then exactly the file's audio. Use as a context manager: leaving it early (an
    error, a cancelled job) stops the slices not yet sent and removes the scratch file."""

    decoding = True  # (`core.pipeline.InMemory` reads the same way, with samples already decoded)

    def __init__(self, pool: DecodePool, path: Path, max_duration_s: float | None) -> None:
        self.pool, self.path, self.max_duration_s = pool, path, max_duration_s
        self.samples = np.zeros(0, np.float32)
        self.expected = 0  # samples the file should hold (from its header while decoding; exact at the end)
        self._futures: list[Future] = []
        self._cv = threading.Condition()
        self._sender: threading.Thread | None = None
        self._send_error: BaseException | None = None
        self._job: int | None = None
        self._out_path: str | None = None

    def __enter__(self) -> DecodeStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        plan = None
        if self.pool.workers > 1:
            try:
                plan = plan_slices(self.path, self.pool.workers, self.max_duration_s, self.pool.min_file_s,
                                   self.pool.min_slice_s, self.pool.slice_s)
            except Irregular as e:
                log.info("decoding serially: %s", e)
        if plan is None:
            self.samples = audio.decode_audio(self.path, max_duration_s=self.max_duration_s)
            self.expected = len(self.samples)
            yield len(self.samples), True
            return
        slices, total = plan
        self.expected = total
        self._out_path = slices[0].out_path
        handed = 0
        try:
            self.samples = np.empty(slices[0].capacity, np.float32)
            self._send(slices, total)
            with open(self._out_path, "rb") as buf:
                for k, s in enumerate(slices):
                    n = self._result(k)
                    if s.end is not None and n != out_index(s.end, s.rate) - out_index(s.start, s.rate):
                        raise Irregular("a slice came out short")
                    a = out_index(s.start, s.rate)
                    buf.seek(a * 4)
                    buf.readinto(memoryview(self.samples[a:a + n]).cast("B"))
                    if s.end is None:
                        if a + n < 0.9 * total:
                            raise Irregular("the stream ended early")
                        self.samples = self.samples[:a + n]
                        self.expected = a + n
                        yield a + n, True
                        return
                    handed = a + n
                    yield handed, False
        except (Irregular, BrokenProcessPool) as e:
            if isinstance(e, BrokenProcessPool):
                log.warning("a decode worker died; restarting the pool and decoding serially")
                self.pool.close()
            else:
                log.info("decoding serially: %s", e)
            self.close()
            serial = audio.decode_audio(self.path, max_duration_s=self.max_duration_s)
            if len(serial) < handed or not np.array_equal(serial[:handed], self.samples[:handed]):
                raise SamplesChanged(serial) from None
            self.samples, self.expected = serial, len(serial)
            yield len(serial), True

    def _send(self, slices, total: int) -> None:
        """Hand the slices to the pool in time order from a thread (the gate may hold them back for other files)."""
        self.pool.start()
        gate = self.pool._gate
        self._job = gate.join(sum(slice_samples(s, total) for s in slices))

        def send() -> None:
            try:
                for s in slices:
                    if not gate.acquire(self._job):
                        return  # the stream was closed
                    try:
                        future = self.pool._pool.submit(decode_slice, s)
                    except BaseException:
                        gate.release()
                        raise
                    future.add_done_callback(self._slice_done)
                    gate.sent(self._job, slice_samples(s, total))
                    with self._cv:
                        self._futures.append(future)
                        self._cv.notify_all()
            except BaseException as e:  # a broken pool: the reader raises it
                with self._cv:
                    self._send_error = e
                    self._cv.notify_all()

        self._sender = threading.Thread(target=send, name="decode-slices", daemon=True)
        self._sender.start()

    def _slice_done(self, future: Future) -> None:
        self.pool._gate.release()
        with self._cv:
            self._cv.notify_all()

    def _result(self, k: int) -> int:
        """The 16 kHz samples slice k wrote, once it is done."""
        with self._cv:
            while not (len(self._futures) > k and self._futures[k].done()) and self._send_error is None:
                self._cv.wait()
            if len(self._futures) <= k:
                raise self._send_error
            future = self._futures[k]
        try:
            return future.result()
        except CancelledError:
            raise Irregular("a slice was cancelled") from None

    def close(self) -> None:
        """Stop sending slices, drop those not started, wait for those running, remove the scratch file."""
        if self._job is not None:
            self.pool._gate.leave(self._job)
            self._job = None
        if self._sender is not None:
            self._sender.join()
            self._sender = None
        with self._cv:
            futures = list(self._futures)
            self._futures = []
        for f in futures:
            f.cancel()
        wait(futures)
        if self._out_path is not None:
            try:
                os.unlink(self._out_path)
            except FileNotFoundError:
                pass
            self._out_path = None


__all__ = ["DecodePool", "DecodeStream", "SamplesChanged", "default_workers"]
