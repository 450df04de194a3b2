"""Load Qwen3-ASR / Qwen3-ForcedAligner checkpoints into transformers 5's native classes.

The official checkpoints (what vLLM reads as they are) nest their configuration under `thinker_config` and name
tensors `thinker.*`. transformers 5 has the same architecture as `Qwen3ASRForConditionalGeneration` and
`Qwen3ASRForTokenClassification`, with a flat config and other tensor names. So the config is converted in memory and
the tensors are renamed while loading (`key_mapping`): one directory serves both engines, nothing is converted on
disk. A checkpoint already in the transformers layout (the `-hf` repos) loads unchanged.

Model ids are local directories or hub ids; hub files come through the normal Hugging Face cache.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from core.config import Config
from core.errors import ModelError
from core.models.window_attention import use_windowed_attention

log = logging.getLogger("core")

# Official name -> transformers 5.17 name. Renamings chain in order, so the projector comes before the tower.
ASR_KEY_MAPPING = {
    r"^thinker\.audio_tower\.proj1\.": "model.multi_modal_projector.linear_1.",
    r"^thinker\.audio_tower\.proj2\.": "model.multi_modal_projector.linear_2.",
    r"^thinker\.audio_tower\.": "model.audio_tower.",
    r"^thinker\.model\.": "model.language_model.",
    r"^thinker\.lm_head\.": "lm_head.",
}
ALIGNER_KEY_MAPPING = {**ASR_KEY_MAPPING, r"^thinker\.lm_head\.": "score."}

_AUDIO_KEYS = ("num_mel_bins", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim", "d_model", "dropout",
               "attention_dropout", "activation_function", "activation_dropout", "scale_embedding",
               "initializer_range", "n_window", "output_dim", "n_window_infer", "downsample_hidden_size")
_TEXT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "initializer_range",
              "rms_norm_eps", "use_cache", "tie_word_embeddings", "attention_bias", "attention_dropout")
FEATURE_KEYS = ("feature_size", "sampling_rate", "hop_length", "chunk_length", "n_fft", "padding_value", "dither")
DEFAULT_SEGMENT_MS = 80.0  # timestamp_segment_time of the released aligner


@dataclass(frozen=True)
class AlignerTiming:
    timestamp_token_id: int
    segment_s: float  # seconds per class of the timestamp head


def read_json(model_id: str, filename: str) -> dict | None:
    """A JSON file of a local checkpoint directory or a hub repo (via the HF cache); None when it has none."""
    from transformers.utils import cached_file

    path = cached_file(model_id, filename, _raise_exceptions_for_missing_entries=False)
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def is_official_layout(config: dict) -> bool:
    return "thinker_config" in config


def hf_config(official: dict, *, aligner: bool):
    """The official config.json (as a dict) -> `Qwen3ASRConfig` for the native transformers classes."""
    from transformers import Qwen3ASRConfig

    thinker = official["thinker_config"]
    audio = {k: thinker["audio_config"][k] for k in _AUDIO_KEYS if k in thinker["audio_config"]}
    audio["model_type"] = "qwen3_asr_encoder"
    src = thinker["text_config"]
    text = {k: src[k] for k in _TEXT_KEYS if k in src}
    # The official rope is interleaved M-RoPE; with audio and text only, its three position streams are equal, which
    # makes it plain 1-D RoPE (what transformers' qwen3 computes).
    text.update(model_type="qwen3", rope_parameters={"rope_type": "default", "rope_theta": float(src["rope_theta"])})
    extra = {}
    if aligner:
        extra = dict(num_labels=int(thinker.get("classify_num", 5000)), tie_word_embeddings=False,
                     timestamp_token_id=int(official.get("timestamp_token_id", 151705)))
    else:
        extra = dict(tie_word_embeddings=bool(src.get("tie_word_embeddings", True)))
    return Qwen3ASRConfig(audio_config=audio, text_config=text, audio_token_id=int(thinker["audio_token_id"]),
                          **extra)


def resolve_device(config: Config):
    """(device, torch dtype) from DEVICE / DTYPE: auto = CUDA in bfloat16 when available, else CPU in float32."""
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("DEVICE=cuda but no CUDA GPU is available")
    name = config.dtype if config.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    dtype = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
             "float32": torch.float32, "fp32": torch.float32}.get(name)
    if dtype is None:
        raise ModelError(f"DTYPE must be auto, bfloat16, float16 or float32, not {config.dtype!r}")
    return device, dtype


def _load(cls, model_id: str, key_mapping: dict, device: str, dtype, what: str, *, aligner: bool):
    env = f"{what.upper()}_MODEL"
    try:
        official = read_json(model_id, "config.json")
        if official is None:
            raise ModelError(f"the {what} model has no config.json; check {env}")
        # The renames only match official names, so they are harmless on an -hf checkpoint, and they also fix one
        # written by `save_pretrained` after such a load (transformers writes the source names back).
        kwargs = {"dtype": dtype, "output_loading_info": True, "key_mapping": key_mapping}
        if is_official_layout(official):
            kwargs["config"] = hf_config(official, aligner=aligner)
        model, info = cls.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        log.exception("loading %s model %s failed", what, model_id)
        raise ModelError(f"could not load the {what} model ({type(e).__name__}); check {env}") from e
    # A tensor left at its random init would load "fine" and transcribe garbage: refuse instead.
    bad = sorted(info["missing_keys"]) + sorted(info["unexpected_keys"]) + [str(k) for k in info["mismatched_keys"]]
    if bad:
        log.error("%s model %s: missing/unexpected/mismatched tensors: %s", what, model_id, bad[:20])
        raise ModelError(f"the {what} model's weights do not match its architecture; check {env}")
    use_windowed_attention(model)  # the audio encoder's windows in batched calls (core.models.window_attention)
    return model.to(device).eval()


def load_asr_model(model_id: str, device: str, dtype):
    """`Qwen3ASRForConditionalGeneration` from either layout, on `device`, in eval mode."""
    from transformers import Qwen3ASRForConditionalGeneration

    return _load(Qwen3ASRForConditionalGeneration, model_id, ASR_KEY_MAPPING, device, dtype, "asr", aligner=False)


def load_aligner_model(model_id: str, device: str, dtype):
    """`Qwen3ASRForTokenClassification` (the 5000-class timestamp head as `score`) from either layout."""
    from transformers import Qwen3ASRForTokenClassification

    return _load(Qwen3ASRForTokenClassification, model_id, ALIGNER_KEY_MAPPING, device, dtype, "aligner",
                 aligner=True)


def aligner_timing(model_id: str) -> AlignerTiming:
    """Which token marks a word boundary and how long one class of the head lasts."""
    cfg = read_json(model_id, "config.json") or {}
    token = cfg.get("timestamp_token_id", 151705)
    segment_ms = cfg.get("timestamp_segment_time")
    if segment_ms is None:  # -hf layout: the processor carries it
        segment_ms = (read_json(model_id, "processor_config.json") or {}).get("timestamp_segment_time",
                                                                                DEFAULT_SEGMENT_MS)
    return AlignerTiming(int(token), float(segment_ms) / 1000.0)


def load_processor(model_id: str):
    """`Qwen3ASRProcessor` (tokenizer + log-mel feature extractor) for either layout."""
    from transformers import AutoTokenizer, Qwen3ASRFeatureExtractor, Qwen3ASRProcessor

    try:
        if not is_official_layout(read_json(model_id, "config.json") or {}):
            return Qwen3ASRProcessor.from_pretrained(model_id)
        features = read_json(model_id, "preprocessor_config.json") or {}
        extractor = Qwen3ASRFeatureExtractor(**{k: features[k] for k in FEATURE_KEYS if k in features})
        template = (read_json(model_id, "chat_template.json") or {}).get("chat_template")
        return Qwen3ASRProcessor(feature_extractor=extractor, tokenizer=AutoTokenizer.from_pretrained(model_id),
                                 chat_template=template)
    except (OSError, ValueError, KeyError) as e:
        log.exception("loading the processor of %s failed", model_id)
        raise ModelError(f"could not load the tokenizer/feature extractor ({type(e).__name__})") from e


def audio_token_count(n_frames: int) -> int:
    """Audio-encoder output length for `n_frames` mel frames: 13 per full 100-frame window, then three stride-2
    convolutions over the rest. The prompt carries this many <|audio_pad|>."""
    full, rest = divmod(n_frames, 100)
    for _ in range(3):
        rest = (rest + 1) // 2
    return 13 * full + rest


def batch_features(extractor, audios, device, dtype):
    """(features, mask, tokens per clip) for a batch of 16 kHz clips, computed on `device` (core.models.logmel).

    Each clip's log-mel is what the extractor computes for it alone, zero-padded to the batch's length (a multiple of
    the encoder's 100-frame window), so a clip gets the same features and the same text in any batch.
    """
    import torch

    from core.models.logmel import log_mel

    features, frames = log_mel(audios, extractor, device, min_samples=getattr(extractor, "min_length", 0))
    multiple = 2 * getattr(extractor, "n_window", 0)
    width = features.shape[-1]
    if multiple > 1 and width % multiple:
        features = torch.nn.functional.pad(features, (0, multiple - width % multiple))
    mask = (torch.arange(features.shape[-1], device=features.device)[None, :]
            < torch.tensor(frames, device=features.device)[:, None]).long()
    return features.to(dtype), mask, [audio_token_count(n) for n in frames]
