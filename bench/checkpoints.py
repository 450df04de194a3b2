"""Random-weight checkpoints in the official Qwen3-ASR / Qwen3-ForcedAligner layout: tiny for tests, full for the GPU.

Each directory holds what `Qwen/Qwen3-ASR-0.6B` / `Qwen/Qwen3-ForcedAligner-0.6B` ship, so every loader (our
transformers path through core.models.layout, vLLM natively) reads it as it would read the real thing: config.json (top
level plus `thinker_config` with `audio_config` and `text_config`, every key of the real files), model.safetensors
with the official tensor names, a byte-level BPE tokenizer whose special tokens sit at their real ids (bench.tokenizer),
preprocessor_config.json, generation_config.json and, for the ASR, chat_template.json. Shapes come from `Dims`, and
tests/test_checkpoints.py checks the full-size ones against the reference manifest, so nothing is downloaded.
Init: norm weights ones, biases zeros, the rest N(0, 0.02).

rig=True makes the random models behave just enough for the code downstream to see real output:

* ASR, a bigram chain. The chain tokens ("\\n", "language", " English", "<asr_text>", the pieces of
  `RIG_TEXT`, "<|im_end|>") each own one embedding dimension (value 100; other tokens only have noise there). In the
  last decoder layer, MLP neuron i fires only on chain token i's dimension and writes token i+1's dimension, much
  stronger. The final norm keeps only the chain dimensions, so the tied head's argmax after chain token i is token
  i+1. A prompt ends in "\\n" (or "<asr_text>" when the language is forced), so greedy decoding writes
  `language English<asr_text>` + RIG_TEXT and stops on <|im_end|>, whatever the audio.
* Aligner, a counter. Layer 0 attends uniformly (its query weights are zero) and its values carry two indicators,
  "is <timestamp>" and "is <|audio_start|>", into two clean residual dimensions: n/L and 1/L after L tokens of which
  n are timestamps. The final norm keeps only those two, and head row c is (c, -c^2/(2m)) on them, whose argmax is
  c = m*n. So the k-th <timestamp> (1-based) predicts class m*k, i.e. word j spans RIG_STEP_S*(2j+1) to
  RIG_STEP_S*(2j+2) seconds. Exact in float32; bfloat16 rounding of c^2 blurs it (the full-size benchmark only
  needs the cost, not the times).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from bench.tokenizer import TOKEN_IDS, pretokenize, write_tokenizer

# ---------------------------------------------------------------------------------------------- dimensions, names


@dataclass(frozen=True)
class Dims:
    audio_d: int
    audio_layers: int
    audio_heads: int
    audio_ffn: int
    downsample: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    inter: int
    vocab: int
    max_pos: int
    mrope_section: tuple[int, int, int]


ASR_FULL = Dims(896, 18, 14, 3584, 480, 1024, 28, 16, 8, 128, 3072, 151936, 65536, (24, 20, 20))
ALIGNER_FULL = replace(ASR_FULL, audio_d=1024, audio_layers=24, audio_heads=16, audio_ffn=4096, vocab=152064,
                       max_pos=8192)
# Head sizes of 64 as in the real audio tower: kernels that accept the real model accept these.
ASR_TINY = Dims(64, 2, 1, 128, 16, 32, 2, 2, 1, 64, 64, 151936, 65536, (12, 10, 10))
ALIGNER_TINY = replace(ASR_TINY, vocab=152064, max_pos=8192)
CLASSIFY_NUM = 5000
TIMESTAMP_SEGMENT_MS = 80
MEL_BINS = 128


def tensor_shapes(kind: str, d: Dims) -> dict[str, tuple[int, ...]]:
    """Every tensor of the official checkpoint (the ASR's tied `thinker.lm_head.weight` included) -> shape."""
    s: dict[str, tuple[int, ...]] = {}
    a, ad, ds = "thinker.audio_tower.", d.audio_d, d.downsample
    for i in range(d.audio_layers):
        p = f"{a}layers.{i}."
        for n in ("k_proj", "v_proj", "q_proj", "out_proj"):
            s[f"{p}self_attn.{n}.weight"], s[f"{p}self_attn.{n}.bias"] = (ad, ad), (ad,)
        s[f"{p}self_attn_layer_norm.weight"], s[f"{p}self_attn_layer_norm.bias"] = (ad,), (ad,)
        s[f"{p}fc1.weight"], s[f"{p}fc1.bias"] = (d.audio_ffn, ad), (d.audio_ffn,)
        s[f"{p}fc2.weight"], s[f"{p}fc2.bias"] = (ad, d.audio_ffn), (ad,)
        s[f"{p}final_layer_norm.weight"], s[f"{p}final_layer_norm.bias"] = (ad,), (ad,)
    s[f"{a}ln_post.weight"], s[f"{a}ln_post.bias"] = (ad,), (ad,)
    for n, cin in (("conv2d1", 1), ("conv2d2", ds), ("conv2d3", ds)):
        s[f"{a}{n}.weight"], s[f"{a}{n}.bias"] = (ds, cin, 3, 3), (ds,)
    freq = MEL_BINS
    for _ in range(3):  # three stride-2 convolutions over the mel axis
        freq = (freq + 1) // 2
    s[f"{a}conv_out.weight"] = (ad, ds * freq)
    s[f"{a}proj1.weight"], s[f"{a}proj1.bias"] = (ad, ad), (ad,)
    s[f"{a}proj2.weight"], s[f"{a}proj2.bias"] = (d.hidden, ad), (d.hidden,)
    h, q, kv = d.hidden, d.heads * d.head_dim, d.kv_heads * d.head_dim
    s["thinker.model.embed_tokens.weight"] = (d.vocab, h)
    for i in range(d.layers):
        p = f"thinker.model.layers.{i}."
        s[f"{p}self_attn.q_proj.weight"], s[f"{p}self_attn.k_proj.weight"] = (q, h), (kv, h)
        s[f"{p}self_attn.v_proj.weight"], s[f"{p}self_attn.o_proj.weight"] = (kv, h), (h, q)
        s[f"{p}self_attn.q_norm.weight"], s[f"{p}self_attn.k_norm.weight"] = (d.head_dim,), (d.head_dim,)
        s[f"{p}mlp.gate_proj.weight"], s[f"{p}mlp.up_proj.weight"] = (d.inter, h), (d.inter, h)
        s[f"{p}mlp.down_proj.weight"] = (h, d.inter)
        s[f"{p}input_layernorm.weight"], s[f"{p}post_attention_layernorm.weight"] = (h,), (h,)
    s["thinker.model.norm.weight"] = (h,)
    s["thinker.lm_head.weight"] = (d.vocab if kind == "asr" else CLASSIFY_NUM, h)
    return s


# ---------------------------------------------------------------------------------------------------- config.json

_COMMON = {  # the generic PretrainedConfig keys both sub-configs carry in the real files
    "_name_or_path": "", "add_cross_attention": False, "architectures": None, "bad_words_ids": None,
    "begin_suppress_tokens": None, "bos_token_id": None, "chunk_size_feed_forward": 0,
    "cross_attention_hidden_size": None, "decoder_start_token_id": None, "diversity_penalty": 0.0,
    "do_sample": False, "dtype": None, "early_stopping": False, "encoder_no_repeat_ngram_size": 0,
    "eos_token_id": None, "exponential_decay_length_penalty": None, "finetuning_task": None,
    "forced_bos_token_id": None, "forced_eos_token_id": None, "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "initializer_range": 0.02, "is_decoder": False, "is_encoder_decoder": False,
    "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "length_penalty": 1.0, "max_length": 20, "min_length": 0,
    "no_repeat_ngram_size": 0, "num_beam_groups": 1, "num_beams": 1, "num_return_sequences": 1,
    "output_attentions": False, "output_hidden_states": False, "output_scores": False, "pad_token_id": None,
    "prefix": None, "problem_type": None, "pruned_heads": {}, "remove_invalid_values": False,
    "repetition_penalty": 1.0, "return_dict": True, "return_dict_in_generate": False, "sep_token_id": None,
    "suppress_tokens": None, "task_specific_params": None, "temperature": 1.0, "tf_legacy_loss": False,
    "tie_encoder_decoder": False, "tokenizer_class": None, "top_k": 50, "top_p": 1.0, "torchscript": False,
    "typical_p": 1.0, "use_bfloat16": False,
}
ASR_LANGUAGES = ["Chinese", "English", "Cantonese", "Arabic", "German", "French", "Spanish", "Portuguese",
                 "Indonesian", "Italian", "Korean", "Russian", "Thai", "Vietnamese", "Japanese", "Turkish", "Hindi",
                 "Malay", "Dutch", "Swedish", "Danish", "Finnish", "Polish", "Czech", "Filipino", "Persian", "Greek",
                 "Romanian", "Hungarian", "Macedonian"]
ALIGNER_LANGUAGES = ["Chinese", "Cantonese", "English", "German", "Spanish", "French", "Italian", "Portuguese",
                     "Russian", "Korean", "Japanese"]


def official_config(kind: str, d: Dims) -> dict:
    """config.json as the official checkpoint writes it, for `kind` "asr" or "aligner" with dimensions `d`."""
    tie = kind == "asr"
    audio = dict(_COMMON, activation_dropout=0, activation_function="gelu", attention_dropout=0,
                 conv_chunksize=500, d_model=d.audio_d, downsample_hidden_size=d.downsample, dropout=0,
                 encoder_attention_heads=d.audio_heads, encoder_ffn_dim=d.audio_ffn, encoder_layers=d.audio_layers,
                 max_source_positions=1500, model_type="qwen3_asr_audio_encoder", n_window=50, n_window_infer=800,
                 num_hidden_layers=d.audio_layers, num_mel_bins=MEL_BINS, output_dim=d.hidden, scale_embedding=False,
                 tie_word_embeddings=tie)
    rope = {"interleaved": True, "mrope_interleaved": True, "mrope_section": list(d.mrope_section),
            "rope_type": "default", "type": "default"}
    text = dict(_COMMON, attention_bias=False, attention_dropout=0.0, head_dim=d.head_dim, hidden_act="silu",
                hidden_size=d.hidden, intermediate_size=d.inter, max_position_embeddings=d.max_pos, model_type="qwen3",
                num_attention_heads=d.heads, num_hidden_layers=d.layers, num_key_value_heads=d.kv_heads,
                rms_norm_eps=1e-06, rope_scaling=rope, rope_theta=1000000, tie_word_embeddings=tie, use_cache=True,
                vocab_size=d.vocab)
    thinker = {"model_type": "qwen3_asr" if tie else "qwen3_forced_aligner"}
    if not tie:
        thinker["classify_num"] = CLASSIFY_NUM
    thinker.update({"architectures": ["Qwen3ASRForConditionalGeneration"],
                    "audio_config": dict(sorted(audio.items())), "audio_end_token_id": TOKEN_IDS["<|audio_end|>"],
                    "audio_start_token_id": TOKEN_IDS["<|audio_start|>"],
                    "audio_token_id": TOKEN_IDS["<|audio_pad|>"], "dtype": "bfloat16", "initializer_range": 0.02,
                    "text_config": dict(sorted(text.items()))})
    top: dict = {"architectures": ["Qwen3ASRForConditionalGeneration"]}
    if not tie:
        top.update(timestamp_token_id=TOKEN_IDS["<timestamp>"], timestamp_segment_time=TIMESTAMP_SEGMENT_MS)
    top.update(model_type="qwen3_asr", support_languages=ASR_LANGUAGES if tie else ALIGNER_LANGUAGES,
               thinker_config=thinker, transformers_version="4.57.6")
    return top


# ----------------------------------------------------------------------------------------------------- other files

# The official ASR checkpoint's template, rewritten: system turn (the context, possibly empty), user turn holding
# the audio placeholder, and the assistant turn left open (a prefilled "language X<asr_text>" goes there).
ASR_CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='', audio='', assistant='', open=false) -%}"
    "{%- for m in messages -%}"
    "{%- set parts = [{'type': 'text', 'text': m.content}] if m.content is string else m.content -%}"
    "{%- for p in parts -%}"
    "{%- if p.type == 'audio' or 'audio' in p or 'audio_url' in p -%}"
    "{%- set ns.audio = ns.audio + '<|audio_start|><|audio_pad|><|audio_end|>' -%}"
    "{%- elif p.type == 'text' and m.role == 'system' -%}{%- set ns.system = ns.system + p.text -%}"
    "{%- elif p.type == 'text' and m.role == 'assistant' -%}{%- set ns.assistant = ns.assistant + p.text -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if m.role == 'assistant' -%}{%- set ns.open = true -%}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_start|>system\\n' + ns.system + '<|im_end|>\\n<|im_start|>user\\n' + ns.audio + '<|im_end|>\\n' -}}"
    "{%- if add_generation_prompt or ns.open -%}{{- '<|im_start|>assistant\\n' + ns.assistant -}}{%- endif -%}"
)
PREPROCESSOR_CONFIG = {"chunk_length": 30, "dither": 0.0, "feature_extractor_type": "WhisperFeatureExtractor",
                       "feature_size": MEL_BINS, "hop_length": 160, "n_fft": 400, "n_samples": 480000,
                       "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0,
                       "processor_class": "Qwen3ASRProcessor", "return_attention_mask": True, "sampling_rate": 16000}
GENERATION_CONFIG = {"_from_model_config": True, "eos_token_id": [TOKEN_IDS["<|endoftext|>"], TOKEN_IDS["<|im_end|>"]],
                     "pad_token_id": TOKEN_IDS["<|endoftext|>"], "do_sample": False}


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------------------- weights


def _random_tensors(shapes: dict, device: str, dtype: torch.dtype, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith("norm.weight") or name.endswith("ln_post.weight"):
            out[name] = torch.ones(shape, dtype=dtype, device=device)
        elif name.endswith(".bias"):
            out[name] = torch.zeros(shape, dtype=dtype, device=device)
        else:
            out[name] = torch.empty(shape, dtype=dtype, device=device).normal_(0.0, 0.02, generator=gen)
    return out


# ------------------------------------------------------------------------------------------------------------- rig

RIG_LANGUAGE = "English"
RIG_TEXT = "The quick brown fox jumps over a lazy dog. Small birds sing in tall green trees!"
RIG_WORDS = RIG_TEXT.split()
RIG_STEP_CLASSES = 2  # the aligner rig's m: classes per <timestamp> seen
RIG_STEP_S = RIG_STEP_CLASSES * TIMESTAMP_SEGMENT_MS / 1000
_RIG_SCALE = 100.0


def _rig_chain_pieces() -> list[str]:
    return ["\u010a", *pretokenize(f"language {RIG_LANGUAGE}"), "<asr_text>", *pretokenize(RIG_TEXT), "<|im_end|>"]


def _rig_asr(t: dict[str, torch.Tensor], d: Dims, vocab: dict[str, int]) -> None:
    chain = [vocab[p] for p in _rig_chain_pieces()]
    assert len(set(chain)) == len(chain) and len(chain) <= min(d.hidden, d.inter), "rig chain must be distinct"
    emb, last = t["thinker.model.embed_tokens.weight"], f"thinker.model.layers.{d.layers - 1}.mlp."
    gate, up, down = t[last + "gate_proj.weight"], t[last + "up_proj.weight"], t[last + "down_proj.weight"]
    dims = list(range(len(chain)))  # chain token i owns embedding dimension i
    for i, tok in enumerate(chain):
        emb[tok, dims] = 0.0
        emb[tok, i] = _RIG_SCALE  # far above the noise 28 random layers add to the residual (about 4 per dim)
        gate[i], up[i], down[:, i] = 0.0, 0.0, 0.0
        gate[i, i] = up[i, i] = 1.0  # fires on token i's dimension (about sqrt(hidden) after the norm)
        if i + 1 < len(chain):
            down[i + 1, i] = _RIG_SCALE  # and writes token i+1's, about `hidden` times stronger than token i's
    norm = t["thinker.model.norm.weight"]
    norm.zero_()
    norm[dims] = 1.0


def _rig_aligner(t: dict[str, torch.Tensor], d: Dims) -> None:
    is_ts, is_start, ts_avg, start_avg = 0, 1, 2, 3  # residual dimensions
    emb = t["thinker.model.embed_tokens.weight"]
    emb[:, :4] = 0.0
    for tok, dim in ((TOKEN_IDS["<timestamp>"], is_ts), (TOKEN_IDS["<|audio_start|>"], is_start)):
        emb[tok] = 0.0
        emb[tok, dim] = 1.0
    t["thinker.audio_tower.proj2.weight"][:4] = 0.0  # audio features stay out of the four dimensions
    for i in range(d.layers):  # nothing else writes the two counters
        p = f"thinker.model.layers.{i}."
        t[p + "self_attn.o_proj.weight"][ts_avg:start_avg + 1] = 0.0
        t[p + "mlp.down_proj.weight"][ts_avg:start_avg + 1] = 0.0
    p = "thinker.model.layers.0.self_attn."
    t[p + "q_proj.weight"].zero_()  # all scores 0: attention is a plain average over the tokens so far
    v = t[p + "v_proj.weight"]
    v[:2] = 0.0
    v[0, is_ts] = v[1, is_start] = d.hidden ** -0.5  # undo the input norm: value = indicator
    t[p + "o_proj.weight"][ts_avg, 0] = t[p + "o_proj.weight"][start_avg, 1] = 1.0
    norm = t["thinker.model.norm.weight"]
    norm.zero_()
    norm[ts_avg] = norm[start_avg] = 1.0
    head = t["thinker.lm_head.weight"]
    c = torch.arange(CLASSIFY_NUM, dtype=torch.float64, device=head.device)
    head.zero_()
    head[:, ts_avg] = c.to(head.dtype)
    head[:, start_avg] = (-c * c / (2 * RIG_STEP_CLASSES)).to(head.dtype)


# -------------------------------------------------------------------------------------------------------- builders


def _resolve(size: str, kind: str, dtype) -> tuple[Dims, torch.dtype]:
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    dims = {("asr", "tiny"): ASR_TINY, ("asr", "full"): ASR_FULL,
            ("aligner", "tiny"): ALIGNER_TINY, ("aligner", "full"): ALIGNER_FULL}[(kind, size)]
    if dtype is None:
        dtype = torch.float32 if size == "tiny" else torch.bfloat16
    return dims, getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _build(kind: str, out_dir, size: str, device: str, dtype, seed: int, rig: bool) -> Path:
    dims, dtype = _resolve(size, kind, dtype)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(out, _rig_chain_pieces())  # every rig word one token
    shapes = tensor_shapes(kind, dims)
    if kind == "asr":
        del shapes["thinker.lm_head.weight"]  # tied to the embeddings, absent from the real file
    with torch.no_grad():
        tensors = _random_tensors(shapes, device, dtype, seed)
        if rig:
            _rig_asr(tensors, dims, vocab) if kind == "asr" else _rig_aligner(tensors, dims)
    save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    _dump(out / "config.json", official_config(kind, dims))
    _dump(out / "generation_config.json", GENERATION_CONFIG)
    _dump(out / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    if kind == "asr":
        _dump(out / "chat_template.json", {"chat_template": ASR_CHAT_TEMPLATE})
    return out


def build_asr_checkpoint(out_dir, *, size: str = "tiny", device: str = "cpu", dtype=None, seed: int = 0,
                         rig: bool = True) -> Path:
    """Write a Qwen3-ASR checkpoint (official layout) into `out_dir`; dtype defaults to float32 tiny, bf16 full."""
    return _build("asr", out_dir, size, device, dtype, seed, rig)


def build_aligner_checkpoint(out_dir, *, size: str = "tiny", device: str = "cpu", dtype=None, seed: int = 0,
                             rig: bool = True) -> Path:
    """Write a Qwen3-ForcedAligner checkpoint (official layout) into `out_dir`; same defaults as the ASR one."""
    return _build("aligner", out_dir, size, device, dtype, seed, rig)


def rig_word_times(n_words: int) -> list[tuple[float, float]]:
    """What the rigged aligner predicts for word j of n (seconds from the chunk start, before clamping to it)."""
    return [(RIG_STEP_S * (2 * j + 1), RIG_STEP_S * (2 * j + 2)) for j in range(n_words)]


def build_all(size: str, root, device: str = "cpu") -> list[Path]:
    """Every checkpoint the product loads, into ROOT/asr, ROOT/aligner and ROOT/diarizer."""
    from bench.speaker_checkpoint import build_diarizer_checkpoint

    root = Path(root)
    return [build_asr_checkpoint(root / "asr", size=size, device=device),
            build_aligner_checkpoint(root / "aligner", size=size, device=device),
            build_diarizer_checkpoint(root / "diarizer", size=size, device=device)]


if __name__ == "__main__":  # python -m bench.checkpoints tiny|full DIR [cpu|cuda]
    import sys

    if len(sys.argv) < 3 or sys.argv[1] not in ("tiny", "full"):
        sys.exit("usage: python -m bench.checkpoints tiny|full DIR [cpu|cuda]  (writes DIR/asr, DIR/aligner, "
                 "DIR/diarizer)")
    for path in build_all(sys.argv[1], sys.argv[2], (sys.argv[3:] or ["cpu"])[0]):
        print(path)
