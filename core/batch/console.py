"""What a batch shows on a terminal: progress on stderr, the files written on stdout (one path a line, for scripts),
the cost before (audio to do) and after (wall time, audio hours per hour), and the failures with how to retry them.
"""
from __future__ import annotations

import sys
import threading

from core.batch.items import BatchItem, Plan
from core.batch.record import BatchReport, ItemResult
from core.batch.runner import Watcher


def span(seconds: float) -> str:
    """'3 h 05 min', '12 min 40 s' or '9.5 s'."""
    seconds = max(0.0, float(seconds))
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s"


def before_text(plan: Plan) -> str:
    """The batch's size before it starts: items and the audio their headers or feeds state."""
    n = len(plan.items)
    text = f"{n} item{'s' if n != 1 else ''}"
    known, unknown = plan.known_duration_s, plan.unknown_durations
    if known:
        text += f", {span(known)} of audio"
        if unknown:
            text += f" known ({unknown} of unknown length)"
    elif unknown:
        text += " (lengths unknown until decoded)"
    return text


def after_text(report: BatchReport, record_path, retry_hint: str) -> str:
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("done", "skipped", "failed", "refused", "cancelled")
                       if report.count(s))
    lines = [f"{counts or 'nothing run'} in {span(report.wall_s)}"]
    if report.audio_s and report.wall_s > 0:
        lines[0] += f": {span(report.audio_s)} of audio, {report.audio_s / report.wall_s:.1f} audio hours per hour"
    failures = report.failures
    if failures:
        lines.append("not transcribed:")
        lines += [f"  {r.name} ({r.status}): {r.error}" for r in failures]
        if any(r.status in ("failed", "cancelled") for r in failures):
            lines.append(f"retry them with: {retry_hint}")
    for problem in report.problems:
        lines.append(f"input problem: {problem}")
    if report.interrupted:
        lines.append("stopped by Ctrl-C: finished outputs are kept; a rerun skips them")
    if record_path is not None:
        lines.append(f"record: {record_path}")
    return "\n".join(lines)


class _Printer(Watcher):
    """Writes each finished item's files to stdout and its warnings and error to stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.lock = threading.Lock()

    def say(self, text: str, stream) -> None:
        print(text, file=stream, flush=True)

    def finished(self, result: ItemResult) -> None:
        with self.lock:
            self.done(result)
            label = result.origin or result.source
            if result.status == "done":
                for path in result.outputs:
                    self.say(path, sys.stdout)
            for w in result.warnings:
                self.say(f"warning: {label}: {w}", sys.stderr)
            if result.status in ("failed", "refused"):
                self.say(f"error: {label}: {result.error}", sys.stderr)
            elif result.status == "skipped" and self.enabled:
                self.say(f"skipped {result.name}: its files are already written (--overwrite redoes it)", sys.stderr)

    def done(self, result: ItemResult) -> None:
        pass

    def close(self) -> None:
        pass


class SingleBars(_Printer):
    """One file: a bar per stage, as `python -m core file.mp3` always showed."""

    def __init__(self, enabled: bool) -> None:
        super().__init__(enabled)
        self.bar, self.current = None, None

    def stage(self, item: BatchItem, stage: str, done: float, total: float | None) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        with self.lock:
            if stage != self.current:
                self._close_bar()
                unit, scale = {"download": ("B", True), "decode": ("s", False)}.get(stage, ("it", False))
                self.bar = tqdm(total=total, desc=f"{stage:>10}", unit=unit, unit_scale=scale, leave=False,
                                file=sys.stderr)
                self.current = stage
            if total is not None and self.bar.total != total:
                self.bar.total = total
            self.bar.n = done
            self.bar.refresh()

    def done(self, result: ItemResult) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.current = None, None

    def close(self) -> None:
        with self.lock:
            self._close_bar()


class BatchBars(_Printer):
    """Many items: one overall bar (items finished of all) with the counts by state, and a line per item as it
    starts and ends; other output goes through the bar so that lines never tear it."""

    def __init__(self, enabled: bool, total: int) -> None:
        super().__init__(enabled)
        self.counts = {"running": 0, "done": 0, "skipped": 0, "failed": 0, "refused": 0, "cancelled": 0}
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="batch", unit="item", file=sys.stderr, dynamic_ncols=True)

    def say(self, text: str, stream) -> None:
        if self.bar is None:
            super().say(text, stream)
        else:
            self.bar.write(text, file=stream)

    def started(self, item: BatchItem) -> None:
        with self.lock:
            self.counts["running"] += 1
            if self.enabled:
                self.say(f"started {item.name}", sys.stderr)
            self._refresh()

    def done(self, result: ItemResult) -> None:
        if result.status in ("done", "failed", "cancelled") and result.seconds is not None:
            self.counts["running"] -= 1
        self.counts[result.status] += 1
        if self.enabled and result.status == "done":
            audio = f"{span(result.duration_s)} of audio in " if result.duration_s else ""
            self.say(f"done {result.name}: {audio}{span(result.seconds or 0)}", sys.stderr)
        if self.bar is not None:
            self.bar.update(1)
        self._refresh()

    def _refresh(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(" · ".join(f"{k} {v}" for k, v in self.counts.items() if v), refresh=True)

    def close(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
