"""CPU time a job costs, all processes together: this one, its decode workers, and its other children.

This process is measured with `time.process_time()` (every thread of it). Child processes are read from Linux's
`/proc/<pid>/stat` (utime + stime): the decode workers (`DecodePool.worker_pids()`), and everything else below this
process, found through `/proc/<pid>/task/*/children` (vLLM's engine-core process, multiprocessing's resource tracker,
compile workers): "engine and other children". No psutil: the GPU machine may not have it.

A process that ends between two snapshots takes its time with it; one that starts between them counts from zero.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far (its own threads, not its children); None if gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5), counted from 1


def children(pid: int) -> list[int]:
    """The direct children of `pid` (every thread's children; scanning /proc for the parent id where the kernel
    does not offer the `children` files)."""
    out: set[int] = set()
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return []
    found_file = False
    for task in tasks:
        try:
            out.update(int(p) for p in (task / "children").read_text().split())
            found_file = True
        except (OSError, ValueError):
            continue
    if not found_file:
        for entry in PROC.iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    out.add(int(entry.name))
    return sorted(out)


def descendants(pid: int) -> list[int]:
    """Children, their children, and so on."""
    seen: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.append(p)
            todo.extend(children(p))
    return seen


@dataclass
class Snapshot:
    """CPU seconds so far: this process's, and each descendant's by pid."""
    wall: float
    main_s: float
    procs: dict[int, float] = field(default_factory=dict)


def snapshot(pids: Iterable[int] | None = None) -> Snapshot:
    """This process's CPU time and its descendants' (`pids`: those to read; default: all, found now in /proc)."""
    pids = descendants(os.getpid()) if pids is None else pids
    procs = {p: s for p in pids if (s := process_cpu_s(p)) is not None}
    return Snapshot(time.perf_counter(), time.process_time(), procs)


def split(before: Snapshot, after: Snapshot, decode_pids: Iterable[int] = ()) -> dict[str, float]:
    """CPU seconds spent between two snapshots: this process, the decode workers, the other descendants."""
    decode_pids = set(decode_pids)
    decode = other = 0.0
    for p, s in after.procs.items():
        spent = max(0.0, s - before.procs.get(p, 0.0))
        if p in decode_pids:
            decode += spent
        else:
            other += spent
    main = max(0.0, after.main_s - before.main_s)
    return {"main_s": main, "decode_workers_s": decode, "engine_and_other_s": other,
            "total_s": main + decode + other, "wall_s": after.wall - before.wall}


def per_audio_hour(cpu: dict[str, float], audio_s: float) -> dict:
    """`split`'s numbers with the per-audio-hour total and each part's share added."""
    out = dict(cpu)
    total = cpu["total_s"]
    out["audio_s"] = audio_s
    out["per_audio_hour_s"] = total * 3600.0 / audio_s if audio_s > 0 else None
    for k in ("main", "decode_workers", "engine_and_other"):
        out[f"{k}_share"] = cpu[f"{k}_s"] / total if total > 0 else 0.0
    return out


class StageCpu:
    """A progress callback that charges CPU time (all processes) to the stages: from a stage's first report to the
    next new stage's first report. The process tree is walked when it is made and at `stop` (a few ms with vLLM's
    threads); in between, one read of /proc per known process per new stage, however often a stage reports (a
    process started in between counts in the totals only). Stages that interleave, as with OVERLAP_ALIGN, are
    charged roughly, to the one that began last. `mark(name)` starts a stage by hand (the bench's write);
    `stop(audio_s)` ends the last and returns the totals."""

    def __init__(self, decode_pids: Callable[[], Iterable[int]] = tuple) -> None:
        self.decode_pids = decode_pids
        self._lock = threading.Lock()
        self.start = self._last = snapshot()
        self._pids = list(self.start.procs)
        self._decode = set(decode_pids())
        self._stage: str | None = None
        self.by_stage: dict[str, dict[str, float]] = {}

    def __call__(self, stage: str, done: float, total: float | None) -> None:
        if stage not in self.by_stage and stage != self._stage:
            self.mark(stage)

    def mark(self, stage: str | None, *, walk: bool = False) -> None:
        with self._lock:
            if stage is not None and (stage == self._stage or stage in self.by_stage):
                return
            now = snapshot(None if walk else self._pids)
            self._decode |= set(self.decode_pids())
            if self._stage is not None:
                spent = split(self._last, now, self._decode)
                into = self.by_stage.setdefault(self._stage, {"main_s": 0.0, "decode_workers_s": 0.0,
                                                              "engine_and_other_s": 0.0})
                for k in into:
                    into[k] += spent[k]
            self._stage, self._last = stage, now

    def stop(self, audio_s: float) -> dict:
        self.mark(None, walk=True)
        out = per_audio_hour(split(self.start, self._last, self._decode), audio_s)
        out["by_stage"] = {k: {**v, "total_s": sum(v.values())} for k, v in self.by_stage.items()}
        out["decode_workers"] = len(self._decode)
        out["other_children"] = len(set(self._last.procs) - self._decode)
        return out
