"""Aligner word times made usable, once, before anything reads them: inside the chunk, starts non-decreasing, no
overlaps, no word shorter than MIN_WORD_S where there is room. core.align.aligner reuses longest_nondecreasing.

Kept to plain loops and conditionals: this runs for every word of an hour-long transcript (bench/merge_bench.py).
"""
from __future__ import annotations

import bisect
import math

from core.types import Word

MIN_WORD_S = 0.02


def repair_times(raw: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """Make aligner times usable: inside [lo, hi], starts non-decreasing, no overlaps, end >= start.

    Words off the longest non-decreasing run of starts (and non-finite ones) are aligner mistakes: they get evenly
    spaced times between their good neighbours instead of dragging every later word along with them.
    """
    starts, ends = _clamped([s for s, _ in raw], lo, hi), _clamped([e for _, e in raw], lo, hi)
    if None in starts or any(b < a for a, b in zip(starts, starts[1:])):  # most chunks: none of this to do
        starts = _mend(starts, ends, lo, hi)
    out: list[tuple[float, float]] = []
    for s, e, limit in zip(starts, ends, starts[1:] + [hi]):  # conditionals, not min/max calls: same values, faster
        e = s if e is None or s > e else e
        e = limit if limit < e else e
        if e - s < MIN_WORD_S:
            e = max(e, min(s + MIN_WORD_S, limit))
        out.append((s, e))
    return out


def _mend(starts: list[float | None], ends: list[float | None], lo: float, hi: float) -> list[float]:
    """Spread the words off the longest non-decreasing run between their neighbours (`ends` in place); the starts,
    made non-decreasing."""
    n, good = len(starts), longest_nondecreasing(starts)
    i, prev_end = 0, lo
    while i < n:
        if i in good:
            prev_end = max(ends[i] if ends[i] is not None else starts[i], starts[i])
            i += 1
            continue
        j = i
        while j < n and j not in good:
            j += 1
        right = starts[j] if j < n else hi
        left = min(prev_end, right)
        step = (right - left) / (j - i)
        for k in range(i, j):
            starts[k], ends[k] = min(left + (k - i) * step, right), min(left + (k - i + 1) * step, right)
        i = j
    out: list[float] = starts[:1]
    for s in starts[1:]:
        out.append(out[-1] if out[-1] > s else s)  # max(s, previous)
    return out


def _clamped(values: list[float], lo: float, hi: float) -> list[float | None]:
    """min(max(v, lo), hi) for each finite v, else None (as conditionals: the same values, 4x faster)."""
    isfinite = math.isfinite
    return [None if not isfinite(v) else hi if hi < (c := lo if lo > v else v) else c for v in values]


def longest_nondecreasing(values: list[float | None]) -> set[int]:
    """Indices of one longest non-decreasing subsequence (None never joins), by patience sorting."""
    tails: list[float] = []
    tail_idx: list[int] = []
    back: dict[int, int] = {}
    for i, v in enumerate(values):
        if v is None:
            continue
        k = bisect.bisect_right(tails, v)
        back[i] = tail_idx[k - 1] if k else -1
        if k == len(tails):
            tails.append(v)
            tail_idx.append(i)
        else:
            tails[k], tail_idx[k] = v, i
    keep, i = set(), tail_idx[-1] if tail_idx else -1
    while i >= 0:
        keep.add(i)
        i = back[i]
    return keep


def repair_marks(raw: list[float]) -> list[float]:
    """Make predicted times non-decreasing while keeping as many as possible.

    The longest non-decreasing subsequence is trusted; every other value is replaced by linear interpolation between
    the trusted values around it (or copies the nearest one at either end).
    """
    n = len(raw)
    if n == 0:
        return []
    trusted = sorted(longest_nondecreasing(list(raw)))
    out = list(raw)
    for a, b in zip([None] + trusted, trusted + [None]):
        lo = 0 if a is None else a + 1
        hi = n if b is None else b
        for j in range(lo, hi):
            if a is None:
                out[j] = raw[b]
            elif b is None:
                out[j] = raw[a]
            else:
                out[j] = raw[a] + (raw[b] - raw[a]) * (j - a) / (b - a)
    return out


def words_from_marks(words: list[str], marks: list[float], duration: float) -> list[Word]:
    """A chunk's words with their predicted (start, end) marks, two per word, repaired and clamped to the chunk."""
    times = [min(max(t, 0.0), duration) for t in repair_marks(marks)]
    return [Word(start=round(times[2 * k], 3), end=round(times[2 * k + 1], 3), text=w) for k, w in enumerate(words)]
