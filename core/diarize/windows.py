"""Where speaker embeddings are taken: fixed-length windows over the stretches of speech the pipeline already found
(aligned words, else the voiced chunks), so no model pass is spent on silence and no audio is decoded again.

Each window owns the part of its stretch nearest to its centre; the owned parts tile every stretch, which is what
turns a window's speaker into a turn with no gaps or overlaps inside a stretch.
"""
from __future__ import annotations

from dataclasses import dataclass

WINDOW_S = 1.5  # long enough for a stable voice embedding, short enough to catch quick turns
HOP_S = 0.75
MAX_WINDOWS = 4000  # for long audio the hop grows so clustering (an n x n affinity) stays fast
JOIN_GAP_S = 0.5  # words closer than this belong to one stretch of speech


@dataclass(frozen=True)
class Window:
    start: float  # the audio the embedding sees
    end: float
    own_start: float  # the part of the stretch this window speaks for
    own_end: float


def speech_runs(spans: list[tuple[float, float]], gap: float = JOIN_GAP_S) -> list[tuple[float, float]]:
    """Sorted, merged stretches of speech from (start, end) spans; spans closer than `gap` join."""
    runs: list[list[float]] = []
    for start, end in sorted((float(a), float(b)) for a, b in spans if b > a):
        if runs and start - runs[-1][1] < gap:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    return [(a, b) for a, b in runs]


def plan_windows(runs: list[tuple[float, float]], duration: float, *, window: float = WINDOW_S,
                 hop: float = HOP_S, max_windows: int = MAX_WINDOWS) -> list[Window]:
    """Windows over each run: a run shorter than `window` gets one window centred on it (it hears a little of
    what surrounds it), a longer one windows every `hop` seconds with the last one flush with its end."""
    speech = sum(b - a for a, b in runs)
    hop = max(hop, speech / max_windows) if max_windows else hop
    out: list[Window] = []
    for a, b in runs:
        if b - a <= window:
            mid = (a + b) / 2
            lo = min(max(mid - window / 2, 0.0), max(duration - window, 0.0))
            out.append(Window(lo, min(lo + window, max(duration, b)), a, b))
            continue
        starts, t = [], a
        while t + window < b:
            starts.append(t)
            t += hop
        starts.append(b - window)
        centres = [s + window / 2 for s in starts]
        cuts = [a] + [(x + y) / 2 for x, y in zip(centres, centres[1:])] + [b]
        out.extend(Window(s, s + window, lo, hi) for s, lo, hi in zip(starts, cuts, cuts[1:]))
    return out
