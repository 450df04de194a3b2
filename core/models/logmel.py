"""Log-mel features for many clips at once on the model's device, the same numbers the feature extractors compute.

The Hugging Face extractors take one clip per call: NumPy padding and copies, an upload, the spectrogram, a download
to NumPy, and (for our batches) another upload. That overhead, not the arithmetic, cost ~10 ms a clip: 1.1-1.2 s of
the ASR's 1.4-1.6 s hand-over to vLLM and 0.6 s of the aligner per audio hour (bench/RESULTS.md, run 6). Here all
clips go up in one copy and each is transformed on the device with exactly the extractor's own operations (same
shapes, same order: `_torch_extract_fbank_features`), so a clip's features do not depend on its batch mates.
"""
from __future__ import annotations

import numpy as np


def log_mel(clips, extractor, device, *, min_samples: int = 0):
    """(features, frames): features[i, :, :frames[i]] are clip i's log-mel (float32, on `device`), zeros after.

    `extractor` supplies the recipe (n_fft, hop, mel filters, dither). `min_samples` zero-pads shorter clips first
    (transformers' Qwen3-ASR extractor does so for clips under 0.5 s). A clip gives len // hop frames.
    """
    import torch
    from transformers import WhisperFeatureExtractor

    arrays = []
    for clip in clips:
        a = np.asarray(clip, dtype=np.float32)
        if a.ndim != 1:
            raise ValueError(f"audio must be mono samples (1-D), not shape {a.shape}")
        if len(a) < min_samples:
            a = np.pad(a, (0, min_samples - len(a)))
        arrays.append(a)
    hop, n_fft = extractor.hop_length, extractor.n_fft
    lengths = [len(a) for a in arrays]
    frames = [n // hop for n in lengths]
    filters = torch.from_numpy(extractor.mel_filters).to(device, torch.float32)
    out = torch.zeros(len(arrays), filters.shape[1], max(frames, default=0), device=device)
    if not arrays:
        return out, frames
    flat = torch.from_numpy(np.concatenate(arrays)).to(device)
    window = torch.hann_window(n_fft, device=device)
    contiguous = isinstance(extractor, WhisperFeatureExtractor)  # Whisper's copy makes the magnitudes contiguous
    for i, wave in enumerate(torch.split(flat, lengths)):
        wave = wave[None]  # the extractors transform a batch of one
        if extractor.dither:
            wave = wave + extractor.dither * torch.randn(wave.shape, dtype=wave.dtype, device=wave.device)
        magnitudes = torch.stft(wave, n_fft, hop, window=window, return_complex=True)[..., :-1].abs() ** 2
        if contiguous:
            magnitudes = magnitudes.contiguous()
        spec = torch.clamp(filters.T @ magnitudes, min=1e-10).log10()
        peak = spec.max(dim=2, keepdim=True)[0].max(dim=1, keepdim=True)[0]
        out[i, :, :frames[i]] = ((torch.maximum(spec, peak - 8.0) + 4.0) / 4.0)[0]
    return out, frames
