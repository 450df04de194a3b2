"""The original worker's design, rebuilt for the side-by-side: 270 s chunks, vLLM ASR, then the forced aligner through
transformers the way the Qwen toolkit runs it, one stage after the other.

What makes it the toolkit's way: the aligner gets the whole chunk (audio + every word of its text) in batches of 32,
features from the Whisper-style extractor on the CPU padded to the batch's longest clip, text left-padded, and the
5000-class head applied to EVERY position (full logits [batch, tokens, 5000]) before an argmax picks the
<timestamp> positions. Chunks are cut like the toolkit's splitter: at the quietest 100 ms window in the 5 s before
each 270 s mark.

Deliberately NOT copied from the toolkit: its Python post-processing of the times. Both designs repair times with
`core.output.merge`, so the ratio measures the chunking and GPU design, not one side's slow Python.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from core.types import SAMPLE_RATE, Chunk, Word

CHUNK_S = 270.0
SEARCH_S = 5.0
WINDOW_S = 0.1
ALIGN_BATCH = 32
AUDIO_PLACEHOLDER = "<|audio_start|><|audio_pad|><|audio_end|>"
TIMESTAMP = "<timestamp>"


def toolkit_chunks(samples: np.ndarray, chunk_s: float = CHUNK_S, search_s: float = SEARCH_S,
                   window_s: float = WINDOW_S) -> list[Chunk]:
    """Chunks of at most `chunk_s`, each cut at the lowest-energy `window_s` window in the `search_s` before the mark."""
    n, limit = len(samples), int(chunk_s * SAMPLE_RATE)
    win, search = int(window_s * SAMPLE_RATE), int(search_s * SAMPLE_RATE)
    chunks, start = [], 0
    while start < n:
        end = min(start + limit, n)
        if end < n:
            region = samples[end - search:end]
            energy = (region[: len(region) // win * win].reshape(-1, win).astype(np.float64) ** 2).sum(axis=1)
            end = end - search + int(np.argmin(energy)) * win + win // 2
        chunks.append(Chunk(len(chunks), start, end))
        start = end
    return chunks


def toolkit_words(text: str) -> list[str]:
    """Whitespace words reduced to letters, digits and apostrophes (the toolkit's rule for spaced languages)."""
    out = []
    for raw in text.split():
        word = "".join(ch for ch in raw if ch == "'" or ch.isalnum())
        if word:
            out.append(word)
    return out


@dataclass
class StageClock:
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, t0: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


class ToolkitAligner:
    """Qwen3-ForcedAligner through transformers, full logits over every token, batches of ALIGN_BATCH."""

    def __init__(self, model_id: str, device: str = "cuda", dtype=None, batch_size: int = ALIGN_BATCH, model=None):
        import torch
        from transformers import AutoTokenizer, WhisperFeatureExtractor

        from core.models import layout

        self.torch = torch
        self.device = device
        self.dtype = dtype or (next(model.parameters()).dtype if model is not None else torch.bfloat16)
        self.model = model if model is not None else layout.load_aligner_model(model_id, device, self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(model_id)
        self.tokenizer.padding_side = "left"
        self.extractor = WhisperFeatureExtractor(feature_size=128, sampling_rate=SAMPLE_RATE, hop_length=160,
                                                 n_fft=400)
        timing = layout.aligner_timing(model_id)
        self.timestamp_id, self.segment_s = timing.timestamp_token_id, timing.segment_s
        self.audio_pad_id = self.tokenizer.convert_tokens_to_ids("<|audio_pad|>")
        self.batch_size = batch_size

    def align(self, audios: list[np.ndarray], texts: list[str], clock: StageClock | None = None) -> list[list[Word]]:
        out: list[list[Word]] = []
        for i in range(0, len(audios), self.batch_size):
            out.extend(self._batch(audios[i:i + self.batch_size], texts[i:i + self.batch_size], clock))
        return out

    def _batch(self, audios, texts, clock):
        from core.models.layout import audio_token_count

        torch = self.torch
        t0 = time.perf_counter()
        feats = self.extractor(list(audios), sampling_rate=SAMPLE_RATE, padding="longest", truncation=False,
                               return_attention_mask=True, return_tensors="np")
        x, mask = feats["input_features"], feats["attention_mask"]
        width = -(-x.shape[-1] // 100) * 100  # the encoder takes whole 100-frame windows
        x = np.pad(x, ((0, 0), (0, 0), (0, width - x.shape[-1])))
        mask = np.pad(mask, ((0, 0), (0, width - mask.shape[-1])))
        word_lists = [toolkit_words(t) for t in texts]
        prompts = []
        for words, frames in zip(word_lists, mask.sum(-1)):
            body = (TIMESTAMP * 2).join(words) + TIMESTAMP * 2
            prompts.append(AUDIO_PLACEHOLDER.replace("<|audio_pad|>", "<|audio_pad|>" * audio_token_count(int(frames)))
                           + body)
        enc = self.tokenizer(prompts, padding=True, return_tensors="pt")
        if clock:
            clock.add("align_features", t0)
        t1 = time.perf_counter()
        with torch.inference_mode():
            logits = self.model(input_ids=enc["input_ids"].to(self.device),
                                attention_mask=enc["attention_mask"].to(self.device),
                                input_features=torch.from_numpy(x).to(self.device, self.dtype),
                                input_features_mask=torch.from_numpy(mask).to(self.device)).logits
            classes = logits.argmax(dim=-1).cpu()  # every position, as the toolkit does
        if clock:
            clock.add("align_gpu", t1)
        results = []
        for ids, cls, words in zip(enc["input_ids"], classes, word_lists):
            stamps = (cls[ids == self.timestamp_id].double() * self.segment_s).tolist()
            results.append([Word(stamps[2 * k], stamps[2 * k + 1], w) for k, w in enumerate(words)
                            if 2 * k + 1 < len(stamps)])
        return results


def run_original(path, asr, aligner: ToolkitAligner, out_dir, *, max_duration_s: float = 4 * 3600.0,
                 chunk_s: float = CHUNK_S) -> dict[str, float]:
    """File on disk -> JSON + SRT through the original design; returns stage wall times in seconds."""
    from core.audio import decode as audio_mod
    from core.output.merge import build_transcript
    from core.types import AsrRequest
    from core.output.writers import write_files

    clock = StageClock()
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    samples = audio_mod.decode_audio(path, max_duration_s=max_duration_s)
    clock.add("decode", t0)
    t0 = time.perf_counter()
    chunks = toolkit_chunks(samples, chunk_s)
    clock.add("chunk", t0)
    t0 = time.perf_counter()
    texts = asr.transcribe([AsrRequest(samples[c.start:c.end]) for c in chunks])
    clock.add("asr", t0)
    t0 = time.perf_counter()
    words = aligner.align([samples[c.start:c.end] for c in chunks], [t.text for t in texts], clock)
    clock.add("align", t0)
    t0 = time.perf_counter()
    transcript = build_transcript(chunks, texts, words, len(samples) / SAMPLE_RATE)
    clock.add("merge", t0)
    t0 = time.perf_counter()
    write_files(transcript, out_dir, "original", ["json", "srt"])
    clock.add("write", t0)
    clock.timings["total"] = time.perf_counter() - t_all
    clock.timings["chunks"] = len(chunks)
    clock.timings["words"] = sum(len(w) for w in words)
    return clock.timings
