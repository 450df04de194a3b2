"""The diarization stage's cost: the GPU bench's diarizer (timed, fed the speech stretches, see
`SpeechStretchDiarizer`), and `python3 -m bench.speakers`, the stage alone on this machine (CPU by default) with the
full-size random diarizer.

The stand-alone mode needs no espeak-ng and no MP3: synthetic speech (bench.synth) with the speech stretches the
energy rule of core.audio.chunking finds between its pauses, which is where aligned words lie. It times
`Diarizer.diarize` end to end (windows, embeddings, clustering, turns), best of `--repeat`, and prints seconds per
audio hour. A few minutes give about 90 windows a minute; an hour is capped at core.diarize.windows.MAX_WINDOWS
(4000), and clustering grows with the cube of the window count, so the hour is also estimated from the measured
cost of one window times the hour's windows plus clustering timed on that many (random) embeddings.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from core.types import SAMPLE_RATE, Progress, no_progress


class TimedEmbedder:
    """Wraps a speaker embedder and notes its last call: windows embedded and seconds (device work finished)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.last: dict[str, float] = {}

    def describe(self) -> str:
        return self.inner.describe()

    def embed(self, clips: list[np.ndarray], progress: Progress = no_progress):
        import torch

        t0 = time.perf_counter()
        out = self.inner.embed(clips, progress)
        if out.is_cuda:
            torch.cuda.synchronize(out.device)
        self.last = {"windows": len(clips), "embed_s": time.perf_counter() - t0}
        return out


class SpeechStretchDiarizer:
    """The product's `Diarizer`, given the audio's speech stretches (`speech_spans`) in place of the pipeline's word
    spans. Random aligner weights put every word of a chunk at its end with no length, which leaves the stage no
    speech to embed; real words lie where the energy rule finds speech. Finding the stretches is part of the timed
    stage; `last` has the embedder's numbers, the stretches' seconds and how much speech the pipeline's spans held."""

    def __init__(self, diarizer) -> None:
        self.inner = diarizer
        self.embedder = diarizer.embedder
        self.last: dict[str, float] = {}

    def describe(self) -> str:
        return self.inner.describe()

    def diarize(self, samples: np.ndarray, spans, options, progress: Progress = no_progress):
        from core.diarize.windows import speech_runs

        t0 = time.perf_counter()
        stretches = speech_spans(samples)
        found_s = time.perf_counter() - t0
        self.embedder.last = {}
        turns = self.inner.diarize(samples, stretches, options, progress)
        self.last = {**self.embedder.last, "spans_s": found_s, "speech_s": sum(b - a for a, b in stretches),
                     "word_speech_s": sum(b - a for a, b in speech_runs(spans))}
        return turns


def timed_diarizer(config) -> SpeechStretchDiarizer:
    """The product's `Diarizer` for DIARIZER_MODEL on the configured device, its embedder timed (`TimedEmbedder`),
    fed the audio's speech stretches (`SpeechStretchDiarizer`)."""
    from core.diarize.diarizer import Diarizer
    from core.diarize.embedder import SpeakerEmbedder
    from core.models.layout import resolve_device

    device, dtype = resolve_device(config)
    return SpeechStretchDiarizer(Diarizer(embedder=TimedEmbedder(SpeakerEmbedder(config.diarizer_model, device,
                                                                                 dtype))))


def speech_spans(samples: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) seconds of the audio between the energy rule's silences (at least MIN_SILENCE_S long)."""
    from core.audio.chunking import FRAME, MIN_SILENCE_S, frame_levels, silence_threshold, silent_runs, smooth_levels

    levels = frame_levels(samples)
    quiet = silent_runs(smooth_levels(levels, 5), silence_threshold(levels), round(MIN_SILENCE_S * 100))
    step = FRAME / SAMPLE_RATE
    spans, pos = [], 0
    for a, b in quiet:
        if a > pos:
            spans.append((pos * step, a * step))
        pos = b
    if pos < len(levels):
        spans.append((pos * step, len(samples) / SAMPLE_RATE))
    return spans


def windows_per_hour(spans: list[tuple[float, float]], duration: float) -> int:
    """How many windows an hour of audio like this gets: the spans repeated to an hour, through plan_windows."""
    from core.diarize.windows import plan_windows, speech_runs

    copies = int(np.ceil(3600.0 / duration))
    hour = [(a + k * duration, b + k * duration) for k in range(copies) for a, b in spans if a + k * duration < 3600]
    return len(plan_windows(speech_runs(hour), 3600.0))


def cluster_seconds(n: int, dim: int, device: str, seed: int = 0) -> float:
    """Wall time of core.diarize.cluster on `n` random unit embeddings of `dim` (automatic count)."""
    import torch

    from core.diarize.cluster import cluster

    gen = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(n, dim, generator=gen), dim=1).to(device)
    t0 = time.perf_counter()
    cluster(x, 1, 20)
    return time.perf_counter() - t0


def measure(diarizer, samples: np.ndarray, spans, *, repeat: int, device: str, hour: bool = True) -> dict:
    """Best-of-`repeat` timing of the stage on `samples`, and (`hour`) the hour estimated from it (module doc)."""
    from core.options import TranscribeOptions

    options = TranscribeOptions(diarize=True)
    duration = len(samples) / SAMPLE_RATE
    runs = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        turns = diarizer.diarize(samples, spans, options)
        runs.append({"stage_s": time.perf_counter() - t0, **diarizer.last})
    best = min(runs, key=lambda r: r["stage_s"])
    out = {"audio_s": duration, "speech_s": sum(b - a for a, b in spans), "windows": best["windows"],
           "turns": len(turns), "speakers": len({t.speaker for t in turns}), "stage_s": best["stage_s"],
           "embed_s": best["embed_s"], "rest_s": best["stage_s"] - best["embed_s"],
           "stage_s_per_audio_hour": best["stage_s"] * 3600.0 / duration, "runs": [r["stage_s"] for r in runs]}
    if hour:
        out["hour_windows"] = windows_per_hour(spans, duration)
        dim = int(diarizer.embedder.inner.model.config.xvector_output_dim)
        out["hour_cluster_s"] = cluster_seconds(out["hour_windows"], dim, device)
        per_window = best["embed_s"] / max(1, best["windows"])
        out["hour_estimate_s"] = per_window * out["hour_windows"] + out["hour_cluster_s"]
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m bench.speakers", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--minutes", type=float, default=3.0, help="length of the synthetic speech")
    p.add_argument("--size", choices=("full", "tiny"), default="full", help="random diarizer size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto", help="DTYPE for the stage (auto: bf16 on CUDA, float32 on CPU)")
    p.add_argument("--repeat", type=int, default=2, help="timed runs; the best is reported")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-speakers"), help="the checkpoint goes here")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-hour", action="store_true", help="skip the hour's estimate (clustering ~4000 windows)")
    return p


def main(argv: list[str] | None = None) -> dict:
    import torch

    from bench.speaker_checkpoint import build_diarizer_checkpoint
    from bench.synth import synth_speech
    from core.config import config_from_env
    from core.options import TranscribeOptions

    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = args.work / f"diarizer-{args.size}"
    if not (ckpt / "model.safetensors").exists():
        build_diarizer_checkpoint(ckpt, size=args.size, device=args.device)
    t0 = time.perf_counter()
    diarizer = timed_diarizer(config_from_env(diarizer_model=str(ckpt), device=args.device, dtype=args.dtype))
    load_s = time.perf_counter() - t0
    samples = synth_speech(args.minutes * 60, args.seed)
    spans = speech_spans(samples)
    warm = samples[:30 * SAMPLE_RATE]
    diarizer.diarize(warm, speech_spans(warm), TranscribeOptions(diarize=True))  # first-call costs off the clock
    result = {"model": diarizer.describe(), "size": args.size, "device": args.device,
              "threads": torch.get_num_threads(), "load_s": load_s,
              **measure(diarizer, samples, spans, repeat=args.repeat, device=args.device, hour=not args.no_hour)}
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
    line = (f"diarize stage, {args.size} random WavLM x-vector on {args.device} ({result['threads']} threads): "
            f"{result['stage_s']:.2f} s for {result['audio_s'] / 60:.1f} min ({result['windows']} windows) = "
            f"{result['stage_s_per_audio_hour']:.1f} s per audio hour")
    if "hour_estimate_s" in result:
        line += (f"; an hour estimated at {result['hour_estimate_s']:.1f} s ({result['hour_windows']} windows, "
                 f"clustering them {result['hour_cluster_s']:.2f} s)")
    print(line, flush=True)
    return result


if __name__ == "__main__":
    main()
