"""Tiny real checkpoints for model tests: built once per test process, loaded once, removed at exit.

Plain functions (cached, so any number of fixtures over them cost one build) and pytest fixtures:
`tiny_asr_dir`, `tiny_aligner_dir` (official-layout directories from bench.checkpoints, rigged: the ASR writes
`language English<asr_text>` + RIG_TEXT, the aligner times word j at RIG_STEP_S*(2j+1)..RIG_STEP_S*(2j+2)),
`tiny_diarizer_dir` (a random WavLM x-vector checkpoint, bench.speaker_checkpoint),
`tiny_config` (a Config on all three, CPU, transformers backend), `tiny_asr` and `tiny_aligner` (loaded models).
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from bench.checkpoints import build_aligner_checkpoint, build_asr_checkpoint
from core.config import Config

# Tiny models gain nothing from threads, and on a shared, oversubscribed CI machine torch's thread pool spins: a
# generate() call measured 20x slower with 2 threads than with 1.
torch.set_num_threads(1)


@lru_cache(maxsize=1)
def tiny_model_dirs() -> tuple[Path, Path]:
    """(asr_dir, aligner_dir), built on first use into a temp directory that is removed when the process exits."""
    root = Path(tempfile.mkdtemp(prefix="tiny-qwen-"))
    atexit.register(shutil.rmtree, root, True)
    return build_asr_checkpoint(root / "asr"), build_aligner_checkpoint(root / "aligner")


@lru_cache(maxsize=1)
def tiny_diarizer_dir() -> Path:
    from bench.speaker_checkpoint import build_diarizer_checkpoint

    root = Path(tempfile.mkdtemp(prefix="tiny-diarizer-"))
    atexit.register(shutil.rmtree, root, True)
    return build_diarizer_checkpoint(root / "diarizer")


def make_tiny_config(**overrides) -> Config:
    asr, aligner = tiny_model_dirs()
    values = dict(asr_model=str(asr), aligner_model=str(aligner), asr_backend="transformers", device="cpu",
                  dtype="auto", diarizer_model=str(tiny_diarizer_dir()))
    values.update(overrides)
    return Config(**values)


@lru_cache(maxsize=1)
def load_tiny_asr():
    from core.asr.transformers_backend import TransformersAsr

    return TransformersAsr(make_tiny_config())


@lru_cache(maxsize=1)
def load_tiny_aligner():
    from core.align.aligner import Aligner

    return Aligner(make_tiny_config())


@pytest.fixture(scope="session")
def tiny_asr_dir() -> Path:
    return tiny_model_dirs()[0]


@pytest.fixture(scope="session")
def tiny_aligner_dir() -> Path:
    return tiny_model_dirs()[1]


@pytest.fixture(scope="session")
def tiny_config() -> Config:
    return make_tiny_config()


@pytest.fixture(scope="session")
def tiny_asr():
    return load_tiny_asr()


@pytest.fixture(scope="session")
def tiny_aligner():
    return load_tiny_aligner()
