"""The RunPod worker: the handler with tiny real checkpoints on CPU, and the SDK's own local modes in a subprocess.

Audio comes from a real loopback HTTP server (or base64 in the job); progress goes through the SDK's real HTTP
path to a loopback job-done route; faults that cannot happen on CPU (a CUDA out-of-memory, a crashing backend)
are injected by wrapping the real tiny backend. After every test no temporary file of the worker remains.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from bench.checkpoints import RIG_TEXT
from audio_helpers import espeak, silence, write_audio
from core.config import Config, config_from_env
from core.jobs import FIELDS, RUNSYNC_PAYLOAD_LIMIT, parse_job_input
from core.pipeline import Pipeline
from core.sources import TEMP_PREFIX
from model_helpers import load_tiny_aligner, load_tiny_asr, tiny_aligner_dir, tiny_asr_dir  # noqa: F401 (fixtures)
from net_helpers import Canary, MediaServer, wait_until
from runpod_worker.handler import (ENGINE_MESSAGE, OOM_MESSAGE, ProgressReporter, Worker,
                                   error_response, failure_kind, format_progress)

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


# -- fixtures ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """A short spoken WAV (espeak-ng) and its true duration."""
    samples = np.concatenate([silence(0.3), espeak("Hello there, this is a short test of the worker."),
                              silence(0.3)])
    path = write_audio(tmp_path_factory.mktemp("audio") / "speech.wav", samples, SR)
    return path.read_bytes(), len(samples) / SR


@pytest.fixture(scope="module")
def media(speech):
    with MediaServer() as srv:
        srv.add_bytes("/speech.wav", speech[0], "audio/wav")
        srv.add_bytes("/page.mp3", b"<!DOCTYPE html><html><body>not audio</body></html>" * 20, "audio/mpeg")
        srv.add_status("/missing.mp3", 404)
        yield srv


def tiny_config(asr_dir, aligner_dir, **overrides):
    return config_from_env({}, asr_model=str(asr_dir), aligner_model=str(aligner_dir), asr_backend="transformers",
                           device="cpu", allow_private_urls=True, **overrides)


@pytest.fixture(scope="module")
def pipeline(tiny_asr_dir, tiny_aligner_dir):
    # The session's loaded tiny models (the rigged ASR always writes bench.checkpoints.RIG_TEXT).
    return Pipeline(tiny_config(tiny_asr_dir, tiny_aligner_dir), asr=load_tiny_asr(), aligner=load_tiny_aligner())


@pytest.fixture(scope="module")
def worker(pipeline):
    w = Worker(pipeline)
    yield w
    w.close()


def variant(pipeline, *, asr=None, **config_changes) -> Pipeline:
    """The loaded models under another configuration (limits) or behind a fault-injecting wrapper."""
    return Pipeline(dataclasses.replace(pipeline.config, **config_changes), asr=asr or pipeline.asr,
                    aligner=pipeline.aligner)


pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind


def job(**fields) -> dict:
    return {"id": "job-test-1", "input": fields}


def assert_clean_error(out: dict, phrase: str) -> None:
    assert set(out) <= {"error", "refresh_worker"}, out
    message = out["error"]
    assert phrase.lower() in message.lower(), message
    assert "Traceback" not in message and tempfile.gettempdir() not in message and str(ROOT) not in message
    assert socket.gethostname() not in message


def assert_transcript(out: dict, duration: float, formats=()) -> None:
    assert "error" not in out, out
    assert set(out) == {"text", "language", "duration", "segments", "warnings", "timings", *formats}
    assert out["duration"] == pytest.approx(duration, abs=0.05)
    assert isinstance(out["text"], str) and isinstance(out["warnings"], list)
    for seg in out["segments"]:
        assert 0 <= seg["start"] <= seg["end"] <= out["duration"] + 1e-6
        for w in seg["words"]:
            assert seg["start"] - 1e-6 <= w["start"] <= w["end"] <= seg["end"] + 1e-6
    assert {"fetch", "decode", "transcribe", "total"} <= set(out["timings"])
    assert out["timings"]["total"] >= out["timings"]["transcribe"]


# -- good jobs ---------------------------------------------------------------------------------------------------

def test_job_by_url_returns_the_transcript_and_formats(worker, media, speech):
    out = worker.run(job(audio_url=media.url("/speech.wav"), language="en", formats=["srt", "vtt", "txt"]))
    assert_transcript(out, speech[1], formats=("srt", "vtt", "txt"))
    assert out["language"] == "English"
    assert out["vtt"].startswith("WEBVTT")
    assert out["text"] == RIG_TEXT  # what the rigged tiny ASR always says
    assert out["txt"].split() == out["text"].split()
    assert [w["text"] for seg in out["segments"] for w in seg["words"]] == RIG_TEXT.split()
    assert json.loads(json.dumps(out)) == out  # what RunPod stores must survive JSON


def test_job_by_base64_with_data_uri(worker, speech):
    data = "data:audio/wav;base64," + base64.b64encode(speech[0]).decode()
    out = worker.run(job(audio_base64=data, filename="clip.wav", word_timestamps=False))
    assert_transcript(out, speech[1])
    assert all(seg["words"] == [] for seg in out["segments"])


def test_same_job_id_twice_at_once_is_safe(pipeline, media, speech):
    w = Worker(pipeline, concurrency=2)
    one = job(audio_url=media.url("/speech.wav"), language="en")

    async def both():
        return await asyncio.gather(w.handle(one), w.handle(dict(one)))

    try:
        a, b = asyncio.run(both())
    finally:
        w.close()
    assert_transcript(a, speech[1])
    assert_transcript(b, speech[1])
    assert a["text"] == b["text"] and a["segments"] == b["segments"]
    assert one["input"] == {"audio_url": media.url("/speech.wav"), "language": "en"}  # the job is not modified


# -- bad jobs: each a clear {"error": ...}, and the worker goes on ------------------------------------------------

SCHEMA_CASES = [
    ("not an object", "hello", "must be a JSON object"),
    ("no input", None, "must be a JSON object"),
    ("unknown key", {"audio_url": "http://x.test/a.mp3", "speed": 2}, "unknown input field(s): speed"),
    ("bool as string", {"audio_url": "http://x.test/a.mp3", "word_timestamps": "yes"}, "'word_timestamps' must be"),
    ("chunk too short", {"audio_url": "http://x.test/a.mp3", "chunk_seconds": 1}, "between 5 and 180"),
    ("chunk not finite", {"audio_url": "http://x.test/a.mp3", "chunk_seconds": float("nan")}, "between 5 and 180"),
    ("chunk as bool", {"audio_url": "http://x.test/a.mp3", "chunk_seconds": True}, "must be a number"),
    ("bad format", {"audio_url": "http://x.test/a.mp3", "formats": ["pdf"]}, "unknown format"),
    ("formats not a list", {"audio_url": "http://x.test/a.mp3", "formats": "srt"}, "'formats' must be a list"),
    ("context too long", {"audio_url": "http://x.test/a.mp3", "context": "x" * 4001}, "longer than 4000"),
    ("url too long", {"audio_url": "http://x.test/" + "a" * 5000}, "longer than 4096"),
    ("both sources", {"audio_url": "http://x.test/a.mp3", "audio_base64": "AAAA"}, "exactly one"),
    ("no source", {"language": "en"}, "exactly one"),
    ("unsupported language", {"audio_url": "http://x.test/a.mp3", "language": "Klingon"}, "unsupported language"),
    ("base64 over RunPod's limit", {"audio_base64": "A" * (RUNSYNC_PAYLOAD_LIMIT + 4)}, "audio_url"),
]


@pytest.mark.parametrize("name, raw, phrase", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_bad_schema_is_an_error(worker, name, raw, phrase):
    out = worker.run({"id": "bad-1", "input": raw} if raw is not None else {"id": "bad-1"})
    assert_clean_error(out, phrase)
    assert "refresh_worker" not in out


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/a.mp3"


def test_source_errors_then_the_next_job_works(worker, pipeline, media, speech):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(2000)).decode()
    cases = [
        (job(audio_url="ftp://127.0.0.1/a.mp3"), "http"),
        (job(audio_url="file:///etc/passwd"), "http"),
        (job(audio_url=closed_port_url()), "could not"),
        (job(audio_url=media.url("/missing.mp3")), "404"),
        (job(audio_url=media.url("/page.mp3")), "audio"),
        (job(audio_base64="not base64 at all!"), "base64"),
        (job(audio_base64=png, filename="cover.mp3"), "audio"),
    ]
    for bad, phrase in cases:
        out = worker.run(bad)
        assert_clean_error(out, phrase)
        assert "refresh_worker" not in out
    assert_transcript(worker.run(job(audio_url=media.url("/speech.wav"))), speech[1])


def test_limits_are_errors(pipeline, media, speech):
    small = Worker(variant(pipeline, max_download_bytes=len(speech[0]) // 2))
    short = Worker(variant(pipeline, max_duration_s=0.5))
    try:
        assert_clean_error(small.run(job(audio_url=media.url("/speech.wav"))), "MAX_DOWNLOAD_BYTES")
        b64 = base64.b64encode(speech[0]).decode()
        assert_clean_error(small.run(job(audio_base64=b64)), "MAX_DOWNLOAD_BYTES")
        assert_clean_error(short.run(job(audio_url=media.url("/speech.wav"))), "limit")
    finally:
        small.close()
        short.close()


def test_private_address_is_refused_without_a_request(pipeline):
    guarded = Worker(variant(pipeline, allow_private_urls=False))
    try:
        with Canary() as canary:
            out = guarded.run(job(audio_url=canary.url("/a.mp3")))
            time.sleep(0.2)
            assert canary.hits == []
    finally:
        guarded.close()
    assert_clean_error(out, "")
    assert "refresh_worker" not in out


# -- the worker's own failures ------------------------------------------------------------------------------------

class FailingASR:
    """The real tiny backend behind a switch that makes its next call raise `error` (a fault CPU cannot cause)."""

    def __init__(self, inner, error: BaseException | None = None) -> None:
        self.inner, self.error = inner, error

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def transcribe(self, *args, **kwargs):
        error, self.error = self.error, None
        if error is not None:
            raise error
        return self.inner.transcribe(*args, **kwargs)


def test_gpu_out_of_memory_asks_for_a_fresh_worker(pipeline, media, speech):
    import torch
    from runpod.serverless.modules.rp_job import run_job

    asr = FailingASR(pipeline.asr, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"))
    w = Worker(variant(pipeline, asr=asr))
    try:
        good = job(audio_url=media.url("/speech.wav"))
        out = w.run(good)
        assert out == {"error": OOM_MESSAGE, "refresh_worker": True}
        assert "GiB" not in out["error"]
        asr.error = torch.OutOfMemoryError("CUDA out of memory")
        result = asyncio.run(run_job(w.handle, good))  # the SDK's own handling of the answer
        assert result == {"error": OOM_MESSAGE, "stopPod": True}
        assert_transcript(w.run(good), speech[1])
    finally:
        w.close()


def test_unexpected_error_is_logged_not_sent(pipeline, media, speech, caplog):
    asr = FailingASR(pipeline.asr, ValueError(f"shape mismatch in {tempfile.gettempdir()}/secret/model.bin"))
    w = Worker(variant(pipeline, asr=asr))
    try:
        with caplog.at_level(logging.ERROR, logger="runpod_worker"):
            out = w.run({"id": "job-77", "input": {"audio_url": media.url("/speech.wav")}})
        assert out == {"error": "internal error while transcribing; the worker log has the details (job job-77)"}
        assert any(r.exc_info and "secret/model.bin" in str(r.exc_info[1]) for r in caplog.records)
        assert_transcript(w.run(job(audio_url=media.url("/speech.wav"))), speech[1])
    finally:
        w.close()


def test_failure_kinds():
    import torch

    assert failure_kind(torch.OutOfMemoryError("CUDA out of memory")) == "oom"
    assert failure_kind(RuntimeError("CUDA error: an illegal memory access was encountered")) == "engine"
    assert failure_kind(torch.AcceleratorError("CUDA error: device-side assert triggered")) == "engine"
    wrapped = RuntimeError("batch failed")
    wrapped.__cause__ = torch.OutOfMemoryError("CUDA out of memory")
    assert failure_kind(wrapped) == "oom"
    assert failure_kind(MemoryError()) == "host_oom"
    assert failure_kind(ValueError("bad input")) is None
    assert error_response(RuntimeError("CUDA error: misaligned address"), "j1") == \
        {"error": ENGINE_MESSAGE, "refresh_worker": True}


def test_model_error_refreshes_the_worker():
    from core.errors import DecodeError, ModelError

    assert error_response(ModelError("the ASR engine stopped"), "j") == \
        {"error": "the ASR engine stopped", "refresh_worker": True}
    assert error_response(DecodeError("not audio"), "j") == {"error": "not audio"}


# -- cancellation ------------------------------------------------------------------------------------------------

def test_cancelled_job_stops_and_cleans_up(pipeline, media, speech, own_tempdir):
    slow = media.add_trickle("/slow.wav", speech[0], delay=0.05, piece=1024)  # about 5 s to send it all
    w = Worker(pipeline)

    async def scenario():
        running = asyncio.ensure_future(w.handle(job(audio_url=slow)))
        queued = asyncio.ensure_future(w.handle(job(audio_url=media.url("/speech.wav"))))
        downloading = lambda: any(p.name.startswith(TEMP_PREFIX) for p in own_tempdir.iterdir())  # noqa: E731
        assert await asyncio.to_thread(wait_until, downloading, 10)
        running.cancel()
        queued.cancel()
        for task in (running, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        return await w.handle(job(audio_url=media.url("/speech.wav")))

    try:
        seen_before = len(media.seen)
        t0 = time.monotonic()
        out = asyncio.run(scenario())
        # The next job waited for the cancelled one's thread (one model user at a time), so finishing well inside
        # the slow file's 5 s shows the download was abandoned, not completed.
        assert time.monotonic() - t0 < 4
        assert_transcript(out, speech[1])
        fetched = [s.path for s in media.seen[seen_before:]]
        assert fetched.count("/speech.wav") == 1  # the queued job never started; the next one ran
    finally:
        w.close()


# -- progress ----------------------------------------------------------------------------------------------------

def test_progress_messages_are_throttled_and_parseable():
    from core.remote import parse_progress

    sent, cancel = [], __import__("threading").Event()
    rep = ProgressReporter({"id": "j"}, lambda job, msg: sent.append(msg), cancel, interval_s=60)
    rep("download", 0, 31_500_000)
    rep("download", 4_200_000, 31_500_000)  # same stage within the interval: dropped
    rep("decode", 0, 1)
    rep("transcribe", 3, 12)
    rep("download", 1_000_000, None)
    assert sent == ["download 0.0/31.5", "decode 0/1", "transcribe 3/12", "download 1.0"]
    assert parse_progress("transcribe 3/12") == ("transcribe", 3.0, 12.0)
    assert parse_progress(format_progress("download", 4_200_000, 31_500_000)) == ("download", 4.2e6, 31.5e6)
    cancel.set()
    rep("transcribe", 4, 12)  # not a safe point: the model call is left to finish
    with pytest.raises(BaseException) as e:
        rep("merge", 0, 1)
    assert type(e.value).__name__ == "JobCancelled"


def test_progress_reaches_runpods_job_done_url(pipeline, media, speech):
    """Through the SDK's real progress_update, the way a deployed worker reports to RunPod."""
    from runpod.serverless.modules import rp_http

    posted = []
    with MediaServer() as runpod_side:
        def done(h):
            body = h.rfile.read(int(h.headers["Content-Length"]))
            posted.append((h.path, json.loads(body)))
            h.send_response(200)
            h.send_header("Content-Length", "0")
            h.end_headers()
        runpod_side.add("/job-done/w1/job-progress-1", done)
        saved = rp_http.JOB_DONE_URL
        rp_http.JOB_DONE_URL = runpod_side.url("/job-done/w1/$ID?gpu=cpu")
        w = Worker(pipeline, progress_interval_s=0)
        try:
            out = w.run({"id": "job-progress-1", "input": {"audio_url": media.url("/speech.wav")}})
            assert wait_until(lambda: any(p[1]["output"].startswith("merge") for p in posted), 10), posted
        finally:
            rp_http.JOB_DONE_URL = saved
            w.close()
    assert "error" not in out
    stages = [p[1]["output"].split()[0] for p in posted]
    assert {"download", "decode", "chunk", "transcribe", "merge"} <= set(stages)
    assert all(p[1]["status"] == "IN_PROGRESS" for p in posted)
    assert all("isStream=false" in p[0] for p in posted)


# -- the shipped example jobs and the docs -----------------------------------------------------------------------

def test_example_jobs_are_valid():
    parse_job_input(json.loads((ROOT / "test_input.json").read_text())["input"])
    tests = json.loads((ROOT / ".runpod" / "tests.json").read_text())
    assert tests["tests"]
    for t in tests["tests"]:
        parse_job_input(t["input"])
        assert t["timeout"] >= 60_000
    hub = json.loads((ROOT / ".runpod" / "hub.json").read_text())
    assert hub["type"] == "serverless" and hub["category"] == "audio"
    env = {e["key"]: e for e in hub["config"]["env"]}
    assert env["APP_MODE"]["value"] == "runpod"
    known = {f.name.upper() for f in dataclasses.fields(Config)}
    assert set(env) <= known, set(env) - known  # every setting offered is one the worker reads
    assert min(float(v) for v in hub["config"]["allowedCudaVersions"]) >= 13.0


def input_table() -> str:
    """The docs' input reference, generated from core.jobs.FIELDS."""
    kind = {str: "string", bool: "boolean", list: "list", int: "number", float: "number"}
    rows = ["| Field | Type | Default | Meaning |", "| --- | --- | --- | --- |"]
    for name, f in FIELDS.items():
        types = f.type if isinstance(f.type, tuple) else (f.type,)
        default = "—" if f.default is None else f"`{json.dumps(f.default)}`"
        rows.append(f"| `{name}` | {' or '.join(dict.fromkeys(kind[t] for t in types))} | {default} | {f.doc} |")
    return "\n".join(rows)


def test_docs_input_table_matches_the_schema():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- input-table:start -->\n(.*?)\n<!-- input-table:end -->", text, re.S)
    assert m, "README.md lost its input-table markers"
    assert m.group(1) == input_table(), "regenerate the table:\n" + input_table()


def test_docs_output_table_names_every_output_field(worker, media):
    out = worker.run(job(audio_url=media.url("/speech.wav"), formats=["srt", "vtt", "txt"]))
    text = (ROOT / "README.md").read_text()
    section = text.split("### Job output", 1)[1].split("###", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)`", section, re.M)) | set(re.findall(r"`(\w+)`, `(\w+)`, `(\w+)` \|",
                                                                                section)[0])
    assert documented == set(out)
    for stage in out["timings"]:
        assert f"`{stage}`" in section


# -- the SDK's local modes, in a subprocess as the image runs them -------------------------------------------------

def worker_env(tmp_path: Path, asr_dir, aligner_dir, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(ASR_MODEL=str(asr_dir), ALIGNER_MODEL=str(aligner_dir), ASR_BACKEND="transformers", DEVICE="cpu",
               ALLOW_PRIVATE_URLS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path / "tmp"),
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rp_serve_api_answers_runsync(tmp_path, tiny_asr_dir, tiny_aligner_dir, media, speech, own_tempdir):
    port = free_port()
    log = open(tmp_path / "worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "runpod_worker", "--rp_serve_api", "--rp_api_port", str(port),
                             "--rp_api_host", "127.0.0.1"],
                            cwd=tmp_path, env=worker_env(own_tempdir.parent, tiny_asr_dir, tiny_aligner_dir),
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return requests.get(base + "/openapi.json", timeout=1).status_code == 200
            except requests.RequestException:
                return proc.poll() is not None
        assert wait_until(up, timeout=90) and proc.poll() is None, (tmp_path / "worker.log").read_text()
        good = {"input": {"audio_url": media.url("/speech.wav"), "formats": ["srt"]}}
        r = requests.post(base + "/runsync", json=good, timeout=120).json()
        assert r["status"] == "COMPLETED", r
        assert_transcript(r["output"], speech[1], formats=("srt",))
        bad = requests.post(base + "/runsync", json={"input": {"audio_url": media.url("/speech.wav"), "x": 1}},
                            timeout=60).json()
        assert bad["status"] == "FAILED" and bad["error"].startswith("unknown input field(s): x")
        again = requests.post(base + "/runsync", json=good, timeout=120).json()
        assert again["status"] == "COMPLETED" and again["output"]["text"] == r["output"]["text"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_test_input_prints_a_transcript(tmp_path, tiny_asr_dir, tiny_aligner_dir, media, own_tempdir):
    """The image's own command (`python /app/app.py` from another directory, APP_MODE=runpod) in --test_input mode,
    with RunPod's job-done URL pointed at a loopback server that collects the progress updates."""
    captured = []
    with MediaServer() as runpod_side:
        def done(h):
            captured.append(json.loads(h.rfile.read(int(h.headers["Content-Length"]))))
            h.send_response(200)
            h.send_header("Content-Length", "0")
            h.end_headers()
        runpod_side.add("/done/local_test", done)
        env = worker_env(own_tempdir.parent, tiny_asr_dir, tiny_aligner_dir,
                         RUNPOD_WEBHOOK_POST_OUTPUT=runpod_side.url("/done/$ID?worker=w1"), APP_MODE="runpod")
        test_input = {"input": {"audio_url": media.url("/speech.wav"), "formats": ["vtt"]}}
        r = subprocess.run([sys.executable, str(ROOT / "app.py"), "--test_input", json.dumps(test_input)],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    result = r.stdout[r.stdout.index("Job result:"):]
    assert "'text':" in result and "'segments':" in result and "WEBVTT" in result
    assert "models ready in" in r.stderr
    stages = {c["output"].split()[0] for c in captured if c.get("status") == "IN_PROGRESS"}
    assert {"download", "transcribe"} <= stages, captured


def test_hub_entry_file_with_a_bad_job_fails(tmp_path, tiny_asr_dir, tiny_aligner_dir, own_tempdir):
    """.runpod/handler.py (the file RunPod Hub asks for) starts the same worker; a failed job exits 1."""
    env = worker_env(own_tempdir.parent, tiny_asr_dir, tiny_aligner_dir)
    r = subprocess.run([sys.executable, str(ROOT / ".runpod" / "handler.py"), "--test_input",
                        json.dumps({"input": {"audio_url": "ftp://example.com/a.mp3"}})],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 1
    assert "'ftp' inputs are not supported" in r.stdout


def test_worker_refuses_the_runpod_backend(tmp_path, own_tempdir):
    env = worker_env(own_tempdir.parent, "unused", "unused", ASR_BACKEND="runpod")
    r = subprocess.run([sys.executable, "-m", "runpod_worker", "--test_input", '{"input": {}}'], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "ASR_BACKEND=runpod would make the worker send its jobs to a RunPod endpoint" in r.stderr
    assert "Traceback" not in r.stderr
