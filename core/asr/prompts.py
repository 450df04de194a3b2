"""What Qwen3-ASR is told and how its answer is read: shared by the vLLM and transformers backends.

Both backends build their prompt here, so they send the model the same tokens. The layout is the official chat
template's (checked against transformers' `Qwen3ASRProcessor.apply_transcription_request` in tests/test_asr.py):

    <|im_start|>system\\n{context}<|im_end|>\\n<|im_start|>user\\n<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\\n
    <|im_start|>assistant\\n[language {Name}<asr_text>]

The system turn is always there (empty without context). A forced language prefills the answer's first part, so the
model writes only the text; otherwise it answers `language {Name}<asr_text>{text}`. The single <|audio_pad|> is
expanded to one token per encoder frame by the backend (vLLM does it itself).
"""
from __future__ import annotations

import math
import re

from core.config import Config
from core.languages import language_from_model
from core.types import ChunkText

AUDIO_PLACEHOLDER = "<|audio_start|><|audio_pad|><|audio_end|>"
ASR_TEXT_TAG = "<asr_text>"
# Tokens for "language {Name}<asr_text>" and the end-of-turn token, on top of the per-second budget.
PREFIX_TOKENS = 16

# Control tokens must not reach the prompt through the user's context: an extra <|audio_pad|> breaks the audio
# placeholder count and an <|im_end|> would end the system turn early.
_CONTROL_TOKEN = re.compile(r"<\|[^<>|]{1,40}\|>|</?(?:asr_text|timestamp|non_speech|think|tool_call|tool_response"
                            r"|tts_\w{1,30}|blank\d{1,3})>")
_LANGUAGE_PREFIX = re.compile(r"^\s*language\s+([^\s<]*)\s*$", re.IGNORECASE)
_STRAY_TAG = re.compile(r"\s*(?:language\s+[A-Za-z]+\s*)?<asr_text>\s*")


def clean_context(context: str) -> str:
    """The user's context with control tokens removed and outer whitespace trimmed."""
    return _CONTROL_TOKEN.sub("", context or "").strip()


def build_prompt(context: str = "", language: str | None = None) -> str:
    """The full text prompt for one chunk; `language` is a name from core.languages (None = detect)."""
    prompt = (f"<|im_start|>system\n{clean_context(context)}<|im_end|>\n"
              f"<|im_start|>user\n{AUDIO_PLACEHOLDER}<|im_end|>\n<|im_start|>assistant\n")
    if language:
        prompt += f"language {language}{ASR_TEXT_TAG}"
    return prompt


def parse_output(raw: str) -> tuple[str | None, str]:
    """`language X<asr_text>text` -> (X, text). X is None when the prefix is missing or reads "None" (silence).

    Tolerates output without the prefix (a forced language puts it in the prompt) and answers cut inside it.
    """
    raw = (raw or "").strip()
    if ASR_TEXT_TAG not in raw:
        head = _LANGUAGE_PREFIX.match(raw)
        if head:  # generation stopped before the tag: there is no text yet
            return (head.group(1) or None), ""
        return None, raw
    prefix, text = raw.split(ASR_TEXT_TAG, 1)
    language = None
    head = _LANGUAGE_PREFIX.match(prefix.strip().splitlines()[-1] if prefix.strip() else "")
    if head and head.group(1) and head.group(1).lower() != "none":
        language = head.group(1)
    text = _STRAY_TAG.sub(" ", text)  # a model that restarts its answer mid-way repeats the prefix
    return language, text.strip()


def chunk_text(raw: str, forced_language: str | None, hit_cap: bool) -> ChunkText:
    """A decoded answer -> ChunkText: language as core.languages names it, loops cut, truncation flagged."""
    detected, text = parse_output(raw)
    text, looped = cut_repetitions(text)
    return ChunkText(language=forced_language or language_from_model(detected or ""), text=text,
                     truncated=hit_cap or looped)


def max_new_tokens(duration_s: float, config: Config) -> int:
    """Generation cap for a chunk, scaled by its length so a long chunk is never cut short by a fixed cap."""
    return PREFIX_TOKENS + math.ceil(max(duration_s, 0.0) * config.max_tokens_per_second)


# Repetition loops. A decoder that loops repeats a unit (a character, a word, a phrase) until the cap; speech rarely
# repeats itself verbatim for long. A run is a loop when one character repeats more than MAX_CHAR_RUN times, or a
# longer unit repeats at least MIN_REPEATS times over at least MIN_LOOP_CHARS characters.
MAX_CHAR_RUN = 20
MIN_REPEATS = 4
MIN_LOOP_CHARS = 60
MAX_UNIT_CHARS = 100


def _needed_run(period: int) -> int:
    """How many characters in a row must equal the one `period` before them for a loop of that period."""
    if period == 1:
        return MAX_CHAR_RUN  # MAX_CHAR_RUN + 1 equal characters
    return max(MIN_REPEATS * period, MIN_LOOP_CHARS) - period


def _first_loop(text: str) -> tuple[int, int, int] | None:
    """(start, period, span) of the earliest loop in `text` (smallest period at that start), or None."""
    import numpy as np

    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    best = None
    for period in range(1, min(MAX_UNIT_CHARS, len(codes) // 2) + 1):
        need = _needed_run(period)
        if need > len(codes) - period:
            continue
        same = np.concatenate(([False], codes[period:] == codes[:-period], [False]))
        edges = np.flatnonzero(np.diff(same.astype(np.int8)))  # runs of True are [edges[2k], edges[2k+1])
        starts, ends = edges[0::2], edges[1::2]
        long = np.flatnonzero(ends - starts >= need)
        if long.size and (best is None or starts[long[0]] < best[0]):
            start = int(starts[long[0]])
            best = (start, period, int(ends[long[0]]) - start + period)
    return best


def cut_repetitions(text: str) -> tuple[str, bool]:
    """Collapse every repetition loop in `text` to a single copy of its unit; returns (text, whether anything was cut).

    Text after a loop is kept (the model sometimes recovers), a trailing partial copy of the unit is dropped.
    """
    cut, done = False, ""
    while (loop := _first_loop(text)) is not None:
        start, period, span = loop
        keep = text[:start + period]
        # a loop of " the cat" swallows the space before the next word: give it back
        done += keep + (" " if text[start + span - 1].isspace() and not keep[-1:].isspace() else "")
        text = text[start + span:]
        cut = True
    return ((done + text).strip(), True) if cut else (text, False)
