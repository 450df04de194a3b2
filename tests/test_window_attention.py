"""The audio encoder's windowed attention in batched calls (core.models.window_attention) gives what transformers'
own window-by-window loop gives: bit for bit on the CPU, for clips whose windows have many different lengths, in
the aligner and in the transformers ASR backend; on a GPU (skipped here) the packed Flash Attention path agrees with
the grouped one within bf16 rounding."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models.layout import batch_features, load_aligner_model, load_asr_model, load_processor
from model_helpers import tiny_aligner_dir, tiny_asr_dir  # noqa: F401 (fixtures)

SECONDS = (31.3, 7.2, 29.9, 12.0, 1.1, 16.64)  # full windows, and last windows of five different lengths


def clips(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(int(16000 * s)) * 0.1).astype(np.float32) for s in SECONDS]


def encode(model, model_dir, device="cpu", dtype=torch.float32):
    encoder = model.model.audio_tower if hasattr(model.model, "audio_tower") else model.audio_tower
    features, mask, _ = batch_features(load_processor(model_dir).feature_extractor, clips(), device, dtype)
    with torch.inference_mode():
        return encoder(input_features=features, input_features_mask=mask).last_hidden_state


def counted(model, model_dir):
    """The encoder's output, and how many attention calls it made (torch's profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = encode(model, model_dir)
    return out, sum(e.count for e in prof.key_averages() if e.key == "aten::scaled_dot_product_attention")


def stock(model):
    """The same model on transformers' own SDPA path: the window-by-window loop."""
    for sub in model.modules():
        if type(sub).__name__ == "Qwen3ASREncoder":
            sub.config._attn_implementation = "sdpa"
    return model


@pytest.mark.parametrize("which", ["aligner", "asr"])
def test_batched_windows_equal_the_per_window_loop(which, tiny_aligner_dir, tiny_asr_dir):
    model_dir = tiny_aligner_dir if which == "aligner" else tiny_asr_dir
    load = load_aligner_model if which == "aligner" else load_asr_model
    ours = load(str(model_dir), "cpu", torch.float32)
    theirs = stock(load(str(model_dir), "cpu", torch.float32))
    (a, calls), (b, loop_calls) = counted(ours, model_dir), counted(theirs, model_dir)
    assert a.shape == b.shape and a.shape[0] > 400
    assert torch.equal(a, b)
    layers = sum(type(m).__name__ == "Qwen3ASRAudioEncoderLayer" for m in ours.modules())
    # windows of 8 s: 15 of them, 9 full ones and 6 shorter last ones whose lengths all differ (7 lengths);
    # transformers' loop makes a call per window and layer, the batched way one per length and layer
    assert loop_calls == 15 * layers and calls == 7 * layers


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_packed_flash_attention_agrees_with_grouped_windows_on_the_gpu(tiny_aligner_dir):
    from core.models import window_attention

    model = load_aligner_model(str(tiny_aligner_dir), "cuda", torch.bfloat16)
    try:
        window_attention.force_way(window_attention.GROUPED)
        grouped = encode(model, tiny_aligner_dir, "cuda", torch.bfloat16).float()
        window_attention.force_way(window_attention.PACKED)
        packed = encode(model, tiny_aligner_dir, "cuda", torch.bfloat16).float()
    finally:
        window_attention.force_way(None)
    loop = encode(stock(model), tiny_aligner_dir, "cuda", torch.bfloat16).float()
    scale = loop.abs().max()
    assert (grouped - loop).abs().max() <= 0.02 * scale
    assert (packed - loop).abs().max() <= 0.02 * scale
