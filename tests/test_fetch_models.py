"""builder/fetch_models.py, run the way the Dockerfile runs it, against real huggingface_hub with no network.

The Hub is replaced by what the image sees at run time: a Hugging Face cache on disk and HF_HUB_OFFLINE=1, or a
loopback server that answers like the Hub does for a missing repository. The cache is laid out by hand exactly as
huggingface_hub writes it (models--org--name/refs/main -> snapshots/<commit>/...).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from net_helpers import MediaServer

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "builder" / "fetch_models.py"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_checkpoint(folder: Path, *, weights: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3_asr", "hidden_size": 8}))
    (folder / "README.md").write_text("# a model card the image does not need\n")
    if weights:
        save_file({"w": np.arange(16, dtype=np.float32).reshape(4, 4)}, str(folder / "model.safetensors"))
    return folder


def add_to_cache(hf_home: Path, repo_id: str, *, weights: bool = True) -> Path:
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return write_checkpoint(repo / "snapshots" / COMMIT, weights=weights)


def fetch(tmp_path: Path, *args: str, offline: bool = True, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.pop("ASR_MODEL", None)
    env.pop("ALIGNER_MODEL", None)
    env.pop("DIARIZER_MODEL", None)
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", **env_extra)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_models_from_build_args_resolve_offline_from_the_cache(tmp_path):
    add_to_cache(tmp_path / "hf", "Qwen/Qwen3-ASR-1.7B")
    add_to_cache(tmp_path / "hf", "Qwen/Qwen3-ForcedAligner-0.6B")
    add_to_cache(tmp_path / "hf", "microsoft/wavlm-base-plus-sv")
    r = fetch(tmp_path, ASR_MODEL="Qwen/Qwen3-ASR-1.7B", ALIGNER_MODEL="Qwen/Qwen3-ForcedAligner-0.6B")
    assert r.returncode == 0, r.stderr
    ready = [line for line in r.stdout.splitlines() if line.endswith(" MB)")]
    assert [line.split()[1] for line in ready] == ["Qwen/Qwen3-ASR-1.7B", "Qwen/Qwen3-ForcedAligner-0.6B",
                                                   "microsoft/wavlm-base-plus-sv"]


def test_defaults_are_the_0_6b_models(tmp_path):
    r = fetch(tmp_path)  # empty cache, offline: both defaults are looked up, the first one fails
    assert r.returncode == 1
    assert "'Qwen/Qwen3-ASR-0.6B'" in r.stderr


def test_empty_aligner_is_skipped(tmp_path):
    add_to_cache(tmp_path / "hf", "org/asr")
    r = fetch(tmp_path, ASR_MODEL="org/asr", ALIGNER_MODEL="", DIARIZER_MODEL="")
    assert r.returncode == 0, r.stderr
    assert "org/asr ready" in r.stdout
    assert r.stdout.count(" ready ") == 1


def test_the_default_diarizer_is_baked_and_an_empty_one_is_skipped(tmp_path):
    add_to_cache(tmp_path / "hf", "org/asr")
    r = fetch(tmp_path, ASR_MODEL="org/asr", ALIGNER_MODEL="")  # DIARIZER_MODEL unset: the default, not cached
    assert r.returncode == 1 and "'microsoft/wavlm-base-plus-sv'" in r.stderr
    add_to_cache(tmp_path / "hf", "org/speakers")
    r = fetch(tmp_path, ASR_MODEL="org/asr", ALIGNER_MODEL="", DIARIZER_MODEL="org/speakers")
    assert r.returncode == 0 and "org/speakers ready" in r.stdout


def test_local_directory_is_accepted_without_the_hub(tmp_path):
    model = write_checkpoint(tmp_path / "my-finetune")
    r = fetch(tmp_path, str(model))
    assert r.returncode == 0, r.stderr
    assert f"{model} ready" in r.stdout


def test_missing_model_offline_is_a_clear_error(tmp_path):
    add_to_cache(tmp_path / "hf", "org/asr")
    r = fetch(tmp_path, "org/asr", "org/not-there")
    assert r.returncode == 1
    assert "org/asr ready" in r.stdout  # the first model was fine
    assert r.stderr.strip().splitlines() == [
        "fetch_models: model 'org/not-there' is not in the local cache and HF_HUB_OFFLINE is set; build with "
        "network access or pre-populate HF_HOME"]


def test_checkpoint_without_weights_is_rejected(tmp_path):
    add_to_cache(tmp_path / "hf", "org/empty", weights=False)
    r = fetch(tmp_path, "org/empty")
    assert r.returncode == 1
    assert "model 'org/empty' has no weight files" in r.stderr
    assert "Traceback" not in r.stderr


def test_directory_without_config_is_rejected(tmp_path):
    (tmp_path / "not-a-model").mkdir()
    r = fetch(tmp_path, str(tmp_path / "not-a-model"))
    assert r.returncode == 1
    assert "has no config.json" in r.stderr


@pytest.mark.parametrize("status, error_code, expected", [
    (404, "RepoNotFound", "model 'org/typo' was not found on the Hugging Face Hub"),
    (500, None, "model 'org/typo' is not in the local cache and the Hub could not be reached or failed"),
])
def test_hub_errors_online_are_one_line(tmp_path, status, error_code, expected):
    with MediaServer() as hub:
        headers = {"X-Error-Code": error_code} if error_code else {}
        for path in ("/api/models/org/typo/revision/main", "/api/models/org/typo"):
            hub.add_bytes(path, b'{"error": "nope"}', "application/json", status=status, headers=headers)
        r = fetch(tmp_path, "org/typo", offline=False, HF_ENDPOINT=hub.url("").rstrip("/"),
                  HF_HUB_ETAG_TIMEOUT="2", HF_HUB_DOWNLOAD_TIMEOUT="2")
        assert hub.seen, "the script did not ask the (loopback) Hub"
    assert r.returncode == 1
    assert expected in r.stderr
    assert "Traceback" not in r.stderr
