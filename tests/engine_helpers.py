"""What the engine tests share (test_engine, test_align, test_vllm_backend, test_batch_remote): an engine held busy
so that the jobs submitted meanwhile queue behind it, and a progress callback that walks away after one result."""
from __future__ import annotations

import threading
import time


class Held:
    """Keeps an engine busy until released: `start(listener)` makes one model call whose result listener (run on
    the engine's thread) blocks, so whatever jobs submit meanwhile queues. A context manager, or call release()."""

    def __init__(self, start, timeout: float = 120.0) -> None:
        self.started, self.gate, self.timeout = threading.Event(), threading.Event(), timeout

        def block(*_) -> None:
            self.started.set()
            self.gate.wait(timeout)

        self.thread = threading.Thread(target=start, args=(block,))
        self.thread.start()
        assert self.started.wait(timeout), "the engine never started the holding call"

    def release(self) -> None:
        self.gate.set()
        self.thread.join(self.timeout)

    def __enter__(self) -> "Held":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def wait_queued(engine, count: int, timeout: float = 60.0) -> None:
    """Wait until `count` items queue in `engine` (no more, no fewer)."""
    deadline = time.monotonic() + timeout
    while engine.queued() < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.queued() == count


class Stop(BaseException):
    """What `stop_after_first` raises: a caller walking away mid-job (a BaseException, like JobCancelled)."""


def stop_after_first(stage, done, total) -> None:
    if done >= 1:
        raise Stop


class Stepper:
    """Each item is a number n: it finishes n steps after it went in, with the answer n * 10 (or raises at 'boom')."""

    def __init__(self) -> None:
        self.left: dict[int, int] = {}
        self.items: dict[int, int] = {}
        self.started: list[list[int]] = []
        self.aborted: list[int] = []
        self.most = 0
        self.next_key = 0
        self.lock = threading.Lock()

    def start(self, items):
        if "boom" in items:
            raise RuntimeError("boom")
        keys = []
        with self.lock:
            for n in items:
                self.next_key += 1
                self.left[self.next_key], self.items[self.next_key] = n, n
                keys.append(self.next_key)
            self.started.append(list(items))
            self.most = max(self.most, len(self.left))
        return keys

    def step(self, block):
        time.sleep(0.002)
        with self.lock:
            done = []
            for k in list(self.left):
                self.left[k] -= 1
                if self.left[k] <= 0:
                    del self.left[k]
                    done.append((k, self.items.pop(k) * 10))
            return done

    def abort(self, keys):
        with self.lock:
            for k in keys:
                self.aborted.append(k)
                self.left.pop(k, None)
                self.items.pop(k, None)
