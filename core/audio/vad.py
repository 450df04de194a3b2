"""Silero VAD, the speech detector the chunker asks where frame energy cannot tell (`core.audio.chunking`).

Batched over many spans at once (one row each), on the CPU; the network ships in the silero-vad wheel.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import numpy as np

from core.types import SAMPLE_RATE

VAD_FRAME = 512  # silero's window at 16 kHz (32 ms)
VAD_CONTEXT = 64  # samples of the previous window silero sees in front of each one
SPEECH_PROB = 0.5
PAUSE_PROB = 0.35  # below this a window is a pause in speech (silero's own default for leaving speech)
SPEECH_NEEDED_S = 0.4  # this much uninterrupted speech makes a speech chunk (music rarely holds it that long)


@lru_cache(maxsize=1)
def load_vad():
    """The silero VAD network (bundled in the silero-vad wheel, no download), loaded once."""
    import torch

    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # importing it sets torch to one thread; undo that

    model = load_silero_vad()
    torch.set_num_threads(threads)
    return model._model  # the 16 kHz network: (context + window, state) -> (probability, state)


def any_speech(samples: np.ndarray, spans: list[tuple[int, int]]) -> list[bool]:
    """Silero over all spans as one batch; a span leaves the batch as soon as it is decided either way."""
    import torch

    with _threads(1), torch.inference_mode():  # more threads measured slower beside the decode workers (run 20)
        return _listen(load_vad(), np.asarray(samples, dtype=np.float32), spans)


@contextmanager
def _threads(n: int):
    """Run torch with n threads, then restore the caller's setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def vad_threads(rows: int) -> int:
    """Small batches (a few 32 ms windows a step) run best on one thread, where more only spin and contend;
    a batch of an hour's rows goes 2.2x faster on 8 (3.0 -> 1.4 s per hour, bench/bench_audio.py)."""
    import torch

    return 1 if rows < 32 else max(1, min(8, torch.get_num_threads()))


def speech_probabilities(samples: np.ndarray, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """Silero's speech probability for every 32 ms window of each span, all spans as one batch."""
    import torch

    net = load_vad()
    audio = np.asarray(samples, dtype=np.float32)
    steps = max(-(-(b - a) // VAD_FRAME) for a, b in spans)
    pos = np.array([a for a, _ in spans], np.int64)
    ends = np.array([min(b, len(audio)) for _, b in spans], np.int64)
    state = torch.zeros(2, len(spans), 128)
    context = torch.zeros(len(spans), VAD_CONTEXT)
    out = np.zeros((len(spans), steps), np.float32)
    with _threads(vad_threads(len(spans))), torch.inference_mode():
        for step in range(steps):
            frame = torch.from_numpy(_windows(audio, pos + step * VAD_FRAME, ends))
            prob, state = net(torch.cat([context, frame], dim=1), state)
            context = frame[:, -VAD_CONTEXT:]
            out[:, step] = prob[:, 0].numpy()
    return [row[: -(-(b - a) // VAD_FRAME)] for row, (a, b) in zip(out, spans)]


def _windows(audio: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """One 512-sample window per row from `starts`, zero past each row's end."""
    at = starts[:, None] + np.arange(VAD_FRAME)
    return np.where(at < ends[:, None], audio[np.minimum(at, len(audio) - 1)], 0.0).astype(np.float32)


def _listen(net, audio: np.ndarray, spans: list[tuple[int, int]]) -> list[bool]:
    import torch

    need = max(1, round(SPEECH_NEEDED_S * SAMPLE_RATE / VAD_FRAME))
    pos = np.array([a for a, _ in spans], np.int64)
    ends = np.array([min(b, len(audio)) for _, b in spans], np.int64)
    run = np.zeros(len(spans), np.int64)  # consecutive speech windows, silero's hysteresis: in at 0.5, out at 0.35
    heard = np.zeros(len(spans), bool)
    live = np.arange(len(spans))  # the spans still being listened to
    state = torch.zeros(2, len(live), 128)
    context = torch.zeros(len(live), VAD_CONTEXT)
    while len(live):
        frame = torch.from_numpy(_windows(audio, pos[live], ends[live]))
        prob, state = net(torch.cat([context, frame], dim=1), state)
        context = frame[:, -VAD_CONTEXT:]
        p = prob[:, 0].numpy()
        speaking = (p > SPEECH_PROB) | ((run[live] > 0) & (p > PAUSE_PROB))
        run[live] = np.where(speaking, run[live] + 1, 0)
        heard[live] |= run[live] >= need
        pos[live] += VAD_FRAME
        keep = np.flatnonzero(~heard[live] & (pos[live] < ends[live]))
        if len(keep) < len(live):
            live = live[keep]
            state, context = state[:, keep], context[keep]
    return heard.tolist()
