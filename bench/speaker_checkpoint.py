"""Random-weight speaker-embedding checkpoints in the hub's layout of `microsoft/wavlm-base-plus-sv` (config.json,
model.safetensors, preprocessor_config.json), built by transformers' own `WavLMForXVector`: "full" has the real
model's dimensions (94.7M parameters, for timing), "tiny" is a few hundred thousand parameters (for tests).
Random weights cannot tell voices apart: tests check the plumbing, `bench.der` measures quality with real weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

# The feature extractor's settings (transformers' Wav2Vec2FeatureExtractor): raw 16 kHz samples, zero-padded.
PREPROCESSOR = dict(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=False,
                    return_attention_mask=True)
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            conv_dim=(32, 32, 32, 32, 32, 32, 32), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
            tdnn_dim=(32, 32, 32, 32, 64), xvector_output_dim=32, num_buckets=32, max_bucket_distance=80)
FULL: dict = {}  # WavLMConfig's defaults are WavLM Base+: 768 wide, 12 layers, x-vector head 512


def build_diarizer_checkpoint(out_dir, *, size: str = "tiny", device: str = "cpu", dtype=None,
                              seed: int = 0) -> Path:
    """Write a WavLM x-vector checkpoint into `out_dir`; float32 tiny, bfloat16 full unless `dtype` says."""
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    dims = TINY if size == "tiny" else FULL
    dtype = dtype or (torch.float32 if size == "tiny" else torch.bfloat16)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = WavLMConfig(**{k: list(v) if isinstance(v, tuple) else v for k, v in dims.items()},
                         architectures=["WavLMForXVector"])
    torch.manual_seed(seed)
    with torch.device(device):
        model = WavLMForXVector(config)
    model.to(dtype).save_pretrained(out)
    Wav2Vec2FeatureExtractor(**PREPROCESSOR).save_pretrained(out)
    return out
