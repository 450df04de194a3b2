"""Cut decoded audio into chunks for the ASR model, as the audio arrives.

Cuts go in silences found by a vectorised energy criterion (10 ms frame power in dB against the file's own loud
and quiet levels): about a tenth of a second per audio hour, where silero VAD over a whole file costs seconds
per hour even batched (bench/bench_audio.py has the numbers). Silero runs here only where energy cannot tell:
inside stretches too long to hold a cut window without a silence (speech over a loud music bed), to find the
pauses in the speech. Whether a chunk holds speech at all is `core.audio.speech_check`'s question.

The chunker reads audio that is still being decoded (`ChunkPlanner`): a cut is made as soon as no later audio can
change it, so the ASR starts on the first minutes of a file while the rest decodes. Every rule is local for that
reason: the silence level is judged per BLOCK_S of audio (not over the whole file: a level found that way would
move with every minute decoded), the VAD runs over one stretch at a time, and a cut looks at most max_s ahead.
`plan_chunks` is the same planner fed the whole audio at once, with the same result.
"""
from __future__ import annotations

import numpy as np

from core.audio.vad import PAUSE_PROB, VAD_FRAME, speech_probabilities
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
BLOCK_S = 300.0  # the silence level is judged per block this long (the last one over the last BLOCK_S of audio)
_BLOCK = round(BLOCK_S * 100)  # in frames
_VAD_ROW_FRAMES = 3000  # long stretches go to the VAD as a batch of 30 s rows
_EDGE = 12  # frames at the end of what has arrived whose smoothed levels may still change (20-frame window)


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
    """The dB level under which a frame counts as silence, from the levels' loud (95th pct) and floor (10th pct)."""
    audible = levels[levels > _DIGITAL_SILENCE_DB]
    if len(audible) == 0:
        return _DIGITAL_SILENCE_DB
    loud = float(np.percentile(audible, 95))
    floor = float(np.percentile(levels, 10))
    thr = max(loud - _SILENCE_BELOW_LOUD_DB, floor + _SILENCE_ABOVE_FLOOR_DB, _DIGITAL_SILENCE_DB)
    return min(thr, loud - _MIN_DYNAMICS_DB)


def smooth_levels(levels: np.ndarray, frames: int) -> np.ndarray:
    """Moving average of power (not of dB) over `frames` frames, centred, in dB. Each value depends only on the
    frames within `frames` of it (the planner smooths stretches of the file and gets the same values)."""
    if frames <= 1 or len(levels) < frames:
        return levels
    power = 10 ** (levels / 10)
    kernel = np.ones(frames) / frames
    return 10 * np.log10(np.convolve(power, kernel, mode="same") + 1e-12)


def silent_runs(levels: np.ndarray, threshold, min_frames: int) -> np.ndarray:
    """(start, end) frame index pairs of every run of silent frames at least `min_frames` long (`threshold`: one
    level, or one per frame)."""
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
    planner = ChunkPlanner(target_s=target_s, max_s=max_s, vad=vad)
    planner.feed(samples, len(samples), final=True)
    return planner.chunks


class ChunkPlanner:
    """`plan_chunks` over audio that arrives in time order (`core.audio.decode_pool.DecodeStream`).

    `feed(samples, available, final)` returns the chunks that the audio so far settles; the chunks of all calls
    together are what `plan_chunks` gives for the whole audio, whatever the steps. A cut is settled once the audio
    reaches max_s past the cut before it plus a margin, the silence level of its block is known, and no stretch of
    sound that may need the VAD reaches back to it.
    """

    def __init__(self, *, target_s: float, max_s: float, vad: bool = True) -> None:
        if not 0 < target_s <= max_s:
            raise ValueError("need 0 < target_s <= max_s")
        self.target, self.most = int(target_s * SAMPLE_RATE), int(max_s * SAMPLE_RATE)
        self.min_tail = int(min(2.0, target_s / 4) * SAMPLE_RATE)
        self.longest = round((max_s - _EARLY_FRACTION * target_s) * 100)  # frames of sound the energy may not cut
        self.vad = vad
        self.chunks: list[Chunk] = []  # settled, in order
        self.levels = np.zeros(0)  # every 10 ms frame's level read so far, in dB (frame_levels)
        self._thresholds: list[float] = []  # per settled block
        self._runs = np.zeros((0, 2), np.int64)  # closed silent runs, final
        self._pauses: dict[tuple[int, int], np.ndarray] = {}  # the VAD's pauses in each long stretch of sound
        self._handed = 0  # chunks returned by feed so far

    def feed(self, samples: np.ndarray, available: int, final: bool) -> list[Chunk]:
        self._read_levels(samples, available, final)
        nb = len(self.levels)
        known = self._settle_blocks(final)
        reliable = known if final else max(0, min(known, nb - _EDGE))
        runs, open_from = self._silences(samples, reliable, final)
        pos = self.chunks[-1].end if self.chunks else 0
        n = available if final else 1 << 62  # not final: only cuts no later audio can move are made
        while n - pos > self.target:
            hi = (pos + self.most) // FRAME
            if not final and (reliable * FRAME <= pos + self.most + self.min_tail + FRAME
                              or hi + round(MIN_SILENCE_S * 100) + 1 > reliable or open_from <= hi):
                break
            cut = _next_cut(pos, n, self.target, self.most, self.min_tail, runs, self._quiet)
            if cut is None:
                break
            self.chunks.append(Chunk(len(self.chunks), pos, cut))
            pos = cut
        if final:
            self._last_chunk(available)
        new, self._handed = self.chunks[self._handed:], len(self.chunks)
        return new

    def _read_levels(self, samples: np.ndarray, available: int, final: bool) -> None:
        have = len(self.levels)
        upto = available if final else available // FRAME * FRAME
        if upto > have * FRAME:
            self.levels = np.concatenate([self.levels, frame_levels(samples[have * FRAME:upto])])

    def _settle_blocks(self, final: bool) -> int:
        """Silence levels for the blocks the audio so far settles; returns the frames they cover. A block is
        settled once audio follows it; the last one, shorter or not, is judged over the last BLOCK_S of audio."""
        nb = len(self.levels)
        while True:
            a = len(self._thresholds) * _BLOCK
            if nb > a + _BLOCK:
                lo, hi = a, a + _BLOCK
            elif final and (a < nb or a == 0):
                lo, hi = max(0, nb - _BLOCK), nb
            else:
                break
            self._thresholds.append(silence_threshold(self.levels[lo:hi]))
        return nb if final else len(self._thresholds) * _BLOCK

    def _threshold(self, a: int, b: int) -> np.ndarray:
        blocks = np.minimum(np.arange(a, b) // _BLOCK, len(self._thresholds) - 1)
        return np.asarray(self._thresholds)[blocks]

    def _silences(self, samples: np.ndarray, reliable: int, final: bool) -> tuple[np.ndarray, int]:
        """All silences up to `reliable` (energy runs, then the VAD's pauses), and where the open stretch of sound
        at the end begins (past `reliable` when final)."""
        w0 = int(self._runs[-1, 1]) if len(self._runs) else 0  # a sounding frame: no run is cut in two here
        new = np.zeros((0, 2), np.int64)
        if reliable > w0:
            lo = max(0, w0 - 3)
            smooth = smooth_levels(self.levels[lo:], round(_SMOOTH_S * 100))[w0 - lo:reliable - lo]
            new = silent_runs(smooth, self._threshold(w0, reliable), round(MIN_SILENCE_S * 100)) + w0
        closed = new[new[:, 1] < reliable] if not final else new
        self._runs = np.concatenate([self._runs, closed])
        runs = np.concatenate([self._runs, new[len(closed):]])
        edges = np.concatenate(([0], runs.ravel(), [reliable])).reshape(-1, 2)  # stretches of sound between runs
        open_from = len(self.levels) + 1 if final else int(edges[-1, 0])
        if not self.vad:
            return runs, open_from
        found = [runs]
        for g0, g1 in (edges if final else edges[:-1]):
            if g1 - g0 > self.longest:
                if (g0, g1) not in self._pauses:
                    self._pauses[(g0, g1)] = _stretch_pauses(samples, int(g0), int(g1))
                found.append(self._pauses[(g0, g1)])
        merged = np.concatenate(found)
        return merged[np.argsort(merged[:, 0], kind="stable")], open_from

    def _quiet(self, a: int, b: int) -> np.ndarray:
        """Levels smoothed over 200 ms for frames a..b-1, as over the whole file."""
        lo, hi = max(0, a - 10), min(len(self.levels), b + 10)
        return smooth_levels(self.levels[lo:hi], 20)[a - lo:b - lo]

    def _last_chunk(self, n: int) -> None:
        """The rest of the audio, the last chunk; a sliver of a last chunk joins the one before when that fits."""
        pos = self.chunks[-1].end if self.chunks else 0
        if n > pos:
            self.chunks.append(Chunk(len(self.chunks), pos, n))
        if (len(self.chunks) > 1 and self.chunks[-1].end - self.chunks[-1].start < self.min_tail
                and self.chunks[-1].end - self.chunks[-2].start <= self.most):
            last = self.chunks.pop()
            self.chunks[-1] = Chunk(last.index - 1, self.chunks[-1].start, last.end)


def _stretch_pauses(samples: np.ndarray, g0: int, g1: int) -> np.ndarray:
    """Silero's pauses in speech (frame runs) inside the stretch of sound g0..g1 (frames), one batch of 30 s rows.

    Only inside stretches too long to hold a cut window without a silence (speech over a loud music bed, a noisy
    street) can a cut window lack one; elsewhere the energy silences are enough, so ordinary recordings never pay
    for the VAD."""
    rows = [(a, min(a + _VAD_ROW_FRAMES, g1)) for a in range(g0, g1, _VAD_ROW_FRAMES)]
    probs = speech_probabilities(samples, [(a * FRAME, b * FRAME) for a, b in rows])
    found = [np.zeros((0, 2), np.int64)]
    for (a, b), p in zip(rows, probs):
        per_frame = p[np.minimum(np.arange(b - a) * FRAME // VAD_FRAME, len(p) - 1)]
        found.append(silent_runs(np.where(per_frame < PAUSE_PROB, -1.0, 1.0), 0.0, round(MIN_SILENCE_S * 100)) + a)
    return np.concatenate(found)


def cut_at(n: int, runs: np.ndarray, quiet: np.ndarray, *, target_s: float, max_s: float) -> list[Chunk]:
    """The cutting rule of `plan_chunks` over given silences (frame runs) and smoothed frame levels (`quiet`).

    Separate from the energy detector so that another detector's silences can be compared on equal terms.
    """
    target, most = int(target_s * SAMPLE_RATE), int(max_s * SAMPLE_RATE)
    min_tail = int(min(2.0, target_s / 4) * SAMPLE_RATE)
    cuts, pos = [0], 0
    while n - pos > target:
        cut = _next_cut(pos, n, target, most, min_tail, runs, lambda a, b: quiet[a:b])
        if cut is None:
            break
        cuts.append(cut)
        pos = cut
    cuts.append(n)
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < min_tail and cuts[-1] - cuts[-3] <= most:
        del cuts[-2]
    return [Chunk(i, a, b) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]


def _next_cut(pos: int, n: int, target: int, most: int, min_tail: int, runs: np.ndarray, quiet) -> int | None:
    """The next cut in samples after `pos`, or None to keep everything up to `n` as the last chunk; `quiet(a, b)`
    gives the 200 ms-smoothed levels of frames a..b-1."""
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
    window = np.round(quiet(first, hi + 1))
    return (first + int(np.flatnonzero(window == window.min())[-1])) * FRAME
