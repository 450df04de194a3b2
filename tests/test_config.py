import dataclasses

import pytest

from core.config import Config, config_from_env
from core.errors import InputError


def test_defaults_are_the_official_models():
    cfg = config_from_env({})
    assert cfg.asr_model == "Qwen/Qwen3-ASR-0.6B"
    assert cfg.aligner_model == "Qwen/Qwen3-ForcedAligner-0.6B"
    assert cfg.chunk_max_s <= 180  # the aligner's per-call limit


def test_environment_overrides_by_upper_case_name():
    cfg = config_from_env({"ASR_MODEL": "Qwen/Qwen3-ASR-1.7B", "ALIGNER_MODEL": "", "CHUNK_TARGET_S": "20",
                           "ALLOW_PRIVATE_URLS": "true", "APP_CONCURRENCY": "3"})
    assert cfg.asr_model == "Qwen/Qwen3-ASR-1.7B"
    assert cfg.aligner_model == ""
    assert cfg.chunk_target_s == 20.0
    assert cfg.allow_private_urls is True
    assert cfg.app_concurrency == 3


def test_gradio_server_port_is_respected_and_port_wins():
    assert config_from_env({"GRADIO_SERVER_PORT": "9000"}).port == 9000
    assert config_from_env({"GRADIO_SERVER_PORT": "9000", "PORT": "8000"}).port == 8000


@pytest.mark.parametrize("env, needle", [
    ({"CHUNK_TARGET_S": "abc"}, "CHUNK_TARGET_S"),
    ({"ALLOW_PRIVATE_URLS": "maybe"}, "ALLOW_PRIVATE_URLS"),
    ({"ASR_BACKEND": "tensorrt"}, "ASR_BACKEND"),
    ({"CHUNK_MAX_S": "400"}, "180"),
    ({"CHUNK_TARGET_S": "90", "CHUNK_MAX_S": "60"}, "CHUNK_TARGET_S"),
])
def test_bad_values_name_the_variable(env, needle):
    with pytest.raises(InputError, match=needle):
        config_from_env(env)


def test_config_is_frozen_and_hides_the_api_key():
    cfg = config_from_env({"RUNPOD_API_KEY": "rp_secret_value"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.asr_model = "x"  # type: ignore[misc]
    assert "rp_secret_value" not in repr(cfg)
    assert cfg.runpod_api_key == "rp_secret_value"


def test_every_field_is_settable_from_the_environment():
    # A field whose type the parser cannot build from a string would be unreachable from the environment.
    samples = {bool: ("1", True), int: ("7", 7), float: ("7.5", 7.5), str: ("x", "x")}
    for f in dataclasses.fields(Config):
        if f.name in ("asr_backend", "device", "chunk_target_s", "chunk_max_s", "vllm_audio_features", "app_mode",
                      "log_level", "app_auth", "runpod_log_level", "api_key"):
            continue  # constrained values, covered above and below
        raw, expected = samples[type(f.default)]
        assert getattr(config_from_env({f.name.upper(): raw}), f.name) == expected, f.name


def test_api_key_is_read_checked_and_kept_out_of_repr():
    cfg = config_from_env({"API_KEY": "sk-local-0123456789"})
    assert cfg.api_key == "sk-local-0123456789" and "sk-local" not in repr(cfg)
    assert config_from_env({}).api_key == ""
    for bad in ("short", "has a space in it", "tab\there-and-long"):
        with pytest.raises(InputError, match="API_KEY"):
            config_from_env({"API_KEY": bad})


def test_vllm_audio_features_takes_processor_or_gpu():
    assert config_from_env({"VLLM_AUDIO_FEATURES": "gpu"}).vllm_audio_features == "gpu"
    with pytest.raises(InputError, match="VLLM_AUDIO_FEATURES"):
        config_from_env({"VLLM_AUDIO_FEATURES": "cpu"})


def test_runpod_serverless_environment_starts_the_worker_unless_told_otherwise():
    assert config_from_env({"RUNPOD_WEBHOOK_GET_JOB": "https://api.runpod.ai/v2/x/job-take"}).app_mode == "runpod"
    assert config_from_env({"RUNPOD_WEBHOOK_GET_JOB": "x", "APP_MODE": "webui"}).app_mode == "webui"
    assert config_from_env({}).app_mode == "webui"


def test_app_mode_log_level_and_zerogpu_are_read_once_here():
    assert config_from_env({"APP_MODE": "runpod", "LOG_LEVEL": "debug"}).log_level == "debug"
    assert config_from_env({"SPACES_ZERO_GPU": "true"}).spaces_zero_gpu is True
    with pytest.raises(InputError, match="APP_MODE must be webui or runpod"):
        config_from_env({"APP_MODE": "gradio"})
    with pytest.raises(InputError, match="LOG_LEVEL"):
        config_from_env({"LOG_LEVEL": "loud"})


def test_server_name_and_login():
    assert config_from_env({}).server_name == "127.0.0.1"
    assert config_from_env({"GRADIO_SERVER_NAME": "0.0.0.0"}).server_name == "0.0.0.0"
    assert config_from_env({"GRADIO_SERVER_NAME": "0.0.0.0", "SERVER_NAME": "::1"}).server_name == "::1"
    cfg = config_from_env({"APP_AUTH": "ann:s3cret-pass"})
    assert cfg.app_auth == "ann:s3cret-pass" and "s3cret-pass" not in repr(cfg)
    for bad in ("ann", "ann:", ":pw"):
        with pytest.raises(InputError, match="APP_AUTH must be user:password"):
            config_from_env({"APP_AUTH": bad})
