"""The numbers the benchmark reports: CPU stage costs measured apart, and the closing table against the targets."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from bench.pipeline_bench import PassResult, feature_seconds, fmt_s, format_table, rtfx

TARGETS = {"e2e_s": 3.0, "gpu_s": 1.5, "ratio": 5.0, "many_rtfx": 3000.0, "cold_s": 20.0, "diarize_s_per_h": 1.5}


def cpu_stages(path: Path, chunk_s: float) -> dict[str, float]:
    """Decode (serial, and in slices across the default number of processes), chunking and log-mel features of one
    file, each timed on its own."""
    from core.audio import decode as audio_mod
    from core.audio.decode_pool import DecodePool, default_workers
    from core.types import SAMPLE_RATE

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    samples = audio_mod.decode_audio(path)
    out["decode_serial_s"] = time.perf_counter() - t0
    pool = DecodePool(default_workers())
    try:
        pool.start()
        t0 = time.perf_counter()
        sliced = pool.decode(path)
        out[f"decode_{pool.workers}_processes_s"] = time.perf_counter() - t0
        out["decode_sliced_bit_exact"] = float(len(sliced) == len(samples) and bool((sliced == samples).all()))
    finally:
        pool.close()
    out["audio_s"] = len(samples) / SAMPLE_RATE
    try:
        from core.audio.chunking import plan_chunks
        from core.audio.speech_check import speech_flags

        t0 = time.perf_counter()
        chunks = plan_chunks(samples, target_s=chunk_s, max_s=max(chunk_s, 60.0))
        flags = speech_flags(samples, chunks)
        out["chunk_s"] = time.perf_counter() - t0
        out["chunks"] = len(chunks)
        out["voiced_chunks"] = sum(bool(f) for f in flags)
        pieces = [samples[c.start:c.end] for c in chunks]
    except ImportError:  # core.audio.chunking not there yet: fixed cuts, for the feature timing only
        step = int(chunk_s * SAMPLE_RATE)
        pieces = [samples[i:i + step] for i in range(0, len(samples), step)]
    out["features_cpu_s"] = feature_seconds(pieces, "cpu")
    try:
        import torch

        if torch.cuda.is_available():
            feature_seconds(pieces[:2], "cuda")
            out["features_cuda_s"] = feature_seconds(pieces, "cuda")
    except Exception:  # noqa: BLE001 - an optional measurement
        pass
    return out


def as_dict(r: PassResult) -> dict:
    d = dataclasses.asdict(r)
    d["rtfx"] = r.rtfx
    return d


def _median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


COLD_PARTS = (("torch_import_s", "import torch"), ("vllm_import_s", "import vllm"),
              ("weights_load_s", "weights"), ("model_load_s", "model load"), ("dynamo_s", "dynamo"),
              ("compile_graph_s", "compile"), ("compile_cache_load_s", "compile cache"),
              ("torch_compile_s", "torch.compile"), ("memory_profiling_s", "memory profiling"),
              ("graph_capture_s", "graph capture"), ("init_engine_s", "engine init"),
              ("aligner_load_s", "aligner"), ("decode_pool_start_s", "decode pool"))


def cold_parts(c: dict) -> str:
    """One cold-start mode's parts in seconds: the child's own timings and what vLLM's log said."""
    merged = {**(c.get("vllm_log") or {}), **{k: v for k, v in c.items() if isinstance(v, (int, float))}}
    return ", ".join(f"{label} {merged[k]:.1f}" for k, label in COLD_PARTS if k in merged)


def speaker_rows(speaker_passes: list[dict], passes: list[dict]) -> list[list[str]]:
    """End to end with speaker labels, what they add against the passes without, and the diarize stage per hour."""
    if not speaker_passes:
        return []
    best = min(speaker_passes, key=lambda p: p["total_s"])
    rows = [[f"end to end with speakers (best of {len(speaker_passes)})", fmt_s(best["total_s"]) + " s",
             f"RTFx {best['rtfx']:.0f}", ""]]
    if passes:
        added = _median([p["total_s"] for p in speaker_passes]) - _median([p["total_s"] for p in passes])
        rows.append(["  speakers add (median with - without)", fmt_s(added) + " s", "other files, same generator",
                     ""])
    timed = [p for p in speaker_passes if "diarize" in p["stages"]]
    if timed:
        per_hour = lambda p: p["stages"]["diarize"] * 3600.0 / p["audio_s"]  # noqa: E731
        fastest = min(timed, key=per_hour)
        d = fastest.get("diarizer") or {}
        detail = ", ".join(f"{per_hour(p):.2f}" for p in timed) + " s/h by pass"
        if "embed_s" in d:
            detail += f"; embed {d['embed_s']:.2f} s of {d.get('windows', 0):.0f} windows"
        if "spans_s" in d:
            detail += f", speech stretches {d['spans_s']:.2f} s"
        rows.append(["  stage diarize, per audio hour", fmt_s(per_hour(fastest)) + " s", detail,
                     f"<= {TARGETS['diarize_s_per_h']:g} s"])
    return rows


def cpu_rows(passes: list[dict]) -> list[list[str]]:
    """CPU seconds per audio hour of the end-to-end passes (all processes), the decode workers' share, by stage."""
    timed = [p for p in passes if (p.get("cpu") or {}).get("per_audio_hour_s") is not None]
    if not timed:
        return []
    best = min(timed, key=lambda p: p["cpu"]["per_audio_hour_s"])
    c = best["cpu"]
    rows = [["CPU-seconds per audio hour (all processes)", f"{c['per_audio_hour_s']:.1f} s",
             f"decode workers {c['decode_workers_share']:.0%}, engine and other children "
             f"{c['engine_and_other_share']:.0%}, main {c['main_share']:.0%}; by pass "
             + ", ".join(f"{p['cpu']['per_audio_hour_s']:.1f}" for p in timed), ""]]
    hours = c["audio_s"] / 3600.0 if c.get("audio_s") else 0.0
    stages = c.get("by_stage") or {}
    if stages and hours > 0:
        rows.append(["  CPU by stage, per audio hour", "",
                     ", ".join(f"{k} {v['total_s'] / hours:.1f}" for k, v in stages.items()), ""])
    return rows


def worker_rows(w: dict | None) -> list[list[str]]:
    """The worker step: N long jobs and a short one through the RunPod handler at once."""
    if not w:
        return []
    done = f"{w['done']} of {w['of']} jobs" + (" (deadline)" if w.get("timed_out") else "")
    rows = [[f"worker: {w['files']} long jobs + 1 short, concurrency {w['concurrency']}", fmt_s(w["wall_s"]) + " s",
             f"aggregate RTFx {w['rtfx'] or 0:.0f}, {done}" + (", files run before" if w.get("after_many") else ""),
             f">= {TARGETS['many_rtfx']:g}"]]
    longs = w.get("long_finish_s") or []
    if longs:
        rows.append(["  worker: long jobs finished", fmt_s(_median(longs)) + " s (median)",
                     f"first {min(longs):.1f} s, last {max(longs):.1f} s", ""])
    short = w.get("short") or {}
    if short.get("error"):
        rows.append(["  worker: short job", "failed", short["error"][:60], ""])
    elif short.get("finish_s") is not None:
        rows.append(["  worker: short job finished at", fmt_s(short["finish_s"]) + " s",
                     f"{short['fraction_of_wall']:.0%} of the wall time; submitted at {short['submitted_s']:.1f} s",
                     ""])
    if w.get("errors"):
        rows.append(["  worker: failed jobs", str(len(w["errors"])), w["errors"][0]["error"][:60], ""])
    for name, e in (w.get("engines") or {}).items():
        rows.append([f"  worker: {name} engine admissions", str(e["admissions"]),
                     f"mean size {e['mean_size']:.1f}, {e['mixed']} with more than one job"
                     + (" (history cut)" if e.get("truncated") else ""), ""])
    cpu = w.get("cpu") or {}
    if cpu.get("per_audio_hour_s") is not None:
        rows.append(["  worker: CPU-seconds per audio hour", f"{cpu['per_audio_hour_s']:.1f} s",
                     (f"decode workers {cpu['decode_workers_share']:.0%}, engine and other children "
                      f"{cpu['engine_and_other_share']:.0%}"), ""])
    return rows


def summary(results: dict) -> str:
    """The closing table: each measured number beside its target."""
    rows: list[list[str]] = []
    passes = results.get("passes") or []
    if passes:
        best = min(passes, key=lambda p: p["total_s"])
        st = best["stages"]
        gpu = st.get("transcribe", 0.0) + st.get("align", 0.0)
        rows.append(["end to end, 60 min file (best of %d)" % len(passes), fmt_s(best["total_s"]) + " s",
                     f"RTFx {best['rtfx']:.0f}", f"<= {TARGETS['e2e_s']:g} s"])
        rows.append(["GPU stages (ASR + align)", fmt_s(gpu) + " s", "", f"<= {TARGETS['gpu_s']:g} s"])
        for k in ("fetch", "decode", "chunk", "transcribe", "align", "merge", "write"):
            if k in st:
                note = "after the ASR (overlapped)" if k == "align" and "align_busy" in st else ""
                rows.append([f"  stage {k}", fmt_s(st[k]) + " s", note, ""])
        if "align_busy" in st:
            rows.append(["  aligner busy in all", fmt_s(st["align_busy"]) + " s", "mostly during the ASR", ""])
        if "speech_busy" in st:
            rows.append(["  speech check (VAD) busy", fmt_s(st["speech_busy"]) + " s", "beside the ASR", ""])
        rows.append(["time to first result", fmt_s(best.get("first_result_s")) + " s", "", ""])
        stats = best.get("asr_stats") or {}
        if stats.get("generated_tokens") and st.get("transcribe"):
            rows.append(["ASR tokens/s (generated)", f"{stats['generated_tokens'] / st['transcribe']:.0f}",
                         f"{stats.get('requests', 0)} chunks", ""])
        if "fed_s" in stats:
            rows.append(["  ASR: all chunks handed to the engine", fmt_s(stats["fed_s"]) + " s",
                         f"first done {fmt_s(stats.get('first_done_s'))} s, last {fmt_s(stats.get('last_done_s'))} s",
                         ""])
    rows += cpu_rows(passes)
    rows += speaker_rows(results.get("speaker_passes") or [], passes)
    mem = results.get("gpu_memory") or {}
    if mem:
        rows.append(["GPU memory in use", f"{mem['card_used_gib']:.1f} GiB", f"of {mem['card_total_gib']:.0f}", ""])
    orig = results.get("original")
    if orig and "error" in orig:
        rows.append(["original design, same input", "-", orig["error"][:60], f">= {TARGETS['ratio']:g}x"])
    elif orig and passes:
        ours = _median([p["total_s"] for p in passes])
        rows.append(["original design, same input", fmt_s(orig["total"]) + " s",
                     f"ratio {orig['total'] / ours:.1f}x", f">= {TARGETS['ratio']:g}x"])
        for k in ("decode", "chunk", "asr", "align", "merge", "write"):
            if k in orig:
                rows.append([f"  original {k}", fmt_s(orig[k]) + " s", "", ""])
    many = results.get("many")
    if many:
        done = f"{many['files']} of {many.get('of', many['files'])}" if many.get("of", many["files"]) != many["files"] \
            else str(many["files"])
        rows.append([f"{done} files in flight", fmt_s(many["wall_s"]) + " s",
                     f"aggregate RTFx {rtfx(many['audio_s'], many['wall_s']):.0f}", f">= {TARGETS['many_rtfx']:g}"])
    rows += worker_rows(results.get("worker"))
    for mode, c in (results.get("cold") or {}).items():
        rows.append([f"cold start: {mode}", fmt_s(c.get("ready_s")) + " s",
                     f"first job {fmt_s(c.get('first_job_s'))} s" if c.get("first_job_s") else c.get("error", ""),
                     f"<= {TARGETS['cold_s']:g} s"])
        parts = cold_parts(c)
        if parts:
            rows.append([f"  {mode}: where the time went", "", parts, ""])
    cpu = results.get("cpu") or {}
    decode_keys = sorted(k for k in cpu if k.startswith("decode_") and k.endswith("_s"))
    for k in (*decode_keys, "chunk_s", "features_cpu_s", "features_cuda_s"):
        if k in cpu:
            rows.append([f"apart: {k.removesuffix('_s').replace('_', ' ')}", fmt_s(cpu[k]) + " s", "", ""])
    return format_table(["measure", "value", "detail", "target"], rows)
