"""Shared pytest setup: a hypothesis profile for a 2-core CI machine and the tiny-model fixtures."""
import tempfile

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
settings.load_profile("ci")

# Tiny official-layout checkpoints (built once per test process) for any test that asks for them.
from model_helpers import tiny_aligner, tiny_aligner_dir, tiny_asr, tiny_asr_dir, tiny_config  # noqa: E402,F401
from net_helpers import wait_until  # noqa: E402


@pytest.fixture
def own_tempdir(tmp_path, monkeypatch):
    """Every temp file this process makes lands in this test's folder; the test fails if one is left behind.

    Files that use it mark themselves `pytestmark = pytest.mark.usefixtures("own_tempdir")`. torch's process-wide
    compile cache is made once per process, not per job, so it does not count."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp

    def leftovers():
        return [p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_")]
    assert wait_until(lambda: not leftovers(), timeout=5), f"left behind: {leftovers()}"
