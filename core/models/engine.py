"""One engine per model and process: every job's items flow into the same model as they become ready.

A thread owns the model. Jobs, from any thread, queue their items and wait; the thread admits queued items
round-robin across jobs (one item per job per turn), so batches form across jobs and a short job that arrives behind
long ones gets its share of the very next batch instead of waiting for their whole stage; a job whose items left all
fit in the next batch goes in whole, so that it ends there.

Two kinds of model:
- a batch model (`BatchEngine`: the transformers ASR backend, the aligner) runs a list of items and returns their
  results; the engine hands it up to `batch_size` items at a time;
- a streaming model (`StreamEngine`: vLLM) takes items whenever there is room and hands back whichever finished at
  each step; the engine keeps at most `max_in_flight` items in it (bounded memory) and refills it as they finish.

Cancelling a job (its waiting thread's progress raised, e.g. `JobCancelled`) drops its queued items at once and
aborts those inside a streaming model; a batch in hand finishes (its batch mates need it) and the cancelled job's
part of it is thrown away. A model error fails the jobs whose items were in that call, and only those.
A job may also withdraw items (`unwanted`: chunks found to hold no speech): one still queued never reaches the model,
one a streaming model holds is aborted; either way its result is None.

What the engine did is public, for metrics, benchmarks and tests: `history` holds the latest admissions as
`Admission(size, jobs)`, and `queued()` counts the items waiting.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import ModelError
from core.types import Progress, no_progress

log = logging.getLogger("core")

POLL_S = 0.25  # a waiting job reports progress at least this often, so a cancel is seen while it queues
HISTORY = 4096  # admissions kept in `Engine.history`
UNWANTED_POLL_S = 0.05  # held items asked if still wanted, not each step: ~1,000 calls into the caller's code


@dataclass(frozen=True)
class Admission:
    """Items handed to the model together (one batch, or one refill of a streaming model)."""

    size: int
    jobs: int  # distinct jobs among them


class EngineJob:
    """One caller's items inside an engine; `wait` returns their results in the caller's order.

    A job may stay open while its items are still being made (`Engine.open`): `add` queues more, and `wait` returns
    once the job is closed and every item is done. Items added are admitted at once, beside other jobs' items.

    `unwanted(i)` true withdraws item i: done at once with None, without `on_result`. It is asked from the engine's
    thread under the engine's lock: quick, and never calling into the engine."""

    def __init__(self, engine: Engine, on_result, unwanted=None) -> None:
        self.engine, self.on_result, self.unwanted = engine, on_result, unwanted
        self.items: list = []
        self.results: list = []
        self.pending: deque[int] = deque()
        self.done = 0
        self.error: BaseException | None = None
        self.cancelled = False
        self.closed = False

    @property
    def over(self) -> bool:
        return self.cancelled or self.error is not None or (self.closed and self.done == len(self.items))

    def add(self, items: list) -> None:
        """Queue more items (they take the indices after the ones already added)."""
        self.engine._add(self, list(items))

    def close(self) -> None:
        """No more items will be added; `wait` returns once the ones added are done."""
        with self.engine.cv:
            self.closed = True
            self.engine.cv.notify_all()

    def wait(self, progress: Progress = no_progress, stage: str = "model") -> list:
        """Block until every item is done, reporting (stage, done, total); if `progress` raises (a cancelled
        job), the job's remaining work is dropped and the exception goes on."""
        cv, total = self.engine.cv, len(self.items)
        try:
            progress(stage, 0, total)
            while True:
                with cv:
                    if not self.over:
                        cv.wait(POLL_S)
                    done, over = self.done, self.over
                progress(stage, done, total)
                if over:
                    break
        except BaseException:
            self.cancel()
            raise
        if self.error is not None:
            raise self.error
        return self.results

    def cancel(self) -> None:
        """Drop what is still queued; a streaming model aborts what it holds of this job."""
        self.engine.cancel(self)


class Engine:
    """The job bookkeeping both kinds share; subclasses own the model and the thread's loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cv = threading.Condition()
        self.history: deque[Admission] = deque(maxlen=HISTORY)
        self._ring: deque[EngineJob] = deque()  # jobs with queued items, in turn order
        self._thread: threading.Thread | None = None
        self._closed = False

    def run(self, items: list, progress: Progress = no_progress, stage: str = "model", on_result=None,
            unwanted: Callable[[int], bool] | None = None) -> list:
        """Results for `items` in order; `on_result(i, result)` hears each as it is done (from the engine's
        thread: keep it short, and never wait there for this engine); `unwanted`: see `EngineJob`."""
        if not items:
            return []
        return self.submit(items, on_result, unwanted).wait(progress, stage)

    def run_groups(self, groups, progress: Progress = no_progress, stage: str = "model", on_result=None,
                   unwanted: Callable[[int], bool] | None = None) -> list:
        """`run` over items that arrive in groups (an iterable, read in this thread; each group goes in as soon as
        it is read): results in the order of all groups' items put together. Progress is reported once every group
        is in (the total is known then); while they arrive, the iterable is where a cancel is seen (the pipeline's
        reports the decoding), and whatever it raises drops the job."""
        job = self.open(on_result, unwanted)
        try:
            for items in groups:
                job.add(items)
            job.close()
        except BaseException:
            job.cancel()
            raise
        return job.wait(progress, stage)

    def submit(self, items: list, on_result=None, unwanted: Callable[[int], bool] | None = None) -> EngineJob:
        job = self.open(on_result, unwanted)
        job.add(items)
        job.close()
        return job

    def open(self, on_result=None, unwanted: Callable[[int], bool] | None = None) -> EngineJob:
        """A job that takes items with `add` until `close`."""
        job = EngineJob(self, on_result, unwanted)
        with self.cv:
            if self._closed:
                raise ModelError(f"the {self.name} is shut down")
        return job

    def _add(self, job: EngineJob, items: list) -> None:
        with self.cv:
            if self._closed:
                raise ModelError(f"the {self.name} is shut down")
            if job.closed:
                raise RuntimeError("items added to a closed engine job")
            if job.over or not items:  # cancelled or failed meanwhile: nothing more goes in
                return
            first = len(job.items)
            job.items += items
            job.results += [None] * len(items)
            job.pending.extend(range(first, first + len(items)))
            if job not in self._ring:
                self._ring.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"engine-{self.name}", daemon=True)
                self._thread.start()
            self.cv.notify_all()

    def queued(self) -> int:
        """Items waiting to be admitted, all jobs together."""
        with self.cv:
            return sum(len(j.pending) for j in self._ring)

    def close(self) -> None:
        """Stop the thread once what is queued has run (new submissions are refused)."""
        with self.cv:
            self._closed = True
            self.cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def cancel(self, job: EngineJob) -> None:
        with self.cv:
            if job.over:
                return
            job.cancelled = True
            job.pending.clear()
            self._forget(job)
            self.cv.notify_all()

    # --- for the loops, under self.cv unless said otherwise

    def _take(self, n: int) -> list[tuple[EngineJob, int]]:
        """Up to n queued items: first all of those of each job whose every item left fits (a short job, or a long
        one's last items: done in this call, not one item per call beside every other job's), then one per job per
        turn (the job after the last one served goes first)."""
        taken: list[tuple[EngineJob, int]] = []
        for job in list(self._ring):
            if job.closed and len(job.items) - job.done <= n - len(taken):
                taken += [(job, i) for i in job.pending if not self._withdrawn(job, i)]
                job.pending.clear()
                self._forget(job)
        while len(taken) < n and self._ring:
            job = self._ring.popleft()
            i = self._next(job)
            if i is not None:
                taken.append((job, i))
            if job.pending:
                self._ring.append(job)
        if taken:
            self.history.append(Admission(len(taken), len({id(j) for j, _ in taken})))
        return taken

    def _next(self, job: EngineJob) -> int | None:
        """The job's next queued item still wanted (those before it are withdrawn), None when none is."""
        while job.pending:
            if not self._withdrawn(job, i := job.pending.popleft()):
                return i
        return None

    def _withdrawn(self, job: EngineJob, i: int) -> bool:
        """Whether item i is no longer wanted; if so it is done (its result stays None) and the caller drops it."""
        if job.unwanted is None or job.over or not job.unwanted(i):
            return False
        job.done += 1
        self.cv.notify_all()
        return True

    def _forget(self, job: EngineJob) -> None:
        if job in self._ring:
            self._ring.remove(job)

    def _fail(self, jobs, error: BaseException) -> None:
        for job in jobs:
            if not job.over:
                job.error = error
                job.pending.clear()
                self._forget(job)
        self.cv.notify_all()

    def _deliver(self, done: list[tuple[EngineJob, int, object]]) -> None:
        """Hand results to their jobs (call without holding self.cv: listeners run here)."""
        heard = []
        with self.cv:
            for job, i, result in done:
                if job.over:  # cancelled or failed meanwhile: its part is thrown away
                    continue
                job.results[i] = result
                job.done += 1
                if job.on_result is not None:
                    heard.append((job, i, result))
            self.cv.notify_all()
        for job, i, result in heard:
            try:
                job.on_result(i, result)
            except Exception:  # a listener's bug must not fail the model's other jobs
                log.exception("a result listener failed")

    def _loop(self) -> None:
        try:
            self._serve()
        except BaseException as e:  # the engine is gone: nobody may wait for it forever
            log.exception("the %s engine stopped", self.name)
            with self.cv:
                self._closed = True
                self._fail(list(self._ring) + self._holding(), ModelError(f"the {self.name} stopped ({type(e).__name__})"))

    def _holding(self) -> list[EngineJob]:
        return []

    def _serve(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class BatchEngine(Engine):
    """`run_batch(items) -> results` on up to `batch_size` items at a time, one call at a time."""

    def __init__(self, name: str, run_batch, batch_size: int) -> None:
        super().__init__(name)
        self.run_batch, self.batch_size = run_batch, max(1, batch_size)
        self._in_hand: list[EngineJob] = []

    def _holding(self) -> list[EngineJob]:
        return list(self._in_hand)

    def _serve(self) -> None:
        while True:
            with self.cv:
                while not self._ring and not self._closed:
                    self.cv.wait()
                if not self._ring:
                    return
                taken = self._take(self.batch_size)
                if not taken:  # every item it came to was withdrawn
                    continue
                self._in_hand = [j for j, _ in taken]
            try:
                results = self.run_batch([job.items[i] for job, i in taken])
                if len(results) != len(taken):
                    raise ModelError(f"the {self.name} returned {len(results)} results for {len(taken)} items")
            except Exception as e:
                with self.cv:
                    self._fail({id(j): j for j, _ in taken}.values(), e)
                continue
            finally:
                self._in_hand = []
            self._deliver([(job, i, r) for (job, i), r in zip(taken, results)])


class StreamEngine(Engine):
    """A model that is fed and stepped: `model.start(items) -> keys`, `model.step(block) -> [(key, result)]`
    (finished items; `block` False: only what is ready now), `model.abort(keys)`. Refills happen when at least
    `min_admit` items fit (or everything queued does), so the model's per-call costs are shared.

    A job holding less than its share of `max_in_flight` (the cap divided among the jobs with items here) is topped
    up to its share even when the engine is full, up to twice the cap in all: items that go in together also finish
    together, so a job arriving behind a full engine would otherwise wait for a whole wave of other jobs' items (run
    21: a 5-minute job behind 32 one-hour jobs, 27 s in the ASR). Fewest items left first: else long jobs' tails ahead
    in turn use up the room (run 25: the same job's last chunks waited 24 s)."""

    def __init__(self, name: str, model, *, max_in_flight: int, min_admit: int = 1) -> None:
        super().__init__(name)
        self.model, self.max_in_flight, self.min_admit = model, max(1, max_in_flight), max(1, min_admit)
        self._in_flight: dict = {}  # key -> (job, index)
        self._polled = 0.0  # when the held items were last asked whether still wanted

    def in_flight(self) -> int:
        with self.cv:
            return len(self._in_flight)

    def _holding(self) -> list[EngineJob]:
        return [job for job, _ in self._in_flight.values()]

    def _top_up(self) -> list[tuple[EngineJob, int]]:
        """Queued items of jobs below their share, beyond the cap (under self.cv)."""
        held = Counter(id(job) for job, _ in self._in_flight.values())
        jobs = len(held.keys() | {id(j) for j in self._ring})
        share, left = max(1, self.max_in_flight // max(1, jobs)), 2 * self.max_in_flight - len(self._in_flight)
        taken: list[tuple[EngineJob, int]] = []
        for job in sorted(self._ring, key=lambda j: len(j.pending) + held[id(j)]):
            short = share - held[id(job)]
            if short < min(self.min_admit, len(job.pending)):  # no one-item refills: min_admit at a time
                continue
            for _ in range(max(0, min(short, len(job.pending), left - len(taken)))):
                i = self._next(job)
                if i is not None:
                    taken.append((job, i))
            if not job.pending:
                self._forget(job)
        if taken:
            self.history.append(Admission(len(taken), len({id(j) for j, _ in taken})))
        return taken

    def _serve(self) -> None:
        while True:
            with self.cv:
                while not self._ring and not self._in_flight and not self._closed:
                    self.cv.wait()
                if not self._ring and not self._in_flight:
                    return
                dropped = [k for k, (job, _) in self._in_flight.items() if job.over]
                if time.monotonic() - self._polled >= UNWANTED_POLL_S:
                    self._polled = time.monotonic()
                    dropped += [k for k, (job, i) in self._in_flight.items() if self._withdrawn(job, i)]
                for k in dropped:
                    del self._in_flight[k]
                room = self.max_in_flight - len(self._in_flight)
                queued = sum(len(j.pending) for j in self._ring)
                taken = self._take(room) if queued and room >= min(self.min_admit, queued) else self._top_up()
            try:
                if dropped:
                    self.model.abort(dropped)
                if taken:
                    keys = self.model.start([job.items[i] for job, i in taken])
                    with self.cv:
                        self._in_flight.update(zip(keys, taken))
                # just fed: collect what is ready and come back to feed more; else wait for the model's next step
                finished = self.model.step(block=not taken) if self._in_flight else []
            except Exception as e:
                with self.cv:
                    holding = self._in_flight
                    self._in_flight = {}
                    self._fail({id(j): j for j, _ in list(holding.values()) + taken}.values(), e)
                try:
                    self.model.abort(list(holding))
                except Exception:  # the model may be gone; its jobs failed either way
                    log.exception("aborting the %s's items failed", self.name)
                continue
            with self.cv:
                done = [(*self._in_flight.pop(k), r) for k, r in finished if k in self._in_flight]
            self._deliver(done)
