"""`python -m bench` step "worker": N hour-long files through the real RunPod handler at once, a short job behind them.

The jobs go to `runpod_worker.handler.Worker.handle` exactly as the SDK hands them over (`{"id", "input":
{"audio_url": ...}}`), all on one asyncio loop; the files come from a loopback HTTP server, so every job also
downloads its file (the pipeline's config must allow private URLs). `delay_s` after the long jobs, one short job
(a fresh file) is submitted behind them: its finish time says whether a short job waits for the whole batch or is
served beside it. The worker runs `concurrency` jobs at once (default N + 1: a worker set to N would not take the
short job before a long one is done, whatever the engine does).

Reported: wall time until the last job, aggregate RTFx, each job's finish time, the short job's finish time and its
fraction of the wall time, failed jobs (`{"error": ...}` answers, reported, never raised), the CPU time of all
processes, and what the shared model engines admitted (`engine.history`, where the pipeline's models have one).
A hung run stops at `deadline_s`: jobs still running then are cancelled and left out (the wall time is then a lower
bound). When the "many" step ran first in the same process on the same files, vLLM's prefix cache may still hold
some of their audio: for a clean number, run this step with `--skip many`.
"""
from __future__ import annotations

import asyncio
import functools
import statistics
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from bench.cpu_time import per_audio_hour, snapshot, split


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # the base class's signature
        pass


def serve_files(root: Path) -> tuple[ThreadingHTTPServer, str]:
    """An HTTP server on 127.0.0.1 (a free port) handing out the files under `root`; returns it and its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="bench-files", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _engines(pipeline) -> dict[str, object]:
    """The shared model engines of the pipeline's ASR (unwrapped from bench's SpeechRateText) and aligner."""
    asr = getattr(pipeline, "asr", None)
    inner = getattr(asr, "inner", asr)
    found = {"asr": getattr(inner, "engine", None) if getattr(inner, "engine", None) is not None
             else getattr(asr, "engine", None),
             "aligner": getattr(getattr(pipeline, "aligner", None), "engine", None)}
    return {k: e for k, e in found.items() if getattr(e, "history", None) is not None}


def _history(engine) -> list:
    for _ in range(5):  # a deque copied while its engine appends raises; try again
        try:
            return list(engine.history)
        except RuntimeError:
            time.sleep(0.01)
    return []


def engine_marks(pipeline) -> dict[str, object | None]:
    """Where each engine's history stands now: its newest record (None when empty)."""
    return {name: (items[-1] if (items := _history(engine)) else None) for name, engine in _engines(pipeline).items()}


def engine_summary(pipeline, marks: dict[str, object | None]) -> dict[str, dict]:
    """What each engine admitted since `marks`: how many admissions, their sizes, how many mixed jobs.

    The history is bounded: `truncated` says the oldest admissions of the run were pushed out of it."""
    out = {}
    for name, engine in _engines(pipeline).items():
        items = _history(engine)
        last = marks.get(name)
        at = next((i for i in range(len(items) - 1, -1, -1) if items[i] is last), None) if last is not None \
            else -1
        maxlen = getattr(engine.history, "maxlen", None)
        truncated = at is None or (at == -1 and maxlen is not None and len(items) >= maxlen)
        new = items if at is None else items[at + 1:]
        sizes = [int(getattr(a, "size", 0)) for a in new]
        jobs = [int(getattr(a, "jobs", 0)) for a in new]
        out[name] = {"admissions": len(new), "mean_size": statistics.fmean(sizes) if sizes else 0.0,
                     "max_size": max(sizes, default=0), "mixed": sum(j > 1 for j in jobs),
                     "max_jobs": max(jobs, default=0), "truncated": truncated}
    return out


async def _run_jobs(worker, long_jobs: list[dict], short_job: dict, delay_s: float, deadline_s: float
                    ) -> tuple[float, dict[str, dict]]:
    """Submit the long jobs, then the short one `delay_s` later; wait for all until `deadline_s`."""
    t0 = time.perf_counter()
    done_at: dict[str, dict] = {}

    async def one(job: dict) -> None:
        submitted = time.perf_counter() - t0
        try:
            out = await worker.handle(job)
        except Exception as e:  # noqa: BLE001 - handle() should never raise; if it does, report it
            out = {"error": f"handle raised {type(e).__name__}: {e}"[:300]}
        done_at[job["id"]] = {"submitted_s": submitted, "finish_s": time.perf_counter() - t0, "out": out}

    tasks = [asyncio.create_task(one(j)) for j in long_jobs]
    await asyncio.sleep(delay_s)
    tasks.append(asyncio.create_task(one(short_job)))
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline_s - (time.perf_counter() - t0)))
    wall = time.perf_counter() - t0
    for task in pending:  # the worker tells each job's thread to stop at its next safe point
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5.0)
    return wall, done_at


def run_worker(pipeline, paths: list[Path], short_path: Path, *, deadline_s: float = 400.0, delay_s: float = 1.0,
               concurrency: int | None = None, log=print) -> dict:
    """All of `paths` through one `Worker` at once, `short_path` `delay_s` behind them; the numbers (module doc)."""
    from runpod_worker.handler import Worker

    if not getattr(pipeline.config, "allow_private_urls", False):
        raise ValueError("the worker step serves its files on 127.0.0.1: build the pipeline's config with "
                         "allow_private_urls=True")
    root = short_path.parent
    if any(p.parent != root for p in paths):
        raise ValueError(f"the worker step serves one folder: every file must be in {root}")
    concurrency = concurrency or len(paths) + 1
    server, base = serve_files(root)
    worker = Worker(pipeline, concurrency=concurrency, send_progress=lambda job, message: None)

    def job(name: str, path: Path) -> dict:  # as the RunPod SDK hands a job to the handler
        return {"id": name, "input": {"audio_url": f"{base}/{quote(path.name)}"}}

    long_jobs = [job(f"long{i:02d}", p) for i, p in enumerate(paths)]
    short_job = job("short", short_path)
    marks = engine_marks(pipeline)
    decode_pids = set(pipeline.decoder.worker_pids())
    before = snapshot()
    try:
        wall, done_at = asyncio.run(_run_jobs(worker, long_jobs, short_job, delay_s, deadline_s))
    finally:
        server.shutdown()
        server.server_close()
    cpu = split(before, snapshot(), decode_pids | set(pipeline.decoder.worker_pids()))
    unfinished = [j["id"] for j in long_jobs + [short_job] if j["id"] not in done_at]
    if unfinished:  # their threads may still be inside a model call: close the worker without waiting for them
        threading.Thread(target=worker.close, daemon=True).start()
    else:
        worker.close()

    jobs, errors = [], []
    for j in long_jobs + [short_job]:
        d = done_at.get(j["id"])
        if d is None:
            jobs.append({"id": j["id"], "finish_s": None, "error": f"not done at the {deadline_s:g} s deadline"})
            continue
        out = d["out"]
        row = {"id": j["id"], "submitted_s": d["submitted_s"], "finish_s": d["finish_s"],
               "audio_s": float(out.get("duration") or 0.0) if "error" not in out else 0.0}
        if "error" in out:
            row["error"] = str(out["error"])[:300]
            errors.append({"id": j["id"], "error": row["error"]})
        else:
            row["timings"] = out.get("timings", {})
        jobs.append(row)
        log(f"  worker job {j['id']} {'failed' if 'error' in out else 'done'} at {d['finish_s']:.1f} s"
            + (f": {row['error'][:120]}" if "error" in out else ""))
    audio_s = sum(r.get("audio_s", 0.0) for r in jobs)
    short = jobs[-1]
    longs = [r["finish_s"] for r in jobs[:-1] if r.get("finish_s") is not None and "error" not in r]
    last = max((r["finish_s"] for r in jobs if r.get("finish_s") is not None), default=wall)
    wall_all = wall if unfinished else last
    return {
        "files": len(paths), "concurrency": concurrency, "delay_s": delay_s, "deadline_s": deadline_s,
        "wall_s": wall_all, "audio_s": audio_s, "rtfx": audio_s / wall_all if wall_all > 0 else None,
        "done": len(jobs) - len(unfinished) - len(errors), "of": len(jobs), "timed_out": bool(unfinished),
        "long_finish_s": longs,
        "short": {"submitted_s": short.get("submitted_s"), "finish_s": short.get("finish_s"),
                  "latency_s": (short["finish_s"] - short["submitted_s"]) if short.get("finish_s") is not None
                  else None,
                  "fraction_of_wall": short["finish_s"] / wall_all if short.get("finish_s") is not None
                  and wall_all > 0 else None,
                  "audio_s": short.get("audio_s", 0.0), "error": short.get("error")},
        "errors": errors, "jobs": jobs, "engines": engine_summary(pipeline, marks),
        "cpu": per_audio_hour(cpu, audio_s),
    }
