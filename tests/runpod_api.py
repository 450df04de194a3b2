"""A loopback stand-in for RunPod's production queue API, running a real worker handler in threads.

It follows RunPod's documented job operations (docs.runpod.io, "Send API requests" and "Job states"), under
`/v2/<endpoint id>/` with `Authorization: Bearer <key>` (anything else: 401):

- POST `/run` with `{"input": {...}, "policy"?: {"executionTimeout": ms}}` (at most 10 MB)
  -> `{"id", "status": "IN_QUEUE"}`
- GET `/status/<id>` -> `{"id", "status", "delayTime", "executionTime", "output"?, "error"?}` where status is
  IN_QUEUE, IN_PROGRESS (its `output` is the worker's latest `progress_update`), COMPLETED (`output`), FAILED
  (`error`), CANCELLED or TIMED_OUT
- POST `/cancel/<id>` -> `{"id", "status": "CANCELLED"}`

The handler runs as on a real worker: through the SDK's own `run_job` (so a returned `{"error": ...}` or an
exception becomes a FAILED job the way the SDK reports it), in an asyncio task that a cancel or an execution
timeout cancels (the SDK's per-job stop signal does the same), and its `runpod.serverless.progress_update` calls
go through the SDK's HTTP path to this server's job-done route, the way a worker reports progress to RunPod.
"""
from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

RUN_LIMIT = 10 * 1000 * 1000
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")


@dataclass
class Job:
    id: str
    input: dict
    status: str = "IN_QUEUE"
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    output: object = None  # the result once COMPLETED; the latest progress while IN_PROGRESS
    error: object = None
    execution_timeout_s: float | None = None  # the request's policy.executionTimeout, else the endpoint's
    stop: object = None  # set while the handler runs: cancels its task (RunPod's stop signal to the worker)
    worker_done: threading.Event = field(default_factory=threading.Event)  # the handler has returned or stopped

    def view(self) -> dict:
        now = time.monotonic()
        out = {"id": self.id, "status": self.status,
               "delayTime": int(((self.started or now) - self.created) * 1000)}
        if self.started is not None:
            out["executionTime"] = int(((self.finished or now) - self.started) * 1000)
        if self.output is not None and self.status in ("IN_PROGRESS", "COMPLETED"):
            out["output"] = self.output
        if self.error is not None and self.status == "FAILED":
            out["error"] = self.error
        return out


class RunPodAPI:
    """`with RunPodAPI(handler) as api:` serves `api.url` (the endpoint's base URL) until the block ends.

    workers=0 leaves every job in the queue; `ttl_s` expires queued jobs and `execution_timeout_s` (or the
    request's policy.executionTimeout) running ones, both ending TIMED_OUT; `flaky_status` makes that many status
    requests fail with 503. `calls` records (method, operation, job id) per request.
    """

    def __init__(self, handler, *, api_key: str = "rp-loopback-key", endpoint_id: str = "loopbackep42",
                 workers: int = 1, ttl_s: float | None = None, execution_timeout_s: float | None = None,
                 max_body: int = RUN_LIMIT, flaky_status: int = 0) -> None:
        self.handler = handler
        self.api_key = api_key
        self.endpoint_id = endpoint_id
        self.workers = workers
        self.ttl_s = ttl_s
        self.execution_timeout_s = execution_timeout_s
        self.max_body = max_body
        self.flaky_status = flaky_status  # the next N status requests answer 503, like a passing outage
        self.jobs: dict[str, Job] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.auth_headers: list[str] = []
        self.lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._saved_done_url = None

    # -- lifecycle -------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v2/{self.endpoint_id}"

    def __enter__(self) -> "RunPodAPI":
        from runpod.serverless.modules import rp_http

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_request_handler(self))
        self._server.daemon_threads = True
        port = self._server.server_port
        # Where the SDK posts a worker's results and progress (RunPod sets RUNPOD_WEBHOOK_POST_OUTPUT on real
        # workers; the SDK read it at import, so point its module-level value here while this server runs).
        self._saved_done_url = rp_http.JOB_DONE_URL
        rp_http.JOB_DONE_URL = f"http://127.0.0.1:{port}/job-done/loopback-worker/$ID?gpu=none"
        self._threads.append(threading.Thread(target=self._server.serve_forever, daemon=True))
        self._threads += [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        from runpod.serverless.modules import rp_http

        with self.lock:  # a test that ends mid-job leaves no handler running behind it
            for job in self.jobs.values():
                if job.stop is not None:
                    job.stop()
        for _ in range(self.workers):
            self._queue.put(None)
        self._server.shutdown()
        self._server.server_close()
        rp_http.JOB_DONE_URL = self._saved_done_url

    def ops(self, op: str) -> list[str]:
        """The job ids that received operation `op` (e.g. "cancel")."""
        with self.lock:
            return [job_id for _, o, job_id in self.calls if o == op]

    # -- the worker side -------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            with self.lock:
                if job.status != "IN_QUEUE":
                    continue
                job.status, job.started = "IN_PROGRESS", time.monotonic()
            result = asyncio.run(self._run_job(job))
            job.worker_done.set()
            with self.lock:
                if job.status != "IN_PROGRESS" or result is None:  # cancelled or timed out meanwhile
                    continue
                job.finished = time.monotonic()
                if result.get("error"):
                    job.status, job.error, job.output = "FAILED", result["error"], None
                else:
                    job.status, job.output = "COMPLETED", result.get("output")

    async def _run_job(self, job: Job) -> dict | None:
        """The SDK's run_job in a task that /cancel and the execution timeout cancel, as the SDK's stop signal does."""
        from runpod.serverless.modules.rp_job import run_job

        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(run_job(self.handler, {"id": job.id, "input": job.input}))
        with self.lock:
            job.stop = lambda: loop.call_soon_threadsafe(task.cancel)
            if job.status != "IN_PROGRESS":
                task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            return None
        finally:
            with self.lock:
                job.stop = None  # this loop closes next: nothing may be scheduled on it any more

    def _expire(self, job: Job) -> None:
        now = time.monotonic()
        if job.status == "IN_QUEUE" and self.ttl_s is not None and now - job.created > self.ttl_s:
            job.status = "TIMED_OUT"
        elif (job.status == "IN_PROGRESS" and job.execution_timeout_s is not None
              and now - job.started > job.execution_timeout_s):
            job.status, job.output = "TIMED_OUT", None
        if job.status == "TIMED_OUT" and job.finished is None:
            job.finished = now
            if job.stop is not None:
                job.stop()

    # -- the API side ----------------------------------------------------------------------------------------------

    def route(self, method: str, path: str, headers, body: bytes) -> tuple[int, object]:
        parts = [p for p in urlsplit(path).path.split("/") if p]
        if method == "POST" and len(parts) == 3 and parts[0] == "job-done":
            return self._progress(parts[2], body)
        if len(parts) < 3 or parts[0] != "v2" or parts[1] != self.endpoint_id:
            return 404, {"error": "not found"}
        op, job_id = parts[2], (parts[3] if len(parts) > 3 else "")
        with self.lock:
            self.calls.append((method, op, job_id))
            self.auth_headers.append(headers.get("Authorization", ""))
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "Unauthorized"}
        if (method, op) == ("POST", "run") and not job_id:
            return self._run(body)
        if (method, op) == ("GET", "status") and job_id:
            return self._status(job_id)
        if (method, op) == ("POST", "cancel") and job_id:
            return self._cancel(job_id)
        if op in ("run", "status", "cancel"):
            return 405, {"error": "method not allowed"}
        return 404, {"error": "not found"}

    def _run(self, body: bytes) -> tuple[int, object]:
        if len(body) > self.max_body:
            return 413, {"error": "payload too large"}
        try:
            request = json.loads(body)
        except ValueError:
            return 400, {"error": "the body is not JSON"}
        if not isinstance(request, dict) or "input" not in request:
            return 400, {"error": "the body needs an 'input' object"}
        policy = request.get("policy") or {}
        timeout_ms = policy.get("executionTimeout")
        job = Job(id=f"{uuid.uuid4()}-u1", input=request["input"],
                  execution_timeout_s=timeout_ms / 1000 if timeout_ms else self.execution_timeout_s)
        with self.lock:
            self.jobs[job.id] = job
        self._queue.put(job)
        return 200, {"id": job.id, "status": job.status}

    def _status(self, job_id: str) -> tuple[int, object]:
        with self.lock:
            if self.flaky_status > 0:
                self.flaky_status -= 1
                return 503, {"error": "service unavailable"}
            job = self.jobs.get(job_id)
            if job is None:
                return 404, {"error": "job not found"}
            self._expire(job)
            return 200, job.view()

    def _cancel(self, job_id: str) -> tuple[int, object]:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return 404, {"error": "job not found"}
            self._expire(job)
            if job.status not in FINAL:
                job.status, job.output, job.finished = "CANCELLED", None, time.monotonic()
                if job.stop is not None:
                    job.stop()
            return 200, {"id": job.id, "status": job.status}

    def _progress(self, job_id: str, body: bytes) -> tuple[int, object]:
        """The SDK's progress_update: {"status": "IN_PROGRESS", "output": <progress>} for a running job."""
        try:
            update = json.loads(body)
        except ValueError:
            return 400, {"error": "the body is not JSON"}
        with self.lock:
            job = self.jobs.get(job_id)
            if job is not None and job.status == "IN_PROGRESS" and update.get("status") == "IN_PROGRESS":
                job.output = update.get("output")
        return 200, {}


def _make_request_handler(api: RunPodAPI):
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            code, payload = api.route(method, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    return Handler
