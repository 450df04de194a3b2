"""The RunPod worker: the handler with tiny real checkpoints on CPU (good jobs, bad jobs, its own failures,
cancellation, progress); what ships with it and the SDK's local modes are in test_worker_deploy.py.

Audio comes from a real loopback HTTP server (or base64 in the job); progress goes through the SDK's real HTTP
path to a loopback job-done route; faults that cannot happen on CPU (a CUDA out-of-memory, a crashing backend)
are injected by wrapping the real tiny backend. After every test no temporary file of the worker remains.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import tempfile
import time
from pathlib import Path

import pytest

from bench.checkpoints import RIG_TEXT
from core.fetch.sources import TEMP_PREFIX
from core.remote.schema import RUNSYNC_PAYLOAD_LIMIT
from model_helpers import tiny_aligner_dir, tiny_asr_dir  # noqa: F401 (fixtures)
from net_helpers import Canary, MediaServer, wait_until
from core.remote.schema import format_progress
from runpod_worker.handler import ENGINE_MESSAGE, OOM_MESSAGE, ProgressReporter, Worker, error_response, failure_kind
from worker_helpers import (assert_clean_error, assert_transcript, job, media, pipeline, speech,  # noqa: F401
                            variant, worker)

pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind


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
    ("context too long", {"audio_url": "http://x.test/a.mp3", "context": "x" * 4001}, "the limit is 4000"),
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

    def transcribe_groups(self, *args, **kwargs):
        error, self.error = self.error, None
        if error is not None:
            raise error
        return self.inner.transcribe_groups(*args, **kwargs)


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
    from core.remote.schema import parse_progress

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
    for stage in ("transcribe", "merge"):  # any stage: the model engines drop a cancelled job's work
        with pytest.raises(BaseException) as e:
            rep(stage, 4, 12)
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


def test_progress_messages_are_the_ones_the_readme_lists(pipeline, media):
    """Issue 15: the README listed `decode 1/1` and no `chunk`, while the worker sent `decode 0/1` and `chunk 1/1`."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    bullet = readme.split("- `GET /status/<id>` answers", 1)[1].split("\n- ", 1)[0]
    documented = re.findall(r"`([a-z]+) \d", bullet)
    sent = []
    w = Worker(pipeline, send_progress=lambda job, msg: sent.append(msg), progress_interval_s=0)
    try:
        out = w.run(job(audio_url=media.url("/speech.wav")))
    finally:
        w.close()
    assert "error" not in out, out
    stages = list(dict.fromkeys(m.split()[0] for m in sent))
    assert stages == list(dict.fromkeys(documented)), (stages, documented)
    for message in re.findall(r"`((?:chunk|merge) \d+/\d+)`", bullet):
        assert message in sent, (message, sent)
    decoded = [m for m in sent if m.startswith("decode ")]  # seconds decoded, of the declared length
    assert decoded and all(re.fullmatch(r"decode \d+/\d+", m) for m in decoded)
    done, total = decoded[-1].split()[1].split("/")
    assert done == total != "0"
