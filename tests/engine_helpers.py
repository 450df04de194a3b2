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
