"""Qwen3-ASR through vLLM: one engine fed with every job's chunks, greedy, on the GPU.

vLLM schedules what it holds itself (continuous batching, chunked prefill); the backend keeps it fed. One engine
serves every job of the process (`core.models.engine.StreamEngine`): chunks of all jobs go in as they come, one per job
per turn, up to ENGINE_MAX_CHUNKS held at once (twice that while jobs below their share are topped up), and each
comes back the moment it is finished. Prompts,
the generation cap and output parsing come from `core.asr.prompts`, the same code the transformers backend uses, so
both backends see identical prompts and return identical dataclasses.

`gpu_memory_utilization` is a fraction of the whole card that vLLM claims for weights, activations and KV cache;
the rest stays free for the aligner in the same process (VLLM_GPU_MEMORY_UTILIZATION).

vllm is imported only when the backend is built: CPU installs never import it.
"""
from __future__ import annotations

import copy
import logging
import math
import time

from core.asr import prompts
from core.config import Config
from core.errors import ModelError
from core.models.engine import StreamEngine
from core.types import SAMPLE_RATE, AsrRequest, ChunkText, Progress, no_progress

log = logging.getLogger("core")


def fixed_token_budget(duration_s: float, tokens_per_second: float) -> int:
    """Tokens a chunk must generate in benchmark mode: `tokens_per_second` per audio second, at least one."""
    return max(1, math.ceil(duration_s * tokens_per_second - 1e-9))


# Decode batch sizes captured as CUDA graphs (a batch runs in the next size up). vLLM's own list has 51 sizes up to
# 512 (steps of 8, then 16), 3 s of a cold start (run 14); an hour is ~120 chunks in flight and a loaded worker at most
# ENGINE_MAX_CHUNKS (512), so steps that grow with the size pad a batch by at most a quarter, in 21 graphs.
CAPTURE_SIZES = (1, 2, 4, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512)
# CUDA graphs for decoding, without torch.compile: run 12 measured the same speed (ASR 1.55 s an hour against
# 1.67 s compiled) and a start 25-35 s shorter (ready in 34 s with warm caches against 58 s, 80 s cold against 115 s)
NO_COMPILE = {"mode": 0, "cudagraph_mode": "FULL_DECODE_ONLY", "cudagraph_capture_sizes": list(CAPTURE_SIZES)}


def compilation(config: Config) -> dict:
    """vLLM's compilation keywords: none when compiling (VLLM_COMPILE=1, vLLM's default) or eager, else NO_COMPILE."""
    if config.vllm_compile or config.vllm_enforce_eager:
        return {}
    return {"compilation_config": copy.deepcopy(NO_COMPILE)}  # vLLM sorts the sizes list in place


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
                      enforce_eager=config.vllm_enforce_eager, seed=0, **compilation(config))
        if config.dtype not in ("auto", "bfloat16", "bf16"):
            kwargs["dtype"] = {"fp16": "float16", "fp32": "float32"}.get(config.dtype, config.dtype)
        self.features_here = config.vllm_audio_features == "gpu"
        if self.features_here:
            from core.asr.vllm_features import register_processor

            register_processor()
            kwargs["enable_mm_embeds"] = True
        kwargs.update(llm_kwargs or {})
        try:
            self.llm = LLM(**kwargs)
        except Exception as e:  # vLLM raises many kinds (config, CUDA, OOM); none is the user's input
            log.exception("starting vLLM for %s failed", config.asr_model)
            raise ModelError(f"could not start vLLM for the ASR model ({type(e).__name__}); check ASR_MODEL and "
                             "VLLM_GPU_MEMORY_UTILIZATION") from e
        if self.features_here:
            import torch

            from core.asr.vllm_features import whisper_extractor

            self.extractor = whisper_extractor(config.asr_model)
            self.feature_dtype = self.llm.llm_engine.model_config.dtype
            self.feature_stream = torch.cuda.Stream()  # not queued behind the aligner's batches on the default one
        self.feed = _Feed(self)
        self.engine = StreamEngine("ASR engine", self.feed, max_in_flight=config.engine_max_chunks, min_admit=FEED)
        self.last_stats: dict[str, float] = {}

    def describe(self) -> str:
        mode = f", benchmark: {self.fixed_tokens_per_second:g} tokens/s" if self.fixed_tokens_per_second else ""
        features = ", log-mel on the GPU" if self.features_here else ""
        return f"ASR {self.config.asr_model} on vLLM (GPU{features}{mode})"

    def sampling_params(self, duration_s: float):
        """Greedy decoding capped by the chunk's length (or the benchmark's fixed budget)."""
        from vllm import SamplingParams

        if self.fixed_tokens_per_second:
            n = fixed_token_budget(duration_s, self.fixed_tokens_per_second)
            return SamplingParams(temperature=0.0, max_tokens=n, min_tokens=n, ignore_eos=True)
        return SamplingParams(temperature=0.0, max_tokens=prompts.max_new_tokens(duration_s, self.config))

    def requests(self, requests: list[AsrRequest]) -> list[dict]:
        """vLLM prompt dicts: the shared prompt text plus the chunk's audio as (samples, rate), or as features."""
        if not self.features_here:
            return [{"prompt": prompts.build_prompt(r.context, r.language),
                     "multi_modal_data": {"audio": (r.audio, SAMPLE_RATE)}} for r in requests]
        import torch

        from core.asr.vllm_features import audio_features, fresh_uuid

        with torch.cuda.stream(self.feature_stream):
            features = audio_features(self.extractor, [r.audio for r in requests], "cuda", self.feature_dtype)
        return [{"prompt": prompts.build_prompt(r.context, r.language), "multi_modal_data": {"audio": f},
                 "multi_modal_uuids": {"audio": [fresh_uuid()]}} for r, f in zip(requests, features)]

    def transcribe(self, requests: list[AsrRequest], progress: Progress = no_progress,
                   on_result=None) -> list[ChunkText]:
        """One ChunkText per request; `on_result(i, text)` hears each chunk the moment the engine finishes it."""
        return self.transcribe_groups([requests], progress, on_result) if requests else []

    def transcribe_groups(self, groups, progress: Progress = no_progress, on_result=None,
                          unwanted=None) -> list[ChunkText | None]:
        """`transcribe` over requests that arrive in groups (the pipeline's streamed chunks): each group goes into
        the engine as soon as it is read, beside what is already running; an `unwanted` one is aborted."""
        before, t0, finished = dict(self.feed.totals), time.perf_counter(), []

        def heard(i: int, result: ChunkText) -> None:
            finished.append(time.perf_counter() - t0)
            if on_result is not None:
                on_result(i, result)

        results = self.engine.run_groups(groups, progress, "transcribe", heard, unwanted)
        # exact for a job alone (the benchmark's passes); shared work is counted where it ran
        self.last_stats = {"requests": len(results), **{k: round(v - before[k], 3) for k, v in self.feed.totals.items()},
                           "first_done_s": round(min(finished, default=0.0), 3),
                           "last_done_s": round(max(finished, default=0.0), 3)}
        return results


class _Feed:
    """The streaming engine's view of vLLM (core.models.engine.StreamEngine): chunks in, finished chunks out.

    Prompts are built PREPARE at a time (with VLLM_AUDIO_FEATURES=gpu: one log-mel pass) and handed over FEED at a
    time, with what the engine finished read in between (`LLM.generate` would read nothing until the end).
    """

    def __init__(self, asr: VllmAsr) -> None:
        self.asr, self.engine = asr, asr.llm.llm_engine
        self.held: dict[str, tuple[str, AsrRequest]] = {}  # the LLM's id -> (the engine's id, request)
        self.ready: list = []  # outputs read while feeding, handed out by the next step
        self.totals = {"prompt_tokens": 0, "generated_tokens": 0, "prompts_s": 0.0}

    def start(self, requests: list[AsrRequest]) -> list[str]:
        try:
            keys: list[str] = []
            for p0 in range(0, len(requests), PREPARE):
                part = requests[p0:p0 + PREPARE]
                t0 = time.perf_counter()
                prepared = self.asr.requests(part)
                self.totals["prompts_s"] += time.perf_counter() - t0
                params = [self.asr.sampling_params(len(r.audio) / SAMPLE_RATE) for r in part]
                for f0 in range(0, len(part), FEED):
                    ids = self.asr.llm.enqueue(prepared[f0:f0 + FEED], params[f0:f0 + FEED], use_tqdm=False)
                    for rid, r in zip(ids, part[f0:f0 + FEED]):
                        keys.append(_external_id(rid))
                        self.held[keys[-1]] = (rid, r)
                    self.ready += self._ready()
            return keys
        except Exception as e:  # vLLM raises many kinds (CUDA, OOM, a dead engine); none is the user's input
            log.exception("handing chunks to vLLM failed")
            raise ModelError(f"ASR generation failed on the GPU ({type(e).__name__})") from e

    def step(self, block: bool) -> list[tuple[str, ChunkText]]:
        try:
            outputs = self.ready + (self.engine.step() if block and self.engine.has_unfinished_requests()
                                    else self._ready())
        except Exception as e:
            log.exception("vLLM generation failed")
            raise ModelError(f"ASR generation failed on the GPU ({type(e).__name__})") from e
        self.ready = []
        done = []
        for out in outputs:
            if not out.finished or out.request_id not in self.held:
                continue  # unfinished, or aborted
            _, request = self.held.pop(out.request_id)
            first = out.outputs[0]
            self.totals["prompt_tokens"] += len(out.prompt_token_ids or ())
            self.totals["generated_tokens"] += len(first.token_ids)
            done.append((out.request_id, prompts.chunk_text(first.text, request.language,
                                                            first.finish_reason == "length")))
        return done

    def abort(self, keys: list[str]) -> None:
        ids = [self.held.pop(k)[0] for k in keys if k in self.held]
        if ids:
            self.engine.abort_request(ids, internal=True)

    def _ready(self) -> list:
        """The outputs the engine has ready, without waiting for more.

        With the engine in its own process (vLLM's default) its outputs wait in the client's queue: read them while
        there are any. With the engine in this process nothing runs unless stepped, so run one step.
        """
        queue = getattr(self.engine.engine_core, "outputs_queue", None)
        if queue is None:
            return self.engine.step() if self.engine.has_unfinished_requests() else []
        outputs = []
        while not queue.empty():
            outputs += self.engine.step()
        return outputs


FEED = 16  # chunks handed to the engine between looks at its finished outputs
# Chunks whose prompts (and, with VLLM_AUDIO_FEATURES=gpu, log-mel) are built in one go: whatever the engine thread
# takes from the queue at once. Large on purpose: once the engine runs our GPU work waits for its time slices
# (building them 16 at a time while it ran took 0.9-1.1 s an hour against 0.13 s for the same work in the aligner,
# run 7). Since the pipeline streams (run 19), chunks arrive in groups of 8-64 while the engine runs: prompts took
# 0.37-0.54 s an hour there, against 0.36 s for all 119 at once (run 18).
PREPARE = 256


def _external_id(internal: str) -> str:
    """`LLM.enqueue` returns the engine's ids ("7-1a2b3c4d": the LLM's counter plus a random suffix), while outputs
    carry the LLM's own id ("7")."""
    return internal.split("-", 1)[0]
