"""Log-mel features for vLLM computed here on the GPU and handed to the engine ready-made (VLLM_AUDIO_FEATURES=gpu).

Left to itself, vLLM's front end runs the Whisper feature extractor on the CPU for every chunk, one after another,
before the engine sees the chunk: 28 ms a chunk, 3.3-3.6 s of an hour's 4.3-4.8 s of ASR (bench/RESULTS.md, run 5). vLLM 0.26 also takes
the features themselves (`input_audio_features` + `audio_feature_lengths`, with `enable_mm_embeds=True`), but its
Qwen3-ASR processor then still calls the Hugging Face processor on the prompt text alone, which fails counting audio
it was not given. `register_processor` re-registers that processor (vLLM's registry API for multimodal processors)
with one change: a call without audio just tokenizes the text. vLLM then expands the prompt's single `<|audio_pad|>`
from `audio_feature_lengths` exactly as it does for raw audio.

The features are what vLLM's processor would compute: each chunk padded with zeros to a whole hop (as vLLM's
processor does), Whisper's recipe as its extractor's torch path runs it (core.models.logmel: a group of chunks in one pass
on our device, not one extractor call per chunk), cast to the engine's dtype (the audio tower
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

    from core.models.layout import FEATURE_KEYS, read_json

    features = read_json(model_id, "preprocessor_config.json") or {}
    return WhisperFeatureExtractor(**{k: features[k] for k in FEATURE_KEYS if k in features})


def audio_features(extractor, audios, device: str, dtype) -> list[dict]:
    """multi_modal_data["audio"] entries for a group of chunks: log-mel computed on `device` in one pass
    (core.models.logmel), cast to the engine's dtype there, brought back to the CPU in one copy."""
    import torch

    from core.models.logmel import log_mel

    hop = extractor.hop_length
    padded = []
    for audio in audios:
        audio = np.asarray(audio, dtype=np.float32)
        padded.append(np.pad(audio, (0, -len(audio) % hop)))  # vLLM's processor pads each chunk to a whole hop
    features, frames = log_mel(padded, extractor, device)
    features = features.to(dtype).cpu()
    return [{"input_audio_features": features[i, :, :n].contiguous(), "audio_feature_lengths": torch.tensor([n]),
             "feature_attention_mask": torch.ones(1, n, dtype=torch.int32)} for i, n in enumerate(frames)]


def fresh_uuid() -> str:
    """A never-repeated id for one chunk's audio (vLLM's caches are keyed by it)."""
    return uuid.uuid4().hex
