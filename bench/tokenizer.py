"""The byte-level BPE tokenizer of a random-weight checkpoint (bench.checkpoints), in the official files' form.

Its special tokens sit at their real ids (`TOKEN_IDS`, from 151643 on, as in Qwen/Qwen3-ASR-0.6B), its
pre-tokenizer is Qwen2's, and its vocabulary is the 256 byte symbols plus the merges that make each of the pieces
it is given a single token (the checkpoint rig's words), so the rigged models can write whole words.
"""
from __future__ import annotations

import json
from pathlib import Path

# The added-token table of the real tokenizer, from id 151643 on: (content, special).
_ADDED = ([(t, True) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
                                "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
                                "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
                                "<|video_pad|>")]
          + [(t, False) for t in ("<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                                  "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
                                  "</tool_response>", "<think>", "</think>")]
          + [(t, True) for t in ("<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>",
                                  "<tts_text_bos_single>")]
          + [("<non_speech>", False), ("<|audio_pad|>", True)]
          + [(f"<blank{i}>", True) for i in range(1, 28)]
          + [("<asr_text>", False), ("<timestamp>", False)])
TOKEN_IDS = {content: 151643 + i for i, (content, _) in enumerate(_ADDED)}
_ADDITIONAL_SPECIAL = ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
                       "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                       "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<|audio_start|>", "<|audio_end|>",
                       "<tts_pad>", "<tts_text_bos>", "<tts_text_bos_single>", "<|audio_pad|>"]
_MEDIA_TOKENS = {"audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>",
                 "audio_token": "<|audio_pad|>", "image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                 "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"}
_PRETOKENIZE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")


def _byte_symbols() -> list[str]:
    """The printable stand-in for each byte used by byte-level BPE (GPT-2's scheme: visible bytes map to themselves,
    the rest to code points from 256 up, in byte order)."""
    visible = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    out, extra = [], 0
    for b in range(256):
        if b in visible:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def _pre_tokenizer():
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(_PRETOKENIZE), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def pretokenize(text: str) -> list[str]:
    """`text` cut into the pieces the tokenizer encodes separately, in byte symbols (" fox" -> "Ġfox")."""
    return [p for p, _ in _pre_tokenizer().pre_tokenize_str(text)]


def _apply_merges(piece: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    parts = list(piece)
    while len(parts) > 1:
        rank, i = min((ranks.get(pair, 1 << 30), i) for i, pair in enumerate(zip(parts, parts[1:])))
        if rank == 1 << 30:
            break
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts


def write_tokenizer(out: Path, whole: list[str]) -> dict[str, int]:
    """tokenizer.json (+ vocab.json, merges.txt, tokenizer_config.json) in `out`, with merges that make every piece
    of `whole` (byte symbols, as `pretokenize` gives them; added tokens are skipped) one token; returns the
    vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    vocab = {sym: i for i, sym in enumerate(_byte_symbols())}
    ranks: dict[tuple[str, str], int] = {}
    for piece in whole:
        if piece in TOKEN_IDS:
            continue
        while len(parts := _apply_merges(piece, ranks)) > 1:
            ranks[(parts[0], parts[1])] = len(ranks)
            vocab.setdefault(parts[0] + parts[1], len(vocab))
    vocab.update(TOKEN_IDS)
    merges = sorted(ranks, key=ranks.get)
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(c, special=True, normalized=False) for c, s in _ADDED if s])
    tok.add_tokens([AddedToken(c, special=False, normalized=False) for c, s in _ADDED if not s])
    tok.save(str(out / "tokenizer.json"))
    (out / "vocab.json").write_text(json.dumps({k: v for k, v in vocab.items() if k not in TOKEN_IDS},
                                               ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    decoder = {str(TOKEN_IDS[c]): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                                   "single_word": False, "special": s} for c, s in _ADDED}
    config = {"add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": decoder,
              "additional_special_tokens": _ADDITIONAL_SPECIAL, **_MEDIA_TOKENS, "bos_token": None,
              "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace",
              "extra_special_tokens": dict(_MEDIA_TOKENS), "model_max_length": 131072, "pad_token": "<|endoftext|>",
              "processor_class": "Qwen3ASRProcessor", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer",
              "unk_token": None}
    config_text = json.dumps(dict(sorted(config.items())), indent=2, ensure_ascii=False) + "\n"
    (out / "tokenizer_config.json").write_text(config_text)
    return vocab
