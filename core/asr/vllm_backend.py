"""Qwen3-ASR through vLLM: every chunk of a job in one `LLM.generate` call, greedy, on the GPU.

vLLM schedules the whole batch itself (continuous batching, chunked prefill), so the backend hands it all chunks at
once rather than batching by hand. Prompts, the generation cap and output parsing come from `core.asr.prompts`, the
same code the transformers backend uses, so both backends see identical prompts and return identical dataclasses.

`gpu_memory_utilization` is a fraction of the whole card that vLLM claims for weights, activations and KV cache;
the rest stays free for the aligner in the same process (VLLM_GPU_MEMORY_UTILIZATION).

Concurrent jobs (web app or worker concurrency > 1) share the engine by group commit (`core.batching`): chunks of
several files go into one `generate` instead of waiting in line file by file.

vllm is imported only when the backend is built: CPU installs never import it.
"""
from __future__ import annotations

import logging
import math

from ..config import Config
from ..batching import GroupCommit
from ..errors import ModelError
from ..types import SAMPLE_RATE, AsrRequest, ChunkText, Progress, no_progress
from . import prompts

log = logging.getLogger("core")


def fixed_token_budget(duration_s: float, tokens_per_second: float) -> int:
    """Tokens a chunk must generate in benchmark mode: `tokens_per_second` per audio second, at least one."""
    return max(1, math.ceil(duration_s * tokens_per_second - 1e-9))


class VllmAsr:
    """AsrBackend over one in-process `vllm.LLM`.

    `fixed_tokens_per_second` is for benchmarks only: random weights decode garbage and would stop at random points,
    so each chunk instead generates exactly that many tokens per audio second (`ignore_eos`). Nothing in the product
    path sets it.
    """

    def __init__(self, config: Config, *, fixed_tokens_per_second: float | None = None, llm_kwargs: dict | None = None):
        try:
            from vllm import LLM
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ModelError("ASR_BACKEND=vllm needs the vllm package (pip install -r requirements-gpu.txt)") from e
        self.config = config
        self.fixed_tokens_per_second = fixed_tokens_per_second
        kwargs = dict(model=config.asr_model, dtype="bfloat16", max_model_len=config.vllm_max_model_len,
                      limit_mm_per_prompt={"audio": 1}, gpu_memory_utilization=config.vllm_gpu_memory_utilization,
                      enforce_eager=config.vllm_enforce_eager, seed=0)
        if config.dtype not in ("auto", "bfloat16", "bf16"):
            kwargs["dtype"] = {"fp16": "float16", "fp32": "float32"}.get(config.dtype, config.dtype)
        kwargs.update(llm_kwargs or {})
        try:
            self.llm = LLM(**kwargs)
        except Exception as e:  # vLLM raises many kinds (config, CUDA, OOM); none is the user's input
            log.exception("starting vLLM for %s failed", config.asr_model)
            raise ModelError(f"could not start vLLM for the ASR model ({type(e).__name__}); check ASR_MODEL and "
                             "VLLM_GPU_MEMORY_UTILIZATION") from e
        self.batcher = GroupCommit(self._generate)
        self.last_stats: dict[str, int] = {}

    def describe(self) -> str:
        mode = f", benchmark: {self.fixed_tokens_per_second:g} tokens/s" if self.fixed_tokens_per_second else ""
        return f"ASR {self.config.asr_model} on vLLM (GPU{mode})"

    def sampling_params(self, duration_s: float):
        """Greedy decoding capped by the chunk's length (or the benchmark's fixed budget)."""
        from vllm import SamplingParams

        if self.fixed_tokens_per_second:
            n = fixed_token_budget(duration_s, self.fixed_tokens_per_second)
            return SamplingParams(temperature=0.0, max_tokens=n, min_tokens=n, ignore_eos=True)
        return SamplingParams(temperature=0.0, max_tokens=prompts.max_new_tokens(duration_s, self.config))

    def requests(self, requests: list[AsrRequest]) -> list[dict]:
        """vLLM prompt dicts: the shared prompt text plus the chunk's audio as (samples, rate)."""
        return [{"prompt": prompts.build_prompt(r.context, r.language),
                 "multi_modal_data": {"audio": (r.audio, SAMPLE_RATE)}} for r in requests]

    def transcribe(self, requests: list[AsrRequest], progress: Progress = no_progress) -> list[ChunkText]:
        if not requests:
            return []
        progress("transcribe", 0, len(requests))
        results = self.batcher.submit(requests)
        progress("transcribe", len(requests), len(requests))
        return results

    def _generate(self, requests: list[AsrRequest], progress: Progress = no_progress) -> list[ChunkText]:
        params = [self.sampling_params(len(r.audio) / SAMPLE_RATE) for r in requests]
        try:
            outputs = self.llm.generate(self.requests(requests), params, use_tqdm=False)
        except Exception as e:
            log.exception("vLLM generation failed")
            raise ModelError(f"ASR generation failed on the GPU ({type(e).__name__})") from e
        self.last_stats = {"requests": len(outputs),
                           "prompt_tokens": sum(len(o.prompt_token_ids or ()) for o in outputs),
                           "generated_tokens": sum(len(o.outputs[0].token_ids) for o in outputs)}
        return [prompts.chunk_text(out.outputs[0].text, r.language, out.outputs[0].finish_reason == "length")
                for r, out in zip(requests, outputs)]


VllmAsrBackend = VllmAsr  # the name the GPU issue uses
