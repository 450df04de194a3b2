"""Stopping leaves nothing behind: SIGTERM (how containers are stopped) on the web app or the RunPod worker ends
its decode worker processes and multiprocessing's resource tracker too, and decode workers whose parent is killed
outright end on their own.

Real entry points in subprocesses, each in its own session, observed through /proc: after the stop, no process of
that session may remain.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from net_helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]


def proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state, ppid, pgrp, session, ...), or None once the process is gone or a
    zombie (dead, only waiting for whoever adopted it to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else fields


def live_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def session_of(sid: int) -> list[int]:
    """The live processes of session `sid`, whoever their parent is now."""
    return [pid for pid in live_pids() if (st := proc_stat(pid)) and int(st[3]) == sid]


def decode_workers(root: int) -> list[int]:
    """Descendants of `root` that are multiprocessing spawn children (the decode pool's workers)."""
    children: dict[int, list[int]] = {}
    for pid in live_pids():
        if st := proc_stat(pid):
            children.setdefault(int(st[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(child)
    return found


def kill_session(sid: int) -> None:
    for pid in session_of(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def base_env(tmp_path: Path, tiny_asr_dir, tiny_aligner_dir, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNPOD_", "GRADIO_")) and k not in ("PORT", "APP_MODE")}
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    env.update(ASR_MODEL=str(tiny_asr_dir), ALIGNER_MODEL=str(tiny_aligner_dir), ASR_BACKEND="transformers",
               DEVICE="cpu", DECODE_WORKERS="2", HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TMPDIR=str(tmp))
    env.update(extra)
    return env


def serve_then_sigterm(args: list[str], env: dict, ready_url: str, log_path: Path) -> tuple[int, str]:
    """Start `args` in a session of its own, wait until `ready_url` answers 200 and both decode workers run, send
    SIGTERM; returns (exit status, log) once the process has exited and no process of its session is left."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=log_path.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def ready():
            if proc.poll() is not None:
                return True
            try:
                up = requests.get(ready_url, timeout=2).status_code == 200
            except requests.RequestException:
                return False
            return up and len(decode_workers(proc.pid)) == 2
        assert wait_until(ready, timeout=150) and proc.poll() is None, log_path.read_text()[-3000:]
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
        left = wait_until(lambda: not session_of(proc.pid), timeout=5)
        text = log_path.read_text()
        assert left, f"left running: {session_of(proc.pid)}\n{text[-3000:]}"
        return code, text
    finally:
        kill_session(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_stops_the_web_app_and_its_decode_workers(tmp_path, tiny_asr_dir, tiny_aligner_dir):
    port = free_port()
    env = base_env(tmp_path, tiny_asr_dir, tiny_aligner_dir, GRADIO_SERVER_PORT=str(port),
                   GRADIO_SERVER_NAME="127.0.0.1", GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    code, log = serve_then_sigterm([sys.executable, str(ROOT / "app.py")], env, f"http://127.0.0.1:{port}/",
                                   tmp_path / "app.log")
    assert code == 0 and "Traceback" not in log, log[-3000:]  # stopped as Ctrl-C stops it, not killed


@pytest.mark.parametrize("entry", [["-m", "runpod_worker"], [str(ROOT / "app.py")]], ids=["module", "app.py"])
def test_sigterm_stops_the_worker_and_its_decode_workers(tmp_path, tiny_asr_dir, tiny_aligner_dir, entry):
    port = free_port()
    env = base_env(tmp_path, tiny_asr_dir, tiny_aligner_dir, APP_MODE="runpod")
    args = [sys.executable, *entry, "--rp_serve_api", "--rp_api_port", str(port), "--rp_api_host", "127.0.0.1"]
    code, log = serve_then_sigterm(args, env, f"http://127.0.0.1:{port}/openapi.json", tmp_path / "worker.log")
    assert code == 0 and "Traceback" not in log, log[-3000:]


def test_decode_workers_exit_when_their_parent_is_killed(tmp_path):
    """SIGKILL leaves no time for any clean-up in the parent: the workers notice that it is gone and exit."""
    code = ("import sys, time\nfrom core.audio.decode_pool import DecodePool\np = DecodePool(2)\np.start()\n"
            "print(*p.worker_pids(), flush=True)\ntime.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(proc_stat(p) for p in workers)
        proc.kill()
        proc.wait(timeout=10)
        assert wait_until(lambda: not session_of(proc.pid), timeout=5), session_of(proc.pid)
    finally:
        kill_session(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
