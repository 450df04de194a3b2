"""Log-mel features for vLLM computed here on the GPU and handed to the engine ready-made (VLLM_AUDIO_FEATURES=gpu).

By default vLLM's front end runs the Whisper feature extractor in NumPy for every chunk, one after another, before
the engine sees the chunk (0.83 s of CPU for an hour against 0.38 s on CUDA, bench/RESULTS.md). vLLM 0.26 also takes
the features themselves (`input_audio_features` + `audio_feature_lengths`, with `enable_mm_embeds=True`), but its
Qwen3-ASR processor then still calls the Hugging Face processor on the prompt text alone, which fails counting audio
it was not given. `register_processor` re-registers that processor (vLLM's registry API for multimodal processors)
with one change: a call without audio just tokenizes the text. vLLM then expands the prompt's single `<|audio_pad|>`
from `audio_feature_lengths` exactly as it does for raw audio.

The features are what vLLM's processor would compute: each chunk padded with zeros to a whole hop (as vLLM's
processor does), Whisper's extractor (its torch path, on our device), cast to the engine's dtype (the audio tower
casts to it first thing, so the tower sees the same numbers). Each chunk gets a fresh uuid, so vLLM neither hashes
1.5 MB of features per chunk nor serves one chunk's cached encoding to another.

vllm is imported only inside functions: CPU installs never import it.
"""
from __future__ import annotations

import uuid

import numpy as np

_REGISTERED = False


def register_processor() -> None:
    """Let vLLM's Qwen3-ASR processor take prompts whose audio comes as features (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers.feature_extraction_utils import BatchFeature
    from vllm.model_executor.models import qwen3_asr
    from vllm.multimodal import MULTIMODAL_REGISTRY

    class FeaturesReadyProcessor(qwen3_asr.Qwen3ASRMultiModalProcessor):
        def _call_hf_processor(self, prompt, mm_data, mm_kwargs, tok_kwargs):
            if mm_data.get("audio") or mm_data.get("audios"):
                return super()._call_hf_processor(prompt, mm_data, mm_kwargs, tok_kwargs)
            ids = self.info.get_tokenizer().encode(prompt, add_special_tokens=False)
            return BatchFeature({"input_ids": [ids]})

    MULTIMODAL_REGISTRY.register_processor(FeaturesReadyProcessor, info=qwen3_asr.Qwen3ASRProcessingInfo,
                                           dummy_inputs=qwen3_asr.Qwen3ASRDummyInputsBuilder)(
        qwen3_asr.Qwen3ASRForConditionalGeneration)
    _REGISTERED = True


def whisper_extractor(model_id: str):
    """The feature extractor vLLM's processor uses: Whisper's, from the checkpoint's preprocessor_config.json (not
    transformers' Qwen3ASRFeatureExtractor, which pads short clips and the mel axis differently)."""
    from transformers import WhisperFeatureExtractor

    from ..hf_layout import _FEATURE_KEYS, read_json

    features = read_json(model_id, "preprocessor_config.json") or {}
    return WhisperFeatureExtractor(**{k: features[k] for k in _FEATURE_KEYS if k in features})


def audio_features(extractor, audio: np.ndarray, device: str, dtype) -> dict:
    """One chunk's multi_modal_data["audio"] entry: log-mel computed on `device`, returned on the CPU."""
    import torch

    hop = extractor.hop_length
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) % hop:
        audio = np.pad(audio, (0, hop - len(audio) % hop))
    out = extractor(audio, sampling_rate=extractor.sampling_rate, padding="longest", truncation=False,
                    return_tensors="np", device=device)
    features = torch.from_numpy(out["input_features"][0]).to(dtype)  # (mel bins, frames)
    frames = len(audio) // hop
    features = features[:, :frames]
    return {"input_audio_features": features, "audio_feature_lengths": torch.tensor([frames]),
            "feature_attention_mask": torch.ones(1, frames, dtype=torch.int32)}


def fresh_uuid() -> str:
    """A never-repeated id for one chunk's audio (vLLM's caches are keyed by it)."""
    return uuid.uuid4().hex
