"""The diarization stage: windows over speech, clustering, turns, and speakers through merge and the pipeline.

Random weights cannot tell voices apart, so clustering is checked on embeddings with a known structure, and the
pipeline with the tiny random model is checked for plumbing: every word labelled, the asked-for count kept.
"""
import numpy as np
import pytest
import torch

from bench.conversation import make_conversation
from core.diarize.cluster import cluster
from core.diarize.diarizer import turns_from_labels
from core.diarize.windows import plan_windows, speech_runs
from core.errors import InputError
from core.output.merge import build_transcript
from core.pipeline import Pipeline
from core.types import Chunk, ChunkText, Turn, Word
from model_helpers import make_tiny_config


def blobs(sizes, dim=16, spread=0.05, seed=0):
    """Unit vectors around len(sizes) random directions: well-separated 'voices'."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(len(sizes), dim, generator=gen), dim=1)
    rows, truth = [], []
    for k, n in enumerate(sizes):
        rows.append(centres[k] + spread * torch.randn(n, dim, generator=gen))
        truth += [k] * n
    return torch.cat(rows), np.array(truth)


def same_partition(a, b) -> bool:
    return len({(x, y) for x, y in zip(a, b)}) == len(set(a)) == len(set(b))


@pytest.mark.parametrize("sizes", [(40, 30), (25, 25, 20), (30, 10, 20, 15)])
def test_clustering_finds_the_number_of_voices_by_itself(sizes):
    emb, truth = blobs(sizes)
    labels = cluster(emb, 1, 20)
    assert same_partition(labels, truth)


def test_a_forced_count_is_kept_even_against_the_data():
    emb, _ = blobs((30, 30))
    assert len(set(cluster(emb, 3, 3))) == 3
    assert len(set(cluster(emb, 1, 1))) == 1
    emb, _ = blobs((20, 20, 20, 20))
    assert len(set(cluster(emb, 1, 2))) <= 2  # max_speakers caps the automatic count
    assert len(set(cluster(emb[:2], 3, 3))) == 2  # never more speakers than windows


@pytest.mark.parametrize("n", [3, 4, 5, 12, 20, 21])
def test_an_automatic_count_on_a_few_windows_still_gives_labels(n):
    emb, _ = blobs((n // 2, n - n // 2))
    labels = cluster(emb, 1, 20)
    assert len(labels) == n and 1 <= len(set(labels)) <= n - 1


def test_windows_tile_each_stretch_of_speech():
    runs = speech_runs([(0.0, 0.4), (0.6, 3.0), (10.0, 10.3), (20.0, 25.25)])
    assert runs == [(0.0, 3.0), (10.0, 10.3), (20.0, 25.25)]  # 0.2 s apart joins, 7 s apart does not
    windows = plan_windows(runs, duration=30.0)
    for a, b in runs:
        own = sorted((w.own_start, w.own_end) for w in windows if a <= w.own_start < b)
        assert own[0][0] == a and own[-1][1] == b
        assert all(x[1] == pytest.approx(y[0]) for x, y in zip(own, own[1:]))
    assert all(w.end - w.start == pytest.approx(1.5) for w in windows)
    short = [w for w in windows if w.own_start == 10.0][0]
    assert short.start < 10.0 and short.end > 10.3  # a short stretch is heard with a little context


def test_long_audio_gets_a_longer_hop_not_more_windows():
    windows = plan_windows([(0.0, 4 * 3600.0)], duration=4 * 3600.0, max_windows=1000)
    assert 990 <= len(windows) <= 1001


def test_turns_join_neighbours_and_are_named_by_first_appearance():
    windows = plan_windows([(0.0, 6.0)], duration=6.0)
    labels = [5, 5, 2, 2, 2, 5, 5][:len(windows)]
    turns = turns_from_labels(windows, labels)
    assert [t.speaker for t in turns] == ["Speaker 1", "Speaker 2", "Speaker 1"][:len(turns)]
    assert turns[0].start == 0.0 and turns[-1].end == 6.0


def test_merge_breaks_segments_at_a_change_of_speaker():
    words = [Word(0.0, 0.4, "Hello"), Word(0.5, 0.9, "there"), Word(1.0, 1.4, "hi"), Word(1.5, 1.9, "back")]
    turns = [Turn(0.0, 0.95, "A"), Turn(0.95, 2.0, "B")]
    t = build_transcript([Chunk(0, 0, 32000)], [ChunkText("English", "Hello there hi back")], [words], 2.0,
                         turns=turns)
    assert [(s.text, s.speaker) for s in t.segments] == [("Hello there", "A"), ("hi back", "B")]
    assert [w.speaker for s in t.segments for w in s.words] == ["A", "A", "B", "B"]
    assert t.speakers == ["A", "B"]
    plain = build_transcript([Chunk(0, 0, 32000)], [ChunkText("English", "Hello there hi back")],
                             [[Word(w.start, w.end, w.text) for w in words]], 2.0)
    assert len(plain.segments) == 1 and plain.segments[0].speaker is None and plain.speakers == []


def test_a_word_in_a_gap_takes_the_nearest_turn():
    words = [Word(0.0, 0.4, "one"), Word(5.0, 5.4, "two")]
    turns = [Turn(0.0, 1.0, "A"), Turn(4.8, 6.0, "B")]
    t = build_transcript([Chunk(0, 0, 16000 * 7)], [ChunkText("English", "one two")], [words], 7.0, turns=turns)
    assert [w.speaker for s in t.segments for w in s.words] == ["A", "B"]


@pytest.fixture(scope="module")
def talk():
    return make_conversation(speakers=2, lines=6)


@pytest.fixture(scope="module")
def pipeline(tiny_asr, tiny_aligner):
    p = Pipeline(make_tiny_config(), asr=tiny_asr, aligner=tiny_aligner)
    yield p
    p.close()


@pytest.mark.parametrize("count", [2, 3])
def test_every_word_and_segment_gets_one_of_the_asked_for_speakers(pipeline, talk, count):
    t = pipeline.transcribe_audio(talk.samples, {"diarize": True, "num_speakers": count})
    words = [w for s in t.segments for w in s.words]
    assert words and all(w.speaker in t.speakers for w in words)
    assert all(s.speaker in t.speakers and all(w.speaker == s.speaker for w in s.words) for s in t.segments)
    assert t.speakers == [f"Speaker {k}" for k in range(1, count + 1)]
    assert "diarize" in t.timings and not t.warnings


def test_without_word_times_segments_still_get_speakers(pipeline, talk):
    t = pipeline.transcribe_audio(talk.samples, {"diarize": True, "word_timestamps": False, "num_speakers": 2})
    assert t.segments and all(s.speaker in t.speakers for s in t.segments)
    assert t.speakers[0] == "Speaker 1"


def test_no_speakers_unless_asked(pipeline, talk):
    t = pipeline.transcribe_audio(talk.samples, {})
    assert t.speakers == [] and "diarize" not in t.timings
    assert all(s.speaker is None and all(w.speaker is None for w in s.words) for s in t.segments)


def test_asking_for_speakers_where_there_is_no_diarizer_is_refused_before_any_work(tiny_asr, tiny_aligner, tmp_path):
    p = Pipeline(make_tiny_config(diarizer_model=""), asr=tiny_asr, aligner=tiny_aligner)
    with pytest.raises(InputError, match="DIARIZER_MODEL"):
        p.transcribe(str(tmp_path / "not-even-there.wav"), {"diarize": True})
    assert "no diarizer" in p.describe()


def test_a_failing_diarizer_costs_the_labels_not_the_transcript(tiny_asr, tiny_aligner, talk, tiny_asr_dir):
    p = Pipeline(make_tiny_config(diarizer_model=str(tiny_asr_dir)), asr=tiny_asr, aligner=tiny_aligner)
    t = p.transcribe_audio(talk.samples, {"diarize": True, "num_speakers": 2})
    assert t.text and t.speakers == []
    assert any("speaker labels failed" in w and "DIARIZER_MODEL" in w for w in t.warnings)
