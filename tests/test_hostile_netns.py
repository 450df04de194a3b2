"""Hostile URLs that need a public web server, through all three entry points: `hostile_netns.py` runs them in a
private network namespace (a redirect to loopback, DNS names that resolve inward, the fetch limits) and records
what each entry point answered; the assertions are here: a clear message with the expected phrase, no leak, no
request to the loopback canary, no temporary file left, and the next good job still works.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import hostile_netns
from hostile_helpers import ENTRIES, Outcome, good_speech_ok, leaks


@pytest.fixture(scope="module")
def netns_results(tmp_path_factory, tiny_asr_dir, tiny_aligner_dir):
    """Run hostile_netns.py in its own network + mount namespace once; skip where namespaces are not allowed."""
    folder = tmp_path_factory.mktemp("netns")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare(1) and ip(8) to build a private network namespace")
    probe = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here (needs root or CAP_SYS_ADMIN): {probe.stderr.strip()}")
    out = folder / "results.json"
    env = dict(os.environ, HOSTILE_OUT=str(out), HOSTILE_ASR_DIR=str(tiny_asr_dir),
               HOSTILE_ALIGNER_DIR=str(tiny_aligner_dir), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    run = subprocess.run(hostile_netns.command(sys.executable, hostile_netns.hosts_file(folder)), env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and out.exists(), run.stderr[-4000:]
    records = json.loads(out.read_text())
    return {(r["case"], r.get("entry")): r for r in records}


NETNS = [pytest.param(name, entry, expect, ssrf, id=f"{entry}: {name}")
         for name, _target, expect, ssrf in hostile_netns.CASES for entry in ENTRIES]


@pytest.mark.parametrize("name, entry, expect, ssrf", NETNS)
def test_hostile_url_from_a_public_server(netns_results, name, entry, expect, ssrf):
    rec = netns_results[(name, entry)]
    assert "crash" not in rec, rec["crash"]
    assert rec["error"] and expect.phrase.lower() in rec["error"].lower(), rec["error"]
    assert not leaks(rec["error"]), rec["error"]
    assert hostile_netns.SECRET.decode() not in rec["error"]  # a fetched body is never echoed
    assert rec["canary_hits"] == 0, "the canary on loopback was contacted"
    assert rec["leftovers"] == [], rec["leftovers"]
    # the next job, from the same public server with the switch still off, works
    duration = netns_results[("__server__", None)]["good_duration"]
    good_speech_ok(Outcome(**rec["next"]), duration)


def test_web_file_input_never_fetches_a_url(netns_results):
    rec = netns_results[("__filedata_url__", "web")]
    good_speech_ok(Outcome(**rec["next"]), netns_results[("__server__", None)]["good_duration"])
    assert rec["error"] and "Link tab" in rec["error"] and not leaks(rec["error"]), rec["error"]
    assert rec["fetched"] == [], f"the web app downloaded {hostile_netns.FILEDATA_URL_PATH} from the link"
