"""Decode any audio or video file to mono float32 at 16 kHz with PyAV (FFmpeg inside the wheel, no system binary).

Frames stream through FFmpeg's resampler into one growing float32 buffer, so memory stays near the size of the
result (an hour is 230 MB) and the file is never held at its source rate. Bad input raises `DecodeError` and
over-long input `TooLargeError`, with messages safe to show a user (no local path in them).

Decoding is serial on purpose. A parallel version (groups of packets decoded in threads with a pre-roll, output
bit-exact with this one; commit a2144b4) ran 0.88x as fast with 2 threads and 0.48x with 4 to 16 on a 16-core
machine: FFmpeg releases the GIL for each ~25 ms audio frame, so threads spend their time handing the GIL over.
"""
from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np

from core.errors import DecodeError, TooLargeError
from core.types import SAMPLE_RATE

log = logging.getLogger("core.audio.decode")

# Downmix with FFmpeg's standard matrix, normalised so that the mono sum cannot exceed full scale.
_RESAMPLER_OPTIONS = {"rematrix_maxval": "1.0"}
_BATCH_FRAMES = 32  # decoded frames handed to the resampler at once
_DTYPES = {"u8": "u1", "s16": "<i2", "s32": "<i4", "s64": "<i8", "flt": "<f4", "dbl": "<f8"}
# FFmpeg may read only the local file it is given: playlists, concat lists and manifests inside an upload cannot
# make it open URLs or other files (fetching is core.fetch.sources' job, with its guard and limits).
_INPUT_OPTIONS = {"protocol_whitelist": "file"}
_MAX_BAD_PACKETS = 50  # corrupt packets are skipped as FFmpeg's CLI does, up to this many (or half of them)


def probe_duration(path) -> float | None:
    """The duration in seconds the file declares for its audio, without decoding; None if unknown or unreadable."""
    try:
        with open_container(path) as container:
            return declared_duration(container, audio_stream(container))
    except DecodeError:
        return None


def decode_audio(path, *, sample_rate: int = SAMPLE_RATE, max_duration_s: float | None = None) -> np.ndarray:
    """float32 mono in [-1, 1] at `sample_rate`. PyAV (FFmpeg inside the wheel; no system ffmpeg).

    `max_duration_s` is checked against the declared duration before decoding and again while decoding (a small
    file can declare seconds and decode to hours).
    """
    with open_container(path) as container:
        stream = audio_stream(container)
        declared = declared_duration(container, stream)
        if max_duration_s is not None and declared is not None and declared > max_duration_s:
            raise too_long(declared, max_duration_s)
        sink = _Sink(int((declared or 600.0) * sample_rate) + sample_rate, sample_rate, max_duration_s)
        _decode(container, stream, sink)
        exact = _exact_duration(container, path)
    audio = sink.result()
    if not len(audio):
        raise DecodeError("no audio could be decoded: the file is empty, truncated or corrupt")
    got = len(audio) / sample_rate
    if declared and got < 0.5 * declared and declared - got > 10:
        if exact:
            raise DecodeError(f"the file is truncated or damaged: it should hold {declared / 60:.1f} min of audio "
                              f"but only {got / 60:.1f} min could be decoded")
        # A duration estimated from the bitrate (an MP3 without a VBR header) can be far off: decode what is there.
        log.warning("decoded %.0f s of audio but the file declares about %.0f s; it may be truncated", got, declared)
    return np.clip(audio, -1.0, 1.0, out=audio)


def open_container(path):
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DecodeError("the file is empty (0 bytes)")
    except OSError:
        raise DecodeError("the file could not be read") from None
    try:
        return av.open(str(path), metadata_errors="ignore", options=_INPUT_OPTIONS)
    except av.FFmpegError:
        raise DecodeError("not a recognised audio or video file (it may be truncated, corrupt, or a web page "
                          "saved under an audio name)") from None


def audio_stream(container):
    if not container.streams.audio:
        if container.streams.video:
            raise DecodeError("no audio stream: the file has video but no sound track")
        raise DecodeError("no audio stream in the file")
    stream = container.streams.audio[0]
    if stream.codec_context is None:
        raise DecodeError("the audio stream uses a codec this server cannot decode")
    return stream


def declared_duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    return None


def _exact_duration(container, path) -> bool:
    """Whether the declared duration is counted (frame counts, an index) rather than estimated from the bitrate."""
    kind = container.format.name.split(",")[0]
    if kind == "mp3":  # exact only with a Xing/Info/VBRI header, which counts the frames
        with open(path, "rb") as f:
            head = f.read(10)
            if head[:3] == b"ID3" and len(head) == 10:  # skip an ID3v2 tag (syncsafe size)
                f.seek(10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10])))
            else:
                f.seek(0)
            first = f.read(2048)
        return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))
    return kind in ("flac", "mov", "matroska", "ogg", "wav", "w64", "aiff")


def too_long(seconds: float, limit: float) -> TooLargeError:
    def minutes(s: float) -> str:
        return f"{s / 60:.1f} min" if s < 600 else f"{s / 60:.0f} min"

    return TooLargeError(f"the audio is {'over ' if seconds <= limit else ''}{minutes(seconds)} long; "
                         f"the limit is {minutes(limit)}")


class _Sink:
    """A float32 buffer that grows by half when full and enforces the duration limit as samples arrive."""

    def __init__(self, capacity: int, rate: int, max_s: float | None) -> None:
        self.limit = None if max_s is None else int(max_s * rate)
        if self.limit is not None:
            capacity = min(capacity, self.limit + rate)
        self.buf = np.empty(max(capacity, 1), np.float32)
        self.n = 0
        self.rate, self.max_s = rate, max_s

    def add(self, samples: np.ndarray) -> None:
        end = self.n + len(samples)
        if self.limit is not None and end > self.limit:
            raise too_long(self.max_s, self.max_s)
        if end > len(self.buf):
            grown = np.empty(max(end, len(self.buf) * 3 // 2), np.float32)
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown
        self.buf[self.n:end] = samples
        self.n = end

    def result(self) -> np.ndarray:
        # A view when the buffer is nearly full; a copy frees the slack when the declared duration was far off.
        return self.buf[:self.n] if self.n > 0.9 * len(self.buf) else self.buf[:self.n].copy()


class Resampler:
    """FFmpeg's resampler to mono float32, fed decoded frames in batches.

    One resample call per 32 frames instead of per frame cuts the decode time by a quarter (the per-call
    overhead rivals the filtering itself) with identical output. The resampler is flushed and rebuilt if the
    source format changes mid-stream.
    """

    def __init__(self, rate: int) -> None:
        self.rate, self.rs, self.key, self.pending = rate, None, None, []

    def __call__(self, frame) -> list[np.ndarray]:
        out = []
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key != self.key:
            out = self.flush()
            self.rs = av.AudioResampler(format="flt", layout="mono", rate=self.rate, options=_RESAMPLER_OPTIONS)
            self.key = key
        self.pending.append(frame)
        if len(self.pending) >= _BATCH_FRAMES:
            out += self.push()
        return out

    def flush(self) -> list[np.ndarray]:
        if self.rs is None:
            return []
        return self.push() + [_samples(f) for f in self.rs.resample(None)]

    def push(self) -> list[np.ndarray]:
        """Resample the frames waiting for a batch, without ending the stream (a slice stops here)."""
        frames, self.pending = self.pending, []
        if not frames:
            return []
        frame = frames[0] if len(frames) == 1 else _join(frames)
        return [_samples(f) for f in self.rs.resample(frame)]


def _join(frames: list):
    """One frame holding the samples of consecutive frames of the same format."""
    first = frames[0]
    fmt, layout = first.format, first.layout
    dtype = np.dtype(_DTYPES[fmt.name.rstrip("p")])
    per_plane = 1 if fmt.is_planar else len(layout.channels)
    planes = [np.concatenate([np.frombuffer(f.planes[i], dtype, count=f.samples * per_plane) for f in frames])
              for i in range(len(first.planes))]
    joined = av.AudioFrame.from_ndarray(np.stack(planes), format=fmt.name, layout=layout.name)
    joined.sample_rate = first.sample_rate
    return joined


def _samples(frame) -> np.ndarray:
    """A mono float32 frame's samples, viewed in place (to_ndarray's vstack costs a fifth of the decode)."""
    return np.frombuffer(frame.planes[0], dtype=np.float32, count=frame.samples)


class _BadPackets:
    """Counts packets FFmpeg rejects: a few are skipped, too many mean the stream is corrupt, not damaged."""

    def __init__(self) -> None:
        self.bad = self.good = 0

    def decode(self, ctx, packet) -> list:
        try:
            frames = ctx.decode(packet)
        except (av.FFmpegError, ValueError):
            self.bad += 1
            return []
        self.good += 1
        return frames

    def check(self) -> None:
        if self.bad > _MAX_BAD_PACKETS and self.bad > self.good:
            raise DecodeError("the audio stream is corrupt: most of it cannot be decoded")


def _demux(container, stream):
    """Packets of `stream` ending with FFmpeg's flush packet; unreadable data ends the stream like EOF does."""
    try:
        yield from container.demux(stream)
    except av.FFmpegError:
        log.warning("the file ends with unreadable data; decoded up to there")
        yield None


def _decode(container, stream, sink: _Sink) -> None:
    ctx = stream.codec_context
    resample = Resampler(sink.rate)
    bad = _BadPackets()
    for packet in _demux(container, stream):
        for frame in bad.decode(ctx, packet):
            for arr in resample(frame):
                sink.add(arr)
        bad.check()
    for arr in resample.flush():
        sink.add(arr)
