"""core.audio.encode: the player's file must keep the transcript's timeline, stay small, and reject what it cannot write."""
from __future__ import annotations

import av
import numpy as np
import pytest

from core.audio.encode import CODECS, EXTENSIONS, encode_speech
from core.errors import InputError
from core.types import SAMPLE_RATE


def _decode(path) -> np.ndarray:
    """Decode with PyAV (as a browser's FFmpeg would), back to 16 kHz mono float32."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    out = []
    with av.open(str(path)) as f:
        for frame in f.decode(f.streams.audio[0]):
            out.extend(r.to_ndarray()[0] for r in resampler.resample(frame))
    out.extend(r.to_ndarray()[0] for r in resampler.resample(None))
    return np.concatenate(out)


def _bursts(seconds: float, onsets: list[float]) -> np.ndarray:
    """Silence with a 0.1 s tone burst at each onset."""
    x = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    n = SAMPLE_RATE // 10
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / SAMPLE_RATE).astype(np.float32)
    for t in onsets:
        i = int(t * SAMPLE_RATE)
        x[i:i + n] = tone
    return x


def _onsets(y: np.ndarray) -> list[float]:
    loud = np.abs(y) > 0.1
    starts = np.flatnonzero(loud[1:] & ~np.convolve(loud, np.ones(800), "full")[:len(loud) - 1].astype(bool))
    return [(i + 1) / SAMPLE_RATE for i in starts]


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_timeline_is_kept(tmp_path, codec):
    onsets = [0.5, 2.25, 7.0]
    path = encode_speech(_bursts(8.0, onsets), tmp_path / f"a{EXTENSIONS[codec]}", codec=codec)
    y = _decode(path)
    assert abs(len(y) / SAMPLE_RATE - 8.0) < 0.05  # priming and padding samples are trimmed by the decoder
    got = _onsets(y)
    assert len(got) == len(onsets)
    for want, have in zip(onsets, got):
        assert abs(have - want) < 0.004, (codec, want, have)  # Opus pre-skip alone is 6.5 ms


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_file_is_small_mono_speech(tmp_path, codec):
    rng = np.random.default_rng(0)
    seconds, bitrate = 20, 24_000
    noise = (0.2 * rng.standard_normal(seconds * SAMPLE_RATE)).astype(np.float32)
    path = encode_speech(noise, tmp_path / f"n{EXTENSIONS[codec]}", codec=codec, bitrate=bitrate)
    size = path.stat().st_size
    assert size < 1.3 * bitrate * seconds / 8 + 4096  # about the asked bit rate, far below 16-bit PCM (640 kB)
    low = encode_speech(noise, tmp_path / f"low{EXTENSIONS[codec]}", codec=codec, bitrate=bitrate // 2)
    assert low.stat().st_size < 0.75 * size
    with av.open(str(path)) as f:
        stream = f.streams.audio[0]
        assert stream.codec_context.channels == 1
        assert f.format.name.split(",")[0] == CODECS[codec][1]


def test_loud_input_is_clipped_not_wrapped(tmp_path):
    x = np.full(SAMPLE_RATE, 3.0, np.float32)
    x[::2] = -3.0
    y = _decode(encode_speech(x, tmp_path / "loud.ogg", codec="opus"))
    assert np.max(np.abs(y)) < 1.5


@pytest.mark.parametrize("samples, codec, message", [
    (np.zeros((2, 100), np.float32), "opus", "mono"),
    (np.zeros(0, np.float32), "opus", "no audio"),
    (np.zeros(100, np.float32), "wav", "unknown codec"),
])
def test_bad_input(tmp_path, samples, codec, message):
    with pytest.raises(InputError, match=message):
        encode_speech(samples, tmp_path / "x.ogg", codec=codec)
    assert not list(tmp_path.iterdir())


def test_unwritable_path_leaves_nothing(tmp_path):
    target = tmp_path / "missing-dir" / "x.mp3"
    with pytest.raises(Exception):
        encode_speech(np.zeros(SAMPLE_RATE, np.float32), target, codec="mp3")
    assert not target.exists()
