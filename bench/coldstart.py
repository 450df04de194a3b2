"""Cold start: process start -> both models ready (and -> first job done), in fresh processes, per start-up variant.

Each variant runs in its own child process with its own compile-cache directory (vLLM's, Inductor's and Triton's),
so "cold" starts with empty caches and "cached" re-uses what "cold" left: that is what a RunPod worker gets from a
compile cache baked into the image or kept on a network volume.

    python -m bench.coldstart ASR_DIR ALIGNER_DIR [--modes cold,cached,eager] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SMALL_GRAPHS = {"cudagraph_capture_sizes": [1, 2, 4, 8, 16, 32, 64, 128, 256]}
# mode -> (cache directory key, extra vllm.LLM keywords, extra environment)
MODES: dict[str, tuple[str, dict, dict]] = {
    "cold": ("default", {}, {}),
    "cached": ("default", {}, {}),
    "eager": ("eager", {"enforce_eager": True}, {}),
    "eager-inproc": ("eager", {"enforce_eager": True}, {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}),
    "cached-inproc": ("default", {}, {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}),
    "small-graphs": ("small", {"compilation_config": SMALL_GRAPHS}, {}),
    "small-graphs-cached": ("small", {"compilation_config": SMALL_GRAPHS}, {}),
}


def cache_env(root: Path) -> dict[str, str]:
    return {"VLLM_CACHE_ROOT": str(root / "vllm"), "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
            "TRITON_CACHE_DIR": str(root / "triton")}


def run_modes(asr_dir, aligner_dir, modes: list[str], work: Path, gpu_util: float = 0.55,
              timeout_s: float = 300.0) -> dict[str, dict]:
    """Start a child per mode, in order; cache directories start empty for this call."""
    results: dict[str, dict] = {}
    shutil.rmtree(work, ignore_errors=True)
    for mode in modes:
        key, _, env_extra = MODES[mode]
        env = dict(os.environ, **cache_env(work / key), **env_extra)
        cmd = [sys.executable, "-m", "bench.coldstart", "--child", mode, str(asr_dir), str(aligner_dir),
               "--gpu-util", str(gpu_util), "--t0", repr(time.time())]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("COLDSTART ")]
            if proc.returncode == 0 and lines:
                results[mode] = json.loads(lines[-1].removeprefix("COLDSTART "))
            else:
                results[mode] = {"error": f"exit {proc.returncode}", "tail": proc.stderr[-2000:]}
        except subprocess.TimeoutExpired:
            results[mode] = {"error": f"over {timeout_s:.0f} s"}
        print(f"[coldstart] {mode}: {json.dumps({k: v for k, v in results[mode].items() if k != 'tail'})}",
              flush=True)
    return results


def child(mode: str, asr_dir: str, aligner_dir: str, gpu_util: float, t0: float) -> None:
    import numpy as np

    from core.align.aligner import load_aligner
    from core.asr.vllm_backend import VllmAsr
    from core.config import config_from_env
    from core.types import AlignRequest, AsrRequest

    t_import = time.time() - t0
    _, llm_kwargs, _ = MODES[mode]
    config = config_from_env(asr_model=asr_dir, aligner_model=aligner_dir, asr_backend="vllm", device="cuda",
                             vllm_gpu_memory_utilization=gpu_util)
    asr = VllmAsr(config, fixed_tokens_per_second=4.0, llm_kwargs=dict(llm_kwargs))
    t_asr = time.time() - t0
    aligner = load_aligner(config)
    t_ready = time.time() - t0
    audio = (np.random.default_rng(0).standard_normal(16000 * 10) * 0.1).astype(np.float32)
    asr.transcribe([AsrRequest(audio)])
    aligner.align([AlignRequest(audio, "a b c d e", "English")])
    t_first = time.time() - t0
    print("COLDSTART " + json.dumps({"imports_s": t_import, "asr_ready_s": t_asr, "ready_s": t_ready,
                                     "first_job_s": t_first}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.splitlines()[0])
    p.add_argument("asr_dir")
    p.add_argument("aligner_dir")
    p.add_argument("--modes", default="cold,cached,eager,small-graphs")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench/cold"))
    p.add_argument("--gpu-util", type=float, default=0.55)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
    if args.child:
        child(args.child, args.asr_dir, args.aligner_dir, args.gpu_util, args.t0 or time.time())
        return 0
    results = run_modes(args.asr_dir, args.aligner_dir, args.modes.split(","), args.work, args.gpu_util)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
