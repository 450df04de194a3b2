"""Many recordings in one go: files, folders, list files and podcast feeds, N at a time through one transcriber.

    from core.batch import transcribe_batch
    report = transcribe_batch(["episodes/", "https://example.com/feed.xml"], output_dir="transcripts")

`plan_batch` expands the inputs (and `retry_failed` reads the output folder's batch.json); `BatchRunner` runs the
items; `transcribe_batch` does both with a transcriber of its own unless one is given.
"""
from __future__ import annotations

import threading

from core.batch.inputs import collect
from core.batch.items import BatchItem, Plan
from core.batch.record import RETRIED, BatchReport, ItemResult, Record, read_record
from core.batch.runner import BatchRunner, Watcher, default_parallel, needs_transcriber
from core.config import Config, get_config
from core.options import TranscribeOptions, as_options

DEFAULT_FORMATS = ("json", "srt", "vtt", "txt")

__all__ = ["BatchItem", "BatchReport", "BatchRunner", "ItemResult", "Plan", "Record", "Watcher", "collect",
           "default_parallel", "plan_batch", "transcribe_batch"]


def plan_batch(inputs, output_dir, config: Config, *, retry_failed: bool = False, limit: int | None = None,
               since=None) -> tuple[Plan, Record]:
    """The items to run and the output folder's record. With `retry_failed` only the entries batch.json lists as
    failed or cancelled run: those among `inputs` when inputs are given, else all of them."""
    previous = read_record(output_dir)
    record = Record(output_dir, previous)
    if not retry_failed:
        return collect(inputs, config, limit=limit, since=since), record
    again = {e.name for e in previous if e.status in RETRIED}
    if inputs:
        plan = collect(inputs, config, limit=limit, since=since)
        plan.items = [i for i in plan.items if i.name in again]
    else:
        plan = Plan(items=[e.item() for e in previous if e.status in RETRIED])
    if not plan.items and not plan.problems and not previous:  # a record with no failures is all done: no problem
        plan.problems.append(f"nothing to retry: {output_dir} has no batch.json")
    return plan, record


def transcribe_batch(inputs, options: TranscribeOptions | dict | None = None, *, output_dir,
                     formats=DEFAULT_FORMATS, parallel: int | None = None, overwrite: bool = False,
                     retry_failed: bool = False, limit: int | None = None, since=None,
                     speaker_names: list[str] | None = None, transcriber=None, config: Config | None = None,
                     cancel: threading.Event | None = None, watcher: Watcher | None = None) -> BatchReport:
    """Transcribe every item of `inputs` into `output_dir` (see the module's docstring); never raises for one bad
    item: the report and `<output_dir>/batch.json` say what happened to each."""
    from core.pipeline import make_pipeline

    config = config or (transcriber.config if transcriber is not None else get_config())
    options = as_options(options)
    plan, record = plan_batch(inputs, output_dir, config, retry_failed=retry_failed, limit=limit, since=since)
    if not plan.items:  # nothing to run: no model is loaded for it
        return BatchReport([], plan.problems, 0.0)
    own = transcriber is None and needs_transcriber(plan.items, output_dir, formats, overwrite)
    transcriber = make_pipeline(config) if own else transcriber
    try:
        n = parallel or default_parallel(transcriber, config)[0]
        runner = BatchRunner(transcriber, options, output_dir=output_dir, formats=list(formats), parallel=n,
                             overwrite=overwrite, speaker_names=speaker_names, watcher=watcher)
        return runner.run(plan.items, record, plan.problems, cancel)
    finally:
        if own:  # a transcriber given by the caller stays theirs to close
            transcriber.close()
