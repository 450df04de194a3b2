"""Speech-like benchmark audio: formant-synthesised syllables in utterances separated by pauses, written as MP3.

Random weights make any real recording pointless, but the input still has to behave like speech for every stage
that looks at the signal: the VAD must call it speech, the chunker must find pauses to cut at, and the decoder must
chew through a real 44.1 kHz stereo MP3 (the shape of a typical podcast download). Each call with a new seed gives
different samples, so a second timed pass never hits vLLM's multimodal or prefix caches.

Synthesis and encoding run in segments on a process pool; the MP3 segments are written without Xing or ID3 headers,
so their concatenation is one valid stream of frames.
"""
from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SYNTH_RATE = 16000  # synthesis rate; the encoder resamples to the file's rate
# (F1, F2, F3) in Hz of a few vowels; each syllable picks one.
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (660, 1720, 2410),
          (490, 1350, 1690), (570, 840, 2410), (440, 1020, 2240))


@dataclass(frozen=True)
class SpeechShape:
    """How the synthetic talk is laid out; the defaults resemble conversational speech."""

    utterance_s: tuple[float, float] = (2.0, 12.0)  # a run of words without a pause
    pause_s: tuple[float, float] = (0.35, 1.6)  # silence between utterances
    long_pause_every: int = 12  # about one utterance in this many is followed by a 2-4 s pause
    syllable_s: tuple[float, float] = (0.09, 0.26)
    syllables_per_word: tuple[int, int] = (1, 4)
    word_gap_s: tuple[float, float] = (0.0, 0.08)
    noise_floor: float = 3e-4  # background level in pauses (about -70 dBFS)


def _resonator_ir(formants, bandwidths, n: int) -> np.ndarray:
    t = np.arange(n) / SYNTH_RATE
    ir = np.zeros(n)
    for f, bw, gain in zip(formants, bandwidths, (1.0, 0.6, 0.3)):
        ir += gain * np.exp(-np.pi * bw * t) * np.sin(2 * np.pi * f * t)
    return ir / (np.abs(ir).sum() + 1e-9)


def _syllable(rng: np.random.Generator, dur: float, f0: float) -> np.ndarray:
    """A consonant burst (sometimes) then a voiced vowel: a glottal pulse train through three formant resonators."""
    n = int(dur * SYNTH_RATE)
    out = np.zeros(n)
    start = 0
    if rng.random() < 0.6:  # fricative/plosive onset: high-passed noise
        m = min(n // 3, int(rng.uniform(0.02, 0.07) * SYNTH_RATE))
        burst = np.diff(rng.standard_normal(m + 1)) * rng.uniform(0.05, 0.2)
        out[:m] = burst * np.hanning(m)
        start = m
    v = n - start
    if v > 16:
        period = SYNTH_RATE / (f0 * np.linspace(1.05, 0.95, v))  # falling pitch inside the syllable
        phase = np.cumsum(1.0 / period)
        pulses = np.diff(np.floor(phase), prepend=0.0)
        ir = _resonator_ir(VOWELS[rng.integers(len(VOWELS))], (80, 100, 140), 320)
        voiced = np.convolve(pulses, ir)[:v]
        voiced += 0.02 * rng.standard_normal(v) * np.abs(voiced).max()  # breathiness
        env = np.sin(np.linspace(0, np.pi, v)) ** 0.6
        out[start:] += voiced * env / (np.abs(voiced).max() + 1e-9) * rng.uniform(0.3, 0.7)
    return out


def synth_speech(seconds: float, seed: int, shape: SpeechShape = SpeechShape()) -> np.ndarray:
    """`seconds` of speech-like float32 mono audio at SYNTH_RATE; same seed, same samples."""
    rng = np.random.default_rng(seed)
    total = int(seconds * SYNTH_RATE)
    out = (rng.standard_normal(total) * shape.noise_floor).astype(np.float32)
    pos = int(rng.uniform(0.1, 0.6) * SYNTH_RATE)
    count = 0
    while pos < total:
        end_utt = pos + int(rng.uniform(*shape.utterance_s) * SYNTH_RATE)
        f0 = rng.uniform(95, 230)  # a speaker's pitch for this utterance
        while pos < min(end_utt, total):
            for _ in range(rng.integers(shape.syllables_per_word[0], shape.syllables_per_word[1] + 1)):
                syl = _syllable(rng, rng.uniform(*shape.syllable_s), f0 * rng.uniform(0.9, 1.1))
                k = min(len(syl), total - pos)
                if k <= 0:
                    break
                out[pos:pos + k] += syl[:k]
                pos += k
            pos += int(rng.uniform(*shape.word_gap_s) * SYNTH_RATE)
            f0 *= 0.995  # declination across the utterance
        count += 1
        long = shape.long_pause_every and count % shape.long_pause_every == 0
        pos += int((rng.uniform(2.0, 4.0) if long else rng.uniform(*shape.pause_s)) * SYNTH_RATE)
    return out


def encode_mp3(samples: np.ndarray, rate: int = 44100, channels: int = 2, bit_rate: int = 128000,
               headers: bool = True) -> bytes:
    """MP3 bytes of SYNTH_RATE mono float samples, resampled to `rate` with `channels` identical channels.

    `headers=False` leaves out the Xing/ID3 frames so that segments can be concatenated.
    """
    import av

    layout = "stereo" if channels == 2 else "mono"
    buf = io.BytesIO()
    opts = {} if headers else {"write_xing": "0", "id3v2_version": "0", "write_id3v1": "0"}
    with av.open(buf, "w", format="mp3", options=opts) as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout=layout)
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt",
                                           layout="mono")
        frame.sample_rate = SYNTH_RATE
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        for out in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def _segment(args) -> bytes:
    seconds, seed, rate, channels = args
    return encode_mp3(synth_speech(seconds, seed), rate=rate, channels=channels, headers=False)


def write_speech_mp3(path: str | Path, seconds: float, seed: int, *, segment_s: float = 225.0, rate: int = 44100,
                     channels: int = 2, workers: int | None = None) -> Path:
    """Write `seconds` of synthetic speech to `path` as MP3, synthesised and encoded in parallel segments."""
    n = max(1, int(np.ceil(seconds / segment_s)))
    lengths = [min(segment_s, seconds - i * segment_s) for i in range(n)]
    jobs = [(length, seed * 100003 + i, rate, channels) for i, length in enumerate(lengths)]
    workers = workers or min(n, os.cpu_count() or 1)
    if workers == 1:
        parts = [_segment(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_segment, jobs))
    path = Path(path)
    path.write_bytes(b"".join(parts))
    return path


def pause_fraction(samples: np.ndarray, rate: int = SYNTH_RATE, window_s: float = 0.05,
                   threshold: float = 0.01) -> tuple[float, float]:
    """(fraction of windows below threshold RMS, longest run of such windows in seconds): a check that pauses exist."""
    w = int(window_s * rate)
    frames = samples[: len(samples) // w * w].reshape(-1, w)
    quiet = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) < threshold
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return float(quiet.mean()), longest * window_s
