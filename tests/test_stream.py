"""The streamed pipeline: a long file's first chunks reach the ASR while the rest still decodes, and the result is
the one the whole audio gives at once.

Real parts throughout: PyAV-encoded files, the decode pool's worker processes, silero VAD, the engines' threads and
the tiny random-weight models.
"""
from __future__ import annotations

import glob
import os
import threading
import time

import numpy as np
import pytest

from audio_helpers import make_podcast, music, noise, podcast_samples
from core.audio.chunking import ChunkPlanner, plan_chunks
from core.audio.decode import decode_audio
from core.audio.decode_pool import DecodePool
from core.audio.speech_check import SpeechCheck
from core.models.engine import StreamEngine
from core.output.transcript_json import transcript_to_dict
from core.types import Chunk
from engine_helpers import Stepper, Stop
from model_helpers import tiny_aligner_dir, tiny_asr_dir  # noqa: F401 (fixtures)
from worker_helpers import pipeline, variant  # noqa: F401 (fixtures)

SR = 16000


@pytest.fixture(scope="module")
def long_audio() -> np.ndarray:
    """14 minutes of speech with a loud music bed from minute 4 to 9 (stretches energy cannot cut: the VAD's), then
    music alone from 10:00 to 11:30 and digital silence from 12:00 to 13:00."""
    speech = podcast_samples(14, seed=5).samples
    bed = music(len(speech) / SR, seed=6, amplitude=0.3)[:len(speech)]
    out = speech.copy()
    out[240 * SR:540 * SR] += bed[240 * SR:540 * SR]
    out[600 * SR:690 * SR] = bed[600 * SR:690 * SR]
    out[720 * SR:780 * SR] = 0.0
    return out


def feed_in_steps(samples: np.ndarray, seed: int) -> tuple[list[Chunk], list[Chunk], list[bool], int]:
    """The planner and the speech check fed in random steps (any sample count); returns the chunks, the sounding
    ones (what the ASR gets), every chunk's speech flag and how many chunks came out before the last step."""
    rng = np.random.default_rng(seed)
    planner, check = ChunkPlanner(target_s=30, max_s=40), SpeechCheck()
    chunks, sounding, available, early = [], [], 0, 0
    while available < len(samples):
        available = min(len(samples), available + int(rng.integers(1, 150 * SR)))
        final = available == len(samples)
        got = planner.feed(samples, available, final)
        early += 0 if final else len(got)
        chunks += got
        sounding += check.add(samples, got, final, planner.levels)  # the planner's levels, as the pipeline does
    return chunks, sounding, check.flags(len(chunks)), early


def spans(chunks: list[Chunk]) -> list[tuple[int, int, int]]:
    return [(c.index, c.start, c.end) for c in chunks]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_planner_and_speech_check_fed_in_steps_give_what_the_whole_audio_gives(long_audio, seed):
    at_once = ChunkPlanner(target_s=30, max_s=40).feed(long_audio, len(long_audio), True)
    check = SpeechCheck()
    sounding_at_once = check.add(long_audio, at_once, True)  # levels of each chunk's own samples
    flags_at_once = check.flags(len(at_once))
    chunks, sounding, flags, early = feed_in_steps(long_audio, seed)
    assert spans(chunks) == spans(at_once) and spans(sounding) == spans(sounding_at_once)
    assert flags == flags_at_once
    assert early >= 10  # chunks came out before the audio was all there


def test_music_and_silence_hold_no_speech_and_silence_is_not_even_sent(long_audio):
    chunks, sounding, flags, _ = feed_in_steps(long_audio, seed=2)
    inside = lambda c, a, b: a * SR <= c.start and c.end <= b * SR  # noqa: E731
    music_only = [c for c in chunks if inside(c, 600, 690)]
    quiet = [c for c in chunks if inside(c, 720, 780)]
    talk = [c for c in chunks if inside(c, 0, 240) or inside(c, 540, 600)]
    assert music_only and quiet and len(talk) >= 8
    assert not any(flags[c.index] for c in music_only + quiet)
    assert all(flags[c.index] for c in talk)
    assert all(flags[c.index] for c in chunks if inside(c, 240, 540))  # speech over the music bed
    sent = {c.index for c in sounding}
    assert all(c.index in sent for c in music_only) and not any(c.index in sent for c in quiet)


def test_chunks_tile_the_audio_whatever_the_steps(long_audio):
    chunks, _, _, _ = feed_in_steps(long_audio[: 7 * 60 * SR + 12345], seed=3)
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


def test_a_cancel_seen_while_groups_still_arrive_drops_the_job():
    model = Stepper()
    engine = StreamEngine("stepper", model, max_in_flight=8)

    def groups():  # the pipeline's groups report the decoding, where a cancelled job's progress raises
        yield [50, 50]
        yield [50, 50]
        raise Stop

    with pytest.raises(Stop):
        engine.run_groups(groups())
    deadline = time.monotonic() + 10
    while engine.in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.queued() == 0 and engine.in_flight() == 0
    assert len(model.aborted) == sum(len(s) for s in model.started)  # what went in was aborted
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


class Heard:
    """The real ASR backend, noting when each group of chunks is read and each chunk's text is back, in one
    sequence with the job's progress reports. A group holding one of the requests `ruled_out` (indices over all
    groups) is handed on only once the pipeline no longer wants them: the speech check ruled first, for certain."""

    def __init__(self, inner, ruled_out=()) -> None:
        self.inner, self.events, self.ruled_out = inner, [], set(ruled_out)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def transcribe_groups(self, groups, progress, on_result=None, unwanted=None):
        def noted():
            first = 0
            for group in groups:
                wait = self.ruled_out & set(range(first, first + len(group)))
                deadline = time.monotonic() + 60
                while wait and not all(unwanted(i) for i in wait):
                    assert time.monotonic() < deadline, "the speech check never ruled those chunks out"
                    time.sleep(0.01)
                first += len(group)
                self.events.append(("group", len(group)))
                yield group

        def heard(i, result):
            self.events.append(("text", i, result.text))
            if on_result is not None:
                on_result(i, result)

        return self.inner.transcribe_groups(noted(), progress, heard, unwanted)

    def progress(self, stage, done, total):
        self.events.append((stage, done, total))


def test_a_file_streamed_through_the_pipeline_gives_the_in_memory_transcript(pipeline, tmp_path):
    path = make_podcast(tmp_path / "twelve.mp3", 12, seed=9).path
    asr = Heard(pipeline.asr)
    streamed = variant(pipeline, asr=asr, decode_workers=3)
    try:
        live = streamed.transcribe(str(path), {"word_timestamps": True}, progress=asr.progress)
        whole = streamed.transcribe_audio(decode_audio(path), {"word_timestamps": True})
    finally:
        streamed.close()
    a, b = transcript_to_dict(live), transcript_to_dict(whole)
    for d in (a, b):
        d.pop("timings", None)
    assert a == b and len(a["segments"]) > 10
    # the decoding was reported as it went, and the ASR had chunks before it was over
    decoding = [e for e in asr.events if e[0] == "decode"]
    last_decode = max(i for i, e in enumerate(asr.events) if e[0] == "decode")
    assert len(decoding) > 3 and decoding[-1][1] == decoding[-1][2] and decoding[0][1] < decoding[0][2]
    assert any(e[0] == "group" for e in asr.events[:last_decode])
    assert 0 < live.timings["first_chunk"] < live.timings["total"]


@pytest.fixture(scope="module")
def talk_noise_talk(pipeline):
    """3 minutes of talk, 100 s of loud noise (only the VAD can tell), 2 minutes of talk; its chunks, and the
    noise's."""
    talk = podcast_samples(3, seed=11).samples
    x = np.concatenate([talk, noise(100, level_db=-20, seed=3), talk[:120 * SR]])
    cfg = pipeline.config
    chunks = plan_chunks(x, target_s=cfg.chunk_target_s, max_s=cfg.chunk_max_s)
    hiss = [c for c in chunks if len(talk) <= c.start and c.end <= len(talk) + 100 * SR]
    assert hiss
    return x, chunks, hiss


def transcribe_noting(pipeline, x, ruled_out=()):
    """The transcript of `x` through `Heard`, and how many items the ASR engine took meanwhile."""
    asr, engine = Heard(pipeline.asr, ruled_out), pipeline.asr.engine
    tried, seen = variant(pipeline, asr=asr), len(engine.history)
    try:
        transcript = tried.transcribe_audio(x, {"word_timestamps": True})
    finally:
        tried.close()
    return transcript, asr, sum(a.size for a in list(engine.history)[seen:])


def assert_no_text_in(transcript, hiss) -> None:
    for c in hiss:
        a, b = c.start / SR, c.end / SR
        assert not [s for s in transcript.segments if a < (s.start + s.end) / 2 < b]
    assert transcript.text.strip()


def test_noise_chunks_ruled_out_before_they_are_admitted_never_reach_the_asr(pipeline, talk_noise_talk):
    x, chunks, hiss = talk_noise_talk
    transcript, asr, admitted = transcribe_noting(pipeline, x, ruled_out=[c.index for c in hiss])
    # every chunk sounds, so all went in and the ASR's i-th request is chunk i
    assert sum(e[1] for e in asr.events if e[0] == "group") == len(chunks)
    texts = {e[1] for e in asr.events if e[0] == "text"}
    assert texts == {c.index for c in chunks} - {c.index for c in hiss}  # withdrawn: the model never ran them
    assert admitted == len(chunks) - len(hiss)
    assert_no_text_in(transcript, hiss)


def test_the_text_of_a_noise_chunk_is_dropped_whether_or_not_the_asr_ran_it(pipeline, talk_noise_talk):
    x, chunks, hiss = talk_noise_talk
    transcript, asr, _ = transcribe_noting(pipeline, x)
    assert sum(e[1] for e in asr.events if e[0] == "group") == len(chunks)
    texts = {i: text for kind, i, *rest in asr.events if kind == "text" for text in rest}
    assert all(texts[c.index].strip() for c in hiss if c.index in texts)  # the rigged ASR writes text of noise
    assert_no_text_in(transcript, hiss)


def test_audio_that_changes_under_the_stream_starts_the_job_over_on_the_serial_decode(pipeline, tmp_path):
    """The file is replaced by a shorter, different one once its first minute was handed to the ASR: the slices sent
    after that read the new file and do not fit the plan, the serial decoder reads the new file too, its start
    differs from what the ASR already has, and the job starts over on it (`SamplesChanged`)."""
    path = make_podcast(tmp_path / "talk.mp3", 6, seed=21).path
    other = make_podcast(tmp_path / "other.mp3", 2, seed=22).path
    swapped = []

    def progress(stage, done, total):
        if stage == "decode" and done > 0 and not swapped:
            swapped.append(done)
            os.replace(other, path)

    streamed = variant(pipeline, decode_workers=2)
    try:
        live = streamed.transcribe(str(path), {"word_timestamps": True}, progress=progress)
        fresh = streamed.transcribe_audio(decode_audio(path), {"word_timestamps": True})
    finally:
        streamed.close()
    assert swapped and swapped[0] < 6 * 60  # swapped while the first file was still being decoded
    a, b = transcript_to_dict(live), transcript_to_dict(fresh)
    for d in (a, b):
        d.pop("timings", None)
    assert a == b and a["duration"] < 3 * 60
