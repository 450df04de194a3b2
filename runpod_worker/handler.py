"""The RunPod serverless handler: one job in, the transcript JSON (or `{"error": ...}`) out.

A thin adapter over `core`: the job schema is `core.remote.schema` (shared with the remote client; a job written for
runpod-workers/worker-faster_whisper goes through `core.remote.faster_whisper`), the work is `Pipeline.transcribe`,
and every failure becomes a message the caller can act on. The handler is a coroutine that
runs the pipeline in a worker thread, so the SDK's event loop stays free for heartbeats and stop signals: when
RunPod cancels a job, the coroutine is cancelled, the thread is told to stop at its next progress report, and its
temporary files go with it (`core.fetch.sources` owns them).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from core.errors import CoreError, JobCancelled, ModelError
from core.remote.faster_whisper import (FasterWhisperJob, faster_whisper_output, is_faster_whisper_job,
                                        parse_faster_whisper_job, served_model)
from core.remote.schema import JobInput, format_progress, job_output, parse_job_input
from core.transcriber import Transcriber

log = logging.getLogger("runpod_worker")

PROGRESS_INTERVAL_S = 2.0  # at most one progress update per stage in this many seconds (each is an HTTP POST)

OOM_MESSAGE = ("the GPU ran out of memory on this job, so this worker is being replaced; retry the job, and if it "
               "fails again use a smaller 'chunk_seconds' or a GPU with more memory")
HOST_OOM_MESSAGE = "the worker ran out of memory on this job, so it is being replaced; retry the job"
ENGINE_MESSAGE = "the inference engine on this worker failed, so the worker is being replaced; retry the job"
CANCELLED_MESSAGE = "the job was cancelled"


ProgressSender = Callable[[dict, str], None]


def runpod_progress_sender(job: dict, message: str) -> None:
    """Send a progress update through the SDK, but only where it has somewhere to send it.

    On RunPod (or a stand-in that sets the SDK's job-done URL) the SDK posts `message` as the job's IN_PROGRESS
    output; in the local modes (`--test_input`, `--rp_serve_api`) there is no such URL and the update is logged.
    """
    from runpod.serverless import progress_update
    from runpod.serverless.modules import rp_http

    if str(rp_http.JOB_DONE_URL).startswith(("http://", "https://")):
        progress_update(job, message)
    else:
        log.info("job %s: %s", _safe_id(job), message)


class ProgressReporter:
    """The pipeline's progress callback for one job: throttled messages out, cancellation in.

    A new stage is always reported; within a stage at most one message per `interval_s`. Sending never fails the
    job. If `cancel` is set, the next call raises JobCancelled, at any stage: inside the models, the job's queued
    chunks are dropped and those in the engine aborted (`core.models.engine`), so its batch mates go on.
    """

    def __init__(self, job: dict, send: ProgressSender, cancel: threading.Event,
                 interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.job = job
        self.send = send
        self.cancel = cancel
        self.interval_s = interval_s
        self.sent: list[str] = []
        self._stage: str | None = None
        self._last_t = 0.0

    def __call__(self, stage: str, done: float, total: float | None) -> None:
        if self.cancel.is_set():
            raise JobCancelled()
        now = time.monotonic()
        if stage == self._stage and now - self._last_t < self.interval_s:
            return
        message = format_progress(stage, done, total)
        if self.sent and self.sent[-1] == message:
            return
        self._stage, self._last_t = stage, now
        self.sent.append(message)
        try:
            self.send(self.job, message)
        except Exception:  # progress is a courtesy: a failed update never fails the job
            log.warning("job %s: progress update failed", _safe_id(self.job), exc_info=True)


def _safe_id(job) -> str:
    """The job id for logs and messages: RunPod's ids are [A-Za-z0-9-]; anything else is dropped."""
    raw = job.get("id", "") if isinstance(job, dict) else ""
    return re.sub(r"[^A-Za-z0-9_-]", "", str(raw))[:80] or "unknown"


def _exception_chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def failure_kind(exc: BaseException) -> str | None:
    """'oom', 'host_oom' or 'engine' when the worker itself is no longer trustworthy; None for an ordinary error.

    Matched by class name and CUDA's own wording along the cause chain, so neither torch nor vLLM is imported here:
    torch.OutOfMemoryError (torch.cuda.OutOfMemoryError), a RuntimeError 'CUDA out of memory', vLLM's
    EngineDeadError, torch.AcceleratorError and 'CUDA error: ...' (a poisoned CUDA context).
    """
    for e in _exception_chain(exc):
        names = {c.__name__ for c in type(e).__mro__}
        text = str(e)
        if "OutOfMemoryError" in names or "CUDA out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text:
            return "oom"
        if isinstance(e, MemoryError):
            return "host_oom"
        if names & {"EngineDeadError", "AcceleratorError"} or "CUDA error" in text:
            return "engine"
    return None


def error_response(exc: BaseException, job_id: str) -> dict:
    """The handler's answer for a job that raised: a user-safe message, and `refresh_worker` when the worker is hurt.

    CoreError messages are safe by contract. Anything else is a bug: the traceback goes to the worker log and the
    caller gets the job id to find it, never the exception text (it may hold paths or host names).
    """
    if isinstance(exc, JobCancelled):
        return {"error": CANCELLED_MESSAGE}
    if isinstance(exc, ModelError):  # out of memory or a dead engine, as core words it for the caller
        log.error("job %s: model failure; asking RunPod for a fresh worker: %s", job_id, exc, exc_info=exc)
        return {"error": str(exc), "refresh_worker": True}
    if isinstance(exc, CoreError):
        log.info("job %s failed: %s", job_id, exc)
        return {"error": str(exc)}
    kind = failure_kind(exc)
    if kind is not None:
        log.error("job %s: worker failure (%s); asking RunPod for a fresh worker", job_id, kind, exc_info=exc)
        message = {"oom": OOM_MESSAGE, "host_oom": HOST_OOM_MESSAGE, "engine": ENGINE_MESSAGE}[kind]
        return {"error": message, "refresh_worker": True}
    log.error("job %s: unexpected error", job_id, exc_info=exc)
    return {"error": f"internal error while transcribing; the worker log has the details (job {job_id})"}


class Worker:
    """Holds the loaded pipeline and runs jobs on it; `handle` is the SDK's handler.

    Up to `concurrency` jobs run at once (RUNPOD_CONCURRENCY, default 1, fed to the SDK's concurrency_modifier):
    their downloads and decoding overlap, and their chunks flow into the same model engines, one chunk per job per
    turn (`core.models.engine`): they share GPU batches, and a short job behind long ones is done early. Each job
    holds its decoded audio (about 230 MB an hour) until it is done.
    """

    def __init__(self, pipeline: Transcriber, *, concurrency: int | None = None, send_progress: ProgressSender | None = None,
                 progress_interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.pipeline = pipeline
        self.config = pipeline.config
        self.concurrency = max(1, int(concurrency or self.config.runpod_concurrency))
        self.send_progress = send_progress or runpod_progress_sender
        self.progress_interval_s = progress_interval_s
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="job")

    def concurrency_modifier(self, current: int) -> int:
        """The SDK asks how many jobs this worker may hold at once; the answer is fixed by configuration."""
        return self.concurrency

    async def handle(self, job: dict) -> dict:
        """Validate, transcribe in a worker thread, shape the answer. Never raises except on cancellation."""
        t0 = time.perf_counter()
        job_id = _safe_id(job)
        raw = job.get("input") if isinstance(job, dict) else None
        try:  # a job written for runpod-workers/worker-faster_whisper is translated, and answered in its shape too
            fw = parse_faster_whisper_job(raw) if is_faster_whisper_job(raw) else None
            job_input = fw.job if fw else parse_job_input(raw)
        except CoreError as e:
            log.info("job %s rejected: %s", job_id, e)
            return {"error": str(e)}
        cancel = threading.Event()
        progress = ProgressReporter(job, self.send_progress, cancel, self.progress_interval_s)
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(self._executor, self._run, job_input, progress, cancel, job_id, fw)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops at its next progress report; a queued job never starts
            log.info("job %s cancelled", job_id)
            raise
        if "error" not in out:
            out["timings"]["total"] = round(time.perf_counter() - t0, 4)
        return out

    def run(self, job: dict) -> dict:
        """`handle` for callers without an event loop (tests, scripts)."""
        return asyncio.run(self.handle(job))

    def _run(self, job_input: JobInput, progress: ProgressReporter, cancel: threading.Event, job_id: str,
             fw: FasterWhisperJob | None = None) -> dict:
        try:
            if cancel.is_set():
                raise JobCancelled()
            source, filename = self._source(job_input)
            transcript = self.pipeline.transcribe(source, job_input.options, progress, filename=filename,
                                                  allow_local=False)
            if fw is not None:
                return faster_whisper_output(transcript, fw, model=served_model(self.config.asr_model),
                                             device=self.device)
            return job_output(transcript, job_input.formats)
        except BaseException as e:  # noqa: B036 - JobCancelled is a BaseException on purpose
            if not isinstance(e, Exception) and not isinstance(e, JobCancelled):
                raise  # KeyboardInterrupt, SystemExit
            return error_response(e, job_id)

    @functools.cached_property
    def device(self) -> str:
        """'cuda' or 'cpu', for faster-whisper-worker's `device` (found as that worker does, with the SDK's check)."""
        from runpod.serverless.utils import rp_cuda

        return "cpu" if self.config.device == "cpu" or not rp_cuda.is_available() else "cuda"

    def _source(self, job_input: JobInput):
        """What the pipeline fetches: the URL itself (guarded by core.fetch.sources), or the decoded base64 bytes."""
        if job_input.audio_url:
            return job_input.audio_url, None
        from core.fetch.sources import decode_base64_audio

        data = decode_base64_audio(job_input.audio_base64, max_bytes=self.config.max_download_bytes)
        return data, job_input.filename

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
