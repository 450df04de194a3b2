"""Which file's slice goes into the decode pool next, when several files are decoded at once."""
from __future__ import annotations

import itertools
import threading


class FairGate:
    """Lets at most `size` slices into the pool at once; when a place is free, the file with the least audio left to
    send goes first (then the earliest). With several files at once (a worker or web app with concurrency > 1), a
    5-minute file arriving behind thirty one-hour files waits for one slice, not for all of theirs; files of equal
    length keep their order, so they finish one after another and the models get work early. A file alone sends
    every slice at once, as before."""

    def __init__(self, size: int) -> None:
        self.size, self.busy = max(1, size), 0
        self._cv = threading.Condition()
        self._left: dict[int, int] = {}  # file -> samples not yet sent
        self._waiting: set[int] = set()  # files with a slice waiting for a place
        self._seq = itertools.count()

    def join(self, samples: int) -> int:
        with self._cv:
            job = next(self._seq)
            self._left[job] = samples
            return job

    def waiting(self) -> int:
        """Files with a slice waiting for a place (for metrics and tests)."""
        with self._cv:
            return len(self._waiting)

    def leave(self, job: int) -> None:
        with self._cv:
            self._left.pop(job, None)
            self._cv.notify_all()

    def acquire(self, job: int) -> bool:
        """Wait for a place for `job`'s next slice; False (and no place taken) once the file has left."""
        with self._cv:
            self._waiting.add(job)
            try:
                while job in self._left and not (
                        self.busy < self.size
                        and min((j for j in self._waiting if j in self._left), key=lambda j: (self._left[j], j)) == job):
                    self._cv.wait()
            finally:
                self._waiting.discard(job)
            if job not in self._left:
                return False
            self.busy += 1
            return True

    def sent(self, job: int, samples: int) -> None:
        with self._cv:
            if job in self._left:
                self._left[job] -= samples
            self._cv.notify_all()

    def release(self) -> None:
        with self._cv:
            self.busy -= 1
            self._cv.notify_all()
