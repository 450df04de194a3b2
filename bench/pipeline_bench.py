"""Timed passes of the real pipeline (file on disk -> JSON + SRT) and the pieces the report is made of.

Random weights decode garbage: the vLLM backend's benchmark switch holds generation to a fixed number of tokens per
audio second, and `SpeechRateText` then hands the rest of the pipeline English-like text at a speaking rate, because
the garbage tokens of a random model decode to almost nothing (its test tokenizer knows a few hundred of the 152k
ids) and the aligner, merge and writers would otherwise have no words to work on. Its words are one or two letters:
with the test checkpoints' byte-level tokenizer that costs the aligner about the tokens per word the real tokenizer
spends on English (~1.3), so the aligner's sequence lengths match real speech.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.types import SAMPLE_RATE, AsrRequest, ChunkText, Progress, no_progress

from core.options import TranscribeOptions

WORDS_PER_SECOND = 2.5  # conversational English, ~150 words a minute
LANGUAGE = "English"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def filler_text(seconds: float, rng: np.random.Generator, words_per_second: float = WORDS_PER_SECOND) -> str:
    """Sentences of one- and two-letter words, `words_per_second` of them per second of audio."""
    n = max(1, round(seconds * words_per_second))
    lengths = rng.choice((1, 2), size=n, p=(0.7, 0.3))
    letters = rng.integers(0, 26, size=2 * n)
    words, sentence = [], 0
    for i, k in enumerate(lengths):
        w = _LETTERS[letters[2 * i]] + (_LETTERS[letters[2 * i + 1]] if k == 2 else "")
        if sentence == 0:
            w = w.capitalize()
        sentence += 1
        if sentence >= 12 or i == n - 1:
            w += "."
            sentence = 0
        elif sentence % 5 == 0:
            w += ","
        words.append(w)
    return " ".join(words)


class SpeechRateText:
    """Wraps an AsrBackend: runs it for its cost, then returns speaking-rate English text per chunk (see module doc)."""

    def __init__(self, inner, words_per_second: float = WORDS_PER_SECOND, seed: int = 0) -> None:
        self.inner = inner
        self.words_per_second = words_per_second
        self.rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.inner.describe()} + {self.words_per_second:g} words/s of filler text"

    def transcribe(self, requests: list[AsrRequest], progress: Progress = no_progress,
                   on_result=None) -> list[ChunkText]:
        return self.transcribe_groups([requests], progress, on_result)

    def transcribe_groups(self, groups, progress: Progress = no_progress, on_result=None,
                          unwanted=None) -> list[ChunkText | None]:
        """The filler text of each chunk the inner backend ran (None for one it withdrew as `unwanted`)."""
        texts: list[str] = []

        def with_texts():
            for group in groups:
                with self._lock:
                    texts.extend(filler_text(len(r.audio) / SAMPLE_RATE, self.rng, self.words_per_second)
                                 for r in group)
                yield group

        extra = {}
        if on_result is not None:  # pass each chunk on as the engine finishes it, with its filler text
            extra["on_result"] = lambda i, r: on_result(i, ChunkText(LANGUAGE, texts[i], r.truncated))
        real = self.inner.transcribe_groups(with_texts(), progress, unwanted=unwanted, **extra)
        return [None if r is None else ChunkText(LANGUAGE, t, r.truncated) for t, r in zip(texts, real)]


@dataclass
class PassResult:
    name: str
    audio_s: float
    total_s: float
    stages: dict[str, float] = field(default_factory=dict)
    first_result_s: float | None = None
    words: int = 0
    segments: int = 0
    asr_stats: dict[str, int] = field(default_factory=dict)
    align_stats: dict[str, float] = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)  # bench.cpu_time.StageCpu.stop(): CPU seconds, all processes

    @property
    def rtfx(self) -> float:
        return rtfx(self.audio_s, self.total_s)


def rtfx(audio_s: float, wall_s: float) -> float:
    """Real-time factor as a speed: seconds of audio per second of wall time."""
    return audio_s / wall_s if wall_s > 0 else float("inf")


class FirstResult:
    """A progress callback that notes when the first chunk's text exists (ASR reports done > 0)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.at: float | None = None

    def __call__(self, stage: str, done: float, total: float | None) -> None:
        if self.at is None and stage == "transcribe" and done > 0:
            self.at = time.perf_counter() - self.t0


def run_pass(pipeline, path: Path, out_dir: Path, name: str, options: TranscribeOptions | None = None, *,
             measure_cpu: bool = True) -> PassResult:
    """One job as a user runs it: a file on disk in, JSON and SRT with word timestamps out.

    With `measure_cpu`, the CPU time of this process and its children is charged to the stages (bench.cpu_time);
    only meaningful when nothing else runs at the same time (run_many turns it off)."""
    from bench.cpu_time import StageCpu
    from core.output.writers import write_files

    cpu = StageCpu(getattr(getattr(pipeline, "decoder", None), "worker_pids", tuple)) if measure_cpu else None
    first = FirstResult()  # the clock starts after the CPU meter has walked the process tree
    t0 = first.t0

    def progress(stage: str, done: float, total: float | None) -> None:
        first(stage, done, total)
        if cpu is not None:
            cpu(stage, done, total)

    transcript = pipeline.transcribe(str(path), options or TranscribeOptions(), progress)
    t_write = time.perf_counter()
    if cpu is not None:
        cpu.mark("write")
    write_files(transcript, out_dir, name, ["json", "srt"])
    end = time.perf_counter()
    cpu_used = cpu.stop(transcript.duration) if cpu is not None else {}
    stages = {k: v for k, v in transcript.timings.items()}
    stages["write"] = end - t_write
    words = sum(len(s.words) for s in transcript.segments)
    stats = dict(getattr(getattr(pipeline.asr, "inner", pipeline.asr), "last_stats", {}) or {})
    align_stats = dict(getattr(pipeline.aligner, "last_stats", {}) or {})
    return PassResult(name, transcript.duration, end - t0, stages, first.at, words, len(transcript.segments), stats,
                      align_stats, cpu_used)


def _decode(path):
    from core.audio.decode import decode_audio

    return decode_audio(path)


def run_audio(pipeline, future, out_dir: Path, name: str, options: TranscribeOptions | None, t0: float
              ) -> PassResult:
    """Like run_pass, for audio decoded elsewhere (`future` gives the samples); times count from `t0`."""
    from core.output.writers import write_files

    samples = future.result()
    t_decoded = time.perf_counter()
    first = FirstResult()
    transcript = pipeline.transcribe_audio(samples, options or TranscribeOptions(), first)
    t_write = time.perf_counter()
    write_files(transcript, out_dir, name, ["json", "srt"])
    end = time.perf_counter()
    stages = {"decoded_at": t_decoded - t0, **transcript.timings, "write": end - t_write}
    words = sum(len(s.words) for s in transcript.segments)
    return PassResult(name, transcript.duration, end - t0, stages, None, words, len(transcript.segments))


def run_many(pipeline, paths: list[Path], out_dir: Path, options: TranscribeOptions | None = None,
             deadline_s: float | None = None, log=print, decode_in_processes: bool = False
             ) -> tuple[float, list[PassResult]]:
    """All files in flight at once: one thread each runs the job, as a worker with that concurrency does.

    By default each job decodes through the pipeline's own DecodePool (time slices across processes, as in the
    product); with `decode_in_processes`, each file is instead decoded whole in a process of a separate pool, and the
    thread runs the rest through `Pipeline.transcribe_audio` (the design of run 2 in bench/RESULTS.md). Torch's CPU
    threads are divided among the jobs (silero and CPU features would otherwise oversubscribe the cores 16-fold).
    Returns (wall time, the passes that finished). With `deadline_s`, files still running then are left out.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    import torch

    results: list[PassResult | BaseException | None] = [None] * len(paths)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // len(paths)))
    import multiprocessing

    pool = (ProcessPoolExecutor(min(len(paths), os.cpu_count() or 1), mp_context=multiprocessing.get_context("spawn"))
            if decode_in_processes else None)  # spawn: never fork a process that holds CUDA and vLLM's threads
    if pool is not None:
        list(pool.map(abs, range(pool._max_workers)))  # workers up before the clock starts, as in a server
    t0 = time.perf_counter()
    decoded = [pool.submit(_decode, str(p)) for p in paths] if pool is not None else None

    def work(i: int) -> None:
        try:
            if decoded is None:
                r = run_pass(pipeline, paths[i], out_dir, f"many{i:02d}", options, measure_cpu=False)
            else:
                r = run_audio(pipeline, decoded[i], out_dir, f"many{i:02d}", options, t0)
            results[i] = r
            log(f"  file {i:02d} done at {time.perf_counter() - t0:.1f} s: "
                + ", ".join(f"{k} {v:.2f}" for k, v in r.stages.items()))
        except BaseException as e:  # reported below; one failure must not hang the others
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(None if deadline_s is None else max(0.0, deadline_s - (time.perf_counter() - t0)))
    wall = time.perf_counter() - t0
    torch.set_num_threads(threads_before)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(paths)} files failed: {errors[0]!r}") from errors[0]
    return wall, [r for r in results if isinstance(r, PassResult)]


def feature_seconds(chunks: list[np.ndarray], device: str = "cpu") -> float:
    """Wall time of log-mel features for these chunks the way vLLM's processor makes them (Whisper extractor)."""
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=SAMPLE_RATE, hop_length=160, n_fft=400)
    t0 = time.perf_counter()
    for c in chunks:
        fe(c, sampling_rate=SAMPLE_RATE, padding=True, truncation=False, return_attention_mask=True,
           return_tensors="np", device=device)
    return time.perf_counter() - t0


def gpu_memory() -> dict[str, float]:
    """GiB in use on the card (all processes, vLLM's engine included) and this process's torch peak."""
    import torch

    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    return {"card_used_gib": (total - free) / 2**30, "card_total_gib": total / 2**30,
            "torch_peak_gib": torch.cuda.max_memory_allocated() / 2**30}


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; columns padded so it also reads as plain text."""
    cells = [header] + rows
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
