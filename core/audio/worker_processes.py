"""The decode pool's worker processes: spawned, never forked, started without the parent's main module, and ended
with their parent.

The workers are spawned (a fresh interpreter each, as "spawn" does), never forked: the process that owns the pool
may hold CUDA and threads (vLLM, torch), which a fork copies in a broken state. Spawn re-runs the parent's main
module in every child so that functions defined there can be unpickled; these workers only run `core.audio`'s
functions, so they start without it (`WorkerProcess`): a plain script without an `if __name__ == "__main__":`
guard (the README's example saved as a file) would otherwise load the models again in every worker and fail there.
"forkserver" would not avoid that (its children import the parent's main the same way, and the server is one more
process per program to stop), and decoding in this process for such scripts would give up the parallel decode.
Workers end when their parent is gone, however it went (`exit_with_parent`).
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import types
from multiprocessing.context import SpawnContext, SpawnProcess

_MAIN_SWAP = threading.Lock()


class WorkerProcess(SpawnProcess):
    """A spawned worker that does not import the parent's `__main__`: multiprocessing's spawn tells the child to
    re-import it (by module name, or by path for a script) unless `__main__` has neither, as in an interactive
    session; while one worker starts, `__main__` is such a bare module (a few milliseconds, under a lock)."""

    def start(self) -> None:
        with _MAIN_SWAP:
            main = sys.modules["__main__"]
            sys.modules["__main__"] = types.ModuleType("__main__")
            try:
                super().start()
            finally:
                sys.modules["__main__"] = main


class WorkerContext(SpawnContext):
    Process = WorkerProcess


def exit_with_parent() -> None:
    """Each worker's initializer: a thread that ends the worker once its parent is gone (the parent's end of the
    spawn pipe closes when it dies, and the worker is then adopted), so that a server killed outright leaves no
    decode worker, nor multiprocessing's resource tracker (which stops when the last of them is gone), behind."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        while parent.is_alive() and os.getppid() == parent.pid:
            parent.join(timeout=2.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
