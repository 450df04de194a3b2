"""The front ends in RunPod mode: the client against the SDK's own local API, the web app (`python app.py`, and its
page in a browser) and the CLI, each sending its jobs to a loopback endpoint that runs the real worker. The key
never leaks (remote_helpers.key_never_leaks).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from core.config import config_from_env
from core.remote.client import RemotePipeline
from net_helpers import free_port, wait_until
from remote_helpers import (KEY, ROOT, SR, answers, key_never_leaks, media, never_called, remote,  # noqa: F401
                            sdk_api, speech, stop, worker)
from runpod_api import RunPodAPI

pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind


# -- the SDK's local API (python -m runpod_worker --rp_serve_api) -----------------------------------------------------

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


# runpod-workers/worker-faster_whisper's own example job (its test_input.json and .runpod/tests.json), as data; only
# the audio's address is ours, on loopback.
FW_EXAMPLE = {"model": "large-v2", "transcription": "plain text", "translate": False, "temperature": 0, "best_of": 5,
              "beam_size": 5, "suppress_tokens": "-1", "condition_on_previous_text": False,
              "temperature_increment_on_fallback": 0.2, "compression_ratio_threshold": 2.4, "logprob_threshold": -1,
              "no_speech_threshold": 0.6}
FW_SEGMENT = {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio",
              "no_speech_prob"}


def test_sdk_local_api_answers_the_faster_whisper_workers_example_job(sdk_api, media, speech, tiny_config):
    from core.remote.faster_whisper import served_model

    audio = media.url("/speech.wav")
    r = requests.post(sdk_api + "/runsync", json={"input": {"audio": audio, **FW_EXAMPLE}}, timeout=120).json()
    assert r["status"] == "COMPLETED", r
    out = r["output"]
    assert {"segments", "detected_language", "transcription", "translation", "model", "device"} <= set(out)
    assert out["detected_language"] == "en" and out["translation"] is None and out["device"] == "cpu"
    assert out["model"] == served_model(tiny_config.asr_model)  # what answers, not the Whisper model asked for
    assert out["transcription"] == out["text"] and out["text"].strip() and "word_timestamps" not in out
    assert out["segments"] and all(FW_SEGMENT <= set(seg) for seg in out["segments"])
    assert [seg["id"] for seg in out["segments"]] == list(range(1, len(out["segments"]) + 1))
    assert out["segments"][-1]["end"] <= len(speech[0]) / SR + 0.05
    # The same job asking for SRT and word times, as that worker's README shows them.
    r = requests.post(sdk_api + "/runsync", json={"input": {"audio": audio, **FW_EXAMPLE, "transcription": "srt",
                                                            "word_timestamps": True}}, timeout=120).json()
    assert r["status"] == "COMPLETED", r
    words = r["output"]["word_timestamps"]
    assert words and set(words[0]) == {"word", "start", "end"}
    assert r["output"]["transcription"].startswith("1\n00:00:")
    refused = requests.post(sdk_api + "/runsync", json={"input": {"audio": audio, **FW_EXAMPLE, "translate": True}},
                            timeout=60).json()
    assert refused["status"] == "FAILED" and "does not translate" in refused["error"]


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
        wait_until(lambda: answers(base + "/config") or proc.poll() is not None, timeout=120)
        assert proc.poll() is None and answers(base + "/config"), log_path.read_text()[-3000:]
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
        results = [client.predict(handle_file(str(wav)), None, "", *form.values(), api_name="/transcribe"),
                   client.predict(None, None, media.url("/speech.wav"), *form.values(),
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
