"""Garbage-collector pauses in a job's merge once the models' modules are loaded, with and without `gc.freeze()`.

A full (generation 2) collection walks every tracked object of the process; once torch, transformers (and vLLM where
it is installed) and the pipeline are imported that is hundreds of thousands, and the pause stops every thread of
every job. Beside vLLM (run 24) the first merge held a 241 ms full collection and frozen ones none, so servers'
`Pipeline.warm_up` freezes what loading made; this measures what that is worth. Each mode runs in a fresh
interpreter: the imports, then `build_transcript` over three synthetic hours (`bench.merge_bench.hour_job`), noting each generation-2 pause,
plain, frozen, with a higher young-generation threshold, and both:

    python3 -m bench.gc_pause
"""
from __future__ import annotations

import gc
import subprocess
import sys
import time

MODES = ("plain", "freeze", "threshold", "freeze-threshold")  # "threshold": young collections every THRESHOLD objects
THRESHOLD = 20000  # Python's default is 700 (2,000 in 3.13+)


def child(mode: str) -> None:
    import torch  # noqa: F401 - the heap a worker has before its first job
    import transformers  # noqa: F401

    try:  # the GPU image's heap (vLLM's modules); CPU installs have none
        import vllm  # noqa: F401
    except ImportError:
        pass

    import core.align.aligner  # noqa: F401
    import core.asr.transformers_backend  # noqa: F401
    import core.pipeline  # noqa: F401
    from bench.merge_bench import hour_job
    from core.output.merge import build_transcript

    objects = len(gc.get_objects())
    if mode.startswith("freeze"):
        gc.freeze()
    if mode.endswith("threshold"):
        gc.set_threshold(THRESHOLD, *gc.get_threshold()[1:])
    pauses: list[float] = []
    started = [0.0]

    def note(phase: str, info: dict) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(note)
    for i in range(3):
        job = hour_job(seed=i)
        before = len(pauses)
        t = time.perf_counter()
        build_transcript(*job)
        took = time.perf_counter() - t
        print(f"{mode:16s}  objects {objects:8d}  merge {i}: {took * 1000:6.1f} ms, "
              f"full collections in it: {[round(p * 1000, 1) for p in pauses[before:]]} ms", flush=True)


def main() -> int:
    if len(sys.argv) > 1:
        child(sys.argv[1])
        return 0
    for mode in MODES:
        subprocess.run([sys.executable, "-m", "bench.gc_pause", mode], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
