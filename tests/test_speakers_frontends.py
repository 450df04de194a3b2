"""Speaker labels through the command line and the RunPod worker (issue 16), on a synthetic two-voice conversation.

Random tiny weights cannot tell the voices apart, so these check plumbing: with `num_speakers` 2 there are two
speakers, on every word and segment, in all four formats; bad counts and a server without a diarizer are clear
errors (the CLI before any model loads, the worker without falling over); a diarizer that cannot run costs the
labels, not the transcript.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from audio_helpers import silence, write_audio
from model_helpers import make_tiny_config
from speaker_helpers import TWO, assert_labelled, close, talk, tiny_worker  # noqa: F401 (talk: a fixture)
from worker_helpers import ROOT, assert_clean_error, job

OFF = "speaker labels are off on this server: no diarizer is configured (DIARIZER_MODEL is empty)"


def cli(*args: str, cwd, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env})


def tiny_env(**changes) -> dict:
    c = make_tiny_config()
    env = {"ASR_MODEL": c.asr_model, "ALIGNER_MODEL": c.aligner_model, "DIARIZER_MODEL": c.diarizer_model,
           "ASR_BACKEND": "transformers", "DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    return {**env, **changes}


# -- the command line --------------------------------------------------------------------------------------------

def test_cli_writes_every_format_with_two_speakers(talk, tmp_path):
    run = cli(str(talk), "-q", "--diarize", "--num-speakers", "2", "--format", "all", "-o", "out", cwd=tmp_path,
              env=tiny_env())
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr == ""
    out = tmp_path / "out"
    assert run.stdout.split() == [str(out.relative_to(tmp_path) / f"talk.{ext}") for ext in ("json", "srt", "vtt",
                                                                                            "txt")]
    data = json.loads((out / "talk.json").read_text())
    assert_labelled(data, *((out / f"talk.{ext}").read_text() for ext in ("srt", "vtt", "txt")))


def test_cli_speaker_names_rename_speaker_1_and_2_in_order(talk, tmp_path):
    run = cli(str(talk), "-q", "--diarize", "--num-speakers", "2", "--speaker-names", " Alice , Bob ",
              "--format", "json,srt,vtt,txt", cwd=tmp_path, env=tiny_env())
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads((tmp_path / "talk.json").read_text())
    assert_labelled(data, *((tmp_path / f"talk.{ext}").read_text() for ext in ("srt", "vtt", "txt")),
                    names=["Alice", "Bob"])
    assert "Speaker" not in (tmp_path / "talk.srt").read_text() + (tmp_path / "talk.txt").read_text()


@pytest.mark.parametrize("args, message", [
    (["--diarize", "--num-speakers", "0"], "num_speakers must be a whole number from 1 to 20"),
    (["--diarize", "--num-speakers", "100"], "num_speakers must be a whole number from 1 to 20"),
    (["--diarize", "--min-speakers", "3", "--max-speakers", "2"], "min_speakers (3) is more than max_speakers (2)"),
    (["--diarize", "--num-speakers", "2", "--max-speakers", "3"], "give num_speakers, or min_speakers and/or "
                                                                  "max_speakers, not both"),
    (["--num-speakers", "2"], "num_speakers needs diarize (speaker labels) to be on"),
    (["--speaker-names", "Alice,Bob"], "--speaker-names needs --diarize"),
    (["--diarize", "--speaker-names", "Alice,,Bob"], "a speaker name cannot be empty"),
    (["--diarize", "--speaker-names", "A" * 61], f"the speaker name {'A' * 20!r}… is 61 characters long; the "
                                                "limit is 60"),
    (["--diarize", "--num-speakers", "two"], "argument --num-speakers: invalid int value: 'two'"),
])
def test_cli_refuses_bad_speaker_options_before_any_model_loads(tmp_path, args, message):
    write_audio(tmp_path / "a.wav", silence(1.0))
    # No model exists where the settings point: an error about the options can only come before loading.
    run = cli("a.wav", "-q", *args, cwd=tmp_path, env=tiny_env(ASR_MODEL=str(tmp_path / "no-model")))
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1] == f"qwen3-asr: error: {message}", run.stderr[-2000:]
    assert list(tmp_path.iterdir()) == [tmp_path / "a.wav"]


def test_cli_diarize_without_a_diarizer_is_refused_before_any_model_loads(tmp_path):
    write_audio(tmp_path / "a.wav", silence(1.0))
    run = cli("a.wav", "-q", "--diarize", cwd=tmp_path,
              env=tiny_env(ASR_MODEL=str(tmp_path / "no-model"), DIARIZER_MODEL=""))
    assert run.returncode == 2 and run.stderr.splitlines()[-1] == f"qwen3-asr: error: {OFF}"
    assert "--diarize" in cli("--help", cwd=tmp_path, env={}).stdout


def test_cli_with_a_diarizer_that_cannot_run_still_writes_the_transcript(talk, tmp_path, tiny_asr_dir):
    run = cli(str(talk), "-q", "--diarize", "--speaker-names", "Alice", "--format", "json,txt", cwd=tmp_path,
              env=tiny_env(DIARIZER_MODEL=str(tiny_asr_dir)))  # an ASR checkpoint, not an x-vector model
    assert run.returncode == 0, run.stderr[-2000:]
    warnings = run.stderr.splitlines()
    assert any(w.startswith(f"warning: {talk}: speaker labels failed (") for w in warnings), warnings
    assert f"warning: {talk}: 1 speaker name(s) given but 0 speaker(s) found; unused: Alice" in warnings
    data = json.loads((tmp_path / "talk.json").read_text())
    assert data["text"] and "speakers" not in data and '"speaker"' not in (tmp_path / "talk.json").read_text()
    assert (tmp_path / "talk.txt").read_text().splitlines()[0] == data["segments"][0]["text"]


# -- the RunPod worker ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def worker(tiny_asr, tiny_aligner):
    w = tiny_worker(tiny_asr, tiny_aligner)
    yield w
    close(w)


def upload(path) -> dict:
    return {"audio_base64": base64.b64encode(path.read_bytes()).decode(), "filename": path.name}


def test_worker_returns_speakers_in_the_json_and_every_format(worker, talk):
    out = worker.run(job(**upload(talk), diarize=True, num_speakers=2, formats=["srt", "vtt", "txt"]))
    assert "error" not in out, out
    assert set(out) == {"language", "duration", "text", "segments", "speakers", "warnings", "timings", "srt", "vtt",
                        "txt"}
    assert_labelled(out, out["srt"], out["vtt"], out["txt"])
    assert "diarize" in out["timings"] and out["warnings"] == []
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize("fields, message", [
    ({"diarize": True, "num_speakers": 0}, "num_speakers must be a whole number from 1 to 20"),
    ({"diarize": True, "num_speakers": 100}, "num_speakers must be a whole number from 1 to 20"),
    ({"diarize": True, "num_speakers": 2.5}, "num_speakers must be a whole number from 1 to 20"),
    ({"diarize": True, "min_speakers": 3, "max_speakers": 2}, "min_speakers (3) is more than max_speakers (2)"),
    ({"max_speakers": 2}, "max_speakers needs diarize (speaker labels) to be on"),
    ({"diarize": "yes"}, "'diarize' must be a boolean (true/false), not str"),
    ({"diarize": True, "num_speakers": True}, "'num_speakers' must be a number, not bool"),
])
def test_worker_refuses_bad_speaker_options_and_keeps_serving(worker, talk, fields, message):
    out = worker.run(job(**upload(talk), **fields))
    assert_clean_error(out, message)
    assert out["error"] == message
    assert "error" not in worker.run(job(**upload(talk), word_timestamps=False))


def test_worker_without_a_diarizer_refuses_speaker_jobs_and_serves_the_rest(tiny_asr, tiny_aligner, talk):
    w = tiny_worker(tiny_asr, tiny_aligner, diarizer_model="")
    try:
        out = w.run(job(**upload(talk), diarize=True, num_speakers=2))
        assert out == {"error": OFF}
        plain = w.run(job(**upload(talk), formats=["txt"]))
        assert "error" not in plain and "speakers" not in plain and plain["txt"].splitlines()[0] != ""
    finally:
        close(w)


def test_worker_with_a_diarizer_that_cannot_run_returns_the_transcript_with_a_warning(tiny_asr, tiny_aligner, talk,
                                                                                      tiny_asr_dir):
    w = tiny_worker(tiny_asr, tiny_aligner, diarizer_model=str(tiny_asr_dir))
    try:
        out = w.run(job(**upload(talk), diarize=True, num_speakers=2, formats=["srt", "vtt", "txt"]))
        assert "error" not in out and out["text"] and "speakers" not in out
        assert any(m.startswith("speaker labels failed (") for m in out["warnings"]), out["warnings"]
        assert "<v " not in out["vtt"] and "Speaker" not in out["srt"] + out["txt"]
    finally:
        close(w)
