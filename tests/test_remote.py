"""RunPod backend mode (core.remote) against a loopback server that follows RunPod's documented job API.

The happy paths run the real worker handler behind tests/runpod_api.py; the error paths need no model: an endpoint
that is down, a wrong key, a job nobody picks up, cancels from either side, a worker that crashes. Every test
runs with DEBUG logging captured, and the API key must appear in no log line, no output and no error message.
"""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from core.config import config_from_env
from core.errors import CoreError, InputError, TooLargeError
from core.remote import JobCancelled, RemoteJobError, RemotePipeline, endpoint_base, parse_progress

sys.path.insert(0, str(Path(__file__).parent))
from runpod_api import RunPodAPI  # noqa: E402

KEY = "rpa_SECRET0ff1ce4d5e6f7a8b9c0"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def key_never_leaks(caplog, capfd):
    """Every test: all loggers at DEBUG; afterwards the key is in no record and no output of this process."""
    caplog.set_level(logging.DEBUG)
    yield
    out, err = capfd.readouterr()
    assert KEY not in caplog.text
    assert KEY not in out and KEY not in err


def remote(url: str, key: str = KEY, **overrides) -> RemotePipeline:
    cfg = config_from_env({}, asr_backend="runpod", runpod_endpoint_url=url, runpod_api_key=key, **overrides)
    return RemotePipeline(cfg)


def never_called(job):
    raise AssertionError("no job should reach a worker in this test")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def failure(excinfo) -> str:
    msg = str(excinfo.value)
    assert KEY not in msg and "127.0.0.1" not in msg and "Traceback" not in msg
    return msg


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
    ({"stage": "align", "done": 2, "total": 5}, ("align", 2.0, 5.0)),
    ("Update 1/3: warming up", None),
    (None, None),
    (17, None),
])
def test_progress_messages(message, expected):
    assert parse_progress(message) == expected


# -- the endpoint refuses or is not there --------------------------------------------------------------------------

def test_endpoint_down():
    with pytest.raises(RemoteJobError) as e:
        remote(f"http://127.0.0.1:{closed_port()}/v2/downep99").transcribe("https://example.com/a.mp3")
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
    import core.remote

    with RunPodAPI(never_called, api_key=KEY, workers=0, ttl_s=1.0, flaky_status=3) as api:
        monkeypatch.setattr(core.remote, "POLL_MAX_S", 0.3)
        with pytest.raises(RemoteJobError, match="TIMED_OUT"):
            remote(api.url).transcribe("https://example.com/a.mp3")
        assert api.ops("status").count(next(iter(api.jobs))) > 3


def test_server_refusing_the_size_is_a_too_large_error():
    with RunPodAPI(never_called, api_key=KEY, workers=0, max_body=200) as api:
        with pytest.raises(TooLargeError, match="HTTP 413"):
            remote(api.url).transcribe("https://example.com/" + "a" * 300 + ".mp3")


def test_options_are_checked_before_anything_is_sent():
    with RunPodAPI(never_called, api_key=KEY, workers=0) as api:
        from core.types import TranscribeOptions

        with pytest.raises(InputError, match="chunk_seconds"):
            remote(api.url).transcribe("https://example.com/a.mp3", TranscribeOptions(chunk_seconds=1.0))
        assert api.calls == []


# -- no model, no GPU package --------------------------------------------------------------------------------------

def test_remote_mode_imports_no_model_package():
    code = (
        "import sys\n"
        "from core.config import config_from_env\n"
        "from core.remote import RemotePipeline\n"
        "p = RemotePipeline(config_from_env({}, asr_backend='runpod', runpod_endpoint_url='abc123wxyz'))\n"
        "print(p.describe())\n"
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'silero_vad') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["RunPod endpoint …wxyz", "[]"]
