"""Shared pytest setup: a hypothesis profile for a 2-core CI machine and the tiny-model fixtures."""
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
settings.load_profile("ci")

# Tiny official-layout checkpoints (built once per test process) for any test that asks for them.
from model_helpers import tiny_aligner, tiny_aligner_dir, tiny_asr, tiny_asr_dir, tiny_config  # noqa: E402,F401
