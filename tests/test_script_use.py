"""The README's Python example works as a plain script, without an `if __name__ == "__main__":` guard.

The decode pool's worker processes are spawned (a fresh interpreter each), and multiprocessing's spawn re-runs the
parent's main script in every child unless told otherwise; unguarded, that script would load both models again in
each worker and try to start a pool there. Run here as a user runs it: a real script, a real 3-minute file, real
worker processes, in a subprocess.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from audio_helpers import make_podcast

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = '''
import sys
print("SCRIPT BODY RUNS", file=sys.stderr, flush=True)  # once in the parent; once more per worker if re-run there

import numpy as np
from core import Pipeline, TranscribeOptions
from core.audio.decode import decode_audio
from core.config import config_from_env

pipe = Pipeline(config_from_env(asr_model=sys.argv[1], aligner_model=sys.argv[2], asr_backend="transformers",
                                device="cpu", decode_workers=2))
t = pipe.transcribe(sys.argv[3], TranscribeOptions(language="English"))
print("TEXT:", t.text)
print("WORKERS:", len(pipe.decoder.worker_pids()))
print("EXACT:", np.array_equal(pipe.decoder.decode(sys.argv[3]), decode_audio(sys.argv[3])))
pipe.close()
'''


def test_the_readme_example_runs_as_an_unguarded_script(tmp_path, tiny_asr_dir, tiny_aligner_dir):
    pod = make_podcast(tmp_path / "episode.mp3", 3)
    script = tmp_path / "transcribe.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    run = subprocess.run([sys.executable, str(script), str(tiny_asr_dir), str(tiny_aligner_dir), str(pod.path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "decode worker died" not in run.stderr, run.stderr[-3000:]
    assert run.stderr.count("SCRIPT BODY RUNS") == 1, run.stderr[-3000:]  # the models were loaded once
    out = run.stdout.splitlines()
    assert any(line.startswith("TEXT:") and len(line) > len("TEXT: ") for line in out), run.stdout
    assert "WORKERS: 2" in out and "EXACT: True" in out, run.stdout  # decoded in slices, bit for bit
