"""core.audio.chunking on synthetic audio whose silences are known: cuts land in them, chunks tile the audio, and
speech_flags tells speech from silence, noise, tones and music."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audio_helpers import SR, espeak, music, noise, podcast_samples, silence, tone, tones_with_silences
from core.audio.chunking import FRAME, plan_chunks
from core.audio.speech_check import speech_flags
from core.types import Chunk


def assert_tiles(chunks, n, max_s):
    assert chunks[0].start == 0 and chunks[-1].end == n
    for i, c in enumerate(chunks):
        assert c.index == i
        assert c.end > c.start
        assert c.end - c.start <= int(max_s * SR)
    for a, b in zip(chunks, chunks[1:]):
        assert a.end == b.start


def cut_times(chunks):
    return [c.start / SR for c in chunks[1:]]


def inside(t, spans, margin=0.0):
    return any(a + margin <= t <= b - margin for a, b in spans)


def test_empty_audio_has_no_chunks():
    assert plan_chunks(np.zeros(0, np.float32), target_s=30, max_s=60) == []


def test_audio_shorter_than_target_is_one_chunk():
    x = tone(440, 12.3)
    assert plan_chunks(x, target_s=30, max_s=60) == [Chunk(0, 0, len(x))]


def test_cuts_fall_inside_the_silences_between_tones():
    layout = [("tone", 25), ("silence", 0.6), ("tone", 22), ("silence", 1.2), ("tone", 31), ("silence", 0.4),
              ("tone", 20), ("silence", 0.8), ("tone", 9)]
    x, gaps = tones_with_silences(layout)
    chunks = plan_chunks(x, target_s=30, max_s=60)
    assert_tiles(chunks, len(x), 60)
    cuts = cut_times(chunks)
    assert len(cuts) >= 3
    for t in cuts:
        assert inside(t, gaps, margin=0.1), (t, gaps)


@pytest.fixture(scope="module")
def podcast():
    return podcast_samples(3.0, seed=3)


@pytest.mark.parametrize("bed", ["clean", "noise", "music"])
def test_cuts_fall_in_the_pauses_between_spoken_sentences(podcast, bed):
    x = podcast.samples.copy()
    if bed == "noise":  # a noisy room: the floor is 20 dB under the speech
        x += noise(len(x) / SR, level_db=-35, seed=1)[:len(x)]
    elif bed == "music":
        x += music(len(x) / SR, amplitude=0.1)[:len(x)]
    chunks = plan_chunks(x, target_s=20, max_s=40)
    assert_tiles(chunks, len(x), 40)
    assert len(chunks) >= 6
    for t in cut_times(chunks):
        assert inside(t, podcast.pauses, margin=0.05), t
    for c in chunks[:-1]:
        assert c.duration >= 0.6 * 20 - 0.01


def test_a_long_pause_wins_over_a_short_one_near_the_target():
    x, gaps = tones_with_silences([("tone", 27), ("silence", 0.3), ("tone", 8), ("silence", 1.5), ("tone", 30)])
    chunks = plan_chunks(x, target_s=30, max_s=60)
    assert inside(cut_times(chunks)[0], [gaps[1]], margin=0.5)


def test_speech_over_a_loud_music_bed_is_cut_in_its_pauses(podcast):
    # Energy finds no silence here (the music never stops); silero's pauses in the speech take over.
    x = podcast.samples + music(podcast.duration, amplitude=0.3, seed=4)[:len(podcast.samples)]
    chunks = plan_chunks(x, target_s=20, max_s=40)
    assert_tiles(chunks, len(x), 40)
    assert len(chunks) >= 6
    for t in cut_times(chunks):
        assert inside(t, podcast.pauses), t


# The energy rule alone (vad=False): what happens where there is no silence at all.

def test_without_silence_cuts_go_at_max_s():
    x = tone(300, 150)
    chunks = plan_chunks(x, target_s=30, max_s=60, vad=False)
    assert_tiles(chunks, len(x), 60)
    assert [round(c.duration, 3) for c in chunks] == [60.0, 60.0, 30.0]


def test_without_silence_cuts_go_at_the_quietest_point():
    x = music(100, amplitude=0.3, seed=2)
    dip = slice(int(41.0 * SR), int(41.4 * SR))
    x[dip] *= 0.05  # 26 dB quieter for 400 ms, but never silent
    chunks = plan_chunks(x, target_s=30, max_s=60, vad=False)
    assert 41.0 <= cut_times(chunks)[0] <= 41.4


def test_a_silence_before_the_window_beats_cutting_through_sound():
    x, gaps = tones_with_silences([("tone", 10), ("silence", 0.8), ("tone", 70)])
    chunks = plan_chunks(x, target_s=30, max_s=60, vad=False)
    assert inside(cut_times(chunks)[0], gaps, margin=0.1)


def test_no_sliver_is_left_at_the_end():
    # The only silence is 1 s before the end: cutting there would leave a 1 s chunk.
    x, _ = tones_with_silences([("tone", 40), ("silence", 0.5), ("tone", 0.8)])
    chunks = plan_chunks(x, target_s=30, max_s=60)
    assert len(chunks) == 1


def test_cuts_are_on_frame_boundaries(podcast):
    chunks = plan_chunks(podcast.samples, target_s=20, max_s=40)
    assert all(c.start % FRAME == 0 for c in chunks)


@st.composite
def layouts(draw):
    parts = draw(st.lists(st.tuples(st.sampled_from(["tone", "silence", "noise"]),
                                    st.floats(0.01, 20.0)), min_size=0, max_size=8))
    target = draw(st.floats(1.0, 40.0))
    most = draw(st.floats(target, 90.0))
    return parts, target, most, draw(st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_chunks_tile_the_audio_exactly(case):
    parts, target, most, vad = case
    pieces = [tone(220, s) if k == "tone" else noise(s, level_db=-30) if k == "noise" else silence(s)
              for k, s in parts]
    x = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    chunks = plan_chunks(x, target_s=target, max_s=most, vad=vad)
    if len(x) == 0:
        assert chunks == []
        return
    assert_tiles(chunks, len(x), most)
    if len(x) <= target * SR:
        assert len(chunks) == 1
    if len(chunks) > 1:  # the last chunk is no sliver unless merging it would break max_s
        last, prev = chunks[-1], chunks[-2]
        assert last.duration >= min(2.0, target / 4) - 0.011 or last.end - prev.start > int(most * SR)


def test_bad_lengths_are_rejected():
    with pytest.raises(ValueError):
        plan_chunks(tone(440, 5), target_s=30, max_s=20)


@pytest.fixture(scope="module")
def speech():
    return espeak("Good morning, and welcome to the show. Today we talk about rivers.")


@pytest.mark.parametrize("kind", ["silence", "dither", "hiss", "noise", "tone", "quiet tone", "chord", "music"])
def test_no_speech_in_silence_noise_tones_or_music(kind):
    x = {"silence": silence(6), "dither": noise(6, level_db=-80), "hiss": noise(6, level_db=-50),
         "noise": noise(6, level_db=-20), "tone": tone(440, 6), "quiet tone": tone(1000, 6, amplitude=0.02),
         "chord": tone(220, 6, amplitude=0.3) + tone(277, 6, amplitude=0.3) + tone(330, 6, amplitude=0.3),
         "music": music(6)}[kind]
    assert speech_flags(x, [Chunk(0, 0, len(x))]) == [False]


@pytest.mark.parametrize("level", [1.0, 0.05])
def test_speech_is_heard(speech, level):
    x = np.concatenate([silence(1), speech * level, silence(1)])
    assert speech_flags(x, [Chunk(0, 0, len(x))]) == [True]


def test_speech_under_noise_or_over_music_is_heard(speech):
    n = len(speech) / SR
    noisy = speech + noise(n, level_db=-30)[:len(speech)]
    bed = np.concatenate([music(4), speech * 0.7 + music(n, amplitude=0.15)[:len(speech)], music(3)])
    assert speech_flags(noisy, [Chunk(0, 0, len(noisy))]) == [True]
    assert speech_flags(bed, [Chunk(0, 0, len(bed))]) == [True]


def test_flags_follow_each_chunk(speech):
    parts = [silence(5), speech, tone(440, 5), music(5), np.concatenate([silence(3), speech[:SR]]), noise(4)]
    x = np.concatenate(parts)
    bounds = np.cumsum([0] + [len(p) for p in parts])
    chunks = [Chunk(i, int(a), int(b)) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    assert speech_flags(x, chunks) == [False, True, False, False, True, False]


def test_no_chunks_no_flags():
    assert speech_flags(np.zeros(0, np.float32), []) == []
