"""Cut decoded audio into chunks for the ASR model, and tell which chunks hold speech at all.

Cuts go in silences found by a vectorised energy criterion (10 ms frame power in dB against the file's own loud
and quiet levels): about a tenth of a second per audio hour, where silero VAD over a whole file costs seconds
per hour even batched (bench/bench_audio.py has the numbers). Silero runs only where energy cannot tell:
inside stretches too long to hold a cut window without a silence (speech over a loud music bed), to find the
pauses in the speech, and to decide whether a chunk that is not silent holds speech or only noise, tones or
music. There all chunks go as one batch and each leaves it as soon as it is decided, so a speech chunk costs
about a second of audio.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import numpy as np

from core.types import SAMPLE_RATE, Chunk

FRAME = SAMPLE_RATE // 100  # 10 ms analysis frames; every cut falls on a frame boundary
_SILENCE_BELOW_LOUD_DB = 40.0  # a frame this far below the file's loud level is silence...
_SILENCE_ABOVE_FLOOR_DB = 6.0  # ...and so is one within this of its noise floor (noisy recordings)
_MIN_DYNAMICS_DB = 10.0  # never call a frame silent less than this below the loud level
_DIGITAL_SILENCE_DB = -60.0  # frames below this are silent whatever the file's levels
MIN_SILENCE_S = 0.25  # shorter quiet gaps (plosives, word gaps) are not places to cut
_SMOOTH_S = 0.05  # power is averaged over this before thresholding, so noise does not fragment silences
_FULL_PAUSE_S = 0.5  # a silence this long counts as a sentence-level pause when choosing between silences
_EARLY_FRACTION = 0.6  # a cut is looked for between 0.6 x target and max_s after the previous one


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """Mean power of each 10 ms frame in dB relative to full scale (the last partial frame included)."""
    n = len(samples)
    full = n // FRAME
    x = np.asarray(samples, dtype=np.float32)
    power = np.empty(full + (n % FRAME > 0), np.float64)
    blocks = x[:full * FRAME].reshape(full, FRAME)
    power[:full] = np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64) / FRAME
    if n % FRAME:
        rest = x[full * FRAME:].astype(np.float64)
        power[full] = np.dot(rest, rest) / len(rest)
    return 10 * np.log10(power + 1e-12)


def silence_threshold(levels: np.ndarray) -> float:
    """The dB level under which a frame counts as silence, from the file's loud (95th pct) and floor (10th pct)."""
    audible = levels[levels > _DIGITAL_SILENCE_DB]
    if len(audible) == 0:
        return _DIGITAL_SILENCE_DB
    loud = float(np.percentile(audible, 95))
    floor = float(np.percentile(levels, 10))
    thr = max(loud - _SILENCE_BELOW_LOUD_DB, floor + _SILENCE_ABOVE_FLOOR_DB, _DIGITAL_SILENCE_DB)
    return min(thr, loud - _MIN_DYNAMICS_DB)


def smooth_levels(levels: np.ndarray, frames: int) -> np.ndarray:
    """Moving average of power (not of dB) over `frames` frames, centred, in dB."""
    if frames <= 1 or len(levels) < frames:
        return levels
    power = 10 ** (levels / 10)
    kernel = np.ones(frames) / frames
    return 10 * np.log10(np.convolve(power, kernel, mode="same") + 1e-12)


def silent_runs(levels: np.ndarray, threshold: float, min_frames: int) -> np.ndarray:
    """(start, end) frame index pairs of every run of silent frames at least `min_frames` long."""
    silent = np.concatenate(([False], levels < threshold, [False]))
    edges = np.flatnonzero(silent[1:] != silent[:-1])
    runs = edges.reshape(-1, 2)
    return runs[runs[:, 1] - runs[:, 0] >= min_frames]


def plan_chunks(samples: np.ndarray, *, target_s: float, max_s: float, vad: bool = True) -> list[Chunk]:
    """Chunks that tile the audio exactly, each at most max_s long, cut near target_s in the best silence.

    From each cut, the next one goes in a silence between 0.6 x target_s and max_s later, preferring long
    silences near target_s (the centre of the silence is the cut); failing that, in the latest silence after a
    short minimum; failing that (music, a noisy room), at the quietest 200 ms in the window, as late as
    possible. Audio up to max_s that has no silence is left whole, and no chunk shorter than
    min(2 s, target_s / 4) is left at the end.

    Silences come from frame energy; where energy finds none for too long (speech over a loud music bed), silero
    VAD supplies the pauses in the speech instead (`vad=False`: energy alone).
    """
    n = len(samples)
    if n == 0:
        return []
    if not 0 < target_s <= max_s:
        raise ValueError("need 0 < target_s <= max_s")
    if n <= target_s * SAMPLE_RATE:
        return [Chunk(0, 0, n)]
    levels = frame_levels(samples)
    runs = silent_runs(smooth_levels(levels, round(_SMOOTH_S * 100)), silence_threshold(levels),
                       round(MIN_SILENCE_S * 100))
    if vad:
        runs = _with_vad_pauses(samples, runs, round((max_s - _EARLY_FRACTION * target_s) * 100))
    return cut_at(n, runs, smooth_levels(levels, 20), target_s=target_s, max_s=max_s)


def _with_vad_pauses(samples: np.ndarray, runs: np.ndarray, longest: int) -> np.ndarray:
    """`runs` plus silero's pauses in speech inside every stretch of over `longest` frames without a silence.

    Only there can a cut window lack a silence (speech over a loud music bed, a noisy street); elsewhere the
    energy silences are enough, so ordinary recordings never pay for the VAD.
    """
    frames = -(-len(samples) // FRAME)
    edges = np.concatenate(([0], runs.ravel(), [frames])).reshape(-1, 2)  # the sounding stretches between runs
    gaps = edges[edges[:, 1] - edges[:, 0] > longest]
    if not len(gaps):
        return runs
    rows = [(a, min(a + _VAD_ROW_FRAMES, g1)) for g0, g1 in gaps for a in range(g0, g1, _VAD_ROW_FRAMES)]
    probs = _vad_probabilities(samples, [(a * FRAME, b * FRAME) for a, b in rows])
    found = [runs]
    for (a, b), p in zip(rows, probs):
        per_frame = p[np.minimum(np.arange(b - a) * FRAME // VAD_FRAME, len(p) - 1)]
        pauses = silent_runs(np.where(per_frame < _PAUSE_PROB, -1.0, 1.0), 0.0, round(MIN_SILENCE_S * 100))
        found.append(pauses + a)
    merged = np.concatenate(found)
    return merged[np.argsort(merged[:, 0], kind="stable")]


def cut_at(n: int, runs: np.ndarray, quiet: np.ndarray, *, target_s: float, max_s: float) -> list[Chunk]:
    """The cutting rule of `plan_chunks` over given silences (frame runs) and smoothed frame levels (`quiet`).

    Separate from the energy detector so that another detector's silences can be compared on equal terms.
    """
    target, most = int(target_s * SAMPLE_RATE), int(max_s * SAMPLE_RATE)
    min_tail = int(min(2.0, target_s / 4) * SAMPLE_RATE)
    cuts, pos = [0], 0
    while n - pos > target:
        cut = _next_cut(pos, n, target, most, min_tail, runs, quiet)
        if cut is None:
            break
        cuts.append(cut)
        pos = cut
    cuts.append(n)
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < min_tail and cuts[-1] - cuts[-3] <= most:
        del cuts[-2]
    return [Chunk(i, a, b) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]


def _next_cut(pos: int, n: int, target: int, most: int, min_tail: int, runs: np.ndarray,
              quiet: np.ndarray) -> int | None:
    """The next cut in samples after `pos`, or None to keep everything up to `n` as the last chunk."""
    hi = min(pos + most, n - min_tail) // FRAME  # frames; a cut at frame f is at sample f * FRAME
    lo = (pos + int(_EARLY_FRACTION * target)) // FRAME
    early = (pos + max(min_tail, FRAME)) // FRAME
    if hi <= early:  # the rest cannot be split without leaving a sliver
        return None if n - pos <= most else pos + most
    # Silences overlapping (early, hi], clipped to it; a cut goes in the middle of what is left.
    starts, ends = np.maximum(runs[:, 0], early), np.minimum(runs[:, 1], hi)
    ok = ends - starts >= 1
    starts, ends = starts[ok], ends[ok]
    centres = (starts + ends) // 2
    wanted = (pos + target) / FRAME
    best = centres >= lo
    if best.any():
        # 0.5 s of silence is a full pause, shorter ones count in proportion; being target_s away from the
        # target costs as much as a full pause.
        pause = np.minimum(ends[best] - starts[best], _FULL_PAUSE_S * 100) / (_FULL_PAUSE_S * 100)
        score = pause - np.abs(centres[best] - wanted) / (target / FRAME)
        return int(centres[best][np.argmax(score)]) * FRAME
    if n - pos <= most:  # fits: no reason to cut outside a real silence
        return None
    if len(centres):  # a silence earlier than 0.6 x target beats a cut through sound
        return int(centres[-1]) * FRAME
    # Through sound: the quietest 200 ms (to 1 dB), the latest of equals, so that as few cuts as possible go
    # through sound.
    first = max(lo, early)
    window = np.round(quiet[first:hi + 1])
    return (first + int(np.flatnonzero(window == window.min())[-1])) * FRAME


# ---- speech or not: silero VAD on the chunks energy cannot rule out -------------------------------------------

VAD_FRAME = 512  # silero's window at 16 kHz (32 ms)
VAD_CONTEXT = 64  # samples of the previous window silero sees in front of each one
_SPEECH_PROB = 0.5
_PAUSE_PROB = 0.35  # below this a window is a pause in speech (silero's own default for leaving speech)
_VAD_ROW_FRAMES = 3000  # long stretches go to the VAD as a batch of 30 s rows
_SPEECH_NEEDED_S = 0.4  # this much uninterrupted speech makes a speech chunk (music rarely holds it that long)
_ACTIVE_DB = -55.0  # a chunk whose every 10 ms frame is below this is silence (or hiss) without asking the VAD


@lru_cache(maxsize=1)
def load_vad():
    """The silero VAD network (bundled in the silero-vad wheel, no download), loaded once."""
    import torch

    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # importing it sets torch to one thread; undo that

    model = load_silero_vad()
    torch.set_num_threads(threads)
    return model._model  # the 16 kHz network: (context + window, state) -> (probability, state)


def speech_flags(samples: np.ndarray, chunks: list[Chunk]) -> list[bool]:
    """Whether each chunk holds speech at all; silent/noise/music-only chunks are skipped by the pipeline."""
    flags = [False] * len(chunks)
    todo = []
    for i, c in enumerate(chunks):
        levels = frame_levels(samples[c.start:c.end]) if c.end > c.start else np.zeros(0)
        loud = np.flatnonzero(levels > _ACTIVE_DB)
        if len(loud):  # hand the VAD only the stretch between the first and the last sound
            todo.append((i, c.start + loud[0] * FRAME, c.start + (loud[-1] + 1) * FRAME))
    if todo:
        for i, heard in zip([t[0] for t in todo], _vad_any_speech(samples, [(a, b) for _, a, b in todo])):
            flags[i] = heard
    return flags


def _vad_any_speech(samples: np.ndarray, spans: list[tuple[int, int]]) -> list[bool]:
    """Silero over all spans as one batch; a span leaves the batch as soon as it is decided either way."""
    import torch

    with _threads(1), torch.inference_mode():
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


def _vad_threads(rows: int) -> int:
    """Small batches (a few 32 ms windows a step) run best on one thread, where more only spin and contend;
    a batch of an hour's rows goes 2.2x faster on 8 (3.0 -> 1.4 s per hour, bench/bench_audio.py)."""
    import torch

    return 1 if rows < 32 else max(1, min(8, torch.get_num_threads()))


def _vad_probabilities(samples: np.ndarray, spans: list[tuple[int, int]]) -> list[np.ndarray]:
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
    with _threads(_vad_threads(len(spans))), torch.inference_mode():
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

    need = max(1, round(_SPEECH_NEEDED_S * SAMPLE_RATE / VAD_FRAME))
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
        speaking = (p > _SPEECH_PROB) | ((run[live] > 0) & (p > _PAUSE_PROB))
        run[live] = np.where(speaking, run[live] + 1, 0)
        heard[live] |= run[live] >= need
        pos[live] += VAD_FRAME
        keep = np.flatnonzero(~heard[live] & (pos[live] < ends[live]))
        if len(keep) < len(live):
            live = live[keep]
            state, context = state[:, keep], context[keep]
    return heard.tolist()
