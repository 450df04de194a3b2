"""Qwen3-ASR through vLLM: every chunk of a job in one `LLM.generate` call, greedy, on the GPU.

vLLM schedules the whole batch itself (continuous batching, chunked prefill), so the backend hands it all chunks at
once rather than batching by hand; results are read as each chunk finishes. Prompts, the generation cap and output
parsing come from `core.asr.prompts`, the same code the transformers backend uses, so both backends see identical
prompts and return identical dataclasses.

`gpu_memory_utilization` is a fraction of the whole card that vLLM claims for weights, activations and KV cache;
the rest stays free for the aligner in the same process (VLLM_GPU_MEMORY_UTILIZATION).

Concurrent callers in one process share the engine by group commit (`core.models.batching`): the chunks of jobs
that arrive while the engine is busy go into its next run together. The web app with APP_CONCURRENCY > 1 and the
benchmark's many-file run call it that way. The RunPod worker does not: it runs one job's model stages at a time
(`runpod_worker.handler.Worker`), so two of its jobs never meet in one batch.

vllm is imported only when the backend is built: CPU installs never import it.
"""
from __future__ import annotations

import logging
import math
import time

from core.asr import prompts
from core.config import Config
from core.errors import ModelError
from core.models.batching import GroupCommit
from core.types import SAMPLE_RATE, AsrRequest, ChunkText, Progress, no_progress

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
        self.batcher = GroupCommit(self._generate)
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
        if not requests:
            return []
        progress("transcribe", 0, len(requests))
        results = self.batcher.submit(requests, progress, on_result)
        progress("transcribe", len(requests), len(requests))
        return results

    def _generate(self, requests: list[AsrRequest], progress: Progress = no_progress,
                  on_result=None) -> list[ChunkText]:
        """All chunks through the engine: prompts built PREPARE at a time, handed over FEED at a time, finished
        ones read in between (`LLM.generate` would read nothing until the end).

        Each finished chunk is reported at once (progress, `on_result`). With a fixed token budget per second, as in
        the benchmark, no chunk finishes before the hand-over ends (run 5); chunks with short answers may (not
        measured).
        """
        engine = self.llm.llm_engine
        params = [self.sampling_params(len(r.audio) / SAMPLE_RATE) for r in requests]
        results: list[ChunkText | None] = [None] * len(requests)
        where: dict[str, int] = {}
        finished: list[float] = []
        tokens = [0, 0]
        t0 = time.perf_counter()

        def collect(outputs) -> None:
            for out in outputs:
                i = where.get(out.request_id)
                if i is None or not out.finished:
                    continue
                first = out.outputs[0]
                results[i] = prompts.chunk_text(first.text, requests[i].language, first.finish_reason == "length")
                tokens[0] += len(out.prompt_token_ids or ())
                tokens[1] += len(first.token_ids)
                finished.append(time.perf_counter() - t0)
                try:
                    if on_result is not None:
                        on_result(i, results[i])
                    progress("transcribe", len(finished), len(requests))
                except BaseException as e:  # the caller's (a cancelled job): stop, and raise it as it is
                    caller_error.append(e)
                    raise

        caller_error: list[BaseException] = []
        internal: list[str] = []  # the engine's ids (for aborting); outputs carry the LLM's own ("7")
        prep = 0.0  # of which: building the prompts (log-mel here when VLLM_AUDIO_FEATURES=gpu)
        try:
            for start in range(0, len(requests), FEED):
                if start % PREPARE == 0:  # log-mel for the next PREPARE chunks in one pass
                    t_prep = time.perf_counter()
                    prepared = self.requests(requests[start:start + PREPARE])
                    prep += time.perf_counter() - t_prep
                part = slice(start, start + FEED)
                ids = self.llm.enqueue(prepared[start % PREPARE:start % PREPARE + FEED], params[part],
                                       use_tqdm=False)
                internal += ids
                where.update((_external_id(rid), start + k) for k, rid in enumerate(ids))
                _collect_ready(engine, collect)
            fed = time.perf_counter() - t0
            while engine.has_unfinished_requests():
                collect(engine.step())
        except BaseException as e:
            try:
                engine.abort_request(internal, internal=True)
            except Exception:  # the engine may be gone; the job fails either way
                log.exception("aborting the job's requests failed")
            if caller_error or not isinstance(e, Exception):
                raise
            log.exception("vLLM generation failed")
            raise ModelError(f"ASR generation failed on the GPU ({type(e).__name__})") from e
        if any(r is None for r in results):
            raise ModelError("the ASR engine returned fewer results than chunks")
        self.last_stats = {"requests": len(requests), "prompt_tokens": tokens[0], "generated_tokens": tokens[1],
                           "fed_s": round(fed, 3), "prompts_s": round(prep, 3), "first_done_s": round(min(finished), 3),
                           "last_done_s": round(max(finished), 3)}
        return results  # type: ignore[return-value]


FEED = 16  # chunks handed to the engine between looks at its finished outputs
# Chunks whose prompts (and, with VLLM_AUDIO_FEATURES=gpu, log-mel) are built in one go. Large on purpose: an hour's
# chunks are prepared before the engine starts, since once it runs our GPU work waits for its time slices (building
# them 16 at a time while it ran took 0.9-1.1 s an hour against 0.13 s for the same work in the aligner, run 7).
PREPARE = 256


def _external_id(internal: str) -> str:
    """`LLM.enqueue` returns the engine's ids ("7-1a2b3c4d": the LLM's counter plus a random suffix), while outputs
    carry the LLM's own id ("7")."""
    return internal.split("-", 1)[0]


def _collect_ready(engine, collect) -> None:
    """Hand `collect` the outputs the engine has ready, without waiting for more.

    With the engine in its own process (vLLM's default) its outputs wait in the client's queue: read them while
    there are any. With the engine in this process nothing runs unless stepped, so run one step.
    """
    queue = getattr(engine.engine_core, "outputs_queue", None)
    if queue is None:
        if engine.has_unfinished_requests():
            collect(engine.step())
        return
    while not queue.empty():
        collect(engine.step())

