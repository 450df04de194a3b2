"""Decoded speech -> a small file: the web player plays it, the RunPod remote client uploads it.

The input is what `core.audio.decode.decode_audio` returns (16 kHz mono float32), so the file's timeline is exactly the
timeline the transcript's timestamps refer to. Both containers tell the decoder how many priming samples to drop
(Ogg Opus `pre-skip`, the LAME/Xing header in MP3), so a time in the transcript is the same time in the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

from core.errors import InputError
from core.types import SAMPLE_RATE

# codec -> (encoder, container format, default bit rate). Opus is the smallest for speech; MP3 plays everywhere.
CODECS = {
    "opus": ("libopus", "ogg", 24_000),
    "mp3": ("libmp3lame", "mp3", 32_000),
}
EXTENSIONS = {"opus": ".ogg", "mp3": ".mp3"}
_BLOCK = 10 * SAMPLE_RATE  # samples handed to the encoder at a time: memory stays flat for hour-long audio


def encode_speech(samples, path: str | os.PathLike, *, codec: str = "opus", bitrate: int | None = None) -> Path:
    """Write 16 kHz mono float32 `samples` to `path` as Ogg Opus or MP3 and return the path.

    A file that fails half-way is removed, so callers never see a truncated file.
    """
    if codec not in CODECS:
        raise InputError(f"unknown codec {codec!r}; use one of: {', '.join(CODECS)}")
    encoder, container, default_rate = CODECS[codec]
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise InputError("encode_speech takes mono samples (a 1-D array)")
    if samples.size == 0:
        raise InputError("there is no audio to encode")
    path = Path(path)
    try:
        with av.open(str(path), "w", format=container) as out:
            stream = out.add_stream(encoder, rate=SAMPLE_RATE, layout="mono")
            stream.bit_rate = int(bitrate or default_rate)
            pts = 0
            for start in range(0, samples.size, _BLOCK):
                block = np.clip(samples[start:start + _BLOCK], -1.0, 1.0).astype(np.float32, copy=False)
                frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = pts
                pts += block.size
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
