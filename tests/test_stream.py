"""The streamed pipeline: a long file's first chunks reach the ASR while the rest still decodes, and the result is
the one the whole audio gives at once.

Real parts throughout: PyAV-encoded files, the decode pool's worker processes, silero VAD, the engines' threads and
the tiny random-weight models.
"""
from __future__ import annotations

import glob
import threading

import numpy as np
import pytest

from audio_helpers import make_podcast, music, podcast_samples
from core.audio.chunking import FLAG_GROUPS, ChunkPlanner, plan_chunks
from core.audio.decode import decode_audio
from core.audio.decode_pool import DecodePool
from core.models.engine import StreamEngine
from core.output.transcript_json import transcript_to_dict
from engine_helpers import Stop
from model_helpers import tiny_aligner_dir, tiny_asr_dir  # noqa: F401 (fixtures)
from test_engine import Stepper
from worker_helpers import pipeline, variant  # noqa: F401 (fixtures)

SR = 16000


@pytest.fixture(scope="module")
def long_audio() -> np.ndarray:
    """14 minutes of speech with a loud music bed from minute 4 to 9 (stretches energy cannot cut: the VAD's)."""
    speech = podcast_samples(14, seed=5).samples
    bed = music(len(speech) / SR, seed=6, amplitude=0.3)[:len(speech)]
    out = speech.copy()
    out[240 * SR:540 * SR] += bed[240 * SR:540 * SR]
    return out


def feed_in_steps(samples: np.ndarray, seed: int) -> tuple[list, int]:
    """The planner fed in random steps (any sample count); returns its (chunk, flag) pairs and how many it gave
    before the last step."""
    rng = np.random.default_rng(seed)
    planner = ChunkPlanner(target_s=30, max_s=40)
    out, available, early = [], 0, 0
    while available < len(samples):
        available = min(len(samples), available + int(rng.integers(1, 150 * SR)))
        final = available == len(samples)
        got = planner.feed(samples, available, final)
        early += 0 if final else len(got)
        out += got
    return out, early


@pytest.mark.parametrize("seed", [0, 1])
def test_the_planner_fed_in_steps_cuts_and_flags_as_when_fed_at_once(long_audio, seed):
    at_once = ChunkPlanner(target_s=30, max_s=40).feed(long_audio, len(long_audio), True)
    stepped, early = feed_in_steps(long_audio, seed)
    assert [(c.index, c.start, c.end, f) for c, f in stepped] == [(c.index, c.start, c.end, f) for c, f in at_once]
    assert [c for c, _ in at_once] == plan_chunks(long_audio, target_s=30, max_s=40)
    assert early >= FLAG_GROUPS[0]  # the first group of chunks was out before the audio was all there


def test_chunks_tile_the_audio_whatever_the_steps(long_audio):
    stepped, _ = feed_in_steps(long_audio[: 7 * 60 * SR + 12345], seed=3)
    chunks = [c for c, _ in stepped]
    assert chunks[0].start == 0 and chunks[-1].end == 7 * 60 * SR + 12345
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
    assert max(c.end - c.start for c in chunks) <= 40 * SR


def test_an_engine_takes_each_group_before_the_next_is_made():
    model = Stepper()
    engine = StreamEngine("stepper", model, max_in_flight=8)
    first_done = threading.Event()
    made_second_after_first_result = []

    def groups():
        yield [1, 2, 3]
        made_second_after_first_result.append(first_done.wait(10))
        yield [4, 5]

    try:
        results = engine.run_groups(groups(), on_result=lambda i, r: first_done.set() if i < 3 else None)
    finally:
        engine.close()
    assert results == [10, 20, 30, 40, 50]
    assert made_second_after_first_result == [True]


def test_cancelling_while_groups_still_arrive_drops_the_job():
    model = Stepper()
    engine = StreamEngine("stepper", model, max_in_flight=8)
    seen = []

    def progress(stage, done, total):
        seen.append(total)
        if total >= 4:
            raise Stop

    def groups():
        yield [50, 50]
        yield [50, 50]
        raise AssertionError("a cancelled job's groups are not read on")

    with pytest.raises(Stop):
        engine.run_groups(groups(), progress)
    assert seen == [2, 4] and engine.queued() == 0
    assert engine.run([1]) == [10]  # the engine serves the next job
    engine.close()


@pytest.fixture(scope="module")
def six_minutes(tmp_path_factory):
    return make_podcast(tmp_path_factory.mktemp("stream") / "six.mp3", 6, seed=8).path


def test_a_decode_stream_hands_out_final_audio_early(six_minutes):
    serial = decode_audio(six_minutes)
    pool = DecodePool(3, min_file_s=20.0, min_slice_s=8.0, slice_s=20.0)
    try:
        steps = []
        with pool.stream(six_minutes) as stream:
            for available, final in stream:
                assert np.array_equal(stream.samples[:available], serial[:available])
                steps.append((available, final))
            assert np.array_equal(stream.samples, serial)
    finally:
        pool.close()
    assert len(steps) >= 10 and steps[0][0] < len(serial) / 5
    assert [a for a, _ in steps] == sorted({a for a, _ in steps}) and steps[-1] == (len(serial), True)
    assert [f for _, f in steps].count(True) == 1


def test_leaving_a_decode_stream_early_stops_it_and_leaves_no_scratch_file(six_minutes):
    before = set(glob.glob("/dev/shm/decode-*"))
    pool = DecodePool(2, min_file_s=20.0, min_slice_s=8.0, slice_s=10.0)
    try:
        with pool.stream(six_minutes) as stream:
            for available, final in stream:
                break
        assert not final and set(glob.glob("/dev/shm/decode-*")) == before
        assert np.array_equal(pool.decode(six_minutes), decode_audio(six_minutes))  # the pool goes on
    finally:
        pool.close()


def test_a_file_streamed_through_the_pipeline_gives_the_in_memory_transcript(pipeline, tmp_path):
    path = make_podcast(tmp_path / "twelve.mp3", 12, seed=9).path
    streamed = variant(pipeline, decode_workers=3)
    try:
        heard = []
        live = streamed.transcribe(str(path), {"word_timestamps": True},
                                   progress=lambda stage, done, total: heard.append((stage, done, total)))
        whole = streamed.transcribe_audio(decode_audio(path), {"word_timestamps": True})
    finally:
        streamed.close()
    a, b = transcript_to_dict(live), transcript_to_dict(whole)
    for d in (a, b):
        d.pop("timings", None)
    assert a == b and len(a["segments"]) > 10
    # the ASR had chunks before the decoding was over
    first_asr = next(i for i, (stage, _, _) in enumerate(heard) if stage == "transcribe")
    decoded = heard.index(("decode", 1, 1))
    assert first_asr < decoded
    assert "first_chunk" in live.timings and live.timings["first_chunk"] < live.timings["total"]
