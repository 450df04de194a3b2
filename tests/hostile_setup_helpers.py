"""What the hostile suites (test_hostile.py, test_hostile_fuzz.py) share: the media files the cases upload, and the
module fixtures they run on, set up as deployed: a configuration with small limits and the private-address switch
off, its pipeline on the session's tiny models, a loopback canary that SSRF attempts aim at, and a private temp
folder that must be empty after each job."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from audio_helpers import espeak, noise, resample, silence, tone, write_audio, write_video_only
from core.pipeline import Pipeline
from hostile_helpers import leftovers
from model_helpers import make_tiny_config
from net_helpers import Canary, wait_until

SR = 16000
MAX_DURATION_S = 6.0
MAX_DOWNLOAD_BYTES = 1_000_000


# -- the audio the file cases upload ------------------------------------------------------------------------------

def png_bytes() -> bytes:
    """A real 8x8 grey PNG (signature, IHDR, IDAT, IEND with their CRCs)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + bytes([128] * 8) for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@dataclass
class Media:
    speech: np.ndarray
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.speech) / SR


def build_media(folder: Path) -> Media:
    speech = np.concatenate([silence(0.3), espeak("Hello there, this is a short test."), silence(0.3)])
    m = Media(speech)

    def encoded(name: str, samples, rate: int = SR, **kw) -> bytes:
        return write_audio(folder / name, samples, rate, **kw).read_bytes()

    m.files["good"] = encoded("good.wav", speech)
    m.files["empty"] = b""
    m.files["html"] = b"<!DOCTYPE html><html><head><title>Episode 12</title></head><body>Not audio</body></html>" * 20
    m.files["png"] = png_bytes()
    whole = encoded("whole.mp3", np.tile(speech, 2))  # ~5 s, under the limit
    m.files["mp3 head"] = whole[:300]
    m.files["mp3 half"] = whole[: len(whole) // 2]
    m.files["video"] = write_video_only(folder / "silent-film.mp4").read_bytes()
    m.files["long"] = encoded("long.ogg", tone(220, 5 * MAX_DURATION_S), bitrate=12_000)  # tiny, 30 s long
    m.files["silence"] = encoded("silence.wav", silence(3.0))
    m.files["hiss"] = encoded("hiss.wav", noise(3.0, level_db=-50))
    m.files["random"] = np.random.default_rng(7).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    m.files["8ch"] = encoded("8ch.wav", np.stack([speech] * 8))
    m.files["192k"] = encoded("192k.wav", resample(speech, SR, 192_000), 192_000)
    m.files["big"] = bytes(MAX_DOWNLOAD_BYTES + 1000)
    return m


# -- fixtures -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def config():
    return make_tiny_config(max_duration_s=MAX_DURATION_S, max_download_bytes=MAX_DOWNLOAD_BYTES, max_upload_mb=4,
                            app_queue_size=8)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return build_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def canary():
    with Canary() as c:
        yield c


@pytest.fixture(scope="module")
def pipeline(config, tiny_asr, tiny_aligner):
    assert not config.allow_private_urls  # as deployed
    return Pipeline(config, asr=tiny_asr, aligner=tiny_aligner)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Every temp file a job makes lands here (the web app's threads included); none may be left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp
    assert wait_until(lambda: not leftovers(tmp), 5), f"left behind: {leftovers(tmp)}"
