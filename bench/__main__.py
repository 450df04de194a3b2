"""`python -m bench`: the GPU benchmark of the whole pipeline, the original design beside it, and the targets.

Builds full-size random checkpoints from the manifest, writes speech-like hour-long MP3s (a fresh one per timed pass),
then times: end to end per file with per-stage times, without and with speaker labels (the full-size random
diarizer on the audio's speech stretches, bench.speakers.SpeechStretchDiarizer; its passes get their own fresh files,
since a file's second run would find its audio in vLLM's prefix cache); the original worker's design on the same
input; 16 files in flight; N hour-long jobs and a short one through the RunPod worker's handler at once
(bench.worker_many); cold start in fresh processes. Each end-to-end pass also reports the CPU time it cost, all
processes together (bench.cpu_time). Prints a short table last and writes every number to OUT/results.json
(`--skip speakers` leaves the speaker passes out).

Keep the entry point under `if __name__ == "__main__"`: vLLM may start its engine process by spawn, which re-imports
the main module.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

STEPS = ("cpu", "e2e", "speakers", "original", "many", "worker", "cold")
SHORT_MINUTES = 5.0  # the worker step's short job, submitted behind the long ones


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/bench"), help="checkpoints, inputs and outputs go here")
    p.add_argument("--out", type=Path, default=None, help="results.json goes here (default: WORK)")
    p.add_argument("--size", choices=("full", "tiny"), default="full", help="random checkpoint size")
    p.add_argument("--backend", choices=("vllm", "transformers"), default="vllm")
    p.add_argument("--device", default="cuda")
    p.add_argument("--minutes", type=float, default=60.0, help="length of each input file")
    p.add_argument("--passes", type=int, default=2, help="timed end-to-end passes, each on fresh audio")
    p.add_argument("--files", type=int, default=16, help="files in flight for the aggregate run")
    p.add_argument("--tokens-per-second", type=float, default=4.0, help="fixed ASR budget (random weights)")
    p.add_argument("--chunk-seconds", type=float, default=30.0)
    p.add_argument("--align-batch", type=int, default=32)
    p.add_argument("--gpu-util", type=float, default=0.55, help="vLLM's share of GPU memory")
    p.add_argument("--decode-workers", type=int, default=0,
                   help="processes decoding a file in time slices (DECODE_WORKERS; 0 = one per core, at most 16)")
    p.add_argument("--many-deadline", type=float, default=300.0,
                   help="stop waiting for the files in flight after this many seconds (reports a lower bound)")
    p.add_argument("--worker-files", type=int, default=32,
                   help="long jobs through the RunPod worker's handler at once (over the many step's --files "
                        "files, each used in turn)")
    p.add_argument("--worker-deadline", type=float, default=400.0,
                   help="stop waiting for the worker's jobs after this many seconds (unfinished ones are reported)")
    p.add_argument("--worker-delay", type=float, default=1.0,
                   help=f"seconds after the long jobs before the short ({SHORT_MINUTES:g} min) job is submitted")
    p.add_argument("--worker-concurrency", type=int, default=0,
                   help="the worker's concurrency (0 = worker files + 1, so the short job starts at once)")
    p.add_argument("--prepare-only", action="store_true", help="build checkpoints and inputs, then stop")
    p.add_argument("--skip", default="", help=f"comma list of steps to skip: {', '.join(STEPS)}")
    p.add_argument("--cold-modes", default="cold,cached,graphs-nocompile,graphs-nocompile-cached,eager",
                   help="cold-start variants (bench.coldstart)")
    p.add_argument("--vllm-arg", action="append", default=[], metavar="KEY=JSON",
                   help="extra vllm.LLM keyword (repeatable), e.g. max_num_batched_tokens=16384")
    return p


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_inputs(work: Path, minutes: float, names: list[str], seed0: int) -> list[Path]:
    """One MP3 per name (reused if already there), each from its own seed: no two passes share audio."""
    from bench.synth import write_speech_mp3

    work.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        path = work / f"{name}-{minutes:g}min-seed{seed0 + i}.mp3"
        if not path.exists():
            t0 = time.perf_counter()
            write_speech_mp3(path.with_suffix(".part"), minutes * 60, seed0 + i)
            path.with_suffix(".part").rename(path)
            log(f"wrote {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
        paths.append(path)
    return paths


def build_checkpoints(args) -> tuple[Path, Path, Path, float]:
    """ASR, aligner and diarizer checkpoints of `args.size` (each built once; full size in bf16, on the device)."""
    from bench.checkpoints import build_aligner_checkpoint, build_asr_checkpoint
    from bench.speaker_checkpoint import build_diarizer_checkpoint

    root = args.work / f"ckpt-{args.size}"
    t0 = time.perf_counter()
    if not (root / "asr" / "model.safetensors").exists():
        build_asr_checkpoint(root / "asr", size=args.size, device=args.device, rig=False)
        build_aligner_checkpoint(root / "aligner", size=args.size, device=args.device, rig=False)
    if not (root / "diarizer" / "model.safetensors").exists():
        build_diarizer_checkpoint(root / "diarizer", size=args.size, device=args.device)
    return root / "asr", root / "aligner", root / "diarizer", time.perf_counter() - t0


def build_pipeline(args, asr_dir: Path, aligner_dir: Path, diarizer_dir: Path | None = None):
    """The pipeline with its models loaded and warmed; `diarizer_dir` None: no diarizer (speaker passes skipped)."""
    from bench.pipeline_bench import SpeechRateText
    from bench.speakers import timed_diarizer
    from core.align.aligner import load_aligner
    from core.config import config_from_env
    from core.pipeline import Pipeline

    config = config_from_env(asr_model=str(asr_dir), aligner_model=str(aligner_dir), asr_backend=args.backend,
                             device=args.device, align_batch_size=args.align_batch, chunk_target_s=args.chunk_seconds,
                             chunk_max_s=max(args.chunk_seconds, 60.0), vllm_gpu_memory_utilization=args.gpu_util,
                             decode_workers=args.decode_workers, diarizer_model=str(diarizer_dir or ""),
                             allow_private_urls=True)  # the worker step fetches its files from 127.0.0.1
    t0 = time.perf_counter()
    if args.backend == "vllm":
        from core.asr.vllm_backend import VllmAsr

        extra = {k: json.loads(v) for k, v in (a.split("=", 1) for a in args.vllm_arg)}
        inner = VllmAsr(config, fixed_tokens_per_second=args.tokens_per_second, llm_kwargs=extra)
    else:
        from core.asr.transformers_backend import TransformersAsr

        inner = TransformersAsr(config)
    t_asr = time.perf_counter() - t0
    aligner = load_aligner(config)
    t_all = time.perf_counter() - t0
    diarizer = timed_diarizer(config) if diarizer_dir else None
    t_diarizer = time.perf_counter() - t0 - t_all
    pipeline = Pipeline(config, asr=SpeechRateText(inner), aligner=aligner, diarizer=diarizer)
    pipeline.warm_up()  # decode processes up before the clock, as a server starts them
    log(f"pipeline ready: ASR {t_asr:.1f} s, aligner {t_all - t_asr:.1f} s, diarizer {t_diarizer:.1f} s, "
        f"{pipeline.decoder.workers} decode workers")
    return pipeline, config, {"asr_load_s": t_asr, "aligner_load_s": t_all - t_asr, "diarizer_load_s": t_diarizer}


def log_pass(r, diarizer: dict | None = None) -> None:
    log(f"{r.name}: {r.total_s:.2f} s, RTFx {r.rtfx:.0f}, stages "
        f"{json.dumps({k: round(v, 3) for k, v in r.stages.items()})}, first result {r.first_result_s}, "
        f"ASR {json.dumps(r.asr_stats)}, aligner {json.dumps(r.align_stats)}"
        + (f", CPU {r.cpu['total_s']:.1f} s ({r.cpu['per_audio_hour_s']:.0f} s per audio hour, decode workers "
           f"{r.cpu['decode_workers_share']:.0%}, engine and other children {r.cpu['engine_and_other_share']:.0%})"
           if r.cpu.get("per_audio_hour_s") is not None else "")
        + (f", diarizer {json.dumps({k: round(v, 3) for k, v in diarizer.items()})}" if diarizer else ""))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    out = args.out or args.work
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")

    from bench import report
    from bench.pipeline_bench import gpu_memory, run_many, run_pass
    from core.options import TranscribeOptions

    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    asr_dir, aligner_dir, diarizer_dir, t_ckpt = build_checkpoints(args)
    results["checkpoints_s"] = t_ckpt
    log(f"checkpoints in {t_ckpt:.1f} s")

    names = ["warmup"] + [f"pass{i}" for i in range(args.passes)]
    inputs = make_inputs(args.work / "inputs", args.minutes, names, seed0=1000)
    warm_input = make_inputs(args.work / "inputs", min(5.0, args.minutes), ["warm"], seed0=999)[0]
    speaker_inputs = [] if "speakers" in skip else make_inputs(
        args.work / "inputs", args.minutes, [f"speakers{i}" for i in range(args.passes)], seed0=1100)
    many_inputs = [] if "many" in skip else make_inputs(args.work / "inputs", args.minutes,
                                                        [f"many{i:02d}" for i in range(args.files)], seed0=2000)
    # the many step's files, cycled: vLLM's caches never match one job's audio to another's (each chunk's features
    # go in under a fresh id, core.asr.vllm_features), and an hour of MP3 takes 12 s to write on the GPU machine
    distinct = [] if "worker" in skip else make_inputs(
        args.work / "inputs", args.minutes, [f"many{i:02d}" for i in range(min(args.worker_files, args.files))],
        seed0=2000)
    worker_inputs = [distinct[i % len(distinct)] for i in range(args.worker_files)] if distinct else []
    short_input = None if "worker" in skip else make_inputs(
        args.work / "inputs", min(SHORT_MINUTES, args.minutes), ["worker-short"], seed0=3000)[0]
    if args.prepare_only:
        log("inputs ready")
        return 0
    if "cold" not in skip:  # first: the children need the GPU memory the pipeline below would hold
        from bench.coldstart import run_modes

        results["cold"] = run_modes(asr_dir, aligner_dir, args.cold_modes.split(","), args.work / "cold",
                                    args.gpu_util)
    if "cpu" not in skip:
        results["cpu"] = report.cpu_stages(inputs[0], args.chunk_seconds)
        log(f"CPU stages on {inputs[0].name}: {json.dumps({k: round(v, 3) for k, v in results['cpu'].items()})}")

    pipeline, config, load = build_pipeline(args, asr_dir, aligner_dir, diarizer_dir if speaker_inputs else None)
    results["load"] = load
    outputs = args.work / "outputs"
    outputs.mkdir(exist_ok=True)
    speakers = TranscribeOptions(diarize=True)
    warm = run_pass(pipeline, warm_input, outputs, "warm")
    log(f"warm-up pass: {warm.total_s:.2f} s for {warm.audio_s:.0f} s of audio")
    run_pass(pipeline, inputs[0], outputs, "warmup")
    if speaker_inputs:  # the diarizer's first-call costs (kernels, cuDNN plans) off the clock too
        run_pass(pipeline, warm_input, outputs, "warm-speakers", speakers)
        run_pass(pipeline, inputs[0], outputs, "warmup-speakers", speakers)
    passes, speaker_passes = [], []
    for i in range(args.passes):  # without and with speakers in turn, so a drifting machine touches both alike
        if "e2e" not in skip:
            r = run_pass(pipeline, inputs[1 + i], outputs, names[1 + i])
            passes.append(r)
            log_pass(r)
        if speaker_inputs:
            r = run_pass(pipeline, speaker_inputs[i], outputs, f"speakers{i}", speakers)
            speaker_passes.append({**report.as_dict(r), "diarizer": dict(pipeline.diarizer().last)})
            log_pass(r, speaker_passes[-1]["diarizer"])
    results["passes"] = [report.as_dict(r) for r in passes]
    results["speaker_passes"] = speaker_passes
    results["gpu_memory"] = gpu_memory()

    if "original" not in skip and passes:
        from bench.original import ToolkitAligner, run_original

        try:
            toolkit = ToolkitAligner(str(aligner_dir), device=args.device, model=pipeline.aligner.model)
            run_original(warm_input, pipeline.asr, toolkit, outputs)  # its own shapes warmed up
            orig = run_original(inputs[1], pipeline.asr, toolkit, outputs)
            log(f"original design on {inputs[1].name}: {json.dumps({k: round(v, 3) for k, v in orig.items()})}")
        except Exception as e:  # e.g. its full-logit aligner out of GPU memory: keep the rest of the run
            orig = {"error": f"{type(e).__name__}: {e}"[:300]}
            log(f"original design failed: {orig['error']} (more room: a lower --gpu-util)")
        results["original"] = orig

    if "many" not in skip and many_inputs:
        wall, many = run_many(pipeline, many_inputs, outputs, deadline_s=args.many_deadline, log=log)
        results["many"] = {"files": len(many), "of": len(many_inputs), "wall_s": wall,
                           "audio_s": sum(r.audio_s for r in many), "per_file_s": [r.total_s for r in many],
                           "stages": [r.stages for r in many]}
        log(f"{len(many)} files in flight: {wall:.2f} s, aggregate RTFx {results['many']['audio_s'] / wall:.0f}")

    if "worker" not in skip and worker_inputs:
        from bench.worker_many import run_worker

        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))  # kept if the run is killed
        w = run_worker(pipeline, worker_inputs, short_input, deadline_s=args.worker_deadline,
                       delay_s=args.worker_delay, concurrency=args.worker_concurrency or None, log=log)
        w["after_many"] = "many" in results  # the same files: vLLM's prefix cache may still hold some of them
        results["worker"] = w
        log(f"worker: {w['done']} of {w['of']} jobs in {w['wall_s']:.2f} s, aggregate RTFx {w['rtfx'] or 0:.0f}, "
            f"short job done at {report.fmt_s(w['short']['finish_s'])} s, {len(w['errors'])} failed, engines "
            f"{json.dumps(w['engines'])}")

    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(report.summary(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
