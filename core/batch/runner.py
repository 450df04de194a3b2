"""Run a batch: N items in flight through one transcriber, outputs written as each finishes, nothing lost on a stop.

With a RunPod endpoint each item in flight is one job on the endpoint, so RunPod's own queue and scaler spread
them over workers; locally the items in flight share the process's engines (`core.models.engine`), whose batches
mix their chunks. A failing item is recorded and the others go on; Ctrl-C (or `cancel`) stops the items in flight
(their endpoint jobs are cancelled), leaves every finished output in place and records the rest as cancelled.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from core.batch.items import BatchItem, output_parts
from core.batch.record import ItemResult, Record, BatchReport
from core.config import Config
from core.errors import CoreError, JobCancelled
from core.options import TranscribeOptions
from core.output.speakers import rename_speakers
from core.output.writers import output_paths, write_files
from core.transcriber import Transcriber

log = logging.getLogger("core.batch")

REMOTE_PARALLEL = 8  # a RunPod endpoint has 3 workers by default: keep them busy and queue more for its scaler
ENGINE_PARALLEL = 8  # vLLM: files in flight share the engine's batches (bench/RESULTS.md, run 12)


def default_parallel(transcriber: Transcriber | None, config: Config) -> tuple[int, str]:
    """Items in flight when --parallel is not given, and where that number comes from (for people)."""
    from core.models.engine import StreamEngine
    from core.remote.client import RemotePipeline

    if config.batch_parallel:
        return config.batch_parallel, "BATCH_PARALLEL"
    if transcriber is None:
        return 1, "nothing to transcribe"
    if isinstance(transcriber, RemotePipeline):
        return REMOTE_PARALLEL, ("RunPod endpoint: keeps its 3 default workers busy and leaves jobs queued for its "
                                 "scaler; set it to max workers x RUNPOD_CONCURRENCY")
    if isinstance(getattr(getattr(transcriber, "asr", None), "engine", None), StreamEngine):
        return ENGINE_PARALLEL, "vLLM: files in flight share the engine's batches"
    return 1, "transformers: one file at a time, the CPU is the limit"


class Watcher:
    """What a batch tells its front end; every method may be called from any of the batch's threads."""

    def started(self, item: BatchItem) -> None:
        pass

    def stage(self, item: BatchItem, stage: str, done: float, total: float | None) -> None:
        pass

    def finished(self, result: ItemResult) -> None:
        pass


def outputs_of(item: BatchItem, output_dir, formats) -> list[Path]:
    folder, stem = output_parts(item.name)
    return output_paths(Path(output_dir) / folder, stem, formats)


def needs_transcriber(items: list[BatchItem], output_dir, formats, overwrite: bool) -> bool:
    """Whether any item will run: refused ones never do, and ones whose files all exist are skipped."""
    return any(not i.refused and (overwrite or not all(p.is_file() for p in outputs_of(i, output_dir, formats)))
               for i in items)


def name_speakers(transcript, names: list[str]):
    """The transcript with Speaker 1, Speaker 2… renamed in order, and the names left over (more names than
    speakers found)."""
    found = transcript.speakers
    return rename_speakers(transcript, dict(zip(found, names))), names[len(found):]


class BatchRunner:
    def __init__(self, transcriber: Transcriber | None, options: TranscribeOptions, *, output_dir, formats: list[str],
                 parallel: int, overwrite: bool = False, speaker_names: list[str] | None = None,
                 watcher: Watcher | None = None) -> None:
        self.transcriber, self.options = transcriber, options
        self.output_dir, self.formats = Path(output_dir), list(formats)
        self.parallel = max(1, int(parallel))
        self.overwrite = overwrite
        self.speaker_names = list(speaker_names or [])
        self.watcher = watcher or Watcher()
        self._lock = threading.Lock()

    def run(self, items: list[BatchItem], record: Record, problems: list[str] = (),
            cancel: threading.Event | None = None) -> BatchReport:
        """Run every item; returns when all have finished, failed or been cancelled. Ctrl-C in the calling thread
        cancels the batch (a second Ctrl-C while the jobs in flight are being cancelled is not caught)."""
        cancel = cancel or threading.Event()
        record.problems = list(problems)
        t0 = time.perf_counter()
        results: dict[int, ItemResult] = {}
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="batch") as pool:
            futures = {pool.submit(self._one, item, record, cancel): n for n, item in enumerate(items)}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for f in done:
                        results[futures[f]] = f.result()
            except KeyboardInterrupt:
                cancel.set()
                for f in futures:
                    results.setdefault(futures[f], f.result())  # each returns once its job has stopped
        wall = time.perf_counter() - t0
        record.write(wall)
        return BatchReport([results[n] for n in range(len(items))], list(problems), wall, cancel.is_set())

    def _one(self, item: BatchItem, record: Record, cancel: threading.Event) -> ItemResult:
        result = self._attempt(item, cancel)
        with self._lock:
            record.update(result)
        self.watcher.finished(result)
        return result

    def _attempt(self, item: BatchItem, cancel: threading.Event) -> ItemResult:
        if item.refused:
            return ItemResult.of(item, "refused", error=item.refused)
        paths = outputs_of(item, self.output_dir, self.formats)
        if not self.overwrite and all(p.is_file() for p in paths):
            return ItemResult.of(item, "skipped", outputs=[str(p) for p in paths])
        if cancel.is_set():
            return ItemResult.of(item, "cancelled", error="the batch was stopped before this item started")
        self.watcher.started(item)
        t0 = time.perf_counter()

        def progress(stage, done, total):
            self.watcher.stage(item, stage, done, total)

        try:
            transcript = self.transcriber.transcribe(item.source, self.options, progress, cancel=cancel)
            warnings = list(transcript.warnings)
            if self.speaker_names:
                transcript, unused = name_speakers(transcript, self.speaker_names)
                if unused:
                    warnings.append(f"{len(self.speaker_names)} speaker name(s) given but "
                                    f"{len(self.speaker_names) - len(unused)} speaker(s) found; unused: "
                                    f"{', '.join(unused)}")
            folder, stem = output_parts(item.name)
            written = write_files(transcript, self.output_dir / folder, stem, self.formats)
        except JobCancelled:
            return ItemResult.of(item, "cancelled", error="stopped while running", seconds=_since(t0))
        except CoreError as e:
            return ItemResult.of(item, "failed", error=str(e) or type(e).__name__, seconds=_since(t0))
        except Exception as e:  # a bad item never stops the others; the log has the traceback
            log.exception("batch item %s failed", item.name)
            return ItemResult.of(item, "failed", error=f"internal error ({type(e).__name__}); see the log",
                                 seconds=_since(t0))
        return ItemResult.of(item, "done", duration_s=round(transcript.duration, 3), seconds=_since(t0),
                             outputs=[str(p) for p in written], warnings=warnings)


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)
