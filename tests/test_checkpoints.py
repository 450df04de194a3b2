"""bench.checkpoints writes the official layout: checked against the real files in shared/reference."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from safetensors import safe_open

from bench.checkpoints import (ALIGNER_FULL, ALIGNER_TINY, ASR_FULL, ASR_TINY, RIG_TEXT, build_asr_checkpoint,
                               official_config, tensor_shapes)
from model_helpers import tiny_aligner_dir, tiny_asr_dir  # noqa: F401  (fixtures)

REFERENCE = Path(os.environ.get("QWEN_REFERENCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "reference"))
NAMES = {"asr": "qwen3-asr-0.6b", "aligner": "qwen3-forcedaligner-0.6b"}
SPECIAL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|audio_start|>": 151669,
               "<|audio_end|>": 151670, "<|audio_pad|>": 151676, "<asr_text>": 151704, "<timestamp>": 151705}

needs_reference = pytest.mark.skipif(not (REFERENCE / "weights-manifest.json").exists(),
                                     reason="reference files of the official checkpoints not found")


def _reference(kind: str, filename: str) -> dict:
    return json.loads((REFERENCE / NAMES[kind] / filename).read_text())


def _manifest(kind: str) -> dict[str, tuple[int, ...]]:
    data = json.loads((REFERENCE / "weights-manifest.json").read_text())[NAMES[kind]]
    return {name: tuple(shape) for name, shape in data.items()}


def _tensors(directory: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def _pattern(name: str) -> str:
    return re.sub(r"\.layers\.\d+\.", ".layers.*.", name)


def _key_tree(value):
    if isinstance(value, dict) and not all(k.isdigit() or k.startswith("LABEL_") for k in value):
        return {k: _key_tree(v) for k, v in value.items()}
    return None


@needs_reference
@pytest.mark.parametrize("kind,dims", [("asr", ASR_FULL), ("aligner", ALIGNER_FULL)])
def test_full_size_matches_reference_exactly(kind, dims):
    assert tensor_shapes(kind, dims) == _manifest(kind)
    assert official_config(kind, dims) == _reference(kind, "config.json")


@needs_reference
@pytest.mark.parametrize("kind", ["asr", "aligner"])
def test_tiny_files_have_every_official_tensor_and_config_key(kind, tiny_asr_dir, tiny_aligner_dir):
    directory = tiny_asr_dir if kind == "asr" else tiny_aligner_dir
    manifest, tiny = _manifest(kind), _tensors(directory)
    official = set(manifest) - ({"thinker.lm_head.weight"} if kind == "asr" else set())  # tied in the ASR
    assert set(tiny) <= official  # fewer layers, the same names
    assert {_pattern(n) for n in tiny} == {_pattern(n) for n in official}
    for name, shape in tiny.items():
        assert len(shape) == len(manifest[name]) and all(t <= f for t, f in zip(shape, manifest[name])), name
    # the vocabulary and the head keep their real sizes, so the real token ids exist
    assert tiny["thinker.model.embed_tokens.weight"][0] == manifest["thinker.model.embed_tokens.weight"][0]
    if kind == "aligner":
        assert tiny["thinker.lm_head.weight"][0] == 5000
    config = json.loads((directory / "config.json").read_text())
    assert _key_tree(config) == _key_tree(_reference(kind, "config.json"))
    assert config["thinker_config"]["text_config"]["hidden_size"] == (ASR_TINY if kind == "asr" else ALIGNER_TINY).hidden


@needs_reference
def test_tokenizer_and_generation_config_equal_the_real_ones(tiny_asr_dir, tiny_aligner_dir):
    for directory in (tiny_asr_dir, tiny_aligner_dir):
        assert json.loads((directory / "tokenizer_config.json").read_text()) == _reference(
            "aligner", "tokenizer_config.json")
        assert json.loads((directory / "generation_config.json").read_text()) == _reference(
            "aligner", "generation_config.json")


def test_special_tokens_load_at_their_real_ids(tiny_asr_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_asr_dir))
    for token, token_id in SPECIAL_IDS.items():
        assert tok.convert_tokens_to_ids(token) == token_id
        assert tok.encode(token, add_special_tokens=False) == [token_id]
    assert tok.eos_token_id == 151645 and tok.pad_token_id == 151643
    # the rig's words are single tokens, and any other text still round-trips through the byte-level BPE
    assert len(tok.encode(" quick", add_special_tokens=False)) == 1
    for text in (RIG_TEXT, "héllo wörld — 你好，世界！ 123"):
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_preprocessor_is_whisper_style(tiny_asr_dir):
    cfg = json.loads((tiny_asr_dir / "preprocessor_config.json").read_text())
    assert (cfg["feature_size"], cfg["sampling_rate"], cfg["hop_length"], cfg["n_fft"], cfg["chunk_length"]) == (
        128, 16000, 160, 400, 30)
    assert "chat_template" in json.loads((tiny_asr_dir / "chat_template.json").read_text())


def test_unrigged_init_is_ones_zeros_and_small_noise(tmp_path):
    import torch

    out = build_asr_checkpoint(tmp_path / "plain", rig=False, seed=3)
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        norm = f.get_tensor("thinker.model.norm.weight")
        bias = f.get_tensor("thinker.audio_tower.proj1.bias")
        embed = f.get_tensor("thinker.model.embed_tokens.weight")
    assert torch.equal(norm, torch.ones_like(norm)) and torch.equal(bias, torch.zeros_like(bias))
    assert abs(float(embed.std()) - 0.02) < 0.001 and abs(float(embed.mean())) < 0.001
