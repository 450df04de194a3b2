"""The web app through its public API (gradio_client) and plain HTTP, served on loopback over tiny real models."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import requests
import srt
import webvtt
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from audio_helpers import make_podcast, write_audio
from net_helpers import MediaServer
from bench.checkpoints import RIG_TEXT
from core.pipeline import Pipeline
from core.types import SAMPLE_RATE
from core.options import TranscribeOptions
from core.output.writers import transcript_from_dict
from core.errors import JobCancelled
from webui.handler import Job, JobRunner, pick_job
from webui.progress import StageProgress
from webui_helpers import ROOT, app, app_config, client, free_port, serve, tiny_pipeline  # noqa: F401 (app, client: fixtures)

NO_FILE = None


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return make_podcast(tmp_path_factory.mktemp("audio") / "interview.mp3", 0.3)


def transcribe(client, upload=NO_FILE, link="", language="Auto-detect", context="", word_timestamps=True,
               chunk_seconds=30):
    upload = handle_file(str(upload)) if upload else None
    return client.predict(upload, None, link, language, context, word_timestamps, chunk_seconds,
                          api_name="/transcribe")


def decode(path) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    with av.open(str(path)) as f:
        frames = [r.to_ndarray()[0] for fr in f.decode(f.streams.audio[0]) for r in resampler.resample(fr)]
    return np.concatenate(frames)


def test_upload_gives_transcript_player_audio_and_four_files(client, speech):
    player, files, summary = transcribe(client, speech.path)

    transcript = transcript_from_dict(player["transcript"])
    assert player["title"] == "interview"
    assert abs(transcript.duration - speech.duration) < 0.05
    assert transcript.language == "English"
    assert transcript.text == RIG_TEXT  # the tiny ASR's rigged output: one chunk for 20 s of audio
    assert len(transcript.segments) >= 2 and all(s.words for s in transcript.segments)
    assert "English" in summary and f"{len(transcript.segments)} segments" in summary

    by_ext = {Path(f).suffix: Path(f) for f in files}
    assert sorted(by_ext) == [".json", ".srt", ".txt", ".vtt"]
    assert all(p.stem == "interview" for p in by_ext.values())
    assert json.loads(by_ext[".json"].read_text()) == player["transcript"]
    cues = list(srt.parse(by_ext[".srt"].read_text()))
    assert cues and " ".join(c.content.replace("\n", " ") for c in cues) == RIG_TEXT
    assert all(0 <= c.start.total_seconds() < c.end.total_seconds() <= transcript.duration + 1e-3 for c in cues)
    vtt = webvtt.from_buffer(io.StringIO(by_ext[".vtt"].read_text()))
    assert [c.text for c in vtt] == [c.content for c in cues]
    assert by_ext[".txt"].read_text().splitlines() == [s.text for s in transcript.segments]

    # The player's audio was served by the app (gradio_client downloaded it) and keeps the transcript's timeline.
    played = Path(player["audio"])
    assert played.suffix == ".mp3"
    samples = decode(played)
    assert abs(len(samples) / SAMPLE_RATE - transcript.duration) < 0.05
    assert played.stat().st_size < transcript.duration * 32_000 / 8 * 1.2 + 4096  # compact speech, not PCM


def test_options_reach_the_pipeline(client, speech):
    player, _, summary = transcribe(client, speech.path, language="en", word_timestamps=False, chunk_seconds=8)
    segments = player["transcript"]["segments"]
    assert all(not s["words"] for s in segments)  # word timestamps off
    assert player["transcript"]["text"].count("quick brown fox") >= 2  # 8 s chunks: several chunks of rig text
    assert "words timed" not in summary


def test_recording_is_transcribed(client, speech):
    player, files, _ = client.predict(None, handle_file(str(speech.path)), "", "Auto-detect", "", True, 30,
                                      api_name="/transcribe")
    assert player["title"] == "Recording" and player["transcript"]["text"] == RIG_TEXT
    assert sorted(Path(f).name for f in files) == ["Recording.json", "Recording.srt", "Recording.txt", "Recording.vtt"]


def test_link_is_fetched_and_transcribed(speech, tmp_path):
    """A link through the app: a real download from a loopback server (private addresses allowed for the test)."""
    config = app_config(allow_private_urls=True)
    shared = tiny_pipeline(app_config())
    pipeline = Pipeline(config, asr=shared.asr, aligner=shared.aligner)  # the loaded models, this config
    with MediaServer() as media, serve(config, pipeline) as url:
        link = media.add_bytes("/shows/ep%2042.mp3", speech.path.read_bytes(), "audio/mpeg")
        client = Client(url, verbose=False, download_files=str(tmp_path))
        player, files, _ = client.predict(None, None, link, "English", "", True, 30, api_name="/transcribe")
        assert media.paths_seen() == ["/shows/ep%2042.mp3"]
    assert player["title"] == "ep 42"
    assert player["transcript"]["text"] == RIG_TEXT
    assert sorted(Path(f).suffix for f in files) == [".json", ".srt", ".txt", ".vtt"]


def garbage_mp3(folder: Path) -> Path:
    path = folder / "broken.mp3"
    path.write_bytes(b"<html><body>this is not audio</body></html>" * 50)
    return path


def long_silence(folder: Path) -> Path:
    return write_audio(folder / "long.ogg", np.zeros(150 * SAMPLE_RATE, np.float32), bitrate=12_000)


@pytest.mark.parametrize("make_input, kwargs, message", [
    (garbage_mp3, {}, r"not a recognised audio or video file"),
    (None, {"link": "ftp://example.com/talk.mp3"}, r"'ftp' inputs are not supported"),
    (None, {"link": "not a link"}, r"only http and https"),
    (None, {"link": "http://10.0.0.1/talk.mp3"}, r"private address; only public addresses can be fetched"),
    (None, {"link": "http://169.254.169.254/latest/meta-data/"}, r"only public addresses can be fetched"),
    ("speech", {"language": "Klingon"}, r"unsupported language 'Klingon'"),
    ("speech", {"context": "x" * 5000}, r"context is 5000 characters"),
    (None, {}, r"Upload a file, record something, or paste a link"),
    (long_silence, {}, r"2.5 min long; the limit is 2.0 min"),
])
def test_bad_input_is_a_clean_error_and_the_app_keeps_serving(client, speech, tmp_path, make_input, kwargs,
                                                               message):
    upload = speech.path if make_input == "speech" else make_input(tmp_path) if make_input else NO_FILE
    with pytest.raises(AppError, match=message) as info:
        transcribe(client, upload, **kwargs)
    text = str(info.value)
    for leak in ("Traceback", str(tmp_path), tempfile.gettempdir() + "/", "File \"", str(ROOT)):
        assert leak not in text
    player, files, _ = transcribe(client, speech.path)
    assert player["transcript"]["segments"] and len(files) == 4


def test_upload_limit_is_enforced_by_the_server(app):
    too_big = io.BytesIO(os.urandom(2 * 1024 * 1024 + 1))  # max_upload_mb=2 in app_config
    response = requests.post(app + "gradio_api/upload", files={"files": ("big.mp3", too_big, "audio/mpeg")},
                             timeout=30)
    assert response.status_code == 413


@pytest.mark.parametrize("probe", [
    "gradio_api/file=/etc/passwd",
    "gradio_api/file=%2Fetc%2Fpasswd",
    "gradio_api/file=//etc/passwd",
    "gradio_api/file=/proc/self/environ",
    "gradio_api/file=../../../../../etc/passwd",
    "gradio_api/file=..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "file=/etc/passwd",
    "static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "assets/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "gradio_api/file={root}/app.py",
    "gradio_api/file={root}/core/config.py",
    "gradio_api/file={cache}/../../../etc/passwd",
])
def test_only_the_apps_own_files_are_served(app, probe):
    cache = os.environ.get("GRADIO_TEMP_DIR", "/tmp/gradio")
    url = app + probe.format(root=ROOT, cache=cache)
    response = requests.get(url, timeout=10, allow_redirects=False)
    assert response.status_code in (403, 404), (url, response.status_code)
    assert "root:" not in response.text and "import" not in response.text


def test_monitoring_is_off(app):
    assert requests.get(app + "monitoring", timeout=10).status_code in (403, 404)


# --- the job runner and the progress bar, with the real tiny pipeline --------------------------------------------


def test_progress_moves_forward_through_the_stages(speech, tmp_path):
    reports = []
    keep = lambda p: str(Path(p).rename(tmp_path / Path(p).name))  # noqa: E731  (stands in for Gradio's cache)
    result = JobRunner(tiny_pipeline(app_config()), keep).run(
        Job(str(speech.path), "interview", "interview.mp3", allow_local=True),
        TranscribeOptions(chunk_seconds=8.0), StageProgress(lambda f, desc: reports.append((f, desc)), interval=0))
    fractions = [f for f, _ in reports]
    labels = [d for _, d in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    order = ["Decoding audio", "Finding pauses", "Transcribing", "Aligning words", "Merging", "Writing files"]
    firsts = [next(i for i, d in enumerate(labels) if d.startswith(stage)) for stage in order]
    assert firsts == sorted(firsts)
    assert "Transcribing 3/3" in labels and "Aligning words 3/3" in labels  # 20 s in 8 s chunks: 3 chunks
    assert [Path(f).suffix for f in result.files] == [".json", ".srt", ".vtt", ".txt"]
    assert result.audio and Path(result.audio).suffix == ".mp3"


def test_cancel_stops_the_job_and_removes_its_files(speech):
    cancel = threading.Event()
    cancel.set()
    before = set(Path(tempfile.gettempdir()).glob("asr-webui-*"))
    with pytest.raises(JobCancelled):
        JobRunner(tiny_pipeline(app_config()), str).run(
            Job(str(speech.path), "x", allow_local=True), TranscribeOptions(),
            StageProgress(lambda *a, **k: None), cancel)
    assert set(Path(tempfile.gettempdir()).glob("asr-webui-*")) == before


@pytest.mark.parametrize("active, upload, recording, url, kind", [
    ("upload", "/u/a.mp3", None, "", "upload"),
    ("link", "/u/a.mp3", None, "https://x.org/ep/1.mp3", "link"),
    ("link", "/u/a.mp3", None, "  ", "upload"),  # the active tab is empty: fall back to what is filled
    ("record", None, "/u/rec.wav", "https://x.org/a", "record"),
    ("bogus", None, None, "https://x.org/ep/1.mp3", "link"),
])
def test_pick_job_prefers_the_active_tab(active, upload, recording, url, kind):
    job = pick_job(active, upload, recording, url)
    assert job.allow_local == (kind != "link")  # only Gradio's own upload paths are read from disk
    assert job.source == {"upload": upload, "record": recording, "link": (url or "").strip()}[kind]
    assert job.title == {"upload": "a", "record": "Recording", "link": "1"}[kind]


# --- app.py, the entry point ------------------------------------------------------------------------------------


def run_app(env_overrides: dict, code: str | None = None, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "APP_MODE", "GRADIO_SERVER_PORT")}
    env.update(env_overrides)
    args = [sys.executable, "app.py"] if code is None else [sys.executable, "-c", code]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def test_python_app_py_serves_the_page(tiny_config, tmp_path):
    port = free_port()
    proc = run_app({"ASR_MODEL": tiny_config.asr_model, "ALIGNER_MODEL": tiny_config.aligner_model,
                    "ASR_BACKEND": "transformers", "DEVICE": "cpu", "GRADIO_SERVER_PORT": str(port),
                    "GRADIO_TEMP_DIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail(f"app.py did not serve: {proc.stdout.read() if proc.poll() is not None else 'timeout'}")
        assert page.status_code == 200 and "Qwen3-ASR Transcriber" in page.text
        # the OpenAI-compatible API on the same port (tests/test_openai_api.py drives it)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).json() == {"status": "ok"}
        models = requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()
        assert models["object"] == "list" and models["data"][0]["object"] == "model"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("env, code, message", [
    ({"APP_MODE": "desktop"}, None, "APP_MODE must be webui or runpod"),
    ({"APP_MODE": "runpod"},
     "import sys, runpy; sys.modules['runpod_worker'] = None; runpy.run_path('app.py', run_name='__main__')",
     "APP_MODE=runpod needs the runpod_worker"),
    ({"PORT": "seventy"}, None, "PORT must be a int"),
])
def test_app_py_refuses_a_bad_setup_with_a_message(env, code, message):
    proc = run_app(env, code)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert message in out and "Traceback" not in out
