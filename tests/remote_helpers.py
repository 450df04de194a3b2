"""What the RunPod-mode tests (test_remote*.py) share: the API key that must never leak and the check that it does
not, a client for an endpoint URL, the real worker on the tiny checkpoints, the spoken clip it transcribes with the
loopback server that hands it out, and the SDK's local test API in a subprocess."""
from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import requests

from audio_helpers import espeak, silence, write_audio
from core.config import config_from_env
from core.pipeline import Pipeline
from core.remote.client import RemotePipeline
from core.remote.schema import transcript_from_output
from net_helpers import MediaServer, free_port, wait_until
from runpod_worker.handler import Worker

KEY = "rpa_SECRET0ff1ce4d5e6f7a8b9c0"
ROOT = Path(__file__).resolve().parents[1]
SR = 16000


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


def remote(url: str, key: str = KEY, **overrides) -> RemotePipeline:
    cfg = config_from_env({}, asr_backend="runpod", runpod_endpoint_url=url, runpod_api_key=key, **overrides)
    return RemotePipeline(cfg)


def never_called(job):
    raise AssertionError("no job should reach a worker in this test")


def failure(excinfo) -> str:
    """The error's message, checked: no key, no traceback, and the endpoint only as "RunPod endpoint …<last 4>"."""
    msg = str(excinfo.value)
    assert KEY not in msg and "Traceback" not in msg
    assert "http://" not in msg and "/v2/" not in msg and "loopbackep42" not in msg and "downep99" not in msg
    return msg


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
        assert wait_until(lambda: answers(base + "/openapi.json") or proc.poll() is not None, timeout=90)
        assert proc.poll() is None, log_path.read_text()[-3000:]
        yield base
    finally:
        stop(proc)


def answers(url: str) -> bool:
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
