"""Soak: mixed good and bad jobs through the RunPod handler, the way the SDK calls it, with tiny real checkpoints.

After a warm-up round of every kind of job, SOAK_JOBS more (default 12 for CI; `SOAK_JOBS=100` locally) must
leave resident memory, open file descriptors and threads where the warm-up left them (bounded growth), with no
crash, no unexpected answer and no temporary file. Good jobs carry 20 s of speech, so keeping one job's audio
alive would add ~1.3 MB per job and a leak shows at 100 jobs.

    SOAK_JOBS=100 python -m pytest -q -m soak tests/test_soak.py
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import gc
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import psutil
import pytest

from audio_helpers import podcast_samples, silence, write_audio
from core.pipeline import Pipeline
from hostile_helpers import WorkerEntry, leaks, leftovers
from model_helpers import make_tiny_config
from net_helpers import Canary, MediaServer, wait_until
from runpod_worker.handler import Worker

pytestmark = pytest.mark.soak

SOAK_JOBS = int(os.environ.get("SOAK_JOBS", "12"))
MAX_DOWNLOAD_BYTES = 2_000_000
# Bounds on growth from the end of the warm-up to the end of the run.
MAX_RSS_GROWTH_MB = 48.0
MAX_FD_GROWTH = 4
MAX_THREAD_GROWTH = 2


@dataclass(frozen=True)
class Kind:
    name: str
    job: Callable[["Env"], dict]  # the job's input
    expect: str | None  # a phrase of the error, or None for a transcript
    guarded: bool = False  # run on the worker with the private-address switch off
    cancel: bool = False  # cancel the job while it downloads, as RunPod does


@dataclass
class Env:
    srv: MediaServer
    canary: Canary
    speech_b64: str
    speech_s: float


KINDS = [
    Kind("speech by base64", lambda e: {"audio_base64": e.speech_b64, "filename": "talk.mp3", "formats": ["srt"]},
         None),
    Kind("speech by URL", lambda e: {"audio_url": e.srv.url("/talk.mp3"), "language": "en"}, None),
    Kind("page through yt-dlp", lambda e: {"audio_url": e.srv.url("/episode.html"), "word_timestamps": False},
         None),
    Kind("silence", lambda e: {"audio_url": e.srv.url("/silence.wav")}, None),
    Kind("HTML as mp3", lambda e: {"audio_base64": base64.b64encode(b"<html>no</html>" * 40).decode(),
                                   "filename": "a.mp3"}, "not a recognised audio"),
    Kind("base64 garbage", lambda e: {"audio_base64": "%%% not base64 %%%"}, "not valid base64"),
    Kind("unknown key", lambda e: {"audio_url": e.srv.url("/talk.mp3"), "callback": "x"}, "unknown input field"),
    Kind("HTTP 404", lambda e: {"audio_url": e.srv.url("/missing.mp3")}, "HTTP 404"),
    Kind("endless stream", lambda e: {"audio_url": e.srv.url("/endless.mp3")}, "MAX_DOWNLOAD_BYTES"),
    Kind("over-long", lambda e: {"audio_url": e.srv.url("/long.ogg")}, "the limit is"),
    Kind("SSRF to the canary", lambda e: {"audio_url": e.canary.url("/a.mp3")}, "loopback address", guarded=True),
    Kind("cancelled mid-download", lambda e: {"audio_url": e.srv.url("/slow.wav")}, "cancelled", cancel=True),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("soak-media")
    pod = podcast_samples(20 / 60, seed=3)
    talk = write_audio(folder / "talk.mp3", pod.samples, bitrate=32_000).read_bytes()
    with MediaServer() as srv, Canary() as canary:
        srv.add_bytes("/talk.mp3", talk, "audio/mpeg")
        srv.add_page("/episode.html", srv.url("/talk.mp3"))
        srv.add_bytes("/silence.wav", write_audio(folder / "silence.wav", silence(4.0)).read_bytes(), "audio/wav")
        srv.add_status("/missing.mp3", 404)
        srv.add_stream("/endless.mp3")
        long = write_audio(folder / "long.ogg", np.zeros(120 * 16000, np.float32), bitrate=12_000)
        srv.add_bytes("/long.ogg", long.read_bytes(), "audio/ogg")
        srv.add_trickle("/slow.wav", talk, delay=0.05, piece=4096)
        yield Env(srv, canary, base64.b64encode(talk).decode(), pod.duration)


@pytest.fixture(scope="module")
def workers(tiny_asr, tiny_aligner):
    config = make_tiny_config(max_duration_s=60.0, max_download_bytes=MAX_DOWNLOAD_BYTES, allow_private_urls=True)
    open_worker = Worker(Pipeline(config, asr=tiny_asr, aligner=tiny_aligner))
    guarded = Worker(Pipeline(dataclasses.replace(config, allow_private_urls=False), asr=tiny_asr,
                              aligner=tiny_aligner))
    yield {False: open_worker, True: guarded}
    open_worker.close()
    guarded.close()


def run(kind: Kind, env: Env, workers: dict, n: int):
    worker = workers[kind.guarded]
    job = {"id": f"soak-{n}", "input": kind.job(env)}
    if not kind.cancel:
        return WorkerEntry(worker).run_job(job)

    async def cancelled():
        task = asyncio.ensure_future(worker.handle(job))
        started = len(env.srv.seen)
        await asyncio.to_thread(wait_until, lambda: len(env.srv.seen) > started, 10)  # the download began
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return task.result()

    return asyncio.run(cancelled())


def usage() -> tuple[float, int, int]:
    """(RSS in MB, open file descriptors, threads) after a collection."""
    gc.collect()
    return (psutil.Process().memory_info().rss / 2**20, len(os.listdir("/proc/self/fd")), threading.active_count())


def test_soak_mixed_jobs_through_the_handler(env, workers, tmp_path, monkeypatch):
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    schedule = list(KINDS) + [KINDS[i % len(KINDS)] for i in range(SOAK_JOBS)]
    samples = []
    for n, kind in enumerate(schedule):
        hits = len(env.canary.hits)
        out = run(kind, env, workers, n)
        if kind.cancel:
            assert out == "cancelled", out
        elif kind.expect is None:
            assert out.error is None, (kind.name, out.error)
            assert out.transcript["text"] or any(w.startswith("no speech detected") for w in out.transcript["warnings"]), kind.name
        else:
            assert out.error and kind.expect.lower() in out.error.lower(), (kind.name, out.error)
            assert not leaks(out.error, private), out.error
        assert len(env.canary.hits) == hits, kind.name
        assert wait_until(lambda: not leftovers(private), 5), (kind.name, leftovers(private))
        if n + 1 >= len(KINDS):
            samples.append(usage())

    (rss0, fds0, threads0), (rss1, fds1, threads1) = samples[0], samples[-1]
    print(f"\n{len(schedule)} jobs ({SOAK_JOBS} after warm-up): RSS {rss0:.0f} -> {rss1:.0f} MB "
          f"(max {max(s[0] for s in samples):.0f}), fds {fds0} -> {fds1}, threads {threads0} -> {threads1}")
    assert rss1 - rss0 <= MAX_RSS_GROWTH_MB, samples
    assert fds1 - fds0 <= MAX_FD_GROWTH, samples
    assert threads1 - threads0 <= MAX_THREAD_GROWTH, samples
