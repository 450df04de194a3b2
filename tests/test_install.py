"""The package as a new user installs it: `pip install <checkout>` into a fresh virtual environment in a temporary
directory, then the `qwen3-asr` command (and `python -m core`) from that directory, with no checkout on the path.

The venv sees the machine's site-packages (`--system-site-packages`) and pip gets `--no-index`: the dependencies
the checkout declares must already be satisfied by the pinned set (`requirements.txt`) that CI installed, so the
test downloads nothing (a bare `torch` from the index would be a multi-GB CUDA build) and still fails if
`pyproject.toml` asks for something that set does not have.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audio_helpers import speech_wav
from bench.checkpoints import RIG_WORDS

ROOT = Path(__file__).resolve().parents[1]


def tracked_files() -> list[str]:
    run = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if run.returncode == 0 and run.stdout:
        return [f for f in run.stdout.split("\0") if f and (ROOT / f).is_file()]
    skip = {".git", "__pycache__", ".gpu-bundle", ".whl", ".pytest_cache", "test-artifacts"}
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with the checkout installed, built from a copy so the build leaves nothing in the checkout."""
    base = tmp_path_factory.mktemp("install")
    checkout = base / "checkout"
    for name in tracked_files():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, checkout / name)
    env_dir = base / "venv"
    # No pip of its own in the venv: ensurepip would also put an old setuptools there, in front of the machine's.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)], check=True)
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "-q",
                          "--no-index", "--no-build-isolation", "--disable-pip-version-check", str(checkout)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]
    return env_dir


def run_here(cwd: Path, *argv: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return subprocess.run(list(argv), cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def test_console_command_and_module_run_from_any_directory(venv, tmp_path):
    here = tmp_path / "elsewhere"
    here.mkdir()
    help_ = run_here(here, str(venv / "bin" / "qwen3-asr"), "--help")
    assert help_.returncode == 0, help_.stderr[-2000:]
    assert help_.stdout.startswith("usage: qwen3-asr") and "--language" in help_.stdout
    where = run_here(here, str(venv / "bin" / "python"), "-c", "import core, webui, runpod_worker; "
                     "print(core.__file__); print(webui.__file__)")
    assert where.returncode == 0, where.stderr[-2000:]
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in where.stdout.split()), where.stdout
    module = run_here(here, str(venv / "bin" / "python"), "-m", "core", "--help")
    assert module.returncode == 0 and "--format" in module.stdout


def test_installed_command_transcribes_a_short_file(venv, tmp_path, tiny_asr_dir, tiny_aligner_dir):
    here = tmp_path / "podcast"
    here.mkdir()
    speech_wav(here / "hello.wav", "Hello there. This is a short test of the installed command.")
    env = {"ASR_MODEL": str(tiny_asr_dir), "ALIGNER_MODEL": str(tiny_aligner_dir), "ASR_BACKEND": "transformers",
           "DEVICE": "cpu", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = run_here(here, str(venv / "bin" / "qwen3-asr"), "hello.wav", "--format", "json,srt", "-o", "out", "-q",
                   env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(p.name for p in (here / "out").iterdir()) == ["hello.json", "hello.srt"]
    data = json.loads((here / "out" / "hello.json").read_text())
    words = [w["text"] for s in data["segments"] for w in s["words"]]
    assert data["language"] == "English" and words[:len(RIG_WORDS)] == list(RIG_WORDS)
    assert run.stdout.split() == [str(Path("out") / "hello.json"), str(Path("out") / "hello.srt")]
