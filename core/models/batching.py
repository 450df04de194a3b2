"""Group commit: concurrent callers of one model share its batches instead of queueing job by job.

The ASR engine and the aligner each run one batch at a time (GPU memory, and one `LLM.generate` at a time). A call
that finds the model busy queues its items; whichever call takes the model next runs everything queued at once and
hands each caller its slice. With one caller, it costs a lock round trip and its progress is reported as usual.

A caller may also pass `on_result(index, result)` to hear about each of its items the moment the model finishes it
(the pipeline aligns finished chunks while the rest are still being transcribed); indexes are the caller's own.
"""
from __future__ import annotations

import bisect
import logging
import threading

from core.types import Progress, no_progress

log = logging.getLogger("core")


def _no_result(index: int, result) -> None:
    pass


class _Ticket:
    def __init__(self, requests: list, progress: Progress, on_result) -> None:
        self.requests, self.progress, self.on_result = requests, progress, on_result
        self.results: list | None = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    """Runs `run(items, progress, on_result) -> results` for concurrent callers, merging whatever is queued into one
    call. `run` may call `on_result(i, result)` as item i finishes (optional; the full list is returned anyway).

    A caller queues its items, then waits for the engine; the caller that gets it takes the whole queue (its own
    items and any that arrived meanwhile), runs it once and hands every caller its slice. One caller alone costs
    one lock round trip.

    What merging achieves is public, for metrics and tests: `pending()` is the number of callers queued for the next
    run, and `runs` / `items_run` count the calls of `run` so far and the items they carried (their ratio is the mean
    merged batch).
    """

    def __init__(self, run) -> None:
        self._run = run
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self._engine = threading.Lock()
        self.runs = 0
        self.items_run = 0

    def pending(self) -> int:
        """How many callers have items queued, waiting for the model's next run."""
        with self._queue_lock:
            return len(self._queue)

    def submit(self, items: list, progress: Progress = no_progress, on_result=None) -> list:
        """`run(items, ...)`'s results for these items; `progress` is passed on when the call runs alone, and
        `on_result(i, result)` hears each item as it finishes (from whichever thread runs the batch)."""
        ticket = _Ticket(items, progress, on_result)
        with self._queue_lock:
            self._queue.append(ticket)
        while not ticket.done:
            with self._engine:
                if ticket.done:
                    break
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run_batch(batch)
        if ticket.error is not None:
            raise ticket.error
        return ticket.results

    def _run_batch(self, batch: list[_Ticket]) -> None:
        flat = [item for t in batch for item in t.requests]
        progress = batch[0].progress if len(batch) == 1 else no_progress
        starts, pos = [], 0
        for t in batch:
            starts.append(pos)
            pos += len(t.requests)

        def on_result(index: int, result) -> None:
            k = bisect.bisect_right(starts, index) - 1
            listener = batch[k].on_result
            if listener is not None:
                try:
                    listener(index - starts[k], result)
                except Exception:  # a listener's bug must not fail the batch mates' run
                    log.exception("a result listener failed")

        listening = any(t.on_result is not None for t in batch)
        self.runs, self.items_run = self.runs + 1, self.items_run + len(flat)  # under the engine lock
        try:
            results = self._run(flat, progress, on_result if listening else _no_result)
        except BaseException as e:  # every caller in the batch sees the failure
            for t in batch:
                t.error, t.done = e, True
            return
        pos = 0
        for t in batch:
            t.results, t.done = results[pos:pos + len(t.requests)], True
            pos += len(t.requests)
