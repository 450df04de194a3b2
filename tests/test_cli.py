"""The command line as a user meets it: --help, -q, a silent file, the JSON's timings (issue 15, item 9)."""
import json
import signal
import subprocess
import sys
from pathlib import Path

from audio_helpers import silence, speech_wav, write_audio
from net_helpers import MediaServer, wait_until

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                               **(env or {})})


def tiny_env(tiny_config) -> dict:
    return {"ASR_MODEL": tiny_config.asr_model, "ALIGNER_MODEL": tiny_config.aligner_model,
            "ASR_BACKEND": "transformers", "DEVICE": "cpu"}


def test_help_shows_real_defaults_only(tmp_path):
    run = cli("--help", cwd=tmp_path)
    assert run.returncode == 0
    text = " ".join(run.stdout.split())
    assert "(default: None)" not in text and "(default: )" not in text and "(default: False)" not in text
    assert "--chunk-seconds CHUNK_SECONDS target chunk length, 5 to 180 s (default: CHUNK_TARGET_S, 30 unless set)" \
        in text


def test_quiet_prints_nothing_but_the_files_and_json_has_a_total(tmp_path, tiny_config):
    speech_wav(tmp_path / "hello.wav", "Hello there, this is a quiet run.")
    run = cli("hello.wav", "-q", "--format", "json", cwd=tmp_path, env=tiny_env(tiny_config))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr == "" and run.stdout.split() == ["hello.json"]
    timings = json.loads((tmp_path / "hello.json").read_text())["timings"]
    stages = sum(v for k, v in timings.items() if k not in ("total", "first_chunk", "first_text", "align_busy",
                                                             "speech_busy"))  # not stages
    assert timings["total"] >= stages * 0.95 and timings["total"] > 0


def test_a_silent_file_says_why_its_files_are_empty(tmp_path, tiny_config):
    write_audio(tmp_path / "quiet.wav", silence(5.0))
    run = cli("quiet.wav", "-q", "--format", "srt,vtt,txt", cwd=tmp_path, env=tiny_env(tiny_config))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "warning: quiet.wav: no speech detected: the transcript, subtitles and text file are empty" in run.stderr
    assert (tmp_path / "quiet.vtt").read_text().startswith("WEBVTT")
    assert (tmp_path / "quiet.srt").exists() and (tmp_path / "quiet.txt").exists()


def test_a_missing_file_is_said_before_any_model_loads(tmp_path):
    run = cli("missing.mp3", "-q", cwd=tmp_path, env={"ASR_MODEL": str(tmp_path / "no-model")})
    assert run.returncode == 1
    assert run.stderr.strip() == "error: missing.mp3: the input is neither an existing file or folder nor an http(s) URL"


def test_ctrl_c_while_a_feed_is_read_stops_cleanly(tmp_path):
    """Ctrl-C before any batch runs (here: a slow feed being read) ends with status 130 and a line, no traceback."""
    feed = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>' + b" " * 4000 + b"</channel></rss>"
    with MediaServer() as srv:
        url = srv.add_trickle("/feed.xml", feed, delay=0.05, content_type="application/rss+xml", piece=16)
        proc = subprocess.Popen([sys.executable, "-m", "core", url, "-q"], cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ALLOW_PRIVATE_URLS": "1",
                                     "ASR_MODEL": str(tmp_path / "no-model")})
        try:
            assert wait_until(lambda: "/feed.xml" in srv.paths_seen(), timeout=60)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert err.strip() == "stopped by Ctrl-C" and out == ""
