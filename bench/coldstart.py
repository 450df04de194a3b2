"""Cold start: process start -> both models ready (and -> first job done), in fresh processes, per start-up variant.

Each variant runs in its own child process with its own compile-cache directory (vLLM's, Inductor's and Triton's),
so "cold" starts with empty caches and "cached" re-uses what "cold" left: that is what a RunPod worker gets from a
compile cache baked into the image or kept on a network volume. "parallel" (and "eager-parallel") load the aligner
in a thread while the vLLM engine starts (the engine's construction mostly waits on its engine-core process): against
"cached" ("eager") that is the saving; the product loads them one after the other. (The aligner's GPU memory may
land inside vLLM's memory profiling and come off its KV cache: compare "kv_cache_gib" in "vllm_log".)

Each child reports its own timings (`import torch` and `import vllm` apart, both models, the first job, the start of
the decode processes, measured last so the other numbers keep their meaning), and the parent reads vLLM's own log
lines from the child's output into "vllm_log" (weights, compile, memory profiling, graph capture, engine init).

    python -m bench.coldstart ASR_DIR ALIGNER_DIR [--modes cold,cached,graphs-nocompile] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.asr.vllm_backend import NO_COMPILE

SMALL_GRAPHS = {"cudagraph_capture_sizes": [1, 2, 4, 8, 16, 32, 64, 128, 256]}
NO_COMPILE_GRAPHS = dict(NO_COMPILE)  # the product default since run 12 (its capture sizes since run 21)
ALL_SIZES = {k: v for k, v in NO_COMPILE.items() if k != "cudagraph_capture_sizes"}  # vLLM's 51 sizes (runs 12-20)
COMPILE = {"VLLM_COMPILE": "1"}  # vLLM's own default, torch.compile
# mode -> (cache directory key, extra vllm.LLM keywords, extra environment)
MODES: dict[str, tuple[str, dict, dict]] = {
    "cold": ("default", {}, COMPILE),
    "cached": ("default", {}, COMPILE),
    "eager": ("eager", {"enforce_eager": True}, {}),
    "eager-inproc": ("eager", {"enforce_eager": True}, {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}),
    "cached-inproc": ("default", {}, {**COMPILE, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}),
    "small-graphs": ("small", {"compilation_config": SMALL_GRAPHS}, COMPILE),
    "small-graphs-cached": ("small", {"compilation_config": SMALL_GRAPHS}, COMPILE),
    "parallel": ("default", {}, COMPILE),
    # CUDA graphs for decoding without torch.compile: no compile step at all (vLLM's CompilationMode.NONE)
    "graphs-nocompile": ("nocompile", {"compilation_config": NO_COMPILE_GRAPHS}, {}),
    "graphs-nocompile-cached": ("nocompile", {"compilation_config": NO_COMPILE_GRAPHS}, {}),
    "graphs-allsizes-cached": ("nocompile", {"compilation_config": ALL_SIZES}, {}),
    "graphs-nocompile-inproc": ("nocompile", {"compilation_config": NO_COMPILE_GRAPHS},
                                {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}),
    "eager-parallel": ("eager", {"enforce_eager": True}, {}),
}
# modes that load the aligner while the engine starts; on the H200 (run 12) `import vllm` then raced transformers'
# lazy imports in the aligner's thread and the start failed, so no default list includes them
PARALLEL = frozenset({"parallel", "eager-parallel"})

# vLLM's start-up log lines (wording of vLLM 0.26, as in bench/logs/, and of the versions around it), as
# key -> pattern whose last group is the number. Tolerant: "took"/"takes", "s"/"secs"/"seconds", an optional
# "memory" after GiB. Keys in SUMMED add up over their lines (one per compiled range); the others keep the last.
_N = r"([0-9][0-9,]*(?:\.[0-9]+)?)"
VLLM_LOG_PATTERNS: dict[str, str] = {
    "weights_load_s": rf"Loading weights took\s+{_N}\s*s",
    "model_load_gib": rf"Model loading took\s+{_N}\s*GiB",
    "model_load_s": rf"Model loading took\s+[0-9.]+\s*GiB(?:\s+memory)?\s+and\s+{_N}\s*s",
    "dynamo_s": rf"Dynamo bytecode transform time:\s*{_N}\s*s",
    "compile_graph_s": rf"Compiling a graph for .*?\btakes?\s+{_N}\s*s",
    "compile_cache_load_s": rf"Directly load the compiled graph.*?\btook\s+{_N}\s*s",
    "torch_compile_s": rf"torch\.compile\s+(?:takes?|took)\s+{_N}\s*s\s+in total",
    "memory_profiling_s": rf"Memory profiling\s+(?:takes?|took)\s+{_N}\s*s",
    "kv_cache_gib": rf"Available KV cache memory:\s*{_N}\s*GiB",
    "kv_cache_tokens": rf"GPU KV cache size:\s*{_N}\s*tokens",
    "graph_capture_s": rf"Graph captur\w*\s+finished in\s+{_N}\s*s",
    "graph_capture_gib": rf"Graph captur\w*\s+finished in\s+[0-9.]+\s*\w*,\s*took\s+{_N}\s*GiB",
    "init_engine_s": rf"init engine \([^)]*\)\s+(?:took|takes)\s+{_N}\s*s",
    "init_engine_compile_s": rf"init engine \([^)]*\)\s+(?:took|takes)\s+[0-9.]+\s*\w*\s*\(compilation:\s*{_N}\s*s",
}
SUMMED = frozenset({"compile_graph_s", "compile_cache_load_s"})
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_vllm_log(text: str) -> dict[str, float]:
    """The numbers of vLLM's start-up lines found in `text` (a child's stdout and stderr); keys that did not match
    are left out."""
    found: dict[str, float] = {}
    lines = _ANSI.sub("", text).splitlines()
    for key, pattern in VLLM_LOG_PATTERNS.items():
        rx = re.compile(pattern, re.IGNORECASE)
        for line in lines:
            m = rx.search(line)
            if m:
                value = float(m.group(m.lastindex).replace(",", ""))
                found[key] = found.get(key, 0.0) + value if key in SUMMED else value
    return found


def cache_env(root: Path) -> dict[str, str]:
    return {"VLLM_CACHE_ROOT": str(root / "vllm"), "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
            "TRITON_CACHE_DIR": str(root / "triton")}


def run_modes(asr_dir, aligner_dir, modes: list[str], work: Path, gpu_util: float = 0.55,
              timeout_s: float = 300.0, log_dir: Path | None = None) -> dict[str, dict]:
    """Start a child per mode, in order; cache directories start empty for this call. With `log_dir`, each child's
    whole output (vLLM's log lines with their times) is kept there as <mode>.log."""
    results: dict[str, dict] = {}
    shutil.rmtree(work, ignore_errors=True)
    for mode in modes:
        key, _, env_extra = MODES[mode]
        env = dict(os.environ, **cache_env(work / key), **env_extra)
        t0 = time.time()
        cmd = [sys.executable, "-m", "bench.coldstart", "--child", mode, str(asr_dir), str(aligner_dir),
               "--gpu-util", str(gpu_util), "--t0", repr(t0)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("COLDSTART ")]
            if proc.returncode == 0 and lines:
                results[mode] = json.loads(lines[-1].removeprefix("COLDSTART "))
            else:
                results[mode] = {"error": f"exit {proc.returncode}", "tail": proc.stderr[-2000:]}
            output = proc.stdout + "\n" + proc.stderr  # vLLM logs to stdout by default (VLLM_LOGGING_STREAM)
        except subprocess.TimeoutExpired as e:
            results[mode] = {"error": f"over {timeout_s:.0f} s"}
            output = "\n".join(x.decode(errors="replace") if isinstance(x, bytes) else x or ""
                               for x in (e.stdout, e.stderr))  # how far it got
        results[mode]["vllm_log"] = parse_vllm_log(output)
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            started = time.strftime("%m-%d %H:%M:%S", time.localtime(t0)) + f".{int(t0 % 1 * 1000):03d}"
            (log_dir / f"{mode}.log").write_text(f"# process started {started} (vLLM's log times are local)\n" + output)
        print(f"[coldstart] {mode}: {json.dumps({k: v for k, v in results[mode].items() if k != 'tail'})}",
              flush=True)
    return results


def load_models(make_asr, make_aligner, t0: float, parallel: bool) -> tuple[object, object, dict[str, float]]:
    """Both models, one after the other or (`parallel`) the aligner in a thread while the ASR engine starts;
    times in seconds since `t0` (time.time()), and the aligner's own load time."""
    box: dict = {}

    def aligner_job() -> None:
        t = time.perf_counter()
        try:
            box["aligner"] = make_aligner()
        except BaseException as e:  # noqa: BLE001 - raised again in the loading thread below
            box["error"] = e
        box["aligner_load_s"] = time.perf_counter() - t
        box["aligner_ready_s"] = time.time() - t0

    thread = threading.Thread(target=aligner_job, name="aligner-load", daemon=True) if parallel else None
    if thread is not None:
        thread.start()
    asr = make_asr()
    t_asr = time.time() - t0
    if thread is not None:
        thread.join()
    else:
        aligner_job()
    if "error" in box:
        raise box["error"]
    times = {"asr_ready_s": t_asr, "aligner_ready_s": box["aligner_ready_s"], "aligner_load_s": box["aligner_load_s"],
             "ready_s": time.time() - t0}
    return asr, box["aligner"], times


def child(mode: str, asr_dir: str, aligner_dir: str, gpu_util: float, t0: float) -> None:
    t = time.perf_counter()
    import torch  # noqa: F401 - timed: what every start pays first

    torch_import_s = time.perf_counter() - t
    t = time.perf_counter()
    import vllm  # noqa: F401 - timed apart from torch, which it imports

    vllm_import_s = time.perf_counter() - t
    import numpy as np

    from core.align.aligner import load_aligner
    from core.asr.vllm_backend import VllmAsr
    from core.audio.decode_pool import DecodePool, default_workers
    from core.config import config_from_env
    from core.types import AlignRequest, AsrRequest

    t_import = time.time() - t0
    _, llm_kwargs, _ = MODES[mode]
    config = config_from_env(asr_model=asr_dir, aligner_model=aligner_dir, asr_backend="vllm", device="cuda",
                             vllm_gpu_memory_utilization=gpu_util)
    asr, aligner, times = load_models(
        lambda: VllmAsr(config, fixed_tokens_per_second=4.0, llm_kwargs=dict(llm_kwargs)),
        lambda: load_aligner(config), t0, mode in PARALLEL)
    audio = (np.random.default_rng(0).standard_normal(16000 * 10) * 0.1).astype(np.float32)
    asr.transcribe([AsrRequest(audio)])
    aligner.align([AlignRequest(audio, "a b c d e", "English")])
    t_first = time.time() - t0
    # The decode processes, as Pipeline.warm_up starts them: timed last, so the numbers above keep their meaning.
    pool = DecodePool(default_workers())
    t = time.perf_counter()
    pool.start()
    decode_pool_start_s = time.perf_counter() - t
    pool.close()
    print("COLDSTART " + json.dumps({"torch_import_s": torch_import_s, "vllm_import_s": vllm_import_s,
                                     "imports_s": t_import, **times, "first_job_s": t_first,
                                     "decode_pool_start_s": decode_pool_start_s, "decode_workers": pool.workers,
                                     "parallel": mode in PARALLEL}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.splitlines()[0])
    p.add_argument("asr_dir")
    p.add_argument("aligner_dir")
    p.add_argument("--modes", default="cold,cached,graphs-nocompile,graphs-nocompile-cached,eager")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench/cold"))
    p.add_argument("--gpu-util", type=float, default=0.55)
    p.add_argument("--log-dir", type=Path, default=None, help="keep each start's whole output there as <mode>.log")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
    if args.child:
        child(args.child, args.asr_dir, args.aligner_dir, args.gpu_util, args.t0 or time.time())
        return 0
    results = run_modes(args.asr_dir, args.aligner_dir, args.modes.split(","), args.work, args.gpu_util,
                        log_dir=args.log_dir)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
