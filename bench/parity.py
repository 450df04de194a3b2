"""Do the vLLM backend and the transformers backend give the same outputs on one checkpoint? (GPU, float32.)

ASR: one full-size random checkpoint in float32; short clips of synthetic speech; greedy token ids from
transformers' `generate` (the transformers backend's own prompt and features) against vLLM's, a fixed number of
tokens each (end-of-text masked in both), plus the ChunkText both backends' `transcribe` return.
Aligner: core.align.aligner (head on <timestamp> positions only) against the toolkit's full-logits path, float32, and
core.align.aligner in bfloat16 against float32.

    python -m bench.parity [--work /tmp/bench-parity] [--tokens 24]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

CLIP_SECONDS = (3.0, 7.5, 12.0, 21.0)


def clips(seed: int = 7):
    from bench.synth import SYNTH_RATE, synth_speech

    assert SYNTH_RATE == 16000
    return [synth_speech(s, seed + i) for i, s in enumerate(CLIP_SECONDS)]


def hf_tokens(asr, audios, n: int) -> list[list[int]]:
    """Greedy ids from transformers, one clip at a time (no padding), `n` tokens with end-of-text masked."""
    import torch

    from core.models.layout import batch_features
    from core.types import AsrRequest

    out = []
    for audio in audios:
        with torch.inference_mode():
            feats, mask, n_audio = batch_features(asr.extractor, [audio], asr.device, asr.dtype)
            ids = torch.tensor([asr.prompt_ids(AsrRequest(audio), n_audio[0])], device=asr.device)
            gen = asr.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), input_features=feats,
                                     input_features_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                     num_beams=1, eos_token_id=sorted(asr.eos_ids), pad_token_id=asr.pad_id)
        out.append(gen[0, ids.shape[1]:].tolist())
    return out


def vllm_tokens(vasr, audios, n: int) -> list[list[int]]:
    from vllm import SamplingParams

    from core.types import AsrRequest

    params = SamplingParams(temperature=0.0, max_tokens=n, min_tokens=n, ignore_eos=True)
    outs = vasr.llm.generate(vasr.requests([AsrRequest(a) for a in audios]), params, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outs]


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def compare_aligners(aligner_dir: Path, audios, device: str = "cuda") -> dict:
    """The aligner's word times against the toolkit's way on the same weights (float32), and bfloat16 against
    float32."""
    import dataclasses

    import torch

    from bench.original import ToolkitAligner
    from bench.pipeline_bench import filler_text
    from core.align.aligner import Aligner
    from core.align.word_times import repair_marks
    from core.config import config_from_env
    from core.types import AlignRequest

    import numpy as np

    rng = np.random.default_rng(3)
    texts = [filler_text(len(a) / 16000, rng) for a in audios]
    reqs = [AlignRequest(a, t, "English") for a, t in zip(audios, texts)]
    results = {}
    fp32 = Aligner(config_from_env(aligner_model=str(aligner_dir), device=device, dtype="float32"))
    ours = fp32.align(reqs)
    toolkit = ToolkitAligner(str(aligner_dir), device=device, dtype=torch.float32, model=fp32.model)
    theirs = toolkit.align([r.audio for r in reqs], texts)
    raw_equal = total = 0
    for words_a, words_b, audio in zip(ours, theirs, audios):
        # toolkit words carry unrepaired times: repair them the way core.align.word_times does ours
        times_b = repair_marks([t for w in words_b for t in (w.start, w.end)])
        times_b = [min(max(t, 0.0), len(audio) / 16000) for t in times_b]
        times_a = [t for w in words_a for t in (w.start, w.end)]
        total += len(times_a)
        raw_equal += sum(abs(x - round(y, 3)) < 1e-6 for x, y in zip(times_a, times_b))
    results["fp32_head_on_timestamps_vs_full_logits"] = {"timestamps": total, "equal": raw_equal}
    del toolkit
    bf16 = Aligner(config_from_env(aligner_model=str(aligner_dir), device=device, dtype="bfloat16"))
    ours_bf16 = bf16.align(reqs)
    same = sum(dataclasses.astuple(a) == dataclasses.astuple(b) for wa, wb in zip(ours, ours_bf16)
               for a, b in zip(wa, wb))
    results["bf16_vs_fp32_words_equal"] = {"words": sum(len(w) for w in ours), "equal": same}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.parity", description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-parity"))
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--skip-vllm", action="store_true")
    p.add_argument("--skip-aligner", action="store_true")
    p.add_argument("--features", choices=("processor", "gpu"), default="processor",
                   help="where the vLLM backend's log-mel is computed (VLLM_AUDIO_FEATURES)")
    args = p.parse_args(argv)
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
    from bench.checkpoints import build_aligner_checkpoint, build_asr_checkpoint
    from core.asr.transformers_backend import TransformersAsr
    from core.config import config_from_env
    from core.types import AsrRequest

    asr_dir, aligner_dir = args.work / "asr", args.work / "aligner"
    if not (asr_dir / "model.safetensors").exists():
        build_asr_checkpoint(asr_dir, size="full", device="cuda", dtype="float32", rig=False)
        build_aligner_checkpoint(aligner_dir, size="full", device="cuda", dtype="float32", rig=False)
    audios = clips()
    report: dict = {"clips_s": list(CLIP_SECONDS), "tokens": args.tokens, "vllm_features": args.features}
    t0 = time.perf_counter()
    if not args.skip_aligner:
        report["aligner"] = compare_aligners(aligner_dir, audios)
        print("ALIGNER", json.dumps(report["aligner"]), f"({time.perf_counter() - t0:.1f} s)", flush=True)

    config = config_from_env(asr_model=str(asr_dir), device="cuda", dtype="float32", vllm_enforce_eager=True,
                             vllm_gpu_memory_utilization=0.5, vllm_max_model_len=2048,
                             vllm_audio_features=args.features)
    hf = TransformersAsr(config)
    hf_ids = hf_tokens(hf, audios, args.tokens)
    hf_text = hf.transcribe([AsrRequest(a) for a in audios])
    if not args.skip_vllm:
        from core.asr.vllm_backend import VllmAsr

        vasr = VllmAsr(config)
        v_ids = vllm_tokens(vasr, audios, args.tokens)
        v_text = vasr.transcribe([AsrRequest(a) for a in audios])
        report["asr"] = [{"clip_s": s, "first_difference": first_difference(a, b), "hf": a, "vllm": b}
                         for s, a, b in zip(CLIP_SECONDS, hf_ids, v_ids)]
        report["asr_chunktext_equal"] = [a == b for a, b in zip(hf_text, v_text)]
        report["asr_chunktext"] = [[repr(a), repr(b)] for a, b in zip(hf_text, v_text)]
    print("PARITY " + json.dumps(report), flush=True)
    for row in report.get("asr", []):
        print(f"clip {row['clip_s']:>5} s: first differing token {row['first_difference']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
