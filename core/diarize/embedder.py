"""A speaker-embedding model from transformers' audio x-vector family (WavLM, UniSpeech-SAT, Wav2Vec2, Data2Vec
`...ForXVector`): `DIARIZER_MODEL` names it, by hub id or local folder in the hub's layout, like the other models.

Windows are embedded in batches of equal length on the pipeline's device, so an hour is a few hundred forward passes.
"""
from __future__ import annotations

import logging

import numpy as np

from core.errors import ModelError
from core.types import SAMPLE_RATE, Progress, no_progress

log = logging.getLogger("core")
GPU_BATCH = 256  # 1.5 s windows: about 6 GiB of activations for a base-size model in bfloat16
CPU_BATCH = 16
UNUSED_AT_INFERENCE = ("objective.", "wavlm.masked_spec_embed", "wav2vec2.masked_spec_embed",
                       "unispeech_sat.masked_spec_embed", "data2vec_audio.masked_spec_embed")


class SpeakerEmbedder:
    """`embed(clips)` -> unit-length speaker embeddings, one row per clip, as a torch tensor on the device."""

    def __init__(self, model_id: str, device: str, dtype) -> None:
        from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

        self.model_id, self.device, self.dtype = model_id, device, dtype
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(model_id)
            model, info = AutoModelForAudioXVector.from_pretrained(model_id, dtype=dtype, output_loading_info=True)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            log.exception("loading diarizer model %s failed", model_id)
            raise ModelError(f"could not load the diarizer model ({type(e).__name__}); check DIARIZER_MODEL") from e
        missing = [k for k in info["missing_keys"] if not k.startswith(UNUSED_AT_INFERENCE)]
        if missing or info["mismatched_keys"]:
            log.error("diarizer model %s: missing/mismatched tensors: %s", model_id,
                      (missing + [str(k) for k in info["mismatched_keys"]])[:20])
            raise ModelError("the diarizer model's weights do not match its architecture; check DIARIZER_MODEL")
        self.model = model.to(device).eval()
        self.batch_size = GPU_BATCH if device == "cuda" else CPU_BATCH

    def describe(self) -> str:
        return f"{self.model_id.rstrip('/').rsplit('/', 1)[-1]} ({self.device})"

    def embed(self, clips: list[np.ndarray], progress: Progress = no_progress):
        """Embeddings of `clips` (float32 16 kHz), in their order; batches group clips of equal length."""
        import torch

        order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
        rows: list = [None] * len(clips)
        done = 0
        progress("diarize", 0, len(clips))
        with torch.inference_mode():
            for batch in _batches(order, clips, self.batch_size):
                # One length per batch: no padding, so no attention mask (pooling then averages every frame).
                feats = self.extractor([clips[i] for i in batch], sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                       return_attention_mask=False)
                values = feats["input_values"].to(self.device, self.dtype)
                out = self.model(input_values=values)
                emb = torch.nn.functional.normalize(out.embeddings.float(), dim=1)
                for i, row in zip(batch, emb):
                    rows[i] = row
                done += len(batch)
                progress("diarize", done, len(clips))
        if not rows:
            return torch.zeros((0, 1))
        return torch.stack(rows)


def _batches(order: list[int], clips, size: int):
    """Runs of `order` at most `size` long, each of one clip length (no padding inside a batch)."""
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == size or len(clips[i]) != len(clips[batch[0]])):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
