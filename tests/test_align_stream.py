"""Alignment overlapped with the ASR (core.align.stream) on the tiny rigged checkpoints: same words, started early,
stopped cleanly; and the features the vLLM backend hands its engine (core.asr.vllm_features) on the CPU."""
from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from audio_helpers import make_podcast
from core.pipeline import Pipeline
from core.types import no_progress
from core.options import TranscribeOptions

OPTIONS = TranscribeOptions(language="English", chunk_seconds=5)


@pytest.fixture(scope="module")
def podcast(tmp_path_factory):
    return make_podcast(tmp_path_factory.mktemp("stream") / "p.wav", 0.5)  # 30 s: six or so 5 s chunks


def words_of(tr):
    return [(w.text, w.start, w.end) for s in tr.segments for w in s.words]


def test_overlapped_alignment_gives_the_same_transcript(tiny_config, tiny_asr, tiny_aligner, podcast):
    after = Pipeline(replace(tiny_config, overlap_align=False), asr=tiny_asr, aligner=tiny_aligner)
    during = Pipeline(replace(tiny_config, overlap_align=True), asr=tiny_asr, aligner=tiny_aligner)
    a = after.transcribe(str(podcast.path), OPTIONS)
    b = during.transcribe(str(podcast.path), OPTIONS)
    assert len(b.segments) >= 3 and words_of(b)
    assert words_of(b) == words_of(a) and b.text == a.text
    assert "align_busy" in b.timings and "align_busy" not in a.timings


class FirstChunkWaits:
    """The real tiny ASR, one chunk per batch; after handing over the first chunk's text it waits (at most 10 s)
    for the aligner to start, and notes whether it did before the ASR went on."""

    def __init__(self, inner, aligner_started: threading.Event) -> None:
        self.inner, self.aligner_started = inner, aligner_started
        self.overlapped: bool | None = None

    def describe(self) -> str:
        return self.inner.describe()

    def transcribe_groups(self, groups, progress=no_progress, on_result=None, unwanted=None):
        def hear(i, result):
            on_result(i, result)
            if self.overlapped is None:
                self.overlapped = self.aligner_started.wait(10)

        return self.inner.transcribe_groups(groups, progress, on_result=hear if on_result else None,
                                            unwanted=unwanted)


class NotesStart:
    """The real tiny aligner, one chunk per batch, raising `started` when its first batch begins."""

    def __init__(self, inner, started: threading.Event) -> None:
        self.inner, self.started, self.batch_size = inner, started, 1

    def describe(self) -> str:
        return self.inner.describe()

    def align(self, requests, progress=no_progress):
        self.started.set()
        return self.inner.align(requests, progress)


def test_the_first_chunk_is_aligned_while_the_asr_still_works(tiny_config, podcast):
    from core.asr.transformers_backend import TransformersAsr

    config = replace(tiny_config, asr_batch_size=1, overlap_align=True)
    started = threading.Event()
    asr = FirstChunkWaits(TransformersAsr(config), started)
    from core.align.aligner import Aligner

    pipe = Pipeline(config, asr=asr, aligner=NotesStart(Aligner(config), started))
    tr = pipe.transcribe(str(podcast.path), OPTIONS)
    assert asr.overlapped is True
    assert words_of(tr)


class Cancelled(Exception):
    pass


def test_cancelling_while_aligning_stops_the_background_aligner(tiny_config, tiny_asr, tiny_aligner, podcast):
    pipe = Pipeline(replace(tiny_config, overlap_align=True), asr=tiny_asr, aligner=tiny_aligner)

    def progress(stage, done, total):
        if stage == "align":
            raise Cancelled

    with pytest.raises(Cancelled):
        pipe.transcribe(str(podcast.path), OPTIONS, progress)
    assert not [t for t in threading.enumerate() if t.name == "align-stream"]
    assert words_of(pipe.transcribe(str(podcast.path), OPTIONS))  # the aligner is free for the next job


def test_ready_made_features_match_what_vllms_processor_computes(tiny_asr_dir):
    """vLLM's Qwen3-ASR processor pads each chunk to a whole hop, runs Whisper's extractor with padding and no
    truncation, and counts len // hop frames; the features the backend hands over ready-made must be those."""
    import torch
    from transformers import WhisperFeatureExtractor

    from core.asr.vllm_features import audio_features, whisper_extractor

    extractor = whisper_extractor(str(tiny_asr_dir))
    assert type(extractor) is WhisperFeatureExtractor  # what vLLM's processor asserts it has
    sizes = (16000 * 7, 16000 * 7 + 37, 16000 * 29 + 159, 3000)
    audios = [np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1 for n in sizes]
    ours = audio_features(extractor, audios, "cpu", torch.float32)
    hop = extractor.hop_length
    for audio, got in zip(audios, ours):
        padded = np.pad(audio, (0, -len(audio) % hop))
        ref = extractor(padded, sampling_rate=16000, padding=True, truncation=False, return_tensors="pt")
        frames = len(padded) // hop
        assert int(got["audio_feature_lengths"][0]) == frames == ref["input_features"].shape[-1]
        assert torch.equal(got["input_audio_features"], ref["input_features"][0])
        assert got["feature_attention_mask"].shape == (1, frames)
    assert audio_features(extractor, audios[:1], "cpu", torch.bfloat16)[0]["input_audio_features"].dtype \
        == torch.bfloat16


def test_batch_features_equal_the_extractor_clip_by_clip(tiny_asr_dir):
    """core.models.layout.batch_features (one pass, core.models.logmel) against transformers' Qwen3-ASR extractor called on each
    clip alone: same numbers, same frame counts (short clips padded to its 0.5 s minimum), zeros after."""
    import torch

    from core.models.layout import audio_token_count, batch_features, load_processor

    extractor = load_processor(str(tiny_asr_dir)).feature_extractor
    sizes = (16000 * 3 + 77, 4000, 16000 * 12)
    audios = [np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1 for n in sizes]
    feats, mask, tokens = batch_features(extractor, audios, "cpu", torch.float32)
    assert feats.shape[-1] % 100 == 0 and feats.shape[-1] >= 1200
    for i, audio in enumerate(audios):
        ref = extractor(audio, sampling_rate=16000, padding="longest", return_attention_mask=True,
                        return_tensors="np")
        n = int(ref["attention_mask"][0].sum())
        assert int(mask[i].sum()) == n and tokens[i] == audio_token_count(n)
        assert np.array_equal(feats[i, :, :n].numpy(), ref["input_features"][0][:, :n])
        assert not feats[i, :, n:].any()


def test_alignment_progress_moves_batch_by_batch(tiny_config, tiny_asr, podcast):
    """Issue 15: the bar sat at "align 0/N" for the whole stage, then jumped to N/N."""
    from core.align.aligner import Aligner

    config = replace(tiny_config, align_batch_size=2)
    pipe = Pipeline(config, asr=tiny_asr, aligner=Aligner(config))
    reports = []
    pipe.transcribe(str(podcast.path), OPTIONS, lambda stage, done, total: reports.append((stage, done, total)))
    counts = [(done, total) for stage, done, total in reports if stage == "align"]
    total = counts[-1][1]
    assert total >= 5 and counts[-1] == (total, total)
    between = sorted({done for done, _ in counts if 0 < done < total})
    assert len(between) >= 2, counts  # several batches of two, each reported as it finished
