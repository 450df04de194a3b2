"""What the benchmark measures beyond time: CPU seconds of every process (bench.cpu_time), vLLM's start-up lines and
the cold-start modes (bench.coldstart), and the worker step's jobs through the RunPod handler (bench.worker_many)."""
from __future__ import annotations

import json
import os
import time

import pytest

from bench.report import summary


# ---- CPU time of all processes -----------------------------------------------------------------------------------

_BURN = ("import sys, time\n"
         "t = time.process_time()\n"
         "while time.process_time() - t < 0.5:\n"
         "    pass\n"
         "print('burnt', flush=True)\n"
         "sys.stdin.read()\n")


def test_cpu_time_finds_a_busy_child_and_files_it_where_told():
    import subprocess
    import sys

    from bench.cpu_time import descendants, snapshot, split

    child = subprocess.Popen([sys.executable, "-c", _BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        before = snapshot()
        assert child.pid in descendants(os.getpid())
        assert child.stdout.readline().strip() == "burnt"  # 0.5 s of its own CPU spent; it waits, still alive
        t = time.process_time()
        while time.process_time() - t < 0.3:  # and this process burns 0.3 s
            pass
        after = snapshot()
        as_other = split(before, after)
        as_decode = split(before, after, decode_pids=[child.pid])
    finally:
        child.stdin.close()
        child.wait(10)
    assert 0.4 <= as_other["engine_and_other_s"] <= 1.0 and as_other["decode_workers_s"] == 0.0
    assert as_decode["decode_workers_s"] == pytest.approx(as_other["engine_and_other_s"])
    assert as_decode["engine_and_other_s"] < 0.05
    assert 0.29 <= as_other["main_s"] <= 0.6
    assert as_other["total_s"] == pytest.approx(as_other["main_s"] + as_other["engine_and_other_s"])


def test_stage_cpu_charges_each_stage_and_reports_per_audio_hour():
    from bench.cpu_time import StageCpu

    cpu = StageCpu()
    for stage, seconds in (("decode", 0.2), ("transcribe", 0.4)):
        cpu(stage, 0, 1)
        t = time.process_time()
        while time.process_time() - t < seconds:
            pass
        cpu(stage, 1, 1)  # the same stage again: no new stage
    cpu("decode", 1, 1)  # a stage seen before: charged to the one running (transcribe), no new snapshot
    cpu.mark("write")
    out = cpu.stop(audio_s=1800.0)
    assert list(out["by_stage"]) == ["decode", "transcribe", "write"]
    assert 0.19 <= out["by_stage"]["decode"]["main_s"] <= 0.35
    assert 0.39 <= out["by_stage"]["transcribe"]["total_s"] <= 0.6
    assert out["per_audio_hour_s"] == pytest.approx(out["total_s"] * 2)  # half an hour of audio
    assert out["main_share"] > 0.9 and out["decode_workers"] == 0


# ---- vLLM's start-up log and the cold-start children ----------------------------------------------------------

VLLM_026_LOG = """\
(EngineCore pid=3916) INFO 12-03 22:40:13 [default_loader.py:430] Loading weights took 0.48 seconds
(EngineCore pid=3916) INFO 12-03 22:40:14 [model_runner.py:305] Model loading took 1.53 GiB and 3.346828 seconds
(EngineCore pid=3916) INFO 12-03 22:40:30 [backends.py:1155] Dynamo bytecode transform time: 12.79 s
(EngineCore pid=3916) INFO 12-03 22:40:59 [backends.py:393] Compiling a graph for compile range (1, 16384) takes 27.62 s
(EngineCore pid=3916) INFO 12-03 22:41:02 [backends.py:393] Compiling a graph for compile range (16385, 32768) takes 2.38 s
(EngineCore pid=3916) INFO 12-03 22:41:07 [monitor.py:53] torch.compile took 49.44 s in total
(EngineCore pid=3916) INFO 12-03 22:41:11 [gpu_worker.py:560] Available KV cache memory: 74.67 GiB
(EngineCore pid=3916) INFO 12-03 22:41:11 [kv_cache_utils.py:2177] GPU KV cache size: 699,104 tokens
Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|##########| 51/51 [00:05<00:00,  9.61it/s]
(EngineCore pid=3916) INFO 12-03 22:41:18 [model_runner.py:747] Graph capturing finished in 7 secs, took 0.50 GiB
(EngineCore pid=3916) INFO 12-03 22:41:41 [core.py:340] init engine (profile, create kv cache, warmup model) took \
86.66 s (compilation: 49.44 s)
"""

VLLM_OTHER_WORDING = """\
\x1b[32mINFO\x1b[0m 06-05 09:08:05 [gpu_model_runner.py:1] Model loading took 0.9 GiB memory and 2.5 seconds
INFO 06-05 09:08:06 [monitor.py:33] torch.compile takes 8.11 s in total
INFO 06-05 09:08:07 [gpu_worker.py:227] Memory profiling takes 11.85 seconds
INFO 06-05 09:08:08 [backends.py:161] Directly load the compiled graph(s) for compile range (1, 8192) from the cache, \
took 2.810 s
INFO 06-05 09:08:36 [core.py:167] init engine (profile, create kv cache, warmup model) took 47.64 seconds
"""


def test_vllm_start_up_lines_are_read():
    from bench.coldstart import parse_vllm_log

    assert parse_vllm_log(VLLM_026_LOG) == pytest.approx({
        "weights_load_s": 0.48, "model_load_gib": 1.53, "model_load_s": 3.346828, "dynamo_s": 12.79,
        "compile_graph_s": 30.0, "torch_compile_s": 49.44, "kv_cache_gib": 74.67, "kv_cache_tokens": 699104,
        "graph_capture_s": 7.0, "graph_capture_gib": 0.5, "init_engine_s": 86.66, "init_engine_compile_s": 49.44})
    other = parse_vllm_log(VLLM_OTHER_WORDING)
    assert other == pytest.approx({"model_load_gib": 0.9, "model_load_s": 2.5, "torch_compile_s": 8.11,
                                   "memory_profiling_s": 11.85, "compile_cache_load_s": 2.81, "init_engine_s": 47.64})
    assert parse_vllm_log("Loading safetensors checkpoint shards: 100% Completed | 1/1\nall good\n") == {}


def test_each_cold_start_mode_gets_the_numbers_of_its_own_vllm_log(tmp_path, monkeypatch):
    import subprocess

    from bench import coldstart

    def fake_run(cmd, *, env, timeout, **kwargs):
        mode = cmd[cmd.index("--child") + 1]
        if mode == "eager":
            raise subprocess.TimeoutExpired(cmd, timeout, output=VLLM_026_LOG.splitlines()[0].encode(), stderr=None)
        assert env["VLLM_CACHE_ROOT"] == str(tmp_path / MODES_KEY[mode] / "vllm")
        return subprocess.CompletedProcess(cmd, 0, stdout=VLLM_026_LOG + 'COLDSTART {"ready_s": 12.5}\n',
                                           stderr=VLLM_OTHER_WORDING.splitlines()[2])

    MODES_KEY = {m: v[0] for m, v in coldstart.MODES.items()}
    monkeypatch.setattr(coldstart.subprocess, "run", fake_run)
    got = coldstart.run_modes("asr", "aligner", ["cached", "parallel", "eager"], tmp_path, timeout_s=5)
    assert got["parallel"]["ready_s"] == 12.5 and got["parallel"]["vllm_log"]["init_engine_s"] == 86.66
    assert got["cached"]["vllm_log"]["memory_profiling_s"] == 11.85  # stderr is read too
    assert got["eager"] == {"error": "over 5 s", "vllm_log": {"weights_load_s": 0.48}}  # as far as it got
    assert coldstart.MODES["parallel"][0] == coldstart.MODES["cached"][0]  # the same compile cache: comparable


def test_models_load_in_parallel_or_one_after_the_other():
    from bench.coldstart import load_models

    def slow(value):
        def make():
            time.sleep(0.4)
            return value
        return make

    t0 = time.time()
    asr, aligner, times = load_models(slow("asr"), slow("aligner"), t0, parallel=True)
    assert (asr, aligner) == ("asr", "aligner") and times["ready_s"] < 0.7  # both at once: ~0.4 s
    assert times["aligner_load_s"] >= 0.39 and times["aligner_ready_s"] < 0.7
    t0 = time.time()
    _, _, times = load_models(slow("asr"), slow("aligner"), t0, parallel=False)
    assert times["ready_s"] >= 0.79 and times["asr_ready_s"] < times["aligner_ready_s"]

    def broken():
        raise OSError("no aligner here")

    with pytest.raises(OSError, match="no aligner here"):
        load_models(slow("asr"), broken, time.time(), parallel=True)


# ---- the worker step -----------------------------------------------------------------------------------------

def test_engine_history_is_read_from_where_it_is_and_only_what_is_new():
    from collections import deque
    from types import SimpleNamespace as NS

    from bench.worker_many import engine_marks, engine_summary

    def admit(size: int, jobs: int):
        return NS(size=size, jobs=jobs)

    asr_engine = NS(history=deque([admit(8, 1)], maxlen=4))
    aligner_engine = NS(history=deque(maxlen=4))
    pipeline = NS(asr=NS(inner=NS(engine=asr_engine)), aligner=NS(engine=aligner_engine))
    marks = engine_marks(pipeline)
    asr_engine.history.extend([admit(8, 2), admit(4, 3)])
    aligner_engine.history.append(admit(32, 1))
    got = engine_summary(pipeline, marks)
    assert got["asr"] == {"admissions": 2, "mean_size": 6.0, "max_size": 8, "mixed": 2, "max_jobs": 3,
                          "truncated": False}
    assert got["aligner"]["admissions"] == 1 and got["aligner"]["mixed"] == 0
    asr_engine.history.extend(admit(1, 1) for _ in range(5))  # the mark is pushed out of the bounded history
    assert engine_summary(pipeline, marks)["asr"]["truncated"] is True
    assert engine_summary(NS(asr=NS(), aligner=None), {}) == {}  # no engines (before the shared engine): nothing


def test_summary_reports_the_worker_and_cpu_per_audio_hour():
    cpu = {"total_s": 30.0, "per_audio_hour_s": 30.0, "audio_s": 3600.0, "decode_workers_share": 0.25,
           "engine_and_other_share": 0.5, "main_share": 0.25,
           "by_stage": {"decode": {"total_s": 8.0}, "transcribe": {"total_s": 15.0}}}
    results = {
        "passes": [{"total_s": 5.0, "rtfx": 720.0, "stages": {}, "first_result_s": None, "cpu": cpu},
                   {"total_s": 6.0, "rtfx": 600.0, "stages": {}, "first_result_s": None,
                    "cpu": {**cpu, "per_audio_hour_s": 40.0}}],
        "worker": {"files": 4, "concurrency": 5, "wall_s": 20.0, "audio_s": 4 * 3600.0 + 300.0, "rtfx": 735.0,
                   "done": 4, "of": 5, "timed_out": False, "long_finish_s": [12.0, 14.0, 18.0, 20.0],
                   "short": {"submitted_s": 1.0, "finish_s": 5.0, "fraction_of_wall": 0.25, "error": None},
                   "errors": [{"id": "long03", "error": "the file is not audio"}],
                   "engines": {"asr": {"admissions": 10, "mean_size": 48.5, "mixed": 9, "truncated": False}},
                   "cpu": {"per_audio_hour_s": 25.0, "decode_workers_share": 0.3, "engine_and_other_share": 0.4},
                   "after_many": True},
        "cold": {"parallel": {"ready_s": 30.0, "first_job_s": 31.0, "torch_import_s": 2.5, "vllm_import_s": 4.0,
                              "vllm_log": {"init_engine_s": 20.0, "graph_capture_s": 6.0}}},
    }
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in summary(results).splitlines()[2:]}
    assert rows["CPU-seconds per audio hour (all processes)"][0] == "30.0 s"  # the lower of the two passes
    assert rows["CPU-seconds per audio hour (all processes)"][1].startswith(
        "decode workers 25%, engine and other children 50%, main 25%; by pass 30.0, 40.0")
    assert rows["CPU by stage, per audio hour"][1] == "decode 8.0, transcribe 15.0"
    head = rows["worker: 4 long jobs + 1 short, concurrency 5"]
    assert head == ["20.00 s", "aggregate RTFx 735, 4 of 5 jobs, files run before", ">= 3000"]
    assert rows["worker: long jobs finished"][:2] == ["16.00 s (median)", "first 12.0 s, last 20.0 s"]
    assert rows["worker: short job finished at"][:2] == ["5.00 s", "25% of the wall time; submitted at 1.0 s"]
    assert rows["worker: failed jobs"][:2] == ["1", "the file is not audio"]
    assert rows["worker: asr engine admissions"][:2] == ["10", "mean size 48.5, 9 with more than one job"]
    assert rows["worker: CPU-seconds per audio hour"][0] == "25.0 s"
    assert rows["parallel: where the time went"][1] == ("import torch 2.5, import vllm 4.0, graph capture 6.0, "
                                                        "engine init 20.0")
    assert "worker:" not in summary({"passes": results["passes"]})


def test_the_worker_step_reports_failed_and_hung_jobs_without_raising(tmp_path):
    from types import SimpleNamespace as NS

    from bench.worker_many import run_worker
    from core.config import config_from_env
    from core.errors import InputError
    from core.types import Transcript

    paths = [tmp_path / name for name in ("bad.mp3", "hangs.mp3", "short.mp3")]
    for path in paths:
        path.write_bytes(b"not fetched: transcribe is a stand-in")

    class StandIn:
        config = config_from_env({}, allow_private_urls=True)
        decoder = NS(worker_pids=list)

        def transcribe(self, source, options, progress, **kwargs):
            if source.endswith("/bad.mp3"):
                raise InputError("the file is not audio")
            while source.endswith("/hangs.mp3"):  # until the worker cancels it: progress then raises
                progress("decode", 0, 1)
                time.sleep(0.02)
            return Transcript("English", 300.0, "hello", timings={"transcribe": 0.1})

    w = run_worker(StandIn(), paths[:2], paths[2], deadline_s=1.0, delay_s=0.1, log=lambda message: None)
    assert (w["timed_out"], w["done"], w["of"], w["concurrency"]) == (True, 1, 3, 3)
    assert w["errors"] == [{"id": "long00", "error": "the file is not audio"}]
    assert w["jobs"][1]["finish_s"] is None and "deadline" in w["jobs"][1]["error"]
    assert w["short"]["error"] is None and w["short"]["audio_s"] == 300.0 and w["audio_s"] == 300.0
    assert 0.1 <= w["short"]["submitted_s"] < w["short"]["finish_s"] < 1.0
    assert 1.0 <= w["wall_s"] < 3.0 and w["long_finish_s"] == [] and w["engines"] == {}
    with pytest.raises(ValueError, match="allow_private_urls"):
        run_worker(NS(config=config_from_env({}), decoder=StandIn.decoder), paths[:1], paths[2])


def test_the_worker_step_runs_jobs_through_the_runpod_handler(tmp_path, capsys, monkeypatch):
    from bench.__main__ import STEPS, main

    assert STEPS.index("worker") == STEPS.index("many") + 1
    monkeypatch.setenv("MAX_TOKENS_PER_SECOND", "0.5")  # the tiny random ASR would generate to its cap
    assert main(["--work", str(tmp_path), "--size", "tiny", "--backend", "transformers", "--device", "cpu",
                 "--minutes", "0.5", "--passes", "1", "--skip", "cold,many,original,cpu,speakers",
                 "--worker-files", "2", "--worker-delay", "0.2"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    w = results["worker"]
    assert (w["files"], w["concurrency"], w["done"], w["of"], w["errors"], w["timed_out"]) == (2, 3, 3, 3, [], False)
    assert [j["id"] for j in w["jobs"]] == ["long00", "long01", "short"]
    assert all(29.5 < j["audio_s"] < 31.0 and "transcribe" in j["timings"] for j in w["jobs"])
    assert w["audio_s"] == pytest.approx(sum(j["audio_s"] for j in w["jobs"]))
    assert w["wall_s"] == pytest.approx(max(j["finish_s"] for j in w["jobs"]))
    assert w["rtfx"] == pytest.approx(w["audio_s"] / w["wall_s"])
    assert w["short"]["submitted_s"] >= 0.2 and w["short"]["finish_s"] <= w["wall_s"]
    assert 0 < w["short"]["fraction_of_wall"] <= 1 and w["after_many"] is False
    assert w["cpu"]["total_s"] > 0 and w["cpu"]["per_audio_hour_s"] > 0
    for engine in w["engines"].values():  # once the pipeline's models share an engine
        assert engine["admissions"] > 0
    [one] = results["passes"]
    assert one["cpu"]["total_s"] > 0 and {"decode", "transcribe", "align", "write"} <= set(one["cpu"]["by_stage"])
    assert one["cpu"]["per_audio_hour_s"] == pytest.approx(one["cpu"]["total_s"] * 3600 / one["audio_s"])
    table = capsys.readouterr().out
    assert "worker: 2 long jobs + 1 short, concurrency 3" in table and "CPU-seconds per audio hour" in table
