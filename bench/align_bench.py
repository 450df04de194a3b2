"""The aligner alone on the GPU: core.align.aligner (head on <timestamp> positions) by batch size, and the toolkit's way.

An hour of synthetic speech cut in 30 s chunks (120 of them) with speaking-rate filler text, aligned whole, twice
per setting (the second time is reported); then the original design's 270 s chunks through the full-logits path.

    python -m bench.align_bench ALIGNER_DIR [--batches 8,32,64,120] [--profile 32] [--ways loop,grouped,packed]

`--profile B` also runs the hour once at batch B under torch.profiler and prints where the time went: the
aligner's own stage split (features, inputs, model, words) and the top operators by GPU and by CPU time.
`--ways` times the audio encoder's windowed attention done each way (core.models.window_attention; "loop" is
transformers' own window-by-window SDPA) at batch 32, and counts the word times that differ from the loop's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.align_bench", description=__doc__.splitlines()[0])
    p.add_argument("aligner_dir")
    p.add_argument("--batches", default="8,32,64,120")
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--profile", type=int, default=0, metavar="B", help="profile one aligned hour at batch B")
    p.add_argument("--ways", default="", help="compare the encoder's attention ways, e.g. loop,grouped,packed")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from bench.original import ToolkitAligner
    from bench.pipeline_bench import filler_text
    from bench.synth import synth_speech
    from core.align.aligner import Aligner
    from core.config import config_from_env
    from core.types import SAMPLE_RATE, AlignRequest

    audio = synth_speech(args.minutes * 60, seed=77)
    rng = np.random.default_rng(1)
    results: dict[str, float] = {}

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    step = 30 * SAMPLE_RATE
    reqs = [AlignRequest(audio[i:i + step], filler_text(len(audio[i:i + step]) / SAMPLE_RATE, rng), "English")
            for i in range(0, len(audio), step)]
    aligner = None
    for b in [int(x) for x in args.batches.split(",")]:
        aligner = None  # a new one per batch size: the size is fixed when its engine is built
        aligner = Aligner(config_from_env(aligner_model=args.aligner_dir, device="cuda", align_batch_size=b))
        torch.cuda.reset_peak_memory_stats()
        results[f"core.align.aligner 30s x{len(reqs)} batch {b}"] = timed(lambda: aligner.align(reqs))
        results[f"core.align.aligner batch {b} peak GiB"] = torch.cuda.max_memory_allocated() / 2**30
        print(json.dumps(results), flush=True)

    if args.ways:
        results.update(compare_ways(Aligner(config_from_env(aligner_model=args.aligner_dir, device="cuda",
                                                            align_batch_size=32)), reqs, args.ways.split(","), timed))
        print(json.dumps(results), flush=True)
    if args.profile:
        profile(Aligner(config_from_env(aligner_model=args.aligner_dir, device="cuda", align_batch_size=args.profile)),
                reqs)

    big = 270 * SAMPLE_RATE
    pieces = [audio[i:i + big] for i in range(0, len(audio), big)]
    texts = [filler_text(len(x) / SAMPLE_RATE, rng) for x in pieces]
    toolkit = ToolkitAligner(args.aligner_dir, device="cuda", model=aligner.model)
    torch.cuda.reset_peak_memory_stats()
    results[f"toolkit full logits 270s x{len(pieces)} batch 32"] = timed(lambda: toolkit.align(pieces, texts))
    results["toolkit peak GiB"] = torch.cuda.max_memory_allocated() / 2**30
    print("ALIGN_BENCH " + json.dumps(results), flush=True)
    return 0


def compare_ways(aligner, reqs, ways: list[str], timed) -> dict[str, float]:
    """Time each way of the encoder's windowed attention; count word times that differ from the first way's."""
    from core.models import window_attention as wa

    out, first = {"ways: torch has varlen_attn": wa.packed_attention() is not None}, None
    encoders = [m for m in aligner.model.modules() if type(m).__name__ == "Qwen3ASREncoder"]
    try:
        for way in ways:
            for enc in encoders:
                enc.config._attn_implementation = "sdpa" if way == "loop" else wa.NAME
            wa.force_way(None if way == "loop" else way)
            out[f"ways: {way} batch 32 s"] = timed(lambda: aligner.align(reqs))
            words = [w for chunk in aligner.align(reqs) for w in (chunk or [])]
            if first is None:
                first = words
                out["ways: words"] = len(words)
            else:
                diffs = [max(abs(a.start - b.start), abs(a.end - b.end)) for a, b in zip(first, words)]
                out[f"ways: {way} words moved"] = sum(d > 1e-6 for d in diffs) + abs(len(first) - len(words))
                out[f"ways: {way} largest move s"] = max(diffs, default=0.0)
    finally:
        wa.force_way(None)
        for enc in encoders:
            enc.config._attn_implementation = wa.NAME
    return out


def profile(aligner, reqs) -> None:
    """One warm aligned hour under torch.profiler: the stage split, then operators by GPU time and by CPU time."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    aligner.align(reqs)  # warm
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        aligner.align(reqs)
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    events = prof.key_averages()
    gpu_s = sum(e.self_device_time_total for e in events) / 1e6
    print("ALIGN_PROFILE " + json.dumps({"batch": aligner.batch_size, "wall_s": wall, "gpu_busy_s": gpu_s,
                                         **aligner.last_stats}), flush=True)
    print(events.table(sort_by="self_device_time_total", row_limit=25), flush=True)
    print(events.table(sort_by="self_cpu_time_total", row_limit=25), flush=True)


if __name__ == "__main__":
    sys.exit(main())
