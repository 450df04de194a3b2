"""Decoding long files with `core.audio.decode_pool.DecodePool` (time slices across processes) against the serial decoder.

For each worker count: the time for one file (workers started before the clock, as in a server), the CPU seconds
its workers and this process spent on it, whether the result equals the serial decode bit for bit, and the time to
decode several files at once through one pool. `--demux-from-start` plans the slices as before
`core.audio.mp3_frames` (every worker demuxes from the file's start), for comparison.

    python -m bench.decode_bench FILE.mp3 [MORE.mp3 ...] [--workers 4,8,16] [--demux-from-start]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode_bench", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+")
    p.add_argument("--workers", default="4,8,16")
    p.add_argument("--demux-from-start", action="store_true", help="the slices as planned before the MP3 frame walk")
    p.add_argument("--slice-seconds", type=float, default=None,
                   help="slice length (default: core.audio.slices.SLICE_S; 100000 = one slice per worker, as before)")
    args = p.parse_args(argv)
    from bench.cpu_time import process_cpu_s
    from core.audio import slices
    from core.audio.decode import decode_audio
    from core.audio.decode_pool import DecodePool

    if args.demux_from_start:  # no slice gets a frame to start from: each worker demuxes from the start
        slices.slice_starts = lambda path, first_pos, first_index, points: [None] * len(points)

    first = args.paths[0]
    results: dict[str, float] = {}
    t0 = time.perf_counter()
    ref = decode_audio(first)
    results["serial s"] = round(time.perf_counter() - t0, 3)
    results["audio s"] = len(ref) / 16000
    for n in [int(x) for x in args.workers.split(",")]:
        pool = DecodePool(n, **({"slice_s": args.slice_seconds} if args.slice_seconds else {}))
        try:
            pool.start()
            cpu0 = sum(process_cpu_s(pid) or 0.0 for pid in pool.worker_pids())
            main0, t0 = time.process_time(), time.perf_counter()
            with pool.stream(first) as stream:
                for available, final in stream:
                    if f"{n} workers, first audio s" not in results:
                        results[f"{n} workers, first audio s"] = round(time.perf_counter() - t0, 3)
                        results[f"{n} workers, first audio min"] = round(available / 16000 / 60, 1)
                out = stream.samples
            results[f"{n} workers s"] = round(time.perf_counter() - t0, 3)
            results[f"{n} workers CPU s (workers + this process)"] = round(
                sum(process_cpu_s(pid) or 0.0 for pid in pool.worker_pids()) - cpu0 + time.process_time() - main0, 2)
            results[f"{n} workers bit-exact"] = bool(len(out) == len(ref) and np.array_equal(out, ref))
            if len(args.paths) > 1:
                t0 = time.perf_counter()
                with ThreadPoolExecutor(len(args.paths)) as threads:
                    lengths = list(threads.map(lambda path: len(pool.decode(path)), args.paths))
                wall = time.perf_counter() - t0
                results[f"{n} workers, {len(args.paths)} files at once s"] = round(wall, 3)
                results[f"{n} workers, {len(args.paths)} files audio h"] = round(sum(lengths) / 16000 / 3600, 3)
        finally:
            pool.close()
        print(json.dumps(results), flush=True)
    print("DECODE_BENCH " + json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
