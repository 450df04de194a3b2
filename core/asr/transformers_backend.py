"""Qwen3-ASR through transformers: batched greedy generation, CPU or GPU (the backend without vLLM).

One model serves every job of the process (`core.models.engine.BatchEngine`): batches are filled from all jobs'
queued chunks, one per job per turn. A job's chunks queue longest first, so a batch holds similar lengths (less
padding, and one long chunk does not hold a batch of short ones hostage). Each chunk keeps its own token cap inside
a batch, and its features are computed on their own (core.models.layout.batch_features), so a chunk gets the same
text whatever it is batched with, its own job's chunks or another's.
"""
from __future__ import annotations

import logging

from core.asr.prompts import build_prompt, chunk_text, max_new_tokens
from core.config import Config
from core.errors import ModelError
from core.models.engine import BatchEngine
from core.models.layout import batch_features, load_asr_model, load_processor, resolve_device
from core.types import SAMPLE_RATE, AsrRequest, ChunkText, Progress, no_progress

log = logging.getLogger("core")


class TransformersAsr:
    """`AsrBackend` on `Qwen3ASRForConditionalGeneration`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.device, self.dtype = resolve_device(config)
        self.model = load_asr_model(config.asr_model, self.device, self.dtype)
        processor = load_processor(config.asr_model)
        self.tokenizer, self.extractor = processor.tokenizer, processor.feature_extractor
        self.audio_pad_id = self.tokenizer.convert_tokens_to_ids("<|audio_pad|>")
        self.pad_id = self.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        self.eos_ids = {self.pad_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")}
        self.engine = BatchEngine("ASR model", self._run, config.asr_batch_size)

    def describe(self) -> str:
        return f"{self.config.asr_model} (transformers, {self.device}, {str(self.dtype).removeprefix('torch.')})"

    def transcribe(self, requests: list[AsrRequest], progress: Progress = no_progress,
                   on_result=None) -> list[ChunkText]:
        """One ChunkText per request; `on_result(i, text)` hears each chunk as its batch finishes."""
        return self.transcribe_groups([requests], progress, on_result) if requests else []

    def transcribe_groups(self, groups, progress: Progress = no_progress, on_result=None,
                          unwanted=None) -> list[ChunkText | None]:
        """`transcribe` over requests that arrive in groups; each group goes in longest first (less padding). An
        `unwanted` request still queued is never run (a batch already running finishes)."""
        where: list[int] = []  # the engine's item k is request where[k] of all groups put together

        def ranked_groups():
            seen = 0
            for group in groups:
                order = sorted(range(len(group)), key=lambda i: len(group[i].audio), reverse=True)
                where.extend(seen + i for i in order)
                seen += len(group)
                yield [group[i] for i in order]

        heard = None if on_result is None else (lambda k, result: on_result(where[k], result))
        skip = None if unwanted is None else (lambda k: unwanted(where[k]))
        ranked = self.engine.run_groups(ranked_groups(), progress, "transcribe", heard, skip)
        results: list[ChunkText | None] = [None] * len(ranked)
        for k, result in enumerate(ranked):
            results[where[k]] = result
        return results

    def prompt_ids(self, request: AsrRequest, audio_tokens: int) -> list[int]:
        """The prompt's token ids with the audio placeholder expanded to `audio_tokens` tokens."""
        ids = self.tokenizer.encode(build_prompt(request.context, request.language), add_special_tokens=False)
        at = ids.index(self.audio_pad_id)
        return ids[:at] + [self.audio_pad_id] * audio_tokens + ids[at + 1:]

    def _run(self, batch: list[AsrRequest]) -> list[ChunkText]:
        import torch

        caps = [max_new_tokens(len(r.audio) / SAMPLE_RATE, self.config) for r in batch]
        try:
            with torch.inference_mode():
                features, mask, n_audio = batch_features(self.extractor, [r.audio for r in batch], self.device,
                                                         self.dtype)
                prompts = [self.prompt_ids(r, n) for r, n in zip(batch, n_audio)]
                width = max(len(p) for p in prompts)  # left padding: every prompt ends where generation starts
                ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
                attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts],
                                         device=self.device)
                out = self.model.generate(input_ids=ids, attention_mask=attention, input_features=features,
                                          input_features_mask=mask, max_new_tokens=max(caps), do_sample=False,
                                          num_beams=1, eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_id)
        except torch.cuda.OutOfMemoryError as e:
            raise ModelError("the GPU ran out of memory during transcription; lower ASR_BATCH_SIZE or "
                             "CHUNK_MAX_S") from e
        return [self._read(row[width:].tolist(), cap, request) for row, cap, request in zip(out, caps, batch)]

    def _read(self, tokens: list[int], cap: int, request: AsrRequest) -> ChunkText:
        tokens = tokens[:cap]  # a chunk's own cap, whatever its batch mates allowed
        end = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
        hit_cap = end is None
        raw = self.tokenizer.decode(tokens if hit_cap else tokens[:end], skip_special_tokens=True)
        result = chunk_text(raw, request.language, hit_cap)
        if result.truncated:
            log.warning("ASR chunk of %.1f s: %s", len(request.audio) / SAMPLE_RATE,
                        f"hit the {cap}-token cap" if hit_cap else "repetition loop cut")
        return result
