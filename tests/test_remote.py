"""RunPod backend mode (core.remote.client) against a loopback server that follows RunPod's documented job API.

Here the client alone: its settings and progress messages, and the error paths that need no model: an endpoint
that is down, a wrong key, a job nobody picks up, cancels from either side, a worker that crashes. The real worker
behind the API is in test_remote_worker.py, the front ends in RunPod mode in test_remote_frontends.py. Every test
runs with DEBUG logging captured, and the API key must appear in no log line, no output and no error message.
"""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import requests

from core.errors import InputError, TooLargeError
from core.options import TranscribeOptions
from core.errors import JobCancelled
from core.remote.client import RemoteJobError, endpoint_base
from core.remote.schema import format_progress, parse_progress
from net_helpers import free_port
from remote_helpers import KEY, ROOT, failure, key_never_leaks, never_called, remote  # noqa: F401 (a fixture)
from runpod_api import RunPodAPI

pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind


# -- configuration and small parts ---------------------------------------------------------------------------------

def test_describe_names_the_endpoint_by_its_last_characters():
    assert remote("https://api.runpod.ai/v2/abc123wxyz").describe() == "RunPod endpoint …wxyz"
    assert remote("abc123wxyz/").base_url == "https://api.runpod.ai/v2/abc123wxyz"
    assert KEY not in repr(remote("abc123wxyz").config)


@pytest.mark.parametrize("url, needle", [
    ("", "needs RUNPOD_ENDPOINT_URL"),
    ("ftp://example.com/v2/abc", r"an http\(s\) URL"),
    ("https://api.runpod.ai/v2/abc?x=1", r"without \?query"),
])
def test_bad_endpoint_setting_is_a_clear_error(url, needle):
    with pytest.raises(InputError, match=needle):
        endpoint_base(url)


@pytest.mark.parametrize("message, expected", [
    ("transcribe 3/12", ("transcribe", 3.0, 12.0)),
    ("align 0/4", ("align", 0.0, 4.0)),
    ("download 4.5/31.25", ("download", 4.5e6, 31.25e6)),
    ("download 2", ("download", 2e6, None)),
    ("decode", ("decode", 0.0, None)),
    ({"stage": "align", "done": 2, "total": 5}, None),
    ("Update 1/3: warming up", None),
    (None, None),
    (17, None),
])
def test_progress_messages(message, expected):
    assert parse_progress(message) == expected


@pytest.mark.parametrize("stage, done, total", [
    ("transcribe", 3, 12), ("align", 0, 4), ("decode", 1, 1), ("merge", 1, 1), ("chunk", 1, 1),
    ("download", 4_200_000, 31_500_000), ("download", 1_234_567, None),
])
def test_the_workers_progress_messages_read_back(stage, done, total):
    """What runpod_worker sends is what the client's progress callback gets (downloads to 0.1 MB)."""
    got = parse_progress(format_progress(stage, done, total))
    assert got[0] == stage and got[1] == pytest.approx(done, abs=0.05e6)
    assert got[2] == (None if total is None else pytest.approx(total, abs=0.05e6))


# -- the endpoint refuses or is not there --------------------------------------------------------------------------

def test_endpoint_down():
    with pytest.raises(RemoteJobError) as e:
        remote(f"http://127.0.0.1:{free_port()}/v2/downep99").transcribe("https://example.com/a.mp3")
    assert "cannot reach the RunPod endpoint …ep99" in failure(e)


def test_wrong_key_is_refused_and_never_shown():
    with RunPodAPI(never_called, api_key="the-right-key") as api:
        with pytest.raises(RemoteJobError) as e:
            remote(api.url).transcribe("https://example.com/a.mp3")
    assert "refused the API key (HTTP 401)" in failure(e) and "RUNPOD_API_KEY" in failure(e)
    assert api.jobs == {} and api.auth_headers == [f"Bearer {KEY}"]


def test_unknown_endpoint_id_is_a_404_error():
    with RunPodAPI(never_called, api_key=KEY) as api:
        with pytest.raises(RemoteJobError) as e:
            remote(api.url.replace(api.endpoint_id, "nosuchendpoint")).transcribe("https://example.com/a.mp3")
    assert "HTTP 404" in failure(e) and "RUNPOD_ENDPOINT_URL" in failure(e)


# -- jobs that do not end well -------------------------------------------------------------------------------------

def test_job_that_never_starts_hits_our_timeout_and_is_cancelled():
    with RunPodAPI(never_called, api_key=KEY, workers=0) as api:
        stages = []
        with pytest.raises(RemoteJobError) as e:
            remote(api.url, runpod_timeout_s=1.5).transcribe("https://example.com/a.mp3",
                                                             progress=lambda *a: stages.append(a[0]))
        (job_id,) = api.jobs
        assert api.ops("cancel") == [job_id] and api.jobs[job_id].status == "CANCELLED"
    assert "no result from the RunPod endpoint" in failure(e) and "RUNPOD_TIMEOUT_S" in failure(e)
    assert stages[:2] == ["upload", "upload"] and set(stages[2:]) == {"queue"}


def test_cancel_event_sends_cancel():
    cancel = threading.Event()
    with RunPodAPI(never_called, api_key=KEY, workers=0) as api:
        with pytest.raises(JobCancelled, match="the job was cancelled"):
            remote(api.url).transcribe("https://example.com/a.mp3", cancel=cancel,
                                       progress=lambda stage, *_: stage == "queue" and cancel.set())
        (job_id,) = api.jobs
        assert api.ops("cancel") == [job_id] and api.jobs[job_id].status == "CANCELLED"


def test_interrupt_while_waiting_cancels_the_job_and_propagates():
    def interrupt(stage, done, total):
        if stage == "queue":
            raise KeyboardInterrupt

    with RunPodAPI(never_called, api_key=KEY, workers=0) as api:
        with pytest.raises(KeyboardInterrupt):
            remote(api.url).transcribe("https://example.com/a.mp3", progress=interrupt)
        (job_id,) = api.jobs
        assert api.ops("cancel") == [job_id]


def test_job_cancelled_on_the_endpoint():
    with RunPodAPI(never_called, api_key=KEY, workers=0) as api:
        def cancel_from_console(stage, *_):
            if stage == "queue" and not api.ops("cancel"):
                (job_id,) = api.jobs
                requests.post(f"{api.url}/cancel/{job_id}", headers={"Authorization": f"Bearer {KEY}"}, timeout=5)

        with pytest.raises(JobCancelled) as e:
            remote(api.url).transcribe("https://example.com/a.mp3", progress=cancel_from_console)
        assert len(api.ops("cancel")) == 1  # ours from the "console"; the client sends none for an ended job
    assert "cancelled on the RunPod endpoint" in failure(e)


def test_job_timed_out_on_the_endpoint():
    with RunPodAPI(never_called, api_key=KEY, workers=0, ttl_s=0.2) as api:
        with pytest.raises(RemoteJobError) as e:
            remote(api.url).transcribe("https://example.com/a.mp3")
        assert api.ops("cancel") == []
    assert "TIMED_OUT" in failure(e) and "execution timeout" in failure(e)


def test_worker_crash_shows_its_message_without_the_traceback():
    def crashing(job):
        raise RuntimeError("CUDA out of memory while loading the aligner\nmore detail on a second line")

    with RunPodAPI(crashing, api_key=KEY) as api:
        with pytest.raises(RemoteJobError) as e:
            remote(api.url).transcribe("https://example.com/a.mp3")
        (job,) = api.jobs.values()
        assert job.status == "FAILED" and "error_traceback" in job.error  # what the SDK reports...
    msg = failure(e)  # ...and what the user sees
    assert msg.endswith("the worker crashed: CUDA out of memory while loading the aligner")
    assert "second line" not in msg and "rp_job.py" not in msg


def test_a_few_failed_polls_are_tolerated(monkeypatch):
    import core.remote.client

    with RunPodAPI(never_called, api_key=KEY, workers=0, ttl_s=1.0, flaky_status=3) as api:
        monkeypatch.setattr(core.remote.client, "POLL_MAX_S", 0.3)
        with pytest.raises(RemoteJobError, match="TIMED_OUT"):
            remote(api.url).transcribe("https://example.com/a.mp3")
        assert api.ops("status").count(next(iter(api.jobs))) > 3


def test_server_refusing_the_size_is_a_too_large_error():
    with RunPodAPI(never_called, api_key=KEY, workers=0, max_body=200) as api:
        with pytest.raises(TooLargeError, match="HTTP 413"):
            remote(api.url).transcribe("https://example.com/" + "a" * 300 + ".mp3")


def test_options_are_checked_before_anything_is_sent():
    with RunPodAPI(never_called, api_key=KEY, workers=0) as api:
        with pytest.raises(InputError, match="chunk_seconds"):
            remote(api.url).transcribe("https://example.com/a.mp3", TranscribeOptions(chunk_seconds=1.0))
        assert api.calls == []


# -- no model, no GPU package --------------------------------------------------------------------------------------

def test_remote_mode_imports_no_model_package():
    code = (
        "import sys\n"
        "from core.config import config_from_env\n"
        "from core.remote.client import RemotePipeline\n"
        "p = RemotePipeline(config_from_env({}, asr_backend='runpod', runpod_endpoint_url='abc123wxyz'))\n"
        "print(p.describe())\n"
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'silero_vad') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["RunPod endpoint …wxyz", "[]"]
