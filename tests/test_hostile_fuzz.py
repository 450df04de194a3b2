"""Fuzzing the RunPod worker's input schema through the handler (hypothesis): any job, near-valid or wild, gets a
transcript or a clear error through the SDK's own wrapper, never a traceback or a leak, and never reaches the
loopback canary. Set up as in test_hostile.py (`hostile_setup_helpers`), with the private-address switch off.
"""
from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_helpers import WorkerEntry, leaks, leftovers
from hostile_setup_helpers import canary, config, media, pipeline, private_tmp  # noqa: F401 (fixtures)
from runpod_worker.handler import Worker


# -- fuzzing the worker's input schema through the handler --------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_worker(pipeline):
    w = Worker(pipeline)
    yield w
    w.close()


def job_inputs(canary_port: int, good_b64: str):
    """Jobs near the valid ones (a good source, each option valid or hostile), jobs with any value in any field,
    and inputs that are not objects at all."""
    anything = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
                | st.lists(st.text(max_size=5), max_size=3)
                | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
    urls = st.sampled_from([f"http://127.0.0.1:{canary_port}/a.mp3", f"http://[::1]:{canary_port}/",
                            f"http://2130706433:{canary_port}/", f"http://localhost:{canary_port}/",
                            f"http://[::ffff:7f00:1]:{canary_port}/", "http://169.254.169.254/", "file:///etc/passwd",
                            "concat:/etc/passwd", "-x", "/etc/passwd"]) | st.text(max_size=40)
    good = st.sampled_from([good_b64, "data:audio/wav;base64," + good_b64, good_b64.replace("+", "-")])
    bad = st.sampled_from(["%%%", "", "data:text/html,<b>x</b>", "QUFB" * 3, good_b64[:101]])
    valid = {  # values a client may send; the near-valid jobs mostly hold these
        "filename": st.sampled_from(["a.wav", "../../etc/passwd", "x" * 300, "a.exe", "", ".mp3", "a.wav\0.exe"]),
        "language": st.sampled_from(["en", "auto", "English", "fr", "zh-CN", ""]),
        "word_timestamps": st.booleans(),
        "context": st.text(max_size=50),
        "formats": st.lists(st.sampled_from(["srt", "vtt", "txt", "SRT"]), max_size=4),
        "chunk_seconds": st.sampled_from([5, 30, 180, 12.5]),
    }
    invalid = {
        "filename": st.integers(), "language": st.sampled_from(["Klingon", "../", "en\0"]),
        "word_timestamps": st.sampled_from(["no", 0, None]), "context": st.text(min_size=4001, max_size=4001),
        "formats": st.lists(st.sampled_from(["pdf", "", "../srt"]), min_size=1, max_size=2),
        "chunk_seconds": st.sampled_from([4.99, 0, -1, 1e9, float("inf"), float("nan"), True, "30"]),
    }
    options = {k: v | invalid[k] | anything for k, v in valid.items()}
    near_valid = st.fixed_dictionaries({"audio_base64": good}, optional=valid)
    hostile_url = st.fixed_dictionaries({"audio_url": urls}, optional=options)
    wild = st.fixed_dictionaries({}, optional={**options, "audio_url": urls | anything,
                                               "audio_base64": good | bad | anything, "extra": anything})
    return st.one_of(near_valid, hostile_url, wild, anything)


def test_fuzzed_jobs_always_get_an_answer(fuzz_worker, media, canary, private_tmp):
    """Any job gives {"output": transcript} or {"error": message} through the SDK's wrapper, never a traceback."""
    good_b64 = base64.b64encode(media.files["good"]).decode()
    hits = len(canary.hits)
    answered = {"output": 0, "error": 0}

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(job_inputs(canary.port, good_b64), st.text(max_size=12))
    def one(raw, job_id):
        out = WorkerEntry(fuzz_worker).run_job({"id": job_id, "input": raw})
        if out.error is not None:
            answered["error"] += 1
            assert out.error.strip() and not leaks(out.error, private_tmp), out.error
        else:
            answered["output"] += 1
            assert {"text", "segments", "warnings", "duration", "language"} <= set(out.transcript)
            assert json.loads(json.dumps(out.transcript)) == out.transcript

    one()
    assert answered["error"] > 0 and answered["output"] > 0, answered
    assert len(canary.hits) == hits, "a fuzzed job reached the canary"
    assert not leftovers(private_tmp)
