"""The pipeline's progress(stage, done, total) as one bar that only moves forward.

Each stage owns a slice of the bar; its done/total fills the slice. (Cancelling is the pipeline's: the job's cancel
event goes to `Transcriber.transcribe`.)
"""
from __future__ import annotations

import time
from typing import Callable

# stage -> (label, where its slice of the bar starts, where it ends)
STAGES: dict[str, tuple[str, float, float]] = {
    "download": ("Downloading", 0.00, 0.10),
    "upload": ("Sending to the endpoint", 0.10, 0.14),
    "queue": ("Waiting for a worker", 0.14, 0.15),
    "decode": ("Decoding audio", 0.15, 0.20),
    "chunk": ("Finding pauses", 0.20, 0.25),
    "transcribe": ("Transcribing", 0.25, 0.75),
    "align": ("Aligning words", 0.75, 0.95),
    "merge": ("Merging", 0.95, 0.97),
    "write": ("Writing files", 0.97, 0.98),
    "player": ("Preparing the player", 0.98, 1.00),  # the player's MP3, encoded since decoding; waited for last
}
COUNTED = ("transcribe", "align")  # stages whose done/total are chunks: shown as "Transcribing 3/12"


class StageProgress:
    """A pipeline Progress callback that feeds `report(fraction, description)` (a gr.Progress)."""

    def __init__(self, report: Callable[..., object], interval: float = 0.2) -> None:
        self.report, self.interval = report, interval
        self.fraction, self.stage, self.last = 0.0, None, 0.0

    def __call__(self, stage: str, done: float, total: float | None) -> None:
        label, lo, hi = STAGES.get(stage, (stage.replace("_", " ").capitalize(), self.fraction, self.fraction))
        share = min(max(done / total, 0.0), 1.0) if total else 0.0
        self.fraction = max(self.fraction, lo + (hi - lo) * share)
        now = time.monotonic()
        finished = bool(total) and done >= total
        if stage == self.stage and not finished and now - self.last < self.interval:
            return
        self.stage, self.last = stage, now
        self.report(self.fraction, desc=describe(stage, label, done, total))


def describe(stage: str, label: str, done: float, total: float | None) -> str:
    """'Transcribing 3/12', 'Downloading 12.5 MB of 80.0 MB', or just the label."""
    if stage in COUNTED and total:
        return f"{label} {done:.0f}/{total:.0f}"
    if stage == "download" and done:
        return f"{label} {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else "")
    return label
