"""What ships with the RunPod worker, checked: the example jobs, the README's input and output tables, and the SDK's
local modes (`--rp_serve_api`, `--test_input`, the Hub's entry file) run in a subprocess as the image runs them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from core.config import Config
from core.remote.schema import FIELDS, parse_job_input
from model_helpers import tiny_aligner_dir, tiny_asr_dir  # noqa: F401 (fixtures)
from net_helpers import MediaServer, free_port, wait_until
from worker_helpers import ROOT, assert_transcript, job, media, pipeline, speech, worker  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind


# -- the shipped example jobs and the docs -----------------------------------------------------------------------

def test_example_jobs_are_valid():
    parse_job_input(json.loads((ROOT / "test_input.json").read_text())["input"])
    tests = json.loads((ROOT / ".runpod" / "tests.json").read_text())
    assert tests["tests"]
    for t in tests["tests"]:
        parse_job_input(t["input"])
        assert t["timeout"] >= 60_000
    hub = json.loads((ROOT / ".runpod" / "hub.json").read_text())
    assert hub["type"] == "serverless" and hub["category"] == "audio"
    env = {e["key"]: e for e in hub["config"]["env"]}
    assert env["APP_MODE"]["value"] == "runpod"
    known = {f.name.upper() for f in dataclasses.fields(Config)}
    assert set(env) <= known, set(env) - known  # every setting offered is one the worker reads
    assert min(float(v) for v in hub["config"]["allowedCudaVersions"]) >= 13.0


def field_table(fields: dict, doc: str = "doc", heading: str = "Meaning") -> str:
    """A docs table generated from a schema's field table (core.remote.schema.FIELDS, faster_whisper.FW_FIELDS)."""
    kind = {str: "string", bool: "boolean", list: "list", int: "number", float: "number"}
    rows = [f"| Field | Type | Default | {heading} |", "| --- | --- | --- | --- |"]
    for name, f in fields.items():
        types = f.type if isinstance(f.type, tuple) else (f.type,)
        default = "—" if f.default is None else f"`{json.dumps(f.default)}`"
        rows.append(f"| `{name}` | {' or '.join(dict.fromkeys(kind[t] for t in types))} | {default} | "
                    f"{getattr(f, doc)} |")
    return "\n".join(rows)


def input_table() -> str:
    """The docs' input reference, generated from core.remote.schema.FIELDS."""
    return field_table(FIELDS)


def readme_table(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker}:start -->\n(.*?)\n<!-- {marker}:end -->", text, re.S)
    assert m, f"README.md lost its {marker} markers"
    return m.group(1)


def test_docs_faster_whisper_table_matches_the_schema():
    from core.remote.faster_whisper import FW_FIELDS

    table = field_table(FW_FIELDS, "use", "What this worker does")
    assert readme_table("fw-table") == table, "regenerate the table:\n" + table


def test_docs_input_table_matches_the_schema():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- input-table:start -->\n(.*?)\n<!-- input-table:end -->", text, re.S)
    assert m, "README.md lost its input-table markers"
    assert m.group(1) == input_table(), "regenerate the table:\n" + input_table()


def test_docs_output_table_names_every_output_field(worker, media):
    out = worker.run(job(audio_url=media.url("/speech.wav"), formats=["srt", "vtt", "txt"]))
    text = (ROOT / "README.md").read_text()
    section = text.split("### Job output", 1)[1].split("###", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)`", section, re.M)) | set(re.findall(r"`(\w+)`, `(\w+)`, `(\w+)` \|",
                                                                                section)[0])
    assert documented == set(out)
    for stage in out["timings"]:
        assert f"`{stage}`" in section


# -- the SDK's local modes, in a subprocess as the image runs them -------------------------------------------------

def worker_env(tmp_path: Path, asr_dir, aligner_dir, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(ASR_MODEL=str(asr_dir), ALIGNER_MODEL=str(aligner_dir), ASR_BACKEND="transformers", DEVICE="cpu",
               ALLOW_PRIVATE_URLS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path / "tmp"),
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def test_rp_serve_api_answers_runsync(tmp_path, tiny_asr_dir, tiny_aligner_dir, media, speech, own_tempdir):
    port = free_port()
    log = open(tmp_path / "worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "runpod_worker", "--rp_serve_api", "--rp_api_port", str(port),
                             "--rp_api_host", "127.0.0.1"],
                            cwd=tmp_path, env=worker_env(own_tempdir.parent, tiny_asr_dir, tiny_aligner_dir),
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return requests.get(base + "/openapi.json", timeout=1).status_code == 200
            except requests.RequestException:
                return proc.poll() is not None
        assert wait_until(up, timeout=90) and proc.poll() is None, (tmp_path / "worker.log").read_text()
        good = {"input": {"audio_url": media.url("/speech.wav"), "formats": ["srt"]}}
        r = requests.post(base + "/runsync", json=good, timeout=120).json()
        assert r["status"] == "COMPLETED", r
        assert_transcript(r["output"], speech[1], formats=("srt",))
        bad = requests.post(base + "/runsync", json={"input": {"audio_url": media.url("/speech.wav"), "x": 1}},
                            timeout=60).json()
        assert bad["status"] == "FAILED" and bad["error"].startswith("unknown input field(s): x")
        again = requests.post(base + "/runsync", json=good, timeout=120).json()
        assert again["status"] == "COMPLETED" and again["output"]["text"] == r["output"]["text"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_test_input_prints_a_transcript(tmp_path, tiny_asr_dir, tiny_aligner_dir, media, own_tempdir):
    """The image's own command (`python /app/app.py` from another directory, APP_MODE=runpod) in --test_input mode,
    with RunPod's job-done URL pointed at a loopback server that collects the progress updates."""
    captured = []
    with MediaServer() as runpod_side:
        def done(h):
            captured.append(json.loads(h.rfile.read(int(h.headers["Content-Length"]))))
            h.send_response(200)
            h.send_header("Content-Length", "0")
            h.end_headers()
        runpod_side.add("/done/local_test", done)
        env = worker_env(own_tempdir.parent, tiny_asr_dir, tiny_aligner_dir,
                         RUNPOD_WEBHOOK_POST_OUTPUT=runpod_side.url("/done/$ID?worker=w1"), APP_MODE="runpod")
        test_input = {"input": {"audio_url": media.url("/speech.wav"), "formats": ["vtt"]}}
        r = subprocess.run([sys.executable, str(ROOT / "app.py"), "--test_input", json.dumps(test_input)],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    result = r.stdout[r.stdout.index("Job result:"):]
    assert "'text':" in result and "'segments':" in result and "WEBVTT" in result
    assert "models ready in" in r.stderr
    stages = {c["output"].split()[0] for c in captured if c.get("status") == "IN_PROGRESS"}
    assert {"download", "transcribe"} <= stages, captured


def test_hub_entry_file_with_a_bad_job_fails(tmp_path, tiny_asr_dir, tiny_aligner_dir, own_tempdir):
    """.runpod/handler.py (the file RunPod Hub asks for) starts the same worker; a failed job exits 1."""
    env = worker_env(own_tempdir.parent, tiny_asr_dir, tiny_aligner_dir)
    r = subprocess.run([sys.executable, str(ROOT / ".runpod" / "handler.py"), "--test_input",
                        json.dumps({"input": {"audio_url": "ftp://example.com/a.mp3"}})],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 1
    assert "'ftp' inputs are not supported" in r.stdout


def test_worker_refuses_the_runpod_backend(tmp_path, own_tempdir):
    env = worker_env(own_tempdir.parent, "unused", "unused", ASR_BACKEND="runpod")
    r = subprocess.run([sys.executable, "-m", "runpod_worker", "--test_input", '{"input": {}}'], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "ASR_BACKEND=runpod would make the worker send its jobs to a RunPod endpoint" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_base64_job_from_test_input_json_is_not_echoed(tmp_path, tiny_asr_dir, tiny_aligner_dir, speech,
                                                        own_tempdir):
    """Issue 15: the documented way to run a real file locally (./test_input.json, since its base64 does not fit on
    a command line), and the job's input stays out of the worker's output."""
    import base64

    b64 = base64.b64encode(speech[0]).decode()
    (tmp_path / "test_input.json").write_text(json.dumps({"input": {"audio_base64": b64, "filename": "s.wav"}}))
    env = worker_env(own_tempdir.parent, tiny_asr_dir, tiny_aligner_dir)
    r = subprocess.run([sys.executable, "-m", "runpod_worker"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Job result:" in r.stdout and "'segments':" in r.stdout
    assert b64[100:160] not in r.stdout + r.stderr
