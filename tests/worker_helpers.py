"""What the RunPod worker tests (test_worker*.py) share: a spoken clip and the loopback server that hands it out, the
session's tiny models behind a `Pipeline` and a `Worker`, variants of them under other limits or with an injected
fault, and the checks every answer gets (a clean error, or a well-formed transcript)."""
from __future__ import annotations

import dataclasses
import socket
import tempfile
from pathlib import Path

import numpy as np
import pytest

from audio_helpers import espeak, silence, write_audio
from core.config import config_from_env
from core.pipeline import Pipeline
from model_helpers import load_tiny_aligner, load_tiny_asr
from net_helpers import MediaServer
from runpod_worker.handler import Worker

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


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


def worker_config(asr_dir, aligner_dir, **overrides):
    return config_from_env({}, asr_model=str(asr_dir), aligner_model=str(aligner_dir), asr_backend="transformers",
                           device="cpu", allow_private_urls=True, **overrides)


@pytest.fixture(scope="module")
def pipeline(tiny_asr_dir, tiny_aligner_dir):
    # The session's loaded tiny models (the rigged ASR always writes bench.checkpoints.RIG_TEXT).
    return Pipeline(worker_config(tiny_asr_dir, tiny_aligner_dir), asr=load_tiny_asr(), aligner=load_tiny_aligner())


@pytest.fixture(scope="module")
def worker(pipeline):
    w = Worker(pipeline)
    yield w
    w.close()


def variant(pipeline, *, asr=None, **config_changes) -> Pipeline:
    """The loaded models under another configuration (limits) or behind a fault-injecting wrapper."""
    return Pipeline(dataclasses.replace(pipeline.config, **config_changes), asr=asr or pipeline.asr,
                    aligner=pipeline.aligner)


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
