"""Decoding one long MP3 in parallel time slices across processes, against core.audio's serial decode.

Each process opens the file, seeks to a little before its slice (pre-roll: the MP3 bit reservoir and the
resampler's history), decodes and resamples to 16 kHz mono, and keeps exactly its slice, placed by the decoded
frames' own timestamps. Processes, not threads: the per-frame Python around PyAV holds the GIL.

    python -m bench.decode_bench FILE.mp3 [--procs 4,8,16]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

RATE = 16000
PREROLL_S = 1.0


def _slice(args) -> np.ndarray:
    import av

    path, t0, t1 = args
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        start = max(0.0, t0 - PREROLL_S)
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE, options={"rematrix_maxval": "1.0"})
        pieces, origin = [], None
        for frame in container.decode(stream):
            if origin is None:
                origin = float(frame.pts * stream.time_base) if frame.pts is not None else start
            for out in resampler.resample(frame):
                pieces.append(out.to_ndarray()[0])
            if frame.pts is not None and float(frame.pts * stream.time_base) > t1 + 0.2:
                break
        for out in resampler.resample(None):
            pieces.append(out.to_ndarray()[0])
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    a = max(0, int(round((t0 - (origin or 0.0)) * RATE)))
    n = int(round(t1 * RATE)) - int(round(t0 * RATE))
    return audio[a:a + n]


def decode_sliced(path, duration_s: float, procs: int, pool: ProcessPoolExecutor | None = None) -> np.ndarray:
    edges = np.linspace(0.0, duration_s, procs + 1)
    jobs = [(path, float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]
    if pool is None:
        with ProcessPoolExecutor(procs) as p:
            parts = list(p.map(_slice, jobs))
    else:
        parts = list(pool.map(_slice, jobs))
    return np.concatenate(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode_bench", description=__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("--procs", default="4,8,16")
    args = p.parse_args(argv)
    from core.audio import decode_audio

    results: dict[str, float] = {}
    t0 = time.perf_counter()
    ref = decode_audio(args.path)
    results["core.audio serial s"] = time.perf_counter() - t0
    duration = len(ref) / RATE
    for n in [int(x) for x in args.procs.split(",")]:
        with ProcessPoolExecutor(n) as pool:
            list(pool.map(abs, range(n)))  # workers started before the clock, as in a server
            t0 = time.perf_counter()
            out = decode_sliced(args.path, duration, n, pool)
            results[f"{n} processes s"] = time.perf_counter() - t0
        m = min(len(out), len(ref))
        results[f"{n} processes length diff samples"] = len(out) - len(ref)
        results[f"{n} processes max abs diff"] = float(np.abs(out[:m] - ref[:m]).max())
        results[f"{n} processes rms diff"] = float(np.sqrt(np.mean((out[:m] - ref[:m]) ** 2)))
        print(json.dumps(results), flush=True)
    print("DECODE_BENCH " + json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
