"""One engine per model, many jobs (core.models.engine): through the real RunPod worker with the tiny real models on
CPU, concurrent jobs fill the same batches (seen in the batches the engine records), a short job overtakes a long one,
and a job cancelled while its chunks are in a batch leaves its batch mates' transcripts exactly as they are alone.
The streaming engine (vLLM's side, which cannot run here; its GPU test is tests/test_vllm_backend.py) is driven by a
small stepping model: its in-flight bound, turn order, aborts and errors, and items withdrawn by their job.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict

import numpy as np
import pytest

from audio_helpers import make_podcast
from core.models.engine import BatchEngine, StreamEngine
from core.remote.schema import parse_progress
from core.types import AsrRequest
from engine_helpers import Held, Stepper, Stop, stop_after_first, wait_queued
from model_helpers import tiny_aligner_dir, tiny_asr_dir  # noqa: F401 (fixtures)
from runpod_worker.handler import Worker
from worker_helpers import assert_transcript, media, pipeline, speech  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind
CHUNK_S = 5  # the smallest chunk a job may ask for: many chunks from little audio


@pytest.fixture(scope="module")
def files(media, tmp_path_factory):
    """Two half-minute talks and a two-minute one, served on loopback."""
    root = tmp_path_factory.mktemp("engine")
    for name, minutes, seed in (("a", 0.5, 1), ("b", 0.5, 2), ("long", 2.0, 3)):
        pod = make_podcast(root / f"{name}.wav", minutes, seed=seed)
        media.add_bytes(f"/{name}.wav", pod.path.read_bytes(), "audio/wav")
        DURATION[name] = len(pod.samples) / 16000
    return {name: media.url(f"/{name}.wav") for name in ("a", "b", "long")}


DURATION: dict[str, float] = {}


class Jobs:
    """A worker whose jobs' progress messages are kept per job id (every message: no throttling)."""

    def __init__(self, pipeline, concurrency: int) -> None:
        self.messages: dict[str, list[str]] = defaultdict(list)
        self.worker = Worker(pipeline, concurrency=concurrency, progress_interval_s=0,
                             send_progress=lambda j, message: self.messages[j["id"]].append(message))

    def chunks(self, job_id: str) -> int | None:
        """How many chunks the job handed the ASR engine (its first "transcribe 0/N"), None before that."""
        for message in self.messages[job_id]:
            stage, done, total = parse_progress(message)
            if stage == "transcribe":
                return int(total)
        return None

    def wait_queued(self, job_id: str) -> int:
        deadline = time.monotonic() + 120
        while self.chunks(job_id) is None:
            assert time.monotonic() < deadline, f"job {job_id} never reached the ASR engine"
            time.sleep(0.01)
        return self.chunks(job_id)


def url_job(job_id: str, url: str) -> dict:
    return {"id": job_id, "input": {"audio_url": url, "chunk_seconds": CHUNK_S, "language": "en"}}


def hold(engine) -> Held:
    """The ASR engine held busy with one second of noise of its own."""
    chunk = AsrRequest((np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32))
    return Held(lambda block: engine.run([chunk], on_result=block))


def alone(pipeline, url: str) -> dict:
    w = Worker(pipeline)
    try:
        return w.run(url_job("alone", url))
    finally:
        w.close()


def test_concurrent_jobs_through_the_worker_share_batches(pipeline, files):
    engine = pipeline.asr.engine
    jobs = Jobs(pipeline, concurrency=3)
    held = hold(engine)
    try:
        async def scenario():
            tasks = [asyncio.ensure_future(jobs.worker.handle(url_job(k, files[k]))) for k in ("a", "b", "long")]
            for k in ("a", "b", "long"):
                await asyncio.to_thread(jobs.wait_queued, k)
            seen = len(engine.history)
            held.release()
            return seen, await asyncio.gather(*tasks)

        seen, outs = asyncio.run(scenario())
    finally:
        held.release()
        jobs.worker.close()
    counts = [jobs.chunks(k) for k in ("a", "b", "long")]
    batches = list(engine.history)[seen:]
    assert sum(b.size for b in batches) == sum(counts)
    mixed = [b for b in batches if b.jobs > 1]
    # the batches mixed the jobs' chunks (the two short jobs went in whole, each beside the long one's)
    assert len(batches) == -(-sum(counts) // pipeline.config.asr_batch_size)  # every batch full but the last
    assert batches[0].jobs >= 2 and len(mixed) >= 2
    for out, k in zip(outs, ("a", "b", "long")):
        solo = alone(pipeline, files[k])
        assert out["segments"] == solo["segments"] and out["text"] == solo["text"]


def test_a_short_job_overtakes_a_long_one(pipeline, files):
    jobs = Jobs(pipeline, concurrency=2)
    held = hold(pipeline.asr.engine)
    finished: list[str] = []
    try:
        async def run(job_id, url):
            out = await jobs.worker.handle(url_job(job_id, url))
            finished.append(job_id)
            return out

        async def scenario():
            long = asyncio.ensure_future(run("long", files["long"]))
            await asyncio.to_thread(jobs.wait_queued, "long")  # the long job's chunks queue first...
            short = asyncio.ensure_future(run("short", files["a"]))
            await asyncio.to_thread(jobs.wait_queued, "short")  # ...then the short one's
            held.release()
            return await long, await short

        long_out, short_out = asyncio.run(scenario())
    finally:
        held.release()
        jobs.worker.close()
    assert jobs.chunks("long") >= 3 * jobs.chunks("short")
    assert finished == ["short", "long"]
    assert_transcript(long_out, DURATION["long"])
    assert_transcript(short_out, DURATION["a"])


def test_a_job_cancelled_mid_batch_leaves_its_batch_mates_as_they_are_alone(pipeline, files):
    engine = pipeline.asr.engine
    jobs = Jobs(pipeline, concurrency=2)
    half_done = threading.Event()
    original = jobs.worker.send_progress

    def send(j, message):
        original(j, message)
        stage, done, total = parse_progress(message)
        if j["id"] == "long" and stage == "transcribe" and done >= 1:
            half_done.set()  # some of its chunks are done, the rest queued or in the model

    jobs.worker.send_progress = send
    seen = len(engine.history)
    try:
        async def scenario():
            long = asyncio.ensure_future(jobs.worker.handle(url_job("long", files["long"])))
            other = asyncio.ensure_future(jobs.worker.handle(url_job("b", files["b"])))
            assert await asyncio.to_thread(half_done.wait, 120)
            long.cancel()
            with pytest.raises(asyncio.CancelledError):
                await long
            return await other

        out = asyncio.run(scenario())
        after = jobs.worker.run(url_job("after", files["a"]))  # the engine goes on serving
    finally:
        jobs.worker.close()
    admitted = sum(b.size for b in list(engine.history)[seen:])
    # the cancelled job's queued chunks never reached the model
    assert admitted < jobs.chunks("long") + jobs.chunks("b") + jobs.chunks("after")
    assert engine.queued() == 0
    solo = alone(pipeline, files["b"])
    assert out["segments"] == solo["segments"] and out["text"] == solo["text"]
    assert_transcript(after, DURATION["a"])


# -- the streaming engine, with a small stepping model ----------------------------------------------------------

def test_stream_engine_bounds_what_the_model_holds_and_takes_turns():
    model = Stepper()
    engine = StreamEngine("stepper", model, max_in_flight=6, min_admit=2)
    first = engine.submit([3] * 20)
    second = engine.submit([1, 2])
    assert first.wait() == [30] * 20 and second.wait() == [10, 20]
    assert model.most <= 12  # the cap, and at most as much again for jobs below their share of it
    assert {1, 2} <= set(model.started[0] + model.started[1])  # the second job's items went in by the next refill
    engine.close()


def test_a_job_arriving_behind_a_full_stream_engine_goes_in_beside_what_it_holds():
    model = Stepper()
    engine = StreamEngine("stepper", model, max_in_flight=8, min_admit=4)
    order = []
    long = engine.submit([60] * 40, on_result=lambda i, r: order.append("long"))
    deadline = time.monotonic() + 10
    while engine.in_flight() < 8 and time.monotonic() < deadline:
        time.sleep(0.001)
    short = engine.submit([2, 2, 2], on_result=lambda i, r: order.append("short"))
    assert short.wait() == [20] * 3 and long.wait() == [600] * 40
    assert order[:3] == ["short"] * 3  # not after the wave of long items that filled the engine
    assert model.most <= 16
    engine.close()


def test_a_short_job_takes_the_last_room_before_a_long_job_ahead_of_it_in_turn():
    """Run 25: long jobs' tails were topped up first in turn order and used up the room beyond the cap, and a short
    job's last chunks waited 24 s. Items here never finish on their own, so what went in stays visible."""
    model, forever = Stepper(), 10 ** 6
    engine = StreamEngine("stepper", model, max_in_flight=5, min_admit=1)

    def held(n: int) -> None:
        deadline = time.monotonic() + 30
        while engine.in_flight() != n and time.monotonic() < deadline:
            time.sleep(0.002)
        assert engine.in_flight() == n

    jobs = [engine.submit([forever] * 5)]
    held(5)  # the cap
    for expect in (7, 8, 9):  # each long job below its share is topped up beyond the cap
        jobs.append(engine.open())
        jobs[-1].add([forever] * 10)
        held(expect)
    with Held(lambda block: engine.run([1], on_result=block)):  # in and done: room for one more (twice the cap: 10)
        jobs.append(engine.open())
        jobs[-1].add([forever] * 10)  # a long job, ahead of the short one in turn
        jobs.append(engine.submit([forever - 1]))  # the short job
    held(10)
    assert forever - 1 in model.started[-1]  # the short job got the last room, not the long job ahead of it
    for job in jobs:
        job.cancel()
    engine.close()


def test_a_job_whose_items_all_fit_the_next_batch_goes_in_whole():
    batches = []

    def run_batch(items):
        batches.append(list(items))
        return [x * 10 for x in items]

    engine = BatchEngine("batcher", run_batch, batch_size=4)
    with Held(lambda block: engine.run([0], on_result=block)):  # the model is busy: both jobs queue
        long = engine.submit(list(range(1, 13)))
        short = engine.submit([100, 200, 300])
        wait_queued(engine, 15)
    assert short.wait() == [1000, 2000, 3000] and long.wait() == [x * 10 for x in range(1, 13)]
    assert sorted(batches[1]) == [1, 100, 200, 300]  # one turn of round robin would have taken 100 only
    assert sorted(x for b in batches[2:] for x in b) == list(range(2, 13))
    engine.close()


def test_stream_engine_aborts_a_cancelled_jobs_items_and_fails_only_the_jobs_in_a_broken_call():
    model = Stepper()
    engine = StreamEngine("stepper", model, max_in_flight=4)

    with pytest.raises(Stop):
        engine.run([1] + [50] * 10, stop_after_first)
    deadline = time.monotonic() + 10
    while (engine.in_flight() or len(model.aborted) < 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    # what was in the model (three, or four if a refill came first) was aborted; the rest never went in
    assert 3 <= len(model.aborted) <= 4 and engine.queued() == 0 and engine.in_flight() == 0
    assert sum(len(s) for s in model.started) == 1 + len(model.aborted)
    with pytest.raises(RuntimeError, match="boom"):
        engine.run(["boom"])
    assert engine.run([2, 1]) == [20, 10]  # the next job is served
    engine.close()


# -- items withdrawn (`unwanted`: the pipeline's chunks the speech check ruled out) ------------------------------

def test_stream_engine_aborts_an_item_withdrawn_while_the_model_holds_it():
    model = Stepper()
    engine = StreamEngine("stepper", model, max_in_flight=4)
    ruled_out = threading.Event()
    deadline = time.monotonic() + 60

    def in_time(stage, done, total):  # without the abort the long item would run for an hour: fail instead
        assert time.monotonic() < deadline, "the withdrawn item was never aborted"

    job = engine.submit([2, 10**6, 3], unwanted=lambda i: i == 1 and ruled_out.is_set())
    while engine.in_flight() != 1 and time.monotonic() < deadline:  # the short ones are done, the long one held
        time.sleep(0.001)
    with model.lock:
        key = next(k for k, n in model.items.items() if n == 10**6)
    ruled_out.set()
    assert job.wait(in_time) == [20, None, 30]
    assert model.aborted == [key] and engine.in_flight() == 0
    assert engine.run([1]) == [10]  # the engine serves the next job
    engine.close()


def test_stream_engine_never_starts_items_withdrawn_while_queued():
    model = Stepper()
    engine = StreamEngine("stepper", model, max_in_flight=1)  # one at a time: the rest queue
    seen = len(engine.history)
    assert engine.run([3, 4, 5, 6], unwanted=lambda i: i in (1, 3)) == [30, None, 50, None]
    assert model.started == [[3], [5]] and not model.aborted
    assert sum(a.size for a in list(engine.history)[seen:]) == 2
    engine.close()


def test_batch_engine_never_runs_items_withdrawn_while_queued():
    batches = []

    def run_batch(items):
        batches.append(list(items))
        return [x * 10 for x in items]

    engine = BatchEngine("batcher", run_batch, batch_size=4)
    ruled_out = threading.Event()
    with Held(lambda block: engine.run([0], on_result=block)):  # the model is busy: the jobs queue
        job = engine.submit([1, 2, 3, 4, 5, 6], unwanted=lambda i: i in (1, 4) and ruled_out.is_set())
        gone = engine.submit([7, 8], unwanted=lambda i: ruled_out.is_set())
        wait_queued(engine, 8)
        ruled_out.set()  # ruled out while queued, before the batches are made
    assert job.wait() == [10, None, 30, 40, None, 60] and gone.wait() == [None, None]
    assert sorted(x for b in batches[1:] for x in b) == [1, 3, 4, 6]
    assert all(batches)  # a turn whose items were all withdrawn runs no batch
    engine.close()
