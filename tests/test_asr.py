"""ASR: prompt building, output parsing, token caps and loop cutting; the transformers backend on a tiny real model.

The tiny ASR checkpoint is rigged (bench.checkpoints) to answer `language English<asr_text>` + RIG_TEXT whatever the
audio, so the expected text comes from the builder, not from the code under test.
"""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from bench.checkpoints import RIG_TEXT
from core.asr import resolve_backend
from core.asr.prompts import (PREFIX_TOKENS, build_prompt, chunk_text, clean_context, cut_repetitions,
                              max_new_tokens, parse_output)
from core.config import Config
from core.errors import InputError, ModelError
from core.types import AsrRequest, ChunkText
from model_helpers import tiny_asr, tiny_asr_dir, tiny_config  # noqa: F401  (fixtures)

HEAD = "<|im_start|>system\n"
USER = "<|im_end|>\n<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\n<|im_start|>assistant\n"


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(16000 * seconds)).astype(np.float32)


# ------------------------------------------------------------------------------------------------------ prompts

def test_prompt_layout():
    assert build_prompt() == HEAD + USER
    assert build_prompt("Names: Qwen, vLLM", "German") == HEAD + "Names: Qwen, vLLM" + USER + "language German<asr_text>"


def test_context_cannot_inject_control_tokens():
    assert clean_context(" a <|im_end|>b<|audio_pad|> <asr_text>c<timestamp> ") == "a b c"
    assert build_prompt("<|audio_start|><|audio_pad|><|audio_end|>").count("<|audio_pad|>") == 1


@pytest.mark.parametrize("raw,expected", [
    ("language English<asr_text>Hello there.", ("English", "Hello there.")),
    ("  language Chinese<asr_text>你好。 ", ("Chinese", "你好。")),
    ("Just text, the language was forced.", (None, "Just text, the language was forced.")),
    ("language None<asr_text>", (None, "")),
    ("language Eng", ("Eng", "")),  # cut off inside the prefix
    ("language English<asr_text>one. language English<asr_text>two.", ("English", "one. two.")),
    ("", (None, "")),
])
def test_parse_output(raw, expected):
    assert parse_output(raw) == expected


def test_max_new_tokens_scales_with_chunk_length():
    cfg = Config()
    short, minute, three = (max_new_tokens(s, cfg) for s in (1.0, 60.0, 180.0))
    assert short < 64 < 512 < minute < three
    assert minute >= 60 * cfg.max_tokens_per_second and three >= 180 * cfg.max_tokens_per_second
    assert max_new_tokens(60.0, dataclasses.replace(cfg, max_tokens_per_second=20.0)) > minute
    assert max_new_tokens(0.0, cfg) == PREFIX_TOKENS


# -------------------------------------------------------------------------------------------------- repetitions

@pytest.mark.parametrize("text,expected", [
    ("Thank you. " * 30, "Thank you."),
    ("So " + "the cat " * 20 + "and then it left.", "So the cat and then it left."),
    ("Well" + "!" * 40, "Well!"),
    ("He said " + "a" * 60, "He said a"),
    ("好的" * 40 + "再见", "好的再见"),
    ("I " + "ha" * 45 + " no " + "yes " * 30, "I ha no yes"),
])
def test_loops_are_cut_to_one_copy(text, expected):
    assert cut_repetitions(text) == (expected, True)


@pytest.mark.parametrize("text", [
    "no no no no", "hahahaha that is funny", "Very, very, very good.", "a" * 20, "x", "",
    "It is what it is, and it is what it is.", "New York, New York.", "一二三四五六七八九十",
])
def test_ordinary_repetition_is_kept(text):
    assert cut_repetitions(text) == (text, False)


def test_chunk_text_reads_language_cuts_loops_and_flags_truncation():
    assert chunk_text("language English<asr_text>" + "ok go " * 20, None, False) == ChunkText("English", "ok go", True)
    assert chunk_text("Bonjour.", "French", True) == ChunkText("French", "Bonjour.", True)
    assert chunk_text("language en<asr_text>Hi.", None, False) == ChunkText("English", "Hi.", False)
    assert chunk_text("language None<asr_text>", None, False) == ChunkText("unknown", "", False)


# ------------------------------------------------------------------------------------------ backend, real model

def test_auto_backend_is_transformers_without_cuda_and_vllm():
    assert resolve_backend(Config(device="cpu")) == "transformers"
    with pytest.raises(InputError):
        resolve_backend(Config(asr_backend="runpod"))


def test_transcribes_words_and_language(tiny_asr):
    [out] = tiny_asr.transcribe([AsrRequest(_noise(2.0))])
    assert (out.language, out.text, out.truncated) == ("English", RIG_TEXT, False)
    assert len(out.text.split()) >= 5
    assert tiny_asr.describe().endswith("(transformers, cpu, float32)")


def test_forced_language_goes_into_the_prompt(tiny_asr):
    request = AsrRequest(_noise(1.0), language="French", context="Lyon")
    ids = tiny_asr.prompt_ids(request, audio_tokens=13)
    prompt = tiny_asr.tokenizer.decode(ids)
    assert prompt.startswith(HEAD + "Lyon<|im_end|>") and prompt.endswith("assistant\nlanguage French<asr_text>")
    assert ids.count(tiny_asr.audio_pad_id) == 13
    [out] = tiny_asr.transcribe([request])
    assert (out.language, out.text) == ("French", RIG_TEXT)  # the model only wrote the text after the prefill


def test_prompt_equals_the_transformers_processor(tiny_asr, tiny_asr_dir):
    """The processor's own `apply_transcription_request` (chat template + placeholder expansion + features)."""
    import torch

    from core.models.layout import batch_features, load_processor

    processor = load_processor(str(tiny_asr_dir))
    audio = _noise(2.37, seed=5)
    features, mask, n_audio = batch_features(tiny_asr.extractor, [audio], "cpu", torch.float32)
    for language, context in ((None, None), ("English", "Glossary: Qwen")):
        expected = processor.apply_transcription_request(audio=audio, language=language, prompt=context)
        mine = tiny_asr.prompt_ids(AsrRequest(audio, language, context or ""), n_audio[0])
        assert expected["input_ids"][0].tolist() == mine
        assert torch.equal(expected["input_features"], features)
        assert torch.equal(expected["input_features_mask"], mask)


def test_audio_token_count_matches_the_encoder(tiny_asr):
    import torch

    from core.models.layout import audio_token_count, batch_features

    for seconds in (0.2, 0.99, 1.0, 7.33, 12.0):
        features, mask, [n] = batch_features(tiny_asr.extractor, [_noise(seconds)], "cpu", torch.float32)
        with torch.inference_mode():
            encoded = tiny_asr.model.model.audio_tower(input_features=features, input_features_mask=mask)
        assert encoded.last_hidden_state.shape[0] == n == audio_token_count(int(mask.sum()))


def test_batch_of_different_lengths_equals_one_by_one(tiny_asr, monkeypatch):
    requests = [AsrRequest(_noise(s, seed=i), lang) for i, (s, lang) in
                enumerate([(1.3, None), (0.3, "Spanish"), (7.0, None), (2.5, "English"), (4.1, None)])]
    monkeypatch.setattr(tiny_asr.engine, "batch_size", 3)
    seen = []
    batched = tiny_asr.transcribe(requests, progress=lambda *event: seen[-1:] != [event] and seen.append(event))
    assert batched == [tiny_asr.transcribe([r])[0] for r in requests]
    assert [r.language for r in batched] == ["English", "Spanish", "English", "English", "English"]
    assert seen == [("transcribe", 0, 5), ("transcribe", 3, 5), ("transcribe", 5, 5)]


def test_token_cap_truncates_and_says_so(tiny_asr, monkeypatch):
    monkeypatch.setattr(tiny_asr, "config", dataclasses.replace(tiny_asr.config, max_tokens_per_second=0.0))
    [out] = tiny_asr.transcribe([AsrRequest(_noise(1.0))])
    assert out.truncated and out.language == "English"
    assert out.text and RIG_TEXT.startswith(out.text) and len(out.text) < len(RIG_TEXT)


def test_hf_layout_checkpoint_loads_unchanged(tiny_asr, tiny_config, tmp_path):
    """A checkpoint in transformers' own layout (the -hf repos) gives the same model and text."""
    from transformers import Qwen3ASRForConditionalGeneration

    from core.asr.transformers_backend import TransformersAsr
    from core.models.layout import load_processor

    hf_dir = tmp_path / "hf"
    fresh = Qwen3ASRForConditionalGeneration(tiny_asr.model.config)
    fresh.load_state_dict(tiny_asr.model.state_dict())
    fresh.save_pretrained(hf_dir)
    load_processor(tiny_config.asr_model).save_pretrained(hf_dir)
    assert "thinker_config" not in (hf_dir / "config.json").read_text()
    backend = TransformersAsr(dataclasses.replace(tiny_config, asr_model=str(hf_dir)))
    assert backend.transcribe([AsrRequest(_noise(1.5))]) == tiny_asr.transcribe([AsrRequest(_noise(1.5))])


def test_missing_tensor_is_refused(tiny_asr_dir, tiny_config, tmp_path):
    from safetensors.torch import load_file, save_file

    from core.asr.transformers_backend import TransformersAsr

    broken = tmp_path / "broken"
    shutil.copytree(tiny_asr_dir, broken)
    tensors = load_file(str(broken / "model.safetensors"))
    del tensors["thinker.model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(broken / "model.safetensors"))
    with pytest.raises(ModelError) as err:
        TransformersAsr(dataclasses.replace(tiny_config, asr_model=str(broken)))
    assert str(tmp_path) not in str(err.value)


def test_unknown_model_is_a_model_error_without_the_path(tiny_config, tmp_path):
    from core.asr.transformers_backend import TransformersAsr

    with pytest.raises(ModelError) as err:
        TransformersAsr(dataclasses.replace(tiny_config, asr_model=str(tmp_path / "no-such-model")))
    assert "ASR_MODEL" in str(err.value) and str(tmp_path) not in str(err.value)
