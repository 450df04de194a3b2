"""Group commit: concurrent callers of one model share its batches instead of queueing job by job.

The ASR engine and the aligner each run one batch at a time (GPU memory, and one `LLM.generate` at a time). A call
that finds the model busy queues its items; whichever call takes the model next runs everything queued at once and
hands each caller its slice. With one caller, it costs a lock round trip and its progress is reported as usual.
"""
from __future__ import annotations

import threading

from .types import Progress, no_progress


class _Ticket:
    def __init__(self, requests: list, progress: Progress) -> None:
        self.requests, self.progress = requests, progress
        self.results: list | None = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    """Runs `run(items, progress) -> results` for concurrent callers, merging whatever is queued into one call.

    A caller queues its items, then waits for the engine; the caller that gets it takes the whole queue (its own
    items and any that arrived meanwhile), runs it once and hands every caller its slice. One caller alone costs
    one lock round trip.
    """

    def __init__(self, run) -> None:
        self._run = run
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self._engine = threading.Lock()

    def submit(self, items: list, progress: Progress = no_progress) -> list:
        """`run(items, progress)`'s results for these items; `progress` is passed on when the call runs alone."""
        ticket = _Ticket(items, progress)
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
        try:
            results = self._run(flat, progress)
        except BaseException as e:  # every caller in the batch sees the failure
            for t in batch:
                t.error, t.done = e, True
            return
        pos = 0
        for t in batch:
            t.results, t.done = results[pos:pos + len(t.requests)], True
            pos += len(t.requests)
