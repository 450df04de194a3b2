"""Batches (issue 18) in RunPod mode: `python -m core` with folders, list files and podcast feeds sends each item as
a job to the loopback copy of RunPod's API (tests/runpod_api.py) running the real worker on the tiny models, several
jobs at once. The jobs overlap on the endpoint, a rerun skips what is written, a failure is listed and retried,
Ctrl-C cancels the jobs in flight, a feed's private-address enclosure is refused alone; and `transcribe_batch` in
the process shares the engine's batches between its items and stops on its `cancel` event. The tiny models have
random weights: what is checked is statuses, files, calls and timing, never words. The API key never leaks.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from audio_helpers import speech_wav
from core.batch import Watcher, transcribe_batch
from core.pipeline import Pipeline
from core.types import AsrRequest
from engine_helpers import Held
from net_helpers import MediaServer, wait_until
from remote_helpers import KEY, ROOT, key_never_leaks  # noqa: F401 (a fixture)
from runpod_api import RunPodAPI
from runpod_worker.handler import Worker

pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind
EXTS = ("json", "srt", "txt", "vtt")


@pytest.fixture(scope="module")
def worker(tiny_config):
    """The real worker, three jobs at a time (as three RunPod workers would run them)."""
    w = Worker(Pipeline(dataclasses.replace(tiny_config, allow_private_urls=True)), concurrency=3)
    yield w
    w.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three short spoken WAVs; their bytes are also served as URLs."""
    root = tmp_path_factory.mktemp("clips")
    texts = ("Hello there, this is the first clip.", "A second recording with other words.",
             "And a third one, in a subfolder.")
    return [speech_wav(root / f"clip{i}.wav", text) for i, text in enumerate(texts)]


def cli(api, *args, cwd, tmp, popen=False):
    cmd = [sys.executable, "-m", "core", *map(str, args)]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "ASR_BACKEND": "runpod", "RUNPOD_ENDPOINT_URL": api.url, "RUNPOD_API_KEY": KEY,
           "ALLOW_PRIVATE_URLS": "1", "TMPDIR": str(tmp)}
    if popen:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert KEY not in run.stdout and KEY not in run.stderr
    return run


def record(out) -> dict:
    text = (out / "batch.json").read_text()
    assert KEY not in text
    return {e["name"]: e for e in json.loads(text)["items"]}


def runs(api) -> int:
    return len(api.ops("run"))


def most_at_once(jobs) -> int:
    """The largest number of jobs whose [started, finished] intervals on the endpoint share a moment."""
    spans = [(j.started, j.finished) for j in jobs if j.started is not None and j.finished is not None]
    return max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)


def files_of(folder, stem) -> list[str]:
    return sorted(p.name for p in folder.glob(f"{stem}.*"))


# -- a folder: concurrent jobs, a rerun, --overwrite --------------------------------------------------------------

def test_folder_runs_concurrently_and_a_rerun_skips_it(worker, clips, tmp_path, own_tempdir):
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    for clip, rel in zip(clips, ("a.wav", "b.wav", "sub/c.wav")):
        (src / rel).write_bytes(clip.read_bytes())
    with RunPodAPI(worker.handle, api_key=KEY, workers=3) as api:
        run = cli(api, src, "-o", out, "--parallel", "3", "-q", cwd=tmp_path, tmp=own_tempdir)
        assert run.returncode == 0, run.stderr[-3000:]
        jobs = list(api.jobs.values())
        assert runs(api) == 3 and all(j.status == "COMPLETED" for j in jobs)
        assert all("audio_base64" in j.input for j in jobs)  # local files are uploaded
    assert most_at_once(jobs) >= 2, [(j.started, j.finished) for j in jobs]
    for folder, stem in ((out, "a"), (out, "b"), (out / "sub", "c")):
        assert files_of(folder, stem) == [f"{stem}.{e}" for e in EXTS]
    entries = record(out)
    assert sorted(entries) == ["a", "b", "sub/c"]
    for name, e in entries.items():
        assert e["status"] == "done" and e["error"] == "" and e["seconds"] > 0
        assert e["duration_s"] == pytest.approx(json.loads((out / f"{name}.json").read_text())["duration"], abs=0.01)
        assert sorted(e["outputs"]) == sorted(str(out / f"{name}.{x}") for x in EXTS)
        assert e["source"] == str(src / (name + ".wav"))
    assert sorted(run.stdout.split()) == sorted(p for e in entries.values() for p in e["outputs"])
    assert "3 done" in run.stderr and f"record: {out / 'batch.json'}" in run.stderr
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p.name != "batch.json"}

    with RunPodAPI(worker.handle, api_key=KEY, workers=3) as api:
        again = cli(api, src, "-o", out, "--parallel", "3", "-q", cwd=tmp_path, tmp=own_tempdir)
        assert again.returncode == 0, again.stderr[-3000:]
        assert api.calls == []  # nothing sent, not even a status request
    assert record(out) == entries  # the record keeps what the run that wrote the files measured
    assert "3 skipped" in again.stderr and again.stdout == ""
    assert {p: p.stat().st_mtime_ns for p in written} == written

    with RunPodAPI(worker.handle, api_key=KEY, workers=3) as api:
        forced = cli(api, src, "-o", out, "--parallel", "3", "--overwrite", "-q", cwd=tmp_path, tmp=own_tempdir)
        assert forced.returncode == 0, forced.stderr[-3000:]
        assert runs(api) == 3
    assert {e["status"] for e in record(out).values()} == {"done"}
    assert all(p.stat().st_mtime_ns != t for p, t in written.items())


# -- a list file with a failing URL, retried -------------------------------------------------------------------------

def test_list_failure_is_listed_and_retried(worker, clips, tmp_path, own_tempdir):
    out = tmp_path / "out"
    with MediaServer() as media, RunPodAPI(worker.handle, api_key=KEY, workers=3) as api:
        media.add_bytes("/good.wav", clips[0].read_bytes(), "audio/wav")
        flaky = media.add_status("/flaky.wav", 404)
        (tmp_path / "local.wav").write_bytes(clips[1].read_bytes())
        listing = tmp_path / "inputs.txt"
        listing.write_text(f"# a comment\nlocal.wav\n{media.url('/good.wav')}\n\n{flaky}\n{clips[2]}\n")
        run = cli(api, listing, "-o", out, "--parallel", "3", "-q", cwd=tmp_path, tmp=own_tempdir)
        assert run.returncode == 1, run.stderr[-3000:]
        assert runs(api) == 4
        entries = record(out)
        assert {n: e["status"] for n, e in entries.items()} == {"local": "done", "good": "done", "flaky": "failed",
                                                               "clip2": "done"}
        assert entries["flaky"]["source"] == flaky and "404" in entries["flaky"]["error"]
        assert entries["flaky"]["outputs"] == [] and not list(out.glob("flaky.*"))
        summary = run.stderr[run.stderr.index("not transcribed:"):]
        assert "  flaky (failed): " in summary and "local" not in summary
        # the hint is this command again without its inputs: same output folder and options
        hint = shlex.split(summary.split("retry them with: ", 1)[1].splitlines()[0])
        assert hint == ["python", "-m", "core", "--retry-failed", "-o", str(out), "--parallel", "3", "-q"]

        media.add_bytes("/flaky.wav", clips[0].read_bytes(), "audio/wav")  # the server is back
        before = runs(api)
        retry = cli(api, *hint[3:], cwd=tmp_path, tmp=own_tempdir)
        assert retry.returncode == 0, retry.stderr[-3000:]
        assert runs(api) - before == 1
        assert [j.status for j in api.jobs.values() if j.input.get("audio_url") == flaky] == ["FAILED", "COMPLETED"]
    entries = record(out)
    assert {n: e["status"] for n, e in entries.items()} == {"local": "done", "good": "done", "flaky": "done",
                                                           "clip2": "done"}
    assert entries["flaky"]["error"] == "" and files_of(out, "flaky") == [f"flaky.{e}" for e in EXTS]
    assert "1 done" in retry.stderr and "not transcribed" not in retry.stderr


# -- a feed with one enclosure on a private address ----------------------------------------------------------------

def rss(episodes) -> bytes:
    items = "".join(f"<item><title>{title}</title><pubDate>{day}</pubDate>"
                    f'<enclosure url="{url}" type="audio/wav" length="1000"/></item>' for title, day, url in episodes)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Loopback cast</title>'
            f"<link>http://127.0.0.1/</link><description>test</description>{items}</channel></rss>").encode()


def test_feed_refuses_its_private_enclosure_only(worker, clips, tmp_path, own_tempdir):
    out = tmp_path / "out"
    with MediaServer() as media, RunPodAPI(worker.handle, api_key=KEY, workers=3) as api:
        for i, clip in enumerate(clips):
            media.add_bytes(f"/ep{i}.wav", clip.read_bytes(), "audio/wav")
        feed = media.add_bytes("/feed.xml", rss([
            ("Pilot", "Mon, 01 Jan 2024 08:00:00 +0000", media.url("/ep0.wav")),
            ("Second talk", "Tue, 02 Jan 2024 08:00:00 +0000", media.url("/ep1.wav")),
            ("Inside job", "Wed, 03 Jan 2024 08:00:00 +0000", "http://10.1.2.3/ep.mp3"),
            ("Finale", "Thu, 04 Jan 2024 08:00:00 +0000", media.url("/ep2.wav")),
        ]), "application/rss+xml")
        run = cli(api, feed, "-o", out, "--parallel", "3", "-q", cwd=tmp_path, tmp=own_tempdir)
        assert run.returncode == 1, run.stderr[-3000:]  # one episode is not transcribed
        assert runs(api) == 3
        sent = sorted(j.input.get("audio_url") for j in api.jobs.values())
        assert sent == sorted(media.url(f"/ep{i}.wav") for i in range(3))
        assert all(j.status == "COMPLETED" for j in api.jobs.values())
    entries = record(out)
    assert {n: e["status"] for n, e in entries.items()} == {
        "2024-01-04 Finale": "done", "2024-01-03 Inside job": "refused", "2024-01-02 Second talk": "done",
        "2024-01-01 Pilot": "done"}
    refused = entries["2024-01-03 Inside job"]
    assert "non-public address" in refused["error"] and refused["outputs"] == [] and refused["seconds"] is None
    assert refused["origin"] == feed and refused["published"] == "2024-01-03"
    for name in ("2024-01-04 Finale", "2024-01-02 Second talk", "2024-01-01 Pilot"):
        assert files_of(out, name) == [f"{name}.{e}" for e in EXTS]
    assert not list(out.glob("2024-01-03*"))
    assert f"error: {feed}: the feed points this episode at a non-public address" in run.stderr
    assert "  2024-01-03 Inside job (refused): " in run.stderr
    assert "retry them with" not in run.stderr  # a refusal would only be refused again


# -- Ctrl-C -----------------------------------------------------------------------------------------------------------

def test_ctrl_c_cancels_the_jobs_in_flight_and_keeps_finished_outputs(worker, clips, tmp_path, own_tempdir):
    out = tmp_path / "out"
    wav = clips[0].read_bytes()
    with MediaServer() as media, RunPodAPI(worker.handle, api_key=KEY, workers=3) as api:
        urls = [media.add_bytes("/quick.wav", wav, "audio/wav")]
        urls += [media.add_trickle(f"/slow{i}.wav", wav, delay=0.5, piece=len(wav) // 40 + 1) for i in range(3)]
        (tmp_path / "inputs.txt").write_text("\n".join(urls) + "\n")  # each slow one takes about 20 s to fetch

        def in_progress():
            return [j.id for j in list(api.jobs.values()) if j.status in ("IN_QUEUE", "IN_PROGRESS")]

        def temp_dirs():
            return [p for p in own_tempdir.iterdir() if p.name.startswith("asr-")]

        def quick_done():
            try:
                return record(out)["quick"]["status"] == "done"
            except (OSError, KeyError, ValueError):
                return False

        proc = cli(api, "inputs.txt", "-o", out, "--parallel", "2", "-q", cwd=tmp_path, tmp=own_tempdir,
                   popen=True)
        try:
            # two jobs in flight, both downloading into the worker's temp dirs
            assert wait_until(lambda: quick_done() and len(in_progress()) == 2 and len(temp_dirs()) == 2, timeout=90)
            in_flight = in_progress()
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert KEY not in stdout and KEY not in stderr
        assert proc.returncode == 130, stderr[-3000:]
        assert runs(api) == 3  # the last item was never sent
        assert sorted(api.ops("cancel")) == sorted(in_flight)
        assert all(api.jobs[i].status == "CANCELLED" for i in in_flight)
        assert wait_until(lambda: all(api.jobs[i].worker_done.is_set() for i in in_flight), timeout=10)
    entries = record(out)
    assert {n: e["status"] for n, e in entries.items()} == {"quick": "done", "slow0": "cancelled",
                                                           "slow1": "cancelled", "slow2": "cancelled"}
    assert {entries[n]["error"] for n in ("slow0", "slow1")} == {"stopped while running"}
    assert "before this item started" in entries["slow2"]["error"]
    assert files_of(out, "quick") == [f"quick.{e}" for e in EXTS]
    assert stdout.split() == entries["quick"]["outputs"]
    assert not [p for p in out.iterdir() if p.name.startswith("slow")]
    assert "stopped by Ctrl-C" in stderr and "retry them with:" in stderr
    assert wait_until(lambda: not temp_dirs(), timeout=10)


# -- the Python API, in this process ---------------------------------------------------------------------------------

class Stages(Watcher):
    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}
        self.lock = threading.Lock()

    def stage(self, item, stage, done, total) -> None:
        with self.lock:
            self.seen.setdefault(item.name, set()).add(stage)


def test_python_api_shares_the_engine_and_stops_on_cancel(tiny_config, clips, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i, clip in enumerate(clips):
        (src / f"c{i}.wav").write_bytes(clip.read_bytes())
    pipeline = Pipeline(tiny_config)
    engine = pipeline.asr.engine
    try:
        # Hold the ASR engine with an item of its own until both items in flight have queued their chunks.
        chunk = AsrRequest((np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32))
        watcher, reports = Stages(), []
        with Held(lambda block: engine.run([chunk], on_result=block)):
            seen = len(engine.history)
            batch = threading.Thread(target=lambda: reports.append(transcribe_batch(
                [src], output_dir=out, transcriber=pipeline, parallel=2, formats=("json",), watcher=watcher)))
            batch.start()
            assert wait_until(lambda: sum("transcribe" in s for s in dict(watcher.seen).values()) == 2, timeout=120)
        batch.join(300)
        (report,) = reports
        assert [r.status for r in report.results] == ["done"] * 3 and report.ok
        assert sorted(p.name for p in out.glob("*.json")) == ["batch.json", "c0.json", "c1.json", "c2.json"]
        assert list(engine.history)[seen].jobs == 2  # the first batch after the hold mixed both items' chunks

        # A cancel event set while the second item runs: it stops, the third never starts, the first is kept.
        cancel, out2 = threading.Event(), tmp_path / "out2"

        class Canceller(Watcher):
            def stage(self, item, stage, done, total) -> None:
                if item.name == "c1":
                    cancel.set()

        report = transcribe_batch([src], output_dir=out2, transcriber=pipeline, parallel=1, formats=("json",),
                                  cancel=cancel, watcher=Canceller())
        assert [r.status for r in report.results] == ["done", "cancelled", "cancelled"] and report.interrupted
        assert report.results[1].error == "stopped while running" and report.results[1].seconds is not None
        assert "before this item started" in report.results[2].error
        assert sorted(p.name for p in out2.iterdir()) == ["batch.json", "c0.json"]
        assert {n: e["status"] for n, e in record(out2).items()} == {"c0": "done", "c1": "cancelled",
                                                                    "c2": "cancelled"}
    finally:
        pipeline.close()
