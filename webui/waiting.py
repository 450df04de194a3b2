"""The waiting line in front of the models: at most `slots` jobs run, the next `max_waiting` wait their turn in order.

Why our own line rather than Gradio's queue: Gradio's queue shows people "queue: 1/1 | 7.5/4.5s", and it only
knows the page's jobs. Every front end in this process (the page, a later HTTP API) enters the same line, so
together they never run more jobs at once than APP_CONCURRENCY, and the page words the wait itself ("Waiting for
1 job ahead of yours (0:12)"). A job that would wait behind a full line is refused at once with `LineFull`.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from typing import Callable, Iterator

from core.errors import BusyError, JobCancelled

Report = Callable[[int, float], object]  # (jobs ahead: running plus waiting before this one, seconds waited)


class LineFull(BusyError):
    """The line is full: the job was not started. The message says so in words a user can act on."""


class WaitingLine:
    """A fair (first come, first served) admission line; thread-safe."""

    def __init__(self, slots: int, max_waiting: int, interval: float = 0.5) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError("need slots >= 1 and max_waiting >= 0")
        self.slots, self.max_waiting, self.interval = slots, max_waiting, interval
        self._turn = threading.Condition()
        self._running = 0
        self._waiting: deque[object] = deque()  # one ticket per waiting job, first in line first

    @contextlib.contextmanager
    def place(self, cancel: threading.Event | None = None, report: Report | None = None) -> Iterator[None]:
        """Hold a slot for the `with` block: wait for it in line, calling `report(jobs_ahead, seconds_waited)` on
        entering the line, whenever the number ahead changes and every `interval` seconds. Raises `LineFull` at once
        when `max_waiting` jobs already wait, and `JobCancelled` (leaving the line) once `cancel` is set."""
        self._enter(cancel, report)
        try:
            yield
        finally:
            with self._turn:
                self._running -= 1
                self._turn.notify_all()

    def counts(self) -> tuple[int, int]:
        """(jobs running, jobs waiting) right now."""
        with self._turn:
            return self._running, len(self._waiting)

    def _enter(self, cancel: threading.Event | None, report: Report | None) -> None:
        start, ticket = time.monotonic(), object()
        with self._turn:
            if cancel is not None and cancel.is_set():
                raise JobCancelled()
            if not self._waiting and self._running < self.slots:
                self._running += 1
                return
            if len(self._waiting) >= self.max_waiting:
                raise LineFull(busy_message(len(self._waiting)))
            self._waiting.append(ticket)
        try:
            self._wait_turn(ticket, start, cancel, report or (lambda ahead, waited: None))
        except BaseException:
            with self._turn:
                if ticket in self._waiting:  # not yet admitted: give up the place
                    self._waiting.remove(ticket)
                    self._turn.notify_all()
                else:  # admitted just as it was interrupted: give the slot back
                    self._running -= 1
                    self._turn.notify_all()
            raise

    def _wait_turn(self, ticket: object, start: float, cancel: threading.Event | None, report: Report) -> None:
        shown = None
        while True:
            with self._turn:
                deadline = time.monotonic() + self.interval
                while True:
                    if cancel is not None and cancel.is_set():
                        raise JobCancelled()
                    if self._waiting[0] is ticket and self._running < self.slots:
                        self._waiting.popleft()
                        self._running += 1
                        self._turn.notify_all()  # the next in line now counts one fewer ahead
                        return
                    ahead = self._running + self._waiting.index(ticket)
                    left = deadline - time.monotonic()
                    if ahead != shown or left <= 0:
                        break
                    self._turn.wait(left)
            report(ahead, time.monotonic() - start)  # outside the lock: it may be slow (it talks to a page)
            shown = ahead


def busy_message(waiting: int) -> str:
    jobs = "" if not waiting else ": 1 job is waiting" if waiting == 1 else f": {waiting} jobs are waiting"
    return f"The transcriber is busy{jobs}. Try again in a few minutes."


def waiting_text(ahead: int, waited: float) -> str:
    """'Waiting for 2 jobs ahead of yours (1:05)': what the page shows while a job waits in line."""
    s = max(0, int(waited))
    h, m = divmod(s // 60, 60)
    clock = f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"
    jobs = "1 job" if ahead == 1 else f"{ahead} jobs"
    return f"Waiting for {jobs} ahead of yours ({clock})"
