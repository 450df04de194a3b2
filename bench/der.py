"""Diarization error rate of our clustering-and-assignment path on synthetic conversations with known turns.

`python3 -m bench.der` (needs espeak-ng, and `pip install -r bench/requirements-der.txt` for the stand-in model)
builds conversations of 2 and 3 espeak-ng voices (bench.conversation) and runs the product's stage on them:
core.diarize windows -> an embedder -> core.diarize.cluster -> turns, through `Diarizer(embedder=...)`. The
embedders: resemblyzer's pretrained GE2E encoder (real speaker-embedding weights shipped inside its wheel, standing
in for the WavLM x-vector model, whose weights cannot be fetched here), and the random tiny/full WavLM x-vector
checkpoints, which cannot tell voices apart and so show that the metric does fail. Speech spans are the
conversation's known turns (what aligned words give), or the voiced chunks, the pipeline's path when it has no word
times; the speaker count is found automatically or forced to the truth.

DER = (missed + false alarm + confusion) / reference speech, scored on 10 ms frames with the best one-to-one mapping
of hypothesis speakers to reference speakers; "collar" leaves that many seconds either side of each reference
boundary unscored. One speaker at a time only: overlapping reference turns are refused, not scored.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from pathlib import Path

import numpy as np

from core.types import Progress, no_progress

STEP_S = 0.01


def _frames(turns, n: int, labels: dict, step: float, *, overlap_ok: bool) -> np.ndarray:
    out = np.full(n, -1, dtype=np.int64)
    for start, end, who in turns:
        a, b = int(round(start / step)), int(round(end / step))
        if not overlap_ok and (out[a:b] >= 0).any():
            raise ValueError("overlapping reference turns: DER here scores one speaker at a time")
        out[a:b] = labels.setdefault(who, len(labels))
    return out


def best_mapping_overlap(matrix: np.ndarray) -> int:
    """The largest total of `matrix[r, h]` over one-to-one maps between rows and columns (exhaustive search)."""
    rows, cols = matrix.shape
    if rows == 0 or cols == 0:
        return 0
    if rows <= cols:
        return max(sum(matrix[r, h] for r, h in zip(range(rows), perm))
                   for perm in itertools.permutations(range(cols), rows))
    return best_mapping_overlap(matrix.T)


def der(reference, hypothesis, *, collar: float = 0.0, step: float = STEP_S) -> dict[str, float]:
    """Missed, false alarm and confusion seconds and DER of `hypothesis` against `reference`, both lists of
    (start s, end s, speaker) with any hashable speaker labels."""
    end = max([e for _, e, _ in reference] + [e for _, e, _ in hypothesis] + [0.0])
    n = int(round(end / step)) + 1
    ref = _frames(reference, n, {}, step, overlap_ok=False)
    hyp = _frames(hypothesis, n, {}, step, overlap_ok=True)
    scored = np.ones(n, dtype=bool)
    c = int(round(collar / step))
    if c:
        for start, end_, _ in reference:
            for edge in (int(round(start / step)), int(round(end_ / step))):
                scored[max(0, edge - c):edge + c] = False
    is_ref, is_hyp = (ref >= 0) & scored, (hyp >= 0) & scored
    both = is_ref & is_hyp
    matrix = np.zeros((ref.max() + 1, hyp.max() + 1), dtype=np.int64)
    np.add.at(matrix, (ref[both], hyp[both]), 1)
    speech = int(is_ref.sum())
    missed, false_alarm = int((is_ref & ~is_hyp).sum()), int((is_hyp & ~is_ref).sum())
    confusion = int(both.sum()) - best_mapping_overlap(matrix)
    return {"speech_s": speech * step, "missed_s": missed * step, "false_alarm_s": false_alarm * step,
            "confusion_s": confusion * step,
            "der": (missed + false_alarm + confusion) / speech if speech else float("nan")}


class ResemblyzerEmbedder:
    """resemblyzer's pretrained GE2E voice encoder (a 3-layer LSTM over 40-band mel frames, 256-d output) behind the
    interface of core.diarize.embedder.SpeakerEmbedder. Each window is brought to resemblyzer's training loudness
    (its own `normalize_volume`, -30 dBFS, louder only) and turned into mel frames by its own
    `wav_to_mel_spectrogram`; windows of one length go through the encoder as one batch."""

    def __init__(self, device: str = "cpu") -> None:
        from resemblyzer import VoiceEncoder

        self.device = device
        self.encoder = VoiceEncoder(device, verbose=False).eval()

    def describe(self) -> str:
        return f"resemblyzer GE2E ({self.device})"

    def embed(self, clips: list[np.ndarray], progress: Progress = no_progress):
        import torch
        from resemblyzer import audio, hparams

        mels = [audio.wav_to_mel_spectrogram(
            audio.normalize_volume(c, hparams.audio_norm_target_dBFS, increase_only=True) if np.any(c) else c)
            for c in clips]
        rows: list = [None] * len(clips)
        progress("diarize", 0, len(clips))
        with torch.inference_mode():
            for length in sorted({len(m) for m in mels}):
                idx = [i for i, m in enumerate(mels) if len(m) == length]
                out = self.encoder(torch.from_numpy(np.stack([mels[i] for i in idx])).to(self.device))
                for i, row in zip(idx, torch.nn.functional.normalize(out.float(), dim=1)):
                    rows[i] = row
        progress("diarize", len(clips), len(clips))
        return torch.stack(rows) if rows else torch.zeros((0, 1))


class Memo:
    """An embedder that remembers its answer for the same clips (the automatic and forced counts share windows)."""

    def __init__(self, inner) -> None:
        self.inner, self.seen = inner, {}

    def describe(self) -> str:
        return self.inner.describe()

    def embed(self, clips, progress: Progress = no_progress):
        key = hashlib.blake2b(b"".join(np.ascontiguousarray(c).tobytes() for c in clips), digest_size=16).digest()
        if key not in self.seen:
            self.seen[key] = self.inner.embed(clips, progress)
        return self.seen[key]


def chunk_spans(samples: np.ndarray) -> list[tuple[float, float]]:
    """The voiced chunks as the pipeline plans them: what `Pipeline._diarize` uses when a chunk has no word times."""
    from core.audio.chunking import plan_chunks
    from core.audio.speech_check import speech_flags

    chunks = plan_chunks(samples, target_s=30.0, max_s=60.0)
    return [(c.offset, c.offset + c.duration) for c, v in zip(chunks, speech_flags(samples, chunks)) if v]


def make_embedder(name: str, work: Path):
    if name == "resemblyzer":
        return ResemblyzerEmbedder()
    import torch

    from bench.speaker_checkpoint import build_diarizer_checkpoint
    from core.diarize.embedder import SpeakerEmbedder

    ckpt = work / f"diarizer-{name}"
    if not (ckpt / "model.safetensors").exists():
        build_diarizer_checkpoint(ckpt, size=name)
    return SpeakerEmbedder(str(ckpt), "cpu", torch.float32)


def evaluate(embedder_names: list[str], rounds: int, span_kinds: list[str], work: Path, log=print) -> list[dict]:
    """One row per embedder x conversation x spans x count (see the module doc)."""
    from bench.conversation import LINES, make_conversation
    from core.diarize.diarizer import Diarizer
    from core.options import TranscribeOptions

    talks = {n: make_conversation(n, len(LINES), repeat=rounds) for n in (2, 3)}
    rows = []
    for name in embedder_names:
        diarizer = Diarizer(embedder=Memo(make_embedder(name, work)))
        for n, talk in talks.items():
            reference = [(a, b, f"voice {v}") for a, b, v in talk.turns]
            spans = {"known": [(a, b) for a, b, _ in talk.turns], "chunks": chunk_spans(talk.samples)}
            for kind in span_kinds:
                for count in ("auto", "forced"):
                    options = TranscribeOptions(diarize=True, num_speakers=n if count == "forced" else None)
                    t0 = time.perf_counter()
                    turns = diarizer.diarize(talk.samples, spans[kind], options)
                    hyp = [(t.start, t.end, t.speaker) for t in turns]
                    strict, loose = der(reference, hyp), der(reference, hyp, collar=0.25)
                    rows.append({"embedder": name, "voices": n, "minutes": talk.duration / 60, "spans": kind,
                                 "count": count, "found": len({t.speaker for t in turns}), **strict,
                                 "der_collar_0.25": loose["der"], "seconds": time.perf_counter() - t0})
                    log(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}))
    return rows


def table(rows: list[dict]) -> str:
    from bench.pipeline_bench import format_table

    pct = lambda x, s: f"{100 * x / s:.1f}"  # noqa: E731
    return format_table(
        ["embedder", "voices", "min", "spans", "count", "found", "missed %", "false alarm %", "confusion %",
         "DER %", "DER % (0.25 s collar)"],
        [[r["embedder"], str(r["voices"]), f"{r['minutes']:.1f}", r["spans"], r["count"], str(r["found"]),
          pct(r["missed_s"], r["speech_s"]), pct(r["false_alarm_s"], r["speech_s"]),
          pct(r["confusion_s"], r["speech_s"]), f"{100 * r['der']:.1f}", f"{100 * r['der_collar_0.25']:.1f}"]
         for r in rows])


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python3 -m bench.der", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--embedders", default="resemblyzer,tiny,full", help="comma list: resemblyzer, tiny, full")
    p.add_argument("--rounds", type=int, default=6, help="rounds of the 9 lines in each conversation")
    p.add_argument("--spans", default="known,chunks", help="comma list: known (the true turns), chunks (voiced)")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-der"), help="random checkpoints go here")
    p.add_argument("--out", type=Path, default=None, help="write the rows here as JSON")
    p.add_argument("--keep-share", type=float, default=None,
                   help="what-if: set core.diarize.cluster.KEEP_SHARE (the graph's neighbour share) for this run")
    args = p.parse_args(argv)
    if args.keep_share is not None:
        import core.diarize.cluster

        core.diarize.cluster.KEEP_SHARE = args.keep_share
    rows = evaluate(args.embedders.split(","), args.rounds, args.spans.split(","), args.work)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print(table(rows), flush=True)
    return rows


if __name__ == "__main__":
    main()
