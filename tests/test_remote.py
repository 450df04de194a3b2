"""RunPod backend mode (core.remote) against a loopback server that follows RunPod's documented job API.

The happy paths run the real worker handler behind tests/runpod_api.py; the error paths need no model: an endpoint
that is down, a wrong key, a job nobody picks up, cancels from either side, a worker that crashes. Every test
runs with DEBUG logging captured, and the API key must appear in no log line, no output and no error message.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import logging
import signal
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import requests

from audio_helpers import espeak, silence, write_audio
from core.audio import decode_audio
from core.config import config_from_env
from core.errors import InputError, TooLargeError
from core.jobs import JobInput, parse_job_input, transcript_from_output
from core.pipeline import Pipeline
from core.remote import JobCancelled, RemoteJobError, RemotePipeline, endpoint_base, parse_progress
from core.types import TranscribeOptions
from model_helpers import tiny_config  # noqa: F401 - a fixture
from net_helpers import MediaServer, wait_until
from runpod_api import RunPodAPI
from runpod_worker.handler import Worker, format_progress

KEY = "rpa_SECRET0ff1ce4d5e6f7a8b9c0"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def key_never_leaks(caplog, capfd):
    """Every test: all loggers at DEBUG; afterwards the key is in no record and no output of this process.

    (caplog.text in a teardown holds only the teardown's records, hence get_records for setup and call.)
    """
    caplog.set_level(logging.DEBUG)
    yield
    out, err = capfd.readouterr()
    fmt = logging.Formatter("%(name)s %(message)s")  # the message with its arguments, and any traceback
    logged = "\n".join(fmt.format(r) for when in ("setup", "call") for r in caplog.get_records(when))
    assert KEY not in logged
    assert KEY not in out and KEY not in err


pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind


def remote(url: str, key: str = KEY, **overrides) -> RemotePipeline:
    cfg = config_from_env({}, asr_backend="runpod", runpod_endpoint_url=url, runpod_api_key=key, **overrides)
    return RemotePipeline(cfg)


def never_called(job):
    raise AssertionError("no job should reach a worker in this test")


def free_port() -> int:
    """A loopback port nothing listens on (until someone binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def failure(excinfo) -> str:
    """The error's message, checked: no key, no traceback, and the endpoint only as "RunPod endpoint …<last 4>"."""
    msg = str(excinfo.value)
    assert KEY not in msg and "Traceback" not in msg
    assert "http://" not in msg and "/v2/" not in msg and "loopbackep42" not in msg and "downep99" not in msg
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


# -- the real worker behind the documented API ---------------------------------------------------------------------

SR = 16000


@pytest.fixture(scope="module")
def speech():
    """Spoken English (espeak-ng) with a little silence around it: samples and WAV bytes."""
    samples = np.concatenate([silence(0.3), espeak("Hello there, this is a short test of the remote backend."),
                              silence(0.3)])
    return samples, _wav(samples)


def _wav(samples) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return write_audio(Path(tmp) / "speech.wav", samples, SR).read_bytes()


@pytest.fixture(scope="module")
def media(speech):
    wav = speech[1]
    with MediaServer() as srv:
        srv.add_bytes("/speech.wav", wav, "audio/wav")
        srv.add_trickle("/slow.wav", wav, delay=0.25, piece=len(wav) // 8 + 1)  # about 2 s: progress shows
        srv.add_trickle("/endless.wav", wav * 50, delay=0.2, piece=4096)  # minutes: a job to cancel
        srv.add_status("/missing.mp3", 404)
        yield srv


@pytest.fixture(scope="module")
def worker(tiny_config):
    w = Worker(Pipeline(dataclasses.replace(tiny_config, allow_private_urls=True)))
    yield w
    w.close()


def direct(worker, job_input: dict):
    """What the worker answers for the same input when called in-process (no API in between)."""
    return transcript_from_output(worker.run({"id": "direct-1", "input": job_input}))


def same_result(a, b) -> bool:
    return (a.text, a.language, a.duration, a.segments, a.warnings) == (b.text, b.language, b.duration, b.segments,
                                                                          b.warnings)


def test_job_by_url(worker, media, speech):
    seen, heard = [], []
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        client = remote(api.url, allow_private_urls=True)  # lets the player's copy reach the loopback server
        transcript = client.transcribe(media.url("/slow.wav"), TranscribeOptions(language="English"),
                                       progress=lambda *a: seen.append(a), on_audio=heard.append)
        (job,) = api.jobs.values()
    assert media.paths_seen().count("/slow.wav") == 2  # the worker's download and the player's copy
    assert parse_job_input(job.input) == JobInput(audio_url=media.url("/slow.wav"), language="English")
    assert job.execution_timeout_s == 3600  # the client's policy.executionTimeout, RUNPOD_TIMEOUT_S's default
    assert transcript.duration == pytest.approx(len(speech[0]) / SR, abs=0.05)
    assert transcript.segments and all(seg.words for seg in transcript.segments)
    assert same_result(transcript, direct(worker, job.input))
    assert {"prepare", "endpoint", "worker_transcribe", "worker_total"} <= set(transcript.timings)
    # The worker's progress came through the status polls: its download in bytes (sent as MB, one decimal).
    downloads = [(done, total) for stage, done, total in seen if stage == "download"]
    assert downloads and all(total == pytest.approx(len(speech[1]), abs=0.051e6) for _, total in downloads)
    assert [s for s, *_ in seen][:2] == ["upload", "upload"]
    # The player got its own copy of the audio, fetched on this side while the worker transcribed.
    assert len(heard) == 1 and len(heard[0]) == pytest.approx(len(speech[0]), abs=SR * 0.02)


def test_player_copy_refused_here_still_gives_the_transcript(worker, media, caplog):
    heard = []
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        # This side blocks loopback URLs (the default) though the worker may fetch them: no sound, same transcript.
        transcript = remote(api.url).transcribe(media.url("/speech.wav"), on_audio=heard.append)
    assert transcript.segments and heard == []
    assert "no audio for the player" in caplog.text


def test_job_by_upload_is_sent_inline_as_opus(worker, speech, tmp_path):
    path = tmp_path / "take 1.wav"
    path.write_bytes(speech[1])
    heard, seen = [], []
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        transcript = remote(api.url).transcribe(str(path), progress=lambda s, *_: seen.append(s),
                                                on_audio=heard.append)
        from_bytes = remote(api.url).transcribe(speech[1], filename="take.wav")
        first, second = api.jobs.values()
    assert parse_job_input(first.input) == JobInput(audio_base64=first.input["audio_base64"], filename="speech.ogg")
    sent = base64.b64decode(first.input["audio_base64"])
    assert sent[:4] == b"OggS" and len(sent) < len(speech[1]) / 8  # Opus, far smaller than the WAV
    assert len(heard) == 1 and len(heard[0]) == pytest.approx(len(speech[0]), abs=SR * 0.02)
    (tmp_path / "sent.ogg").write_bytes(sent)
    assert len(decode_audio(tmp_path / "sent.ogg")) == pytest.approx(len(speech[0]), abs=SR * 0.02)
    assert transcript.duration == pytest.approx(len(speech[0]) / SR, abs=0.05) and transcript.segments
    assert same_result(transcript, direct(worker, first.input))
    assert same_result(from_bytes, transcript)
    assert second.input.keys() == first.input.keys() and second.input["filename"] == first.input["filename"]
    assert seen.index("decode") < seen.index("upload")


def test_local_paths_are_refused_when_not_allowed(speech, tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(speech[1])
    with RunPodAPI(never_called, api_key=KEY) as api:
        with pytest.raises(InputError):
            remote(api.url).transcribe(str(path), allow_local=False)
        assert api.calls == []


def test_long_recordings_get_a_lower_bit_rate_then_a_clear_refusal(worker, speech):
    seconds = len(speech[0]) / SR
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        # Room for about 16 kbit/s: the upload is squeezed below the default 24 kbit/s and still transcribed.
        squeezed = RemotePipeline(remote(api.url).config, payload_limit=int(16_000 / 8 * seconds * 4 / 3) + 400)
        transcript = squeezed.transcribe(speech[1])
        (job,) = api.jobs.values()
        sent = len(base64.b64decode(job.input["audio_base64"]))
        assert 12_000 / 8 * seconds < sent < 20_000 / 8 * seconds
        assert transcript.segments
        # Room for 9 kbit/s: tried at the 12 kbit/s floor (VBR speech may come in under), still too large.
        # Room for 6 kbit/s: hopeless, refused without encoding. Either way nothing is sent.
        refusals = []
        for room_bps in (9_000, 6_000):
            tight = RemotePipeline(remote(api.url).config, payload_limit=int(room_bps / 8 * seconds * 4 / 3) + 400)
            with pytest.raises(TooLargeError) as e:
                tight.transcribe(speech[1])
            refusals.append(failure(e))
        assert len(api.jobs) == 1
    fits = []
    for msg in refusals:
        assert f"this recording is {seconds:.0f} s long" in msg and "give its URL instead" in msg
        fits.append(float(msg.split("about ")[1].split(" s of speech")[0]) / seconds)
    assert 0.5 < fits[0] < 1.0 and 0.3 < fits[1] < 0.6  # how much of the recording would have fitted


def test_failing_job_shows_the_workers_message(worker, media):
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        with pytest.raises(RemoteJobError) as e:
            remote(api.url).transcribe(media.url("/missing.mp3"))
        (job,) = api.jobs.values()
    assert job.status == "FAILED" and isinstance(job.error, str) and job.error
    assert failure(e) == f"the job failed on the RunPod endpoint …ep42: {job.error}"


def test_cancel_a_running_job_stops_the_worker(worker, media):
    cancel = threading.Event()
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        with pytest.raises(JobCancelled):
            remote(api.url).transcribe(media.url("/endless.wav"), cancel=cancel,
                                       progress=lambda stage, *_: stage == "download" and cancel.set())
        (job,) = api.jobs.values()
        assert api.ops("cancel") == [job.id] and job.status == "CANCELLED"
        assert job.worker_done.wait(5)  # the handler's task was stopped, as RunPod's stop signal does
        # The worker is free again: the next job runs to the end.
        assert remote(api.url).transcribe(media.url("/speech.wav")).segments


def test_client_process_transcribes_without_any_model_package(worker, media, speech, tmp_path):
    """A client process (the Space in RunPod mode) runs whole jobs, by URL and by upload, and never imports torch."""
    path = tmp_path / "take.wav"
    path.write_bytes(speech[1])
    code = (
        "import sys\n"
        "from core.config import config_from_env\n"
        "from core.remote import RemotePipeline\n"
        "p = RemotePipeline(config_from_env())\n"
        "for source in sys.argv[1:]:\n"
        "    print(len(p.transcribe(source).segments))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'silero_vad') if m in sys.modules))\n"
    )
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ASR_BACKEND": "runpod",
               "RUNPOD_ENDPOINT_URL": api.url, "RUNPOD_API_KEY": KEY}
        out = subprocess.run([sys.executable, "-c", code, media.url("/speech.wav"), str(path)], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
        assert len(api.jobs) == 2
    assert out.returncode == 0, out.stderr[-2000:]
    *counts, imported = out.stdout.splitlines()
    assert imported == "[]" and len(counts) == 2 and all(int(c) > 0 for c in counts)
    assert KEY not in out.stdout + out.stderr


# -- the SDK's local API (python -m runpod_worker --rp_serve_api) -----------------------------------------------------

@pytest.fixture(scope="module")
def sdk_api(tiny_config, tmp_path_factory):
    """The worker serving the SDK's local test API on loopback; yields its base URL (no /v2/<id> there)."""
    port, tmp = free_port(), tmp_path_factory.mktemp("sdk-worker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(ASR_MODEL=tiny_config.asr_model, ALIGNER_MODEL=tiny_config.aligner_model, ASR_BACKEND="transformers",
               DEVICE="cpu", ALLOW_PRIVATE_URLS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    log_path = tmp / "worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "runpod_worker", "--rp_serve_api", "--rp_api_port", str(port),
                                 "--rp_api_host", "127.0.0.1"], cwd=tmp, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(base + "/openapi.json") or proc.poll() is not None, timeout=90)
        assert proc.poll() is None, log_path.read_text()[-3000:]
        yield base
    finally:
        stop(proc)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_sdk_local_api(sdk_api, media, speech, caplog):
    """The client works against the SDK's local API: no endpoint id in the path, /status answered to POST only."""
    client = remote(sdk_api, key="any-key-works-here")
    assert client.describe() == f"RunPod endpoint …{sdk_api[-4:]}"
    stages = []
    by_url = client.transcribe(media.url("/speech.wav"), progress=lambda s, *_: stages.append(s))
    by_upload = client.transcribe(speech[1])
    for transcript in (by_url, by_upload):
        assert transcript.duration == pytest.approx(len(speech[0]) / SR, abs=0.05) and transcript.segments
    assert set(stages) == {"upload"}  # that API shows no queue and no worker progress
    assert "answers POST only" in caplog.text


# -- the web app in RunPod mode ------------------------------------------------------------------------------------

@contextlib.contextmanager
def running_app(tmp_path, endpoint_url: str, key: str):
    """`python app.py` with ASR_BACKEND=runpod on a free loopback port; yields (base URL, log path)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "ASR_", "ALIGNER_"))}
    # ALLOW_PRIVATE_URLS: the app fetches its own copy of a link's audio for the player, from the loopback server.
    env.update(ASR_BACKEND="runpod", RUNPOD_ENDPOINT_URL=endpoint_url, RUNPOD_API_KEY=key, PORT=str(port),
               ALLOW_PRIVATE_URLS="1", LOG_LEVEL="DEBUG", GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(ROOT),
               PYTHONUNBUFFERED="1")
    log_path = tmp_path / "app.log"
    with open(log_path, "w") as log:  # -X importtime lists every module the app imports, on stderr
        proc = subprocess.Popen([sys.executable, "-X", "importtime", str(ROOT / "app.py")], cwd=tmp_path, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base + "/config") or proc.poll() is not None, timeout=120)
        assert proc.poll() is None and _answers(base + "/config"), log_path.read_text()[-3000:]
        yield base, log_path
    finally:
        stop(proc)


@pytest.mark.parametrize("api_kind", ["documented API", "SDK local API"])
def test_web_app_in_runpod_mode(api_kind, worker, sdk_api, media, speech, tmp_path, monkeypatch):
    """`ASR_BACKEND=runpod python app.py`: jobs through gradio_client come back with segments and four files."""
    from gradio_client import Client, handle_file

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # gradio_client's downloads: its cache, not ours

    wav = tmp_path / "interview.wav"
    wav.write_bytes(speech[1])
    form = dict(language="Auto-detect", context="", word_timestamps=True, chunk_seconds=30)
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(RunPodAPI(worker.handle, api_key=KEY)) if api_kind == "documented API" else None
        base, log_path = stack.enter_context(running_app(tmp_path, api.url if api else sdk_api, KEY))
        page_config = requests.get(base + "/config", timeout=10).text
        client = Client(base, verbose=False, download_files=str(tmp_path / "downloads"))
        results = [client.predict(handle_file(str(wav)), None, "", *form.values(), "upload", api_name="/transcribe"),
                   client.predict(None, None, media.url("/speech.wav"), *form.values(), "link",
                                  api_name="/transcribe")]
        if api is not None:
            sent = [set(job.input) & {"audio_url", "audio_base64"} for job in api.jobs.values()]
            assert sent == [{"audio_base64"}, {"audio_url"}]
    app_log = log_path.read_text()
    assert KEY not in app_log and KEY not in page_config
    assert f"RunPod endpoint …{(api.url if api else sdk_api)[-4:]}" in page_config  # where transcription runs
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in app_log.splitlines()
                if line.startswith("import time:")}
    assert "gradio" in imported and not imported & {"torch", "transformers", "vllm", "silero_vad"}
    for value, files, status in results:
        segments = value["transcript"]["segments"]
        assert segments and all(seg["words"] for seg in segments) and value["audio"]
        assert sorted(Path(f).suffix for f in files) == [".json", ".srt", ".txt", ".vtt"]
        assert all(Path(f).stat().st_size > 0 for f in files)
        assert "English" in status


@pytest.mark.browser
def test_player_in_a_browser_in_runpod_mode(worker, tmp_path, monkeypatch):
    """The page in RunPod mode, in headless Debian chromium: upload, transcript rendered, a click seeks the audio."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the in-process app's gradio cache (it ages it out)
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from audio_helpers import make_podcast
    from webui_helpers import browser, serve, upload_and_transcribe

    audio = make_podcast(tmp_path / "episode.mp3", 0.35).path
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        config = config_from_env({}, asr_backend="runpod", runpod_endpoint_url=api.url, runpod_api_key=KEY,
                                 chunk_target_s=8.0, max_upload_mb=2)
        with serve(config, RemotePipeline(config)) as url, playwright_api.sync_playwright() as pw:
            chromium = browser(pw)
            try:
                page = chromium.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.wait_for_selector("#backend", timeout=30_000)
                assert "RunPod endpoint …ep42" in page.locator("#backend").inner_text()
                upload_and_transcribe(page, audio)
                href = page.locator("a[download$='.json']").first.get_attribute("href")
                segments = requests.get(href, timeout=10).json()["segments"]
                rows = page.locator("#transcript-player .tp-seg")
                assert len(segments) >= 2 and rows.count() == len(segments)
                assert rows.locator(".tp-text").all_text_contents() == [s["text"] for s in segments]
                page.evaluate("() => document.querySelector('#transcript-player .tp-audio').pause()")
                rows.nth(1).locator(".tp-time").click()
                t = page.evaluate("() => document.querySelector('#transcript-player .tp-audio').currentTime")
                assert abs(t - segments[1]["start"]) <= 0.25
                assert KEY not in page.content()
            finally:
                chromium.close()
        (job,) = api.jobs.values()
    assert job.input.get("chunk_seconds") == 8.0 and "audio_base64" in job.input


# -- the CLI in RunPod mode ----------------------------------------------------------------------------------------

def cli_env(api) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "ASR_"))}
    env.update(RUNPOD_ENDPOINT_URL=api.url, RUNPOD_API_KEY=KEY, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


def test_cli_writes_the_files_and_ctrl_c_cancels_the_job(worker, media, tmp_path):
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        out = subprocess.run([sys.executable, "-m", "core", "--backend", "runpod", "-q", "-o", str(tmp_path / "out"),
                              media.url("/speech.wav")], env=cli_env(api), capture_output=True, text=True,
                             timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"speech.{e}" for e in ("json", "srt", "txt",
                                                                                            "vtt")]
    with RunPodAPI(never_called, api_key=KEY, workers=0) as api:
        proc = subprocess.Popen([sys.executable, "-m", "core", "--backend", "runpod", "-q",
                                 "-o", str(tmp_path / "out2"), "https://example.com/episode.mp3"],
                                env=cli_env(api), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Ctrl-C once the CLI is waiting on the job (before it has the job's id, there is nothing to cancel).
            assert wait_until(lambda: len(api.ops("status")) > 0, timeout=60)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        (job_id,) = api.jobs
        assert api.ops("cancel") == [job_id] and api.jobs[job_id].status == "CANCELLED"
    assert proc.returncode != 0 and KEY not in err
