"""ASR backends: one interface, chosen once per process by ASR_BACKEND.

`auto` picks vLLM when a CUDA GPU is present and vLLM is installed, else transformers. Backends are imported only
when chosen, so a CPU machine never imports vLLM. Prompts and output parsing live in `prompts` and are shared, so
the backends send identical prompts and read answers the same way.
"""
from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from core.config import Config
from core.errors import InputError
from core.types import AsrRequest, ChunkText, Progress, no_progress

log = logging.getLogger("core")


class AsrBackend(Protocol):
    def describe(self) -> str:
        """One line for the UI, e.g. "Qwen/Qwen3-ASR-0.6B (transformers, cpu, float32)"."""

    def transcribe(self, requests: list[AsrRequest], progress: Progress = no_progress,
                   on_result=None) -> list[ChunkText]:
        """One ChunkText per request, in order; progress("transcribe", done, total) as chunks finish, and
        `on_result(i, text)`, if given, as soon as chunk i's text exists (the pipeline starts aligning it)."""

    def transcribe_groups(self, groups: Iterable[list[AsrRequest]], progress: Progress = no_progress,
                          on_result=None, unwanted: Callable[[int], bool] | None = None) -> list[ChunkText | None]:
        """`transcribe` over requests that arrive in groups, read from `groups` in the caller's thread while the
        model already works on the earlier ones (the pipeline's chunks, cut while the file still decodes); `i`
        counts all groups' requests put together. Once `unwanted(i)` is true (asked from the engine's thread, under
        its lock: quick), request i is not started if still queued and aborted where the model allows; its result
        is None and `on_result` never hears it."""


def _vllm_usable(config: Config) -> bool:
    if config.device == "cpu" or importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def resolve_backend(config: Config) -> str:
    """The backend ASR_BACKEND names, with `auto` resolved."""
    if config.asr_backend == "runpod":
        raise InputError("ASR_BACKEND=runpod runs the pipeline remotely (core.pipeline.make_pipeline); "
                         "it has no local ASR backend")
    if config.asr_backend == "auto":
        return "vllm" if _vllm_usable(config) else "transformers"
    return config.asr_backend


def load_asr_backend(config: Config) -> AsrBackend:
    """Load the ASR model once, on the backend the configuration asks for."""
    name = resolve_backend(config)
    log.info("loading ASR model %s with %s", config.asr_model, name)
    if name == "vllm":
        from core.asr.vllm_backend import VllmAsr

        return VllmAsr(config)
    from core.asr.transformers_backend import TransformersAsr

    return TransformersAsr(config)


__all__ = ["AsrBackend", "load_asr_backend", "resolve_backend"]
