"""Synthetic audio for tests and benchmarks: espeak-ng speech, tones, noise, silences, and files written by PyAV.

Everything is made on the spot (a several-minute "podcast" in a few seconds), so no binary fixtures are checked
in and the true position of every pause is known exactly. Signals are float32 mono at 16 kHz unless a function
says otherwise; times in the returned spans are seconds.
"""
from __future__ import annotations

import random
import struct
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

SR = 16000

# Short, comma-free sentences so that espeak-ng's own pauses inside a sentence stay short (word gaps only).
SENTENCES = (
    "The weather station on the hill recorded the coldest night of the year",
    "She opened the old wooden box and found a stack of letters tied with string",
    "Our guest today has spent twenty years studying how rivers change their course",
    "Nobody expected the small bakery to become the most popular place in town",
    "The train was late again so we walked the last three miles to the village",
    "He explained that the engine needs fresh oil every five thousand kilometres",
    "Most of the audience stayed after the concert to talk with the musicians",
    "The library will close early on Friday because of the annual inventory",
    "Scientists measured the temperature of the lake at six different depths",
    "A good podcast needs clear sound and a host who asks honest questions",
    "They planted tomatoes beans and pumpkins along the southern fence",
    "The committee will publish its final report at the end of the month",
)
VOICES = ("en-us", "en-gb")

# Codec per extension when writing files; opus needs 48 kHz, the encoder's own resampler takes care of it.
_CODECS = {".wav": "pcm_s16le", ".mp3": "mp3", ".ogg": "libopus", ".opus": "libopus", ".flac": "flac",
           ".m4a": "aac", ".webm": "libopus", ".mp4": "aac", ".mkv": "flac"}
_VIDEO_CODECS = {".mp4": "mpeg4", ".webm": "libvpx", ".mkv": "mpeg4"}


def espeak(text: str, *, voice: str = "en-us", wpm: int = 175, sample_rate: int = SR,
           trim: bool = True) -> np.ndarray:
    """Speech from espeak-ng as float32 mono at `sample_rate`; with `trim`, leading/trailing silence removed."""
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(wpm), text],
                         check=True, capture_output=True).stdout
    src_rate = struct.unpack_from("<I", wav, 24)[0]  # espeak-ng writes a plain 44-byte PCM header
    pcm = np.frombuffer(wav[44:], dtype="<i2").astype(np.float32) / 32768.0
    out = resample(pcm, src_rate, sample_rate)
    if trim:
        loud = np.flatnonzero(np.abs(out) > 1e-3)
        out = out[loud[0]:loud[-1] + 1] if len(loud) else out[:0]
    return out


def speech_wav(path, text: str, *, voice: str = "en-us", wpm: int = 175) -> Path:
    """espeak-ng's own WAV (22.05 kHz s16 mono) at `path`."""
    subprocess.run(["espeak-ng", "-w", str(path), "-v", voice, "-s", str(wpm), text], check=True)
    return Path(path)


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Mono float32 resampling through PyAV's resampler (s16 in between is fine for test signals)."""
    if src_rate == dst_rate:
        return x.astype(np.float32)
    rs = av.AudioResampler(format="flt", layout="mono", rate=dst_rate)
    frame = av.AudioFrame.from_ndarray(_to_s16(x)[None, :], format="s16", layout="mono")
    frame.sample_rate = src_rate
    frame.pts, frame.time_base = 0, Fraction(1, src_rate)
    outs = rs.resample(frame) + rs.resample(None)
    return np.concatenate([f.to_ndarray()[0] for f in outs]) if outs else np.zeros(0, np.float32)


def tone(freq: float, seconds: float, *, sample_rate: int = SR, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, *, sample_rate: int = SR) -> np.ndarray:
    return np.zeros(int(round(seconds * sample_rate)), np.float32)


def noise(seconds: float, *, level_db: float = -50.0, sample_rate: int = SR, seed: int = 0) -> np.ndarray:
    """White noise whose RMS is `level_db` dB below full scale."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(round(seconds * sample_rate))) * 10 ** (level_db / 20)).astype(np.float32)


def music(seconds: float, *, sample_rate: int = SR, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    """A steady synthetic 'music' bed: a chord of harmonics whose notes change every half second."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, np.float32)
    step = sample_rate // 2
    t = np.arange(step) / sample_rate
    for i in range(0, n, step):
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        seg = sum(np.sin(2 * np.pi * root * k * t) / k for k in (1, 2, 3, 4, 5))
        out[i:i + step] = (seg[: n - i] * amplitude / 2).astype(np.float32)
    return out


def tones_with_silences(layout: list[tuple[str, float]], *, freq: float = 440.0, sample_rate: int = SR,
                        amplitude: float = 0.5) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Concatenate ("tone", s) and ("silence", s) parts; returns the samples and the silences' (start, end)."""
    parts, spans, pos = [], [], 0
    for kind, seconds in layout:
        part = tone(freq, seconds, sample_rate=sample_rate, amplitude=amplitude) if kind == "tone" else \
            silence(seconds, sample_rate=sample_rate)
        if kind != "tone":
            spans.append((pos / sample_rate, (pos + len(part)) / sample_rate))
        parts.append(part)
        pos += len(part)
    return np.concatenate(parts) if parts else np.zeros(0, np.float32), spans


def write_audio(path, samples: np.ndarray, sample_rate: int = SR, *, codec: str | None = None,
                bitrate: int | None = None, video: bool = False, layout: str | None = None,
                container_options: dict | None = None) -> Path:
    """Encode `samples` ((n,) mono or (channels, n)) with PyAV; the codec follows the file extension.

    `video` adds a tiny video track (mp4/webm/mkv) so the file looks like a screen recording with sound;
    `container_options` go to the muxer (e.g. {"write_xing": "0"} for an MP3 without a VBR header).
    """
    path = Path(path)
    ext = path.suffix.lower()
    codec = codec or _CODECS[ext]
    data = np.atleast_2d(samples)
    layout = layout or {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}[data.shape[0]]
    with av.open(str(path), "w", container_options=container_options) as out:
        vstream = None
        if video:
            vstream = out.add_stream(_VIDEO_CODECS[ext], rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = out.add_stream(codec, rate=sample_rate if codec != "libopus" else 48000, layout=layout)
        if bitrate:
            astream.bit_rate = bitrate
        pcm = _to_s16(data)
        block = 4096
        for i in range(0, data.shape[1], block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, i:i + block].T.reshape(1, -1)),
                                               format="s16", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, i, Fraction(1, sample_rate)
            out.mux(astream.encode(frame))
        out.mux(astream.encode(None))
        if vstream is not None:
            _mux_video(out, vstream, data.shape[1] / sample_rate)
    return path


def write_video_only(path, seconds: float = 2.0) -> Path:
    """A video file with no audio track at all."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        vstream = out.add_stream(_VIDEO_CODECS[path.suffix.lower()], rate=5)
        vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        _mux_video(out, vstream, seconds)
    return path


def _mux_video(out, vstream, seconds: float) -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    for i in range(max(1, int(seconds * 5))):
        img[:] = (i * 40) % 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        out.mux(vstream.encode(frame))
    out.mux(vstream.encode(None))


def _to_s16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


@lru_cache(maxsize=4)
def sentence_pool(sample_rate: int = SR) -> tuple[np.ndarray, ...]:
    """Every SENTENCE in every VOICE, synthesised once per process (~1 s) and reused by make_podcast."""
    return tuple(espeak(s, voice=v, sample_rate=sample_rate) for v in VOICES for s in SENTENCES)


@dataclass
class Podcast:
    path: Path | None
    duration: float  # seconds
    pauses: list[tuple[float, float]]  # every silence between sentences, (start, end) in seconds
    speech: list[tuple[float, float]]  # every sentence, (start, end) in seconds
    samples: np.ndarray = field(repr=False)  # the signal before encoding, float32 mono at `sample_rate`
    sample_rate: int = SR


def podcast_samples(minutes: float, *, pauses: tuple[float, float] = (0.35, 1.5), seed: int = 0,
                    noise_db: float | None = None, sample_rate: int = SR) -> Podcast:
    """espeak-ng sentences separated by pauses drawn uniformly from `pauses` seconds, starting with a pause.

    `noise_db` adds a white-noise floor (RMS dBFS) over everything, like a real room or a cheap microphone.
    """
    rng = random.Random(seed)
    pool = sentence_pool(sample_rate)
    total = int(minutes * 60 * sample_rate)
    parts, pause_spans, speech_spans, pos = [], [], [], 0
    while pos < total:
        gap = int(rng.uniform(*pauses) * sample_rate)
        pause_spans.append((pos / sample_rate, (pos + gap) / sample_rate))
        parts.append(np.zeros(gap, np.float32))
        pos += gap
        sent = pool[rng.randrange(len(pool))]
        speech_spans.append((pos / sample_rate, (pos + len(sent)) / sample_rate))
        parts.append(sent)
        pos += len(sent)
    tail = int(pauses[0] * sample_rate)
    pause_spans.append((pos / sample_rate, (pos + tail) / sample_rate))
    parts.append(np.zeros(tail, np.float32))
    samples = np.concatenate(parts)
    if noise_db is not None:
        samples = samples + noise(len(samples) / sample_rate, level_db=noise_db, sample_rate=sample_rate, seed=seed)
    return Podcast(None, len(samples) / sample_rate, pause_spans, speech_spans, samples.astype(np.float32),
                   sample_rate)


def make_podcast(path, minutes: float, *, pauses: tuple[float, float] = (0.35, 1.5), seed: int = 0,
                 noise_db: float | None = None, sample_rate: int = SR, bitrate: int | None = None,
                 channels: int = 1) -> Podcast:
    """A `minutes`-long spoken file at `path` (.mp3, .wav, .ogg, .m4a...) with pauses at known places."""
    pod = podcast_samples(minutes, pauses=pauses, seed=seed, noise_db=noise_db, sample_rate=sample_rate)
    data = pod.samples if channels == 1 else np.repeat(pod.samples[None, :], channels, axis=0)
    pod.path = write_audio(path, data, sample_rate, bitrate=bitrate)
    return pod
