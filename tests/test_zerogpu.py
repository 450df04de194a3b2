"""The ZeroGPU split with the real `spaces` package (its decorator is a pass-through off ZeroGPU)."""
import spaces

from audio_helpers import make_podcast
from core.config import config_from_env
from core.pipeline import Pipeline
from webui.zerogpu import ZeroGpuPipeline, gpu_seconds, zerogpu_module


def test_split_job_equals_the_plain_pipeline(tmp_path, tiny_config, tiny_asr, tiny_aligner):
    plain = Pipeline(tiny_config, asr=tiny_asr, aligner=tiny_aligner)
    zero = ZeroGpuPipeline(plain, spaces)
    pod = make_podcast(tmp_path / "p.wav", 0.8)
    heard, stages = [], []
    got = zero.transcribe(str(pod.path), None, lambda s, d, t: stages.append(s), on_audio=heard.append)
    want = plain.transcribe(str(pod.path))
    assert got.segments == want.segments and got.text == want.text and got.text
    assert len(heard) == 1 and len(heard[0]) == int(round(pod.duration * 16000))
    assert {"fetch", "decode", "transcribe", "merge", "total"} <= set(got.timings)
    assert stages.index("decode") < stages.index("transcribe")
    assert "ZeroGPU" in zero.describe()


def test_gpu_time_grows_with_audio_and_is_capped():
    import numpy as np
    short, hour, day = (np.zeros(int(s * 16000), np.float32) for s in (10, 3600, 0.1))
    assert gpu_seconds(short, None) < gpu_seconds(hour, None) <= 300
    assert gpu_seconds(day, None) >= 30


def test_only_on_a_zerogpu_space():
    assert zerogpu_module(config_from_env({})) is None
    assert zerogpu_module(config_from_env({"SPACES_ZERO_GPU": "true"})) is spaces
