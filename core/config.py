"""One frozen configuration, read once from the environment.

Each field's environment variable is its name in upper case (`asr_model` <- `ASR_MODEL`). Values are parsed by
the field's type; a bad value is an `InputError` naming the variable, raised at start-up rather than mid-job.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

from core.errors import InputError
from core.types import MAX_ALIGN_SECONDS

BACKENDS = ("auto", "vllm", "transformers", "runpod")
APP_MODES = ("webui", "runpod")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
RUNPOD_LOG_LEVELS = ("NOTSET", "TRACE", "DEBUG", "INFO", "WARN", "ERROR")  # the SDK's own names


@dataclass(frozen=True)
class Config:
    # Models: hub ids or local directories in the official Qwen layout. An empty ALIGNER_MODEL disables alignment.
    asr_model: str = "Qwen/Qwen3-ASR-0.6B"
    aligner_model: str = "Qwen/Qwen3-ForcedAligner-0.6B"
    asr_backend: str = "auto"  # auto = vllm when CUDA and vLLM are present, else transformers
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto = bfloat16 on CUDA, float32 on CPU
    # Speaker labels (a job's `diarize`): a transformers audio x-vector checkpoint (core.diarize); empty = off.
    diarizer_model: str = "microsoft/wavlm-base-plus-sv"

    # Chunking: cut at silences near chunk_target_s, never past chunk_max_s (the aligner takes at most 180 s).
    chunk_target_s: float = 30.0
    chunk_max_s: float = 60.0
    # Generation cap per chunk, scaled by its length, so a long chunk is never silently truncated.
    max_tokens_per_second: float = 12.0
    asr_batch_size: int = 8  # transformers backend; vLLM schedules what it holds itself
    # Chunks the vLLM engine holds at once, all jobs together (core.models.engine): bounds the prepared prompts in
    # memory (at most twice this: a job below its share is topped up beyond it); more queue on the CPU side, one per
    # job per turn. An hour is about 120 chunks.
    engine_max_chunks: int = 512
    align_batch_size: int = 0  # 0 = auto: 32 on a GPU with 40 GiB or more, else 8
    # Align finished chunks while the rest are still being transcribed. On since the pipeline streams: chunks now
    # reach the ASR, and come back, over time (bench/RESULTS.md, run 19: 3.54 s an hour against 3.98 s without).
    overlap_align: bool = True

    # Decoding: long files are decoded in time slices by this many processes (0 = one per core, at most 16).
    decode_workers: int = 0

    # vLLM: one process holds both models; the split of GPU memory between them.
    vllm_gpu_memory_utilization: float = 0.5
    vllm_max_model_len: int = 8192
    vllm_enforce_eager: bool = False
    # torch.compile the ASR model (vLLM's default). Off: CUDA graphs without compiling, as fast here and 25-35 s
    # quicker to start (bench/RESULTS.md, run 12).
    vllm_compile: bool = False
    # Where the ASR's log-mel features are computed: "gpu" = here on the GPU, handed to the engine ready-made
    # (core.asr.vllm_features; ASR 2.4-2.7 s an hour against 4.3-4.8 s, run 5); "processor" = vLLM's own, on the CPU.
    vllm_audio_features: str = "gpu"

    # Input limits (see README, "Security and limits").
    max_download_bytes: int = 2 * 1024**3
    download_timeout_s: float = 600.0
    connect_timeout_s: float = 15.0
    max_duration_s: float = 4 * 3600.0
    allow_private_urls: bool = False  # tests and local use only: lets URLs reach loopback/private addresses

    # Web app.
    app_mode: str = "webui"  # webui | runpod (default runpod inside a RunPod serverless worker, see below)
    port: int = 7860
    # Interface the web app listens on (also GRADIO_SERVER_NAME, which the image and Hugging Face Spaces set to
    # 0.0.0.0): loopback unless told, since the page has no login unless APP_AUTH is set.
    server_name: str = "127.0.0.1"
    app_auth: str = field(default="", repr=False)  # "user:password": HTTP login for the page and its Gradio API
    # The OpenAI-compatible API's key (webui.openai_api): clients send "Authorization: Bearer <key>". Empty = no key,
    # unless APP_AUTH is set: then the API stays closed until a key is given, so a private page stays private.
    api_key: str = field(default="", repr=False)
    app_concurrency: int = 1
    app_queue_size: int = 16
    max_upload_mb: int = 1024
    app_monitoring: bool = False  # Gradio's /monitoring page
    spaces_zero_gpu: bool = False  # set by Hugging Face on ZeroGPU Spaces: the model stage runs inside @spaces.GPU
    log_level: str = "INFO"

    # RunPod: the worker's concurrency and the remote backend's endpoint (ASR_BACKEND=runpod).
    runpod_concurrency: int = 1
    runpod_endpoint_url: str = ""
    runpod_api_key: str = field(default="", repr=False)
    runpod_timeout_s: float = 3600.0
    # The RunPod SDK's own log level. Its default, DEBUG, prints every job's input (a whole base64 file) and output.
    runpod_log_level: str = "INFO"

    # Batches (core.batch): files in flight at once; 0 = by backend (core.batch.runner.default_parallel).
    batch_parallel: int = 0

    def __post_init__(self) -> None:
        if self.asr_backend not in BACKENDS:
            raise InputError(f"ASR_BACKEND must be one of {', '.join(BACKENDS)}, not {self.asr_backend!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"DEVICE must be auto, cpu or cuda, not {self.device!r}")
        if self.vllm_audio_features not in ("processor", "gpu"):
            raise InputError(f"VLLM_AUDIO_FEATURES must be processor or gpu, not {self.vllm_audio_features!r}")
        if not 1.0 <= self.chunk_target_s <= self.chunk_max_s <= MAX_ALIGN_SECONDS:
            raise InputError(f"need 1 <= CHUNK_TARGET_S <= CHUNK_MAX_S <= {MAX_ALIGN_SECONDS:g} (the aligner's limit)")
        if self.batch_parallel < 0:
            raise InputError("BATCH_PARALLEL must be 0 (by backend) or a number of files at once")
        if self.engine_max_chunks < 1 or self.asr_batch_size < 1:
            raise InputError("ENGINE_MAX_CHUNKS and ASR_BATCH_SIZE must be at least 1")
        if self.app_mode not in APP_MODES:
            raise InputError(f"APP_MODE must be webui or runpod, not {self.app_mode!r}")
        if self.app_auth and (":" not in self.app_auth or not all(self.app_auth.split(":", 1))):
            raise InputError("APP_AUTH must be user:password, both non-empty")
        if self.api_key and (len(self.api_key) < 8 or any(c.isspace() or not c.isprintable() for c in self.api_key)):
            raise InputError("API_KEY must be at least 8 printable characters without spaces")
        if self.log_level.upper() not in LOG_LEVELS:
            raise InputError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        if self.runpod_log_level.upper() not in RUNPOD_LOG_LEVELS:
            raise InputError(f"RUNPOD_LOG_LEVEL must be one of {', '.join(RUNPOD_LOG_LEVELS)}, not "
                             f"{self.runpod_log_level!r}")


def _parse(name: str, kind: type, raw: str):
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        raise InputError(f"environment variable {name.upper()} must be a {kind.__name__}, not {raw!r}") from None


def config_from_env(env: Mapping[str, str] | None = None, **overrides) -> Config:
    """Build a Config from `env` (default: os.environ); `overrides` win over both env and defaults."""
    env = os.environ if env is None else env
    values = {}
    for f in dataclasses.fields(Config):
        key = f.name.upper()
        if key in env:
            kind = type(f.default)
            values[f.name] = _parse(f.name, kind, env[key])
    if "app_mode" not in values and env.get("RUNPOD_WEBHOOK_GET_JOB"):
        values["app_mode"] = "runpod"  # RunPod serverless sets this: the image must not start the web app there
    if "port" not in values and "GRADIO_SERVER_PORT" in env:
        values["port"] = _parse("GRADIO_SERVER_PORT", int, env["GRADIO_SERVER_PORT"])
    if "server_name" not in values and env.get("GRADIO_SERVER_NAME"):
        values["server_name"] = env["GRADIO_SERVER_NAME"]
    values.update(overrides)
    return Config(**values)


@lru_cache(maxsize=1)
def get_config() -> Config:
    """The process-wide configuration, read from the environment once."""
    return config_from_env()
