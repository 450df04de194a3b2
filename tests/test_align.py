"""Aligner: word splitting, time repair, and the real aligner on a tiny rigged checkpoint.

The tiny aligner is rigged (bench.checkpoints) to put word j at RIG_STEP_S*(2j+1)..RIG_STEP_S*(2j+2) seconds, so
exact expected times come from the builder, and a mix-up of positions, words or batch rows shows as wrong times.
"""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from bench.checkpoints import RIG_TEXT, rig_word_times
from core.align.aligner import load_aligner, split_words
from core.align.word_times import repair_marks
from core.config import Config
from core.types import AlignRequest, Word
from engine_helpers import Held, wait_queued
from model_helpers import tiny_aligner, tiny_config  # noqa: F401  (fixtures)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(16000 * seconds)).astype(np.float32)


def _expected(words: list[str], duration: float) -> list[Word]:
    return [Word(round(min(s, duration), 3), round(min(e, duration), 3), w)
            for w, (s, e) in zip(words, rig_word_times(len(words)))]


# ---------------------------------------------------------------------------------------------------- splitting

@pytest.mark.parametrize("text,language,words", [
    ("Hello, world! It's a well-known fact.", "English", ["Hello", "world", "It's", "a", "wellknown", "fact"]),
    ("我们今天去北京，好吗？", "Chinese", ["我", "们", "今", "天", "去", "北", "京", "好", "吗"]),
    ("我用iPhone拍了2024年的照片。", "Chinese", ["我", "用", "iPhone", "拍", "了", "2024", "年", "的", "照", "片"]),
    ("今日はいい天気ですね。", "Japanese", list("今日はいい天気ですね")),
    ("佢哋去咗邊度？", "Cantonese", list("佢哋去咗邊度")),
    ("Привет, мир! Тест-кейс", "Russian", ["Привет", "мир", "Тесткейс"]),
    ("안녕하세요 여러분!", "Korean", ["안녕하세요", "여러분"]),
    (" ... — !", "English", []),
])
def test_split_words(text, language, words):
    assert split_words(text, language) == words


# ------------------------------------------------------------------------------------------------------- repair

def test_repair_keeps_monotonic_times():
    times = [0.0, 0.08, 0.08, 0.4, 1.2]
    assert repair_marks(times) == times


def test_repair_interpolates_outliers_between_trusted_neighbours():
    assert repair_marks([0.0, 1.0, 9.0, 3.0, 4.0]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert repair_marks([0.0, 1.0, 9.0, 8.5, 4.0, 5.0]) == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert repair_marks([7.0, 1.0, 2.0]) == [1.0, 1.0, 2.0]  # a bad first value copies the first good one
    assert repair_marks([1.0, 2.0, 0.5]) == [1.0, 2.0, 2.0]
    assert repair_marks([]) == []


def test_repair_always_runs_forward():
    rng = random.Random(7)
    for _ in range(200):
        raw = [rng.randrange(0, 50) * 0.08 for _ in range(rng.randrange(1, 40))]
        fixed = repair_marks(raw)
        assert len(fixed) == len(raw)
        assert all(a <= b for a, b in zip(fixed, fixed[1:]))
        assert min(raw) <= min(fixed) and max(fixed) <= max(raw)


# ------------------------------------------------------------------------------------------- real tiny aligner

def test_one_word_per_input_word_with_times_in_the_chunk(tiny_aligner):
    [words] = tiny_aligner.align([AlignRequest(_noise(8.0), RIG_TEXT, "English")])
    expected_words = split_words(RIG_TEXT, "English")
    assert [w.text for w in words] == expected_words
    assert words == _expected(expected_words, 8.0)
    assert all(0.0 <= w.start <= w.end <= 8.0 for w in words)
    assert all(a.end <= b.start for a, b in zip(words, words[1:]))


def test_chinese_is_aligned_per_character(tiny_aligner):
    text = "我们今天去北京，好吗？"
    [words] = tiny_aligner.align([AlignRequest(_noise(5.0), text, "Chinese")])
    assert words == _expected(list("我们今天去北京好吗"), 5.0)


def test_times_are_clamped_to_a_short_chunk(tiny_aligner):
    [words] = tiny_aligner.align([AlignRequest(_noise(1.5), RIG_TEXT, "English")])
    assert len(words) == len(RIG_TEXT.split())
    assert words[-1].end == 1.5 and all(0.0 <= w.start <= w.end <= 1.5 for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))


def test_head_on_timestamps_only_equals_the_full_classifier(tiny_aligner):
    """Our gathered head gives the classes transformers' own forward (logits for every token) gives."""
    import torch

    from core.models.layout import batch_features

    audio, words = _noise(3.0, seed=2), ["one", "two", "three"]
    features, mask, [n] = batch_features(tiny_aligner.extractor, [audio], "cpu", torch.float32)
    ids = torch.tensor([tiny_aligner.input_ids(words, n)])
    with torch.inference_mode():
        logits = tiny_aligner.model(input_ids=ids, input_features=features, input_features_mask=mask).logits
    classes = logits[ids == tiny_aligner.timestamp_id].argmax(-1).tolist()
    [aligned] = tiny_aligner.align([AlignRequest(audio, "one two three", "English")])
    assert [round(c * tiny_aligner.segment_s, 3) for c in classes] == [t for w in aligned for t in (w.start, w.end)]


def test_batch_equals_one_by_one_and_bad_chunks_only_fail_themselves(tiny_aligner, monkeypatch):
    monkeypatch.setattr(tiny_aligner, "config", dataclasses.replace(tiny_aligner.config, align_batch_size=3))
    long_text = " ".join(["word"] * 3000)  # 3000 * (1 token + 2 timestamps) > 8192 positions
    requests = [
        AlignRequest(_noise(6.0, 1), RIG_TEXT, "English"),
        AlignRequest(_noise(2.0, 2), "我们今天去北京", "Chinese"),
        AlignRequest(_noise(4.0, 3), long_text, "English"),
        AlignRequest(np.zeros((2, 16000), dtype=np.float32), "stereo is refused", "English"),
        AlignRequest(_noise(3.0, 4), "...", "English"),
        AlignRequest(np.zeros(16000 * 181, dtype=np.float32), "too long", "English"),
        AlignRequest(_noise(7.5, 5), "Hello there, how are you?", "English"),
    ]
    seen = []
    batched = tiny_aligner.align(requests, progress=lambda *event: seen.append(event))
    singles = [tiny_aligner.align([r])[0] for r in requests]
    assert batched == singles
    assert [r is None for r in batched] == [False, False, True, True, False, True, False]
    assert batched[4] == []  # nothing alignable is not a failure
    assert batched[6] == _expected(["Hello", "there", "how", "are", "you"], 7.5)
    assert seen[0] == ("align", 0, 7) and seen[-1] == ("align", 7, 7)


def test_concurrent_jobs_share_batches_and_get_their_own_words(tiny_aligner):
    """Jobs aligning at once (web app or worker concurrency > 1) fill the same batches; each still gets exactly the
    words it would get alone."""
    import threading

    jobs = [[AlignRequest(_noise(2.0 + k + j, 10 * k + j), f"job {k} chunk {j} says hello", "English")
             for j in range(3)] for k in range(4)]
    alone = [tiny_aligner.align(reqs) for reqs in jobs]
    engine = tiny_aligner.engine
    together = [None] * len(jobs)
    threads = [threading.Thread(target=lambda k=k: together.__setitem__(k, tiny_aligner.align(jobs[k])))
               for k in range(len(jobs))]
    busy = (AlignRequest(_noise(1.0), "busy", "English"), ["busy"])
    with Held(lambda block: engine.run([busy], on_result=block)):  # the model is busy: the four jobs queue up
        seen = len(engine.history)
        for t in threads:
            t.start()
        wait_queued(engine, 12)
    for t in threads:
        t.join(60)
    assert together == alone
    batches = list(engine.history)[seen:]
    assert sum(b.size for b in batches) == 12 and len(batches) == -(-12 // tiny_aligner.batch_size)
    assert batches[0].jobs == 4  # the first batch holds all four jobs' chunks, not one job's after another


def test_no_aligner_when_the_model_is_empty():
    assert load_aligner(Config(aligner_model="")) is None


def test_describe(tiny_aligner, tiny_config):
    assert tiny_aligner.describe() == f"{tiny_config.aligner_model} (transformers, cpu, float32)"


def test_words_tokenized_in_one_call_match_word_by_word(tiny_aligner):
    words = ["Hello", "wörld", "it's", "42", "naïve", "日", "本"]
    ids = tiny_aligner.input_ids(words, 3)
    tok = tiny_aligner.tokenizer
    expected = [tok.convert_tokens_to_ids(t) for t in ("<|audio_start|>", "<|audio_pad|>", "<|audio_pad|>",
                                                        "<|audio_pad|>", "<|audio_end|>")]
    for w in words:
        expected += tok.encode(w, add_special_tokens=False) + [tiny_aligner.timestamp_id] * 2
    assert ids == expected
    assert tiny_aligner.input_ids([], 1) == expected[:2] + expected[4:5]
