"""The CPU tail of a job on its own: core.output.merge.build_transcript and each writer, for an hour of speech.

The inputs are what the pipeline hands merge for a 60-minute file on the GPU benchmark: chunks of 28.5-31 s tiling
the audio (~121), speaking-rate filler text per voiced chunk (`bench.pipeline_bench.filler_text`, 2.5 words/s; a few
chunks unvoiced, text None), and aligner output made the way `core.align.aligner.Aligner` makes it (its word split, times on
the 80 ms class grid with a few strays, repaired, clamped and rounded by `words_from_marks`); some chunks get None, as
when alignment fails. No model runs, so this measures only merge and write. Best of N, one thread:

    python3 -m bench.merge_bench [--minutes 60] [--language English|Chinese] [--repeat 5] [--profile]
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time

import numpy as np

from bench.pipeline_bench import filler_text, format_table
from core.align.aligner import split_words
from core.align.word_times import words_from_marks
from core.output.merge import build_transcript
from core.types import SAMPLE_RATE, Chunk, ChunkText, Word

CLASS_S = 0.08  # the aligner's timestamp class (timestamp_segment_time)
_HANZI = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于子出就分对成会可也你说年前天好"


def chinese_text(seconds: float, rng: np.random.Generator, chars_per_second: float = 4.0) -> str:
    """Chinese-like filler: characters at a speaking rate, a fullwidth comma or full stop every few, no spaces."""
    n = max(1, round(seconds * chars_per_second))
    out, run = [], 0
    for i, k in enumerate(rng.integers(0, len(_HANZI), size=n)):
        out.append(_HANZI[k])
        run += 1
        if i == n - 1 or run >= rng.integers(6, 16):
            out.append("。" if rng.random() < 0.4 or i == n - 1 else "，")
            run = 0
    return "".join(out)


def chunk_plan(duration: float, rng: np.random.Generator) -> list[Chunk]:
    """Chunks of 28.5-31 s (cut on 10 ms frames, as the planner cuts) tiling [0, duration]."""
    total, chunks, start = round(duration * SAMPLE_RATE), [], 0
    while start < total:
        end = min(start + int(rng.integers(2850, 3100)) * (SAMPLE_RATE // 100), total)
        chunks.append(Chunk(len(chunks), start, end))
        start = end
    return chunks


def aligned_words(text: str, language: str, seconds: float, rng: np.random.Generator,
                  stray: float = 0.02) -> list[Word]:
    """Aligner-shaped output for `text`: one word per aligner unit, talk spread over the chunk with pauses after
    sentences, times on the class grid, a few strays, then words_from_marks (repair, clamp, round)."""
    tokens = split_words(text, language)
    pieces = text.split() if language != "Chinese" else list(text)
    pauses = [0.3 + rng.random() if p[-1:] in ".。" else 0.0 for p in pieces if split_words(p, language)]
    pauses += [0.0] * (len(tokens) - len(pauses))
    lengths = rng.uniform(0.12, 0.32, len(tokens))
    gaps = rng.uniform(0.03, 0.15, len(tokens)) + np.asarray(pauses)
    ends = np.cumsum(lengths + gaps) - gaps
    scale = (seconds - 0.4) / max(ends[-1], 1e-9) if len(tokens) else 1.0
    starts, ends = 0.2 + (ends - lengths) * scale, 0.2 + ends * scale
    times = np.round(np.column_stack([starts, ends]).ravel() / CLASS_S) * CLASS_S
    bad = rng.random(len(times)) < stray
    times[bad] = rng.integers(0, round(seconds / CLASS_S), int(bad.sum())) * CLASS_S
    return words_from_marks(tokens, times.tolist(), seconds)


def hour_job(minutes: float = 60.0, language: str = "English", seed: int = 0, unvoiced: float = 0.03,
             failed: float = 0.05):
    """(chunks, texts, words, duration) as build_transcript receives them from the pipeline."""
    rng = np.random.default_rng(seed)
    duration = minutes * 60.0
    chunks = chunk_plan(duration, rng)
    texts: list[ChunkText | None] = []
    words: list[list[Word] | None] = []
    for c in chunks:
        if rng.random() < unvoiced:
            texts.append(None)
            words.append(None)
            continue
        text = chinese_text(c.duration, rng) if language == "Chinese" else filler_text(c.duration, rng)
        texts.append(ChunkText(language, text))
        words.append(None if rng.random() < failed else aligned_words(text, language, c.duration, rng))
    return chunks, texts, words, duration


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    from core.output.writers import get_writer, subtitle_cues, write_files

    p = argparse.ArgumentParser(prog="python3 -m bench.merge_bench", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--language", choices=("English", "Chinese"), default="English")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=5, help="timed runs per stage; the best is reported")
    p.add_argument("--profile", action="store_true", help="also print cProfile's top functions per stage")
    args = p.parse_args(argv)

    chunks, texts, words, duration = hour_job(args.minutes, args.language, args.seed)
    merge = lambda: build_transcript(chunks, texts, words, duration)  # noqa: E731
    transcript = merge()
    n_words = sum(len(s.words) for s in transcript.segments)
    n_cues = sum(1 for _ in subtitle_cues(transcript))
    print(f"{args.minutes:g} min {args.language}: {len(chunks)} chunks ({texts.count(None)} unvoiced, "
          f"{sum(t is not None and w is None for t, w in zip(texts, words))} without words), "
          f"{len(transcript.text)} characters, {n_words} words, {len(transcript.segments)} segments, {n_cues} cues")

    def render(fmt):
        return lambda: get_writer(fmt).write(transcript, io.StringIO())

    with tempfile.TemporaryDirectory() as tmp:
        stages = [("merge (build_transcript)", merge)] + [(f"write {f.upper()}", render(f))
                                                          for f in ("json", "srt", "vtt", "txt")]
        stages.append(("write_files JSON + SRT", lambda: write_files(transcript, tmp, "hour", ["json", "srt"])))
        rows = [[name, f"{best_of(fn, args.repeat) * 1000:.1f}"] for name, fn in stages]
        if args.profile:
            import cProfile
            import pstats

            for name, fn in stages:
                print(f"\n--- {name}")
                prof = cProfile.Profile()
                prof.runcall(fn)
                pstats.Stats(prof).sort_stats("tottime").print_stats(8)
    print(format_table(["stage", f"best of {args.repeat} (ms)"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
