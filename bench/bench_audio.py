"""Decode and chunking timings on CPU, and cut quality of the energy detector against silero VAD.

    python bench/bench_audio.py [--cache DIR] [--minutes 10] [--hours 1] [--formats mp3,m4a,ogg]

Inputs are synthetic podcasts (espeak-ng sentences with pauses of known length, tests/audio_helpers.py), encoded
the way podcasts are published (MP3 128 kb/s 44.1 kHz stereo; AAC and Opus 48 kHz stereo) and repeated by
remuxing packets to an hour, so that making them takes seconds. They are cached in --cache; with the cache
present nothing else is needed (no espeak-ng), so the cache can be carried to another machine.
Prints one table per part; every time is the best of --repeat runs, in seconds per audio hour.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.audio import chunking, vad  # noqa: E402
from core.audio.decode import decode_audio  # noqa: E402
from core.audio.chunking import FRAME, ChunkPlanner, cut_at, frame_levels, plan_chunks  # noqa: E402
from core.audio.speech_check import SpeechCheck, speech_flags  # noqa: E402
from core.types import SAMPLE_RATE, Chunk  # noqa: E402

FORMATS = {"mp3": (44100, 128_000), "m4a": (48000, 128_000), "ogg": (48000, 64_000)}


def make_inputs(cache: Path, minutes: float, hours: float, formats: list[str]) -> dict:
    """The short podcasts, their pauses, and hour-long versions, made once into `cache`.

    Only podcast.mp3 and podcast.json need espeak-ng; the other formats are transcoded from the MP3, so those
    two files are all a machine without espeak-ng needs.
    """
    cache.mkdir(parents=True, exist_ok=True)
    meta_path = cache / "podcast.json"
    sys.path.insert(0, str(ROOT / "tests"))
    from audio_helpers import resample, write_audio

    if not meta_path.exists():
        from audio_helpers import podcast_samples

        pod = podcast_samples(minutes, seed=7)
        x = resample(pod.samples, SAMPLE_RATE, FORMATS["mp3"][0])
        write_audio(cache / "podcast.mp3", np.stack([x, x]), FORMATS["mp3"][0], bitrate=FORMATS["mp3"][1])
        meta_path.write_text(json.dumps({"duration": pod.duration, "pauses": pod.pauses, "speech": pod.speech}))
    for ext in formats:
        rate, bitrate = FORMATS[ext]
        if not (cache / f"podcast.{ext}").exists():
            x = resample(decode_audio(cache / "podcast.mp3"), SAMPLE_RATE, rate)
            write_audio(cache / f"podcast.{ext}", np.stack([x, x]), rate, bitrate=bitrate)
    meta = json.loads(meta_path.read_text())
    repeat = max(1, round(hours * 3600 / meta["duration"]))
    for ext in formats:
        long = cache / f"podcast_x{repeat}.{ext}"
        if not long.exists():
            loop_file(cache / f"podcast.{ext}", long, repeat)
    meta["repeat"] = repeat
    return meta


def loop_file(src: Path, dst: Path, times: int) -> None:
    """`times` copies of src's audio packets back to back, without re-encoding."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.audio[0]
        s_out = out.add_stream_from_template(s_in)
        packets = [p for p in inp.demux(s_in) if p.size]
        span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
        for k in range(times):
            for p in packets:
                p.pts += span if k else 0
                p.dts += span if k else 0
                p.stream = s_out
                out.mux(p)


def best_of(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def bench_decode(cache: Path, meta: dict, formats: list[str], repeat: int) -> np.ndarray:
    hours = meta["duration"] * meta["repeat"] / 3600
    print(f"\n## decode to 16 kHz mono float32 ({hours:.2f} h files; one core)")
    print(f"{'file':22s} {'s/hour':>8s} {'x realtime':>10s}")
    kept = None
    for ext in formats:
        path = cache / f"podcast_x{meta['repeat']}.{ext}"
        t, out = best_of(lambda: decode_audio(path), repeat)
        print(f"{path.name:22s} {t / hours:8.2f} {3600 / (t / hours):10.0f}")
        if ext == "mp3":
            kept = out
        del out
    return kept


def silero_probs(x: np.ndarray, slice_s: float = 30.0, threads: int = 1) -> np.ndarray:
    """Silero's speech probability for every 32 ms window of x, the hour cut into slices run as one batch."""
    import torch

    net = vad.load_vad()
    win = vad.VAD_FRAME
    per = int(slice_s * SAMPLE_RATE) // win * win
    rows = -(-len(x) // per)
    padded = np.zeros(rows * per, np.float32)
    padded[:len(x)] = x
    batch = torch.from_numpy(padded.reshape(rows, per))
    state, context, out = torch.zeros(2, rows, 128), torch.zeros(rows, vad.VAD_CONTEXT), []
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for i in range(0, per, win):
                frame = batch[:, i:i + win]
                prob, state = net(torch.cat([context, frame], dim=1), state)
                context = frame[:, -vad.VAD_CONTEXT:]
                out.append(prob[:, 0].numpy())
    finally:
        torch.set_num_threads(before)
    return np.stack(out, axis=1).reshape(-1)[: -(-len(x) // win)]


def silero_single_stream(x: np.ndarray) -> None:
    """The way silero's get_speech_timestamps runs: one 32 ms window per call."""
    import torch

    vad.load_vad()  # imports silero_vad (which sets torch to one thread) and restores the thread count
    from silero_vad import get_speech_timestamps, load_silero_vad

    threads = torch.get_num_threads()
    model = load_silero_vad()
    torch.set_num_threads(threads)
    get_speech_timestamps(torch.from_numpy(x), model)


def silero_runs(probs: np.ndarray, n: int) -> np.ndarray:
    """Non-speech runs (probability < 0.35 for >= 0.25 s) in 10 ms frames, for chunking.cut_at."""
    frames = -(-n // FRAME)
    window = (np.arange(frames) * FRAME // vad.VAD_FRAME).clip(0, len(probs) - 1)
    nonspeech = probs[window] < 0.35
    return chunking.silent_runs(np.where(nonspeech, -100.0, 0.0), -50.0, round(chunking.MIN_SILENCE_S * 100))


def streamed_main_thread(x: np.ndarray, reuse_levels: bool) -> tuple[float, int]:
    """Seconds the pipeline's main thread spends on audio arriving a minute at a time (cut, and say which chunks
    sound; the speech check's VAD works on its own thread meanwhile, as in a job), and the chunks it sends on. The
    sounding check reads the planner's frame levels (`reuse_levels`, the pipeline since run 23) or its own."""
    planner, check, sent, step = ChunkPlanner(target_s=30, max_s=60), SpeechCheck(), 0, 60 * SAMPLE_RATE
    try:
        t0 = time.perf_counter()
        for end in range(step, len(x) + step, step):
            final = end >= len(x)
            new = planner.feed(x, min(end, len(x)), final)
            sent += len(check.add(x, new, final, planner.levels if reuse_levels else None))
        return time.perf_counter() - t0, sent
    finally:
        check.close()


def bench_chunking(x: np.ndarray, repeat: int) -> None:
    hours = len(x) / SAMPLE_RATE / 3600
    sys.path.insert(0, str(ROOT / "tests"))
    from audio_helpers import music

    print(f"\n## chunking ({hours:.2f} h of decoded MP3; s per audio hour; silero on CPU)")
    speech_flags(x[:SAMPLE_RATE], [Chunk(0, 0, SAMPLE_RATE)])  # load torch and the model outside the timings
    t, chunks = best_of(lambda: plan_chunks(x, target_s=30, max_s=60, vad=False), repeat)
    print(f"{'plan_chunks, energy only':48s} {t / hours:8.3f}   {len(chunks)} chunks")
    t, chunks = best_of(lambda: plan_chunks(x, target_s=30, max_s=60), repeat)
    print(f"{'plan_chunks, hybrid (the default)':48s} {t / hours:8.3f}   {len(chunks)} chunks")
    loud = x + music(len(x) / SAMPLE_RATE, amplitude=0.3)[:len(x)]
    t, hard = best_of(lambda: plan_chunks(loud, target_s=30, max_s=60), repeat)
    print(f"{'plan_chunks, hybrid, music bed as loud as speech':48s} {t / hours:8.3f}   {len(hard)} chunks")
    del loud
    for reuse in (False, True):
        t, sent = min(streamed_main_thread(x, reuse) for _ in range(repeat))
        name = f"streamed main thread, {'the planner' if reuse else 'own'} levels"
        print(f"{name:48s} {t / hours:8.3f}   {sent} chunks sent (ChunkPlanner + SpeechCheck.add, 1-min steps)")
    t, flags = best_of(lambda: speech_flags(x, chunks), repeat)
    print(f"{'speech_flags (silero, early exit, 1 thread)':48s} {t / hours:8.3f}   {sum(flags)} of {len(flags)} speech")
    silent = np.zeros_like(x)
    silent += music(len(x) / SAMPLE_RATE, amplitude=0.3)[:len(x)]
    t, flags = best_of(lambda: speech_flags(silent, chunks), 1)
    print(f"{'speech_flags on music only (no early exit)':48s} {t / hours:8.3f}   {sum(flags)} of {len(flags)} speech")
    del silent
    minute = x[: 60 * SAMPLE_RATE].copy()
    t, _ = best_of(lambda: silero_single_stream(minute), 1)
    print(f"{'silero get_speech_timestamps, 1 stream':48s} {t * 60:8.2f}   (timed on 1 min)")
    for threads in sorted({1, 2, 4, 8, os.cpu_count() or 1}):
        if threads <= (os.cpu_count() or 1):
            t, _ = best_of(lambda: silero_probs(x, threads=threads), 1)
            print(f"{f'silero whole file, batch of 30 s rows, {threads} threads':48s} {t / hours:8.2f}")


def cut_quality(meta: dict, cache: Path) -> None:
    print("\n## cut quality: podcast decoded from MP3, target 30 s, max 60 s; pauses are known")
    print(f"{'audio':26s} {'detector':8s} {'cuts in pauses':>14s} {'min margin':>10s} {'chunk s (min/mean/max)':>24s}")
    base = decode_audio(cache / "podcast.mp3")
    pauses = meta["pauses"]
    rng = np.random.default_rng(0)
    sys.path.insert(0, str(ROOT / "tests"))
    from audio_helpers import music

    beds = {
        "clean": base,
        "noise floor -35 dBFS": base + (rng.standard_normal(len(base)) * 10 ** (-35 / 20)).astype(np.float32),
        "noise floor -25 dBFS": base + (rng.standard_normal(len(base)) * 10 ** (-25 / 20)).astype(np.float32),
        "music bed -20 dB": base + music(len(base) / SAMPLE_RATE, amplitude=0.1)[:len(base)],
        "music bed as loud": base + music(len(base) / SAMPLE_RATE, amplitude=0.3)[:len(base)],
    }
    for name, x in beds.items():
        levels = frame_levels(x)
        quiet = chunking.smooth_levels(levels, 20)
        results = {"energy": plan_chunks(x, target_s=30, max_s=60, vad=False),
                   "hybrid": plan_chunks(x, target_s=30, max_s=60),
                   "silero": cut_at(len(x), silero_runs(silero_probs(x), len(x)), quiet, target_s=30, max_s=60)}
        for det, chunks in results.items():
            cuts = [c.start / SAMPLE_RATE for c in chunks[1:]]
            margins = [max((min(t - a, b - t) for a, b in pauses if a <= t <= b), default=-1.0) for t in cuts]
            ok = sum(m >= 0 for m in margins)
            lens = [c.duration for c in chunks]
            good = [m for m in margins if m >= 0]
            print(f"{name:26s} {det:8s} {f'{ok}/{len(cuts)}':>14s} {min(good, default=0):10.2f} "
                  f"{f'{min(lens):.0f}/{np.mean(lens):.0f}/{max(lens):.0f}':>24s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bench-audio"))
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic podcast")
    ap.add_argument("--hours", type=float, default=1.0, help="length of the looped files timed for decode")
    ap.add_argument("--formats", default=",".join(FORMATS), help="which of mp3,m4a,ogg to time")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: decode,chunking,quality")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    formats = sorted(set(args.formats.split(",")) | {"mp3"}, key=list(FORMATS).index)
    meta = make_inputs(args.cache, args.minutes, args.hours, formats)
    x = None
    if "decode" not in skip:
        x = bench_decode(args.cache, meta, formats, args.repeat)
    if "chunking" not in skip:
        if x is None:
            x = decode_audio(args.cache / f"podcast_x{meta['repeat']}.mp3")
        bench_chunking(x, args.repeat)
    if "quality" not in skip:
        cut_quality(meta, args.cache)


if __name__ == "__main__":
    main()
