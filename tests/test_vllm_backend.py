"""The vLLM backend on a real GPU (skipped where vLLM or CUDA is missing, as on CI): same answers as the
transformers backend on the rigged tiny checkpoint (log-mel from vLLM's processor or made here on the GPU), results
streamed as chunks finish, jobs at once sharing the engine, a cancelled job aborted inside vLLM, and the benchmark
budget generates exactly what it says."""
from __future__ import annotations

import numpy as np
import pytest

from engine_helpers import Held, Stop, stop_after_first, wait_queued

vllm = pytest.importorskip("vllm")
torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="the vLLM backend needs a CUDA GPU")]


@pytest.fixture(scope="module")
def asr_dir(tmp_path_factory):
    from bench.checkpoints import build_asr_checkpoint

    return build_asr_checkpoint(tmp_path_factory.mktemp("ckpt") / "asr", size="tiny", rig=True)


@pytest.fixture(scope="module")
def backend(asr_dir):
    from core.asr.vllm_backend import VllmAsr
    from core.config import config_from_env

    config = config_from_env(asr_model=str(asr_dir), asr_backend="vllm", device="cuda", dtype="float32",
                             vllm_enforce_eager=True, vllm_gpu_memory_utilization=0.3, vllm_max_model_len=2048)
    return VllmAsr(config)


def clips():
    from bench.synth import synth_speech

    return [synth_speech(s, 11 + i) for i, s in enumerate((2.0, 6.5, 14.0))]


def test_same_answers_as_the_transformers_backend(backend, asr_dir):
    from bench.checkpoints import RIG_LANGUAGE, RIG_TEXT
    from core.asr.transformers_backend import TransformersAsr
    from core.config import config_from_env
    from core.types import AsrRequest

    requests = [AsrRequest(a) for a in clips()] + [AsrRequest(clips()[0], language="English", context="fox")]
    reference = TransformersAsr(config_from_env(asr_model=str(asr_dir), device="cuda", dtype="float32"))
    ours = backend.transcribe(requests)
    assert ours == reference.transcribe(requests)
    assert ours[0].language == RIG_LANGUAGE and ours[0].text == RIG_TEXT


def test_benchmark_budget_generates_a_fixed_count(asr_dir, backend):
    from core.asr.vllm_backend import VllmAsr, fixed_token_budget

    bench = VllmAsr.__new__(VllmAsr)  # share the engine: only the sampling switch differs
    bench.__dict__.update(backend.__dict__, fixed_tokens_per_second=4.0)
    audio = clips()
    from core.types import AsrRequest

    outs = backend.llm.generate(bench.requests([AsrRequest(a) for a in audio]),
                                [bench.sampling_params(len(a) / 16000) for a in audio], use_tqdm=False)
    assert [len(o.outputs[0].token_ids) for o in outs] == [fixed_token_budget(len(a) / 16000, 4.0) for a in audio]
    product = backend.sampling_params(6.5)
    assert not product.ignore_eos and product.max_tokens > fixed_token_budget(6.5, 4.0)
    assert np.isfinite(product.max_tokens)


def test_results_stream_as_chunks_finish(backend):
    from core.asr.vllm_backend import FEED
    from core.types import AsrRequest

    audio = clips()
    requests = [AsrRequest(audio[i % len(audio)]) for i in range(FEED * 2 + 5)]  # more than one hand-over
    heard = []
    out = backend.transcribe(requests, on_result=lambda i, r: heard.append((i, r)))
    assert sorted(i for i, _ in heard) == list(range(len(requests)))
    assert all(out[i] == r for i, r in heard)
    stats = backend.last_stats
    assert stats["requests"] == len(requests) and 0 < stats["first_done_s"] <= stats["last_done_s"]


def test_features_made_here_give_the_same_answers(backend, asr_dir):
    from core.asr.vllm_backend import VllmAsr
    from core.config import config_from_env
    from core.types import AsrRequest

    config = config_from_env(asr_model=str(asr_dir), asr_backend="vllm", device="cuda", dtype="float32",
                             vllm_enforce_eager=True, vllm_gpu_memory_utilization=0.25, vllm_max_model_len=2048,
                             vllm_audio_features="gpu")
    here = VllmAsr(config)
    assert "log-mel on the GPU" in here.describe()
    requests = [AsrRequest(a) for a in clips()] + [AsrRequest(clips()[1], language="English", context="fox")]
    assert here.transcribe(requests) == backend.transcribe(requests)
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=6, min_tokens=6, ignore_eos=True)
    ids = [[list(o.outputs[0].token_ids) for o in b.llm.generate(b.requests(requests), params, use_tqdm=False)]
           for b in (here, backend)]
    assert ids[0] == ids[1]


def test_jobs_at_once_share_the_engine_and_get_their_own_answers(backend):
    """Three jobs queued while the engine is busy go in together, one chunk per job per turn; each gets what it
    gets alone."""
    import threading

    from core.types import AsrRequest

    audio = clips()
    jobs = [[AsrRequest(audio[(k + j) % 3], context=f"job {k}") for j in range(4)] for k in range(3)]
    alone = [backend.transcribe(reqs) for reqs in jobs]
    engine = backend.engine
    together = [None] * 3
    threads = [threading.Thread(target=lambda k=k: together.__setitem__(k, backend.transcribe(jobs[k])))
               for k in range(3)]
    with Held(lambda block: backend.transcribe([AsrRequest(audio[0])], on_result=block)):  # nothing else goes in
        seen = len(engine.history)
        for t in threads:
            t.start()
        wait_queued(engine, 12)
    for t in threads:
        t.join(60)
    assert together == alone
    assert list(engine.history)[seen].jobs == 3


def test_a_cancelled_job_is_aborted_inside_vllm_and_the_engine_goes_on(asr_dir):
    """Chunks of different lengths under a fixed budget finish at different steps: cancelling after the first one
    aborts the rest inside vLLM, and the next job is served."""
    import time

    from core.asr.vllm_backend import VllmAsr
    from core.config import config_from_env
    from core.types import AsrRequest

    config = config_from_env(asr_model=str(asr_dir), asr_backend="vllm", device="cuda", dtype="float32",
                             vllm_enforce_eager=True, vllm_gpu_memory_utilization=0.2, vllm_max_model_len=2048)
    slow = VllmAsr(config, fixed_tokens_per_second=60.0)
    audio = clips()

    with pytest.raises(Stop):
        slow.transcribe([AsrRequest(audio[0])] + [AsrRequest(audio[2]) for _ in range(16)], stop_after_first)
    deadline = time.monotonic() + 30
    while (slow.engine.in_flight() or slow.llm.llm_engine.has_unfinished_requests()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow.engine.in_flight() == 0 and not slow.llm.llm_engine.has_unfinished_requests()
    out = slow.transcribe([AsrRequest(audio[1])])
    assert len(out) == 1 and out[0].truncated  # the fixed budget: generation ends at the cap
