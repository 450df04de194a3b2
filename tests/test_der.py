"""bench.der's error rate on hand-made turns with known answers, and the diarizer built around any embedder (the
way bench.der plugs in its stand-in model) scored by it: a voice-telling embedder scores 0, a blind one does not."""
import numpy as np
import pytest
import torch

from bench.der import best_mapping_overlap, der
from core.diarize.diarizer import Diarizer
from core.options import TranscribeOptions
from core.types import SAMPLE_RATE


def test_a_perfect_answer_under_other_names_scores_zero():
    ref = [(0.0, 4.0, "alice"), (5.0, 9.0, "bob"), (10.0, 12.0, "alice")]
    hyp = [(0.0, 4.0, "Speaker 2"), (5.0, 9.0, "Speaker 1"), (10.0, 12.0, "Speaker 2")]
    r = der(ref, hyp)
    assert r["der"] == 0.0 and r["speech_s"] == pytest.approx(10.0)


def test_one_speaker_for_two_equal_voices_is_half_confusion():
    ref = [(0.0, 5.0, "a"), (5.0, 10.0, "b")]
    r = der(ref, [(0.0, 10.0, "x")])
    assert r["confusion_s"] == pytest.approx(5.0) and r["der"] == pytest.approx(0.5)
    assert r["missed_s"] == 0.0 and r["false_alarm_s"] == 0.0


def test_missed_and_false_alarm_count_against_the_reference_speech():
    r = der([(0.0, 10.0, "a")], [(2.0, 12.0, "x")])
    assert (r["missed_s"], r["false_alarm_s"], r["confusion_s"]) == pytest.approx((2.0, 2.0, 0.0))
    assert r["der"] == pytest.approx(0.4)
    assert der([(0.0, 10.0, "a")], [])["der"] == pytest.approx(1.0)


def test_the_mapping_is_one_to_one_and_the_best_one():
    # x covers all of b (6 s) and 4 s of a; y 1 s of a: x -> b, y -> a is best (7 s right), not x -> a (4 s)
    ref = [(0.0, 5.0, "a"), (5.0, 11.0, "b")]
    hyp = [(0.0, 1.0, "y"), (1.0, 11.0, "x")]
    assert der(ref, hyp)["confusion_s"] == pytest.approx(4.0)
    assert best_mapping_overlap(np.array([[4, 1], [6, 0]])) == 7
    assert best_mapping_overlap(np.array([[5, 1, 0], [0, 2, 9]])) == 14  # more hypothesis speakers than reference


def test_a_collar_leaves_the_boundaries_unscored():
    ref = [(0.0, 5.0, "a"), (5.0, 10.0, "b")]
    hyp = [(0.0, 5.2, "x"), (5.2, 10.0, "y")]  # the change 0.2 s late
    assert der(ref, hyp)["confusion_s"] == pytest.approx(0.2)
    r = der(ref, hyp, collar=0.25)
    # unscored: 0.25 s after the start, 0.25 s either side of the change, 0.25 s before the end
    assert r["der"] == 0.0 and r["speech_s"] == pytest.approx(10.0 - 0.25 - 0.5 - 0.25)


def test_overlapping_reference_speech_is_refused():
    with pytest.raises(ValueError, match="overlapping"):
        der([(0.0, 5.0, "a"), (4.0, 8.0, "b")], [(0.0, 8.0, "x")])


# ---- the diarizer around any embedder -----------------------------------------------------------------------------

TONES = (220.0, 1500.0)


class ToneEmbedder:
    """Tells 'voices' apart by which of two tones a clip holds more of: a stand-in that cannot be wrong."""

    def describe(self):
        return "tones"

    def embed(self, clips, progress=None):
        rows = []
        for c in clips:
            t = np.arange(len(c)) / SAMPLE_RATE
            rows.append([abs(np.dot(c, np.exp(-2j * np.pi * f * t))) for f in TONES] + [1e-3])
        return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


class BlindEmbedder(ToneEmbedder):
    """Embeddings that ignore the audio (seeded noise), as random weights give."""

    def embed(self, clips, progress=None):
        gen = torch.Generator().manual_seed(len(clips))
        return torch.nn.functional.normalize(torch.randn(len(clips), 16, generator=gen), dim=1)


def two_voice_talk(turns=8, turn_s=3.0, gap_s=1.0):
    parts, ref, t = [], [], 0.0
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    for k in range(turns):
        n = int(turn_s * SAMPLE_RATE)
        parts += [0.3 * np.sin(2 * np.pi * TONES[k % 2] * np.arange(n) / SAMPLE_RATE).astype(np.float32), gap]
        ref.append((t, t + turn_s, k % 2))
        t += turn_s + gap_s
    return np.concatenate(parts), ref


@pytest.mark.parametrize("num_speakers", [None, 2])
def test_a_diarizer_built_around_a_voice_telling_embedder_scores_zero(num_speakers):
    samples, ref = two_voice_talk()
    diarizer = Diarizer(embedder=ToneEmbedder())
    turns = diarizer.diarize(samples, [(a, b) for a, b, _ in ref], TranscribeOptions(diarize=True,
                                                                                     num_speakers=num_speakers))
    assert diarizer.describe() == "tones"
    assert der(ref, [(t.start, t.end, t.speaker) for t in turns])["der"] == 0.0


def test_a_blind_embedder_is_caught_by_the_metric():
    samples, ref = two_voice_talk()
    turns = Diarizer(embedder=BlindEmbedder()).diarize(samples, [(a, b) for a, b, _ in ref],
                                                       TranscribeOptions(diarize=True, num_speakers=2))
    assert der(ref, [(t.start, t.end, t.speaker) for t in turns])["der"] >= 0.25


def test_a_diarizer_needs_a_config_or_an_embedder():
    with pytest.raises(TypeError):
        Diarizer()
