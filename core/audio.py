"""Decode any audio or video file to mono float32 at 16 kHz with PyAV (FFmpeg inside the wheel, no system binary).

Frames stream through FFmpeg's resampler into one growing float32 buffer, so memory stays near the size of the
result (an hour is 230 MB) and the file is never held at its source rate. Bad input raises `DecodeError` and
over-long input `TooLargeError`, with messages safe to show a user (no local path in them).

With `workers > 1` a long file is decoded in parallel: the calling thread demuxes packets in order and hands
groups of them (~30 s each) to decoder threads. Each thread has its own decoder and first decodes the end of the
previous group again (pre-roll, discarded) so that codec state (MP3 bit reservoir, MDCT overlap) and resampler
history match a serial decode. PyAV releases the GIL inside FFmpeg's decode and filter calls, so plain threads
scale; no worker processes, no seeking (which is not sample-exact in MP3).
"""
from __future__ import annotations

import logging
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import av
import numpy as np

from .errors import DecodeError, TooLargeError
from .types import SAMPLE_RATE

log = logging.getLogger("core.audio")

# Downmix with FFmpeg's standard matrix, normalised so that the mono sum cannot exceed full scale.
_RESAMPLER_OPTIONS = {"rematrix_maxval": "1.0"}
_BATCH_FRAMES = 32  # decoded frames handed to the resampler at once
_DTYPES = {"u8": "u1", "s16": "<i2", "s32": "<i4", "s64": "<i8", "flt": "<f4", "dbl": "<f8"}
_MAX_BAD_PACKETS = 50  # corrupt packets are skipped as FFmpeg's CLI does, up to this many (or half of them)
_GROUP_S = 30.0  # audio per parallel task: long enough to amortise the pre-roll, short enough to balance threads
_PREROLL_S = 0.5  # decoded again before each group and discarded
_POSTROLL_S = 0.05  # decoded after each group so that the resampler's last outputs see their future samples
_MIN_PARALLEL_S = 120.0  # shorter files decode serially: threads would cost more than they save


def probe_duration(path) -> float | None:
    """The duration in seconds the file declares for its audio, without decoding; None if unknown or unreadable."""
    try:
        with _open(path) as container:
            return _declared_duration(container, _audio_stream(container))
    except DecodeError:
        return None


def decode_audio(path, *, sample_rate: int = SAMPLE_RATE, max_duration_s: float | None = None,
                 workers: int | None = 1) -> np.ndarray:
    """float32 mono in [-1, 1] at `sample_rate`. PyAV (FFmpeg inside the wheel; no system ffmpeg).

    `max_duration_s` is checked against the declared duration before decoding and again while decoding (a small
    file can declare seconds and decode to hours). `workers` > 1 decodes files over two minutes in that many
    threads; None means one per available CPU, at most 8.
    """
    if workers is None:
        workers = min(8, len(os.sched_getaffinity(0)))
    with _open(path) as container:
        stream = _audio_stream(container)
        declared = _declared_duration(container, stream)
        if max_duration_s is not None and declared is not None and declared > max_duration_s:
            raise _too_long(declared, max_duration_s)
        sink = _Sink(int((declared or 600.0) * sample_rate) + sample_rate, sample_rate, max_duration_s)
        if workers > 1 and declared is not None and declared >= _MIN_PARALLEL_S:
            try:
                _decode_parallel(container, stream, Path(path), sink, workers)
            except _Irregular:  # the source format changes mid-stream: decode again, serially
                sink.n = 0
                with _open(path) as again:
                    _decode_serial(again, again.streams[stream.index], sink)
        else:
            _decode_serial(container, stream, sink)
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


def _open(path):
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DecodeError("the file is empty (0 bytes)")
    except OSError:
        raise DecodeError("the file could not be read") from None
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError:
        raise DecodeError("not a recognised audio or video file (it may be truncated, corrupt, or a web page "
                          "saved under an audio name)") from None


def _audio_stream(container):
    if not container.streams.audio:
        if container.streams.video:
            raise DecodeError("no audio stream: the file has video but no sound track")
        raise DecodeError("no audio stream in the file")
    stream = container.streams.audio[0]
    if stream.codec_context is None:
        raise DecodeError("the audio stream uses a codec this server cannot decode")
    return stream


def _declared_duration(container, stream) -> float | None:
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


def _too_long(seconds: float, limit: float) -> TooLargeError:
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
            raise _too_long(self.max_s, self.max_s)
        if end > len(self.buf):
            grown = np.empty(max(end, len(self.buf) * 3 // 2), np.float32)
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown
        self.buf[self.n:end] = samples
        self.n = end

    def result(self) -> np.ndarray:
        # A view when the buffer is nearly full; a copy frees the slack when the declared duration was far off.
        return self.buf[:self.n] if self.n > 0.9 * len(self.buf) else self.buf[:self.n].copy()


class _Resampler:
    """FFmpeg's resampler to mono float32, fed decoded frames in batches.

    One resample call per ~32 frames instead of per frame cuts the decode time by a quarter (the per-call
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


def _decode_serial(container, stream, sink: _Sink) -> None:
    ctx = stream.codec_context
    resample = _Resampler(sink.rate)
    bad = _BadPackets()
    for packet in _demux(container, stream):
        for frame in bad.decode(ctx, packet):
            for arr in resample(frame):
                sink.add(arr)
        bad.check()
    for arr in resample.flush():
        sink.add(arr)


class _Irregular(Exception):
    """The sample rate or layout changes inside the stream; parallel groups could not be stitched exactly."""


@dataclass
class _Group:
    index: int
    preroll: list  # packets decoded only to warm the decoder and resampler up
    own: list  # the packets whose audio this group contributes
    postroll: list  # packets decoded only so that the resampler sees what follows `own`
    last: bool


class _Offsets:
    """Where each group starts, in source samples: known once every earlier group has been decoded."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.starts, self.counts, self.failed = {0: 0}, {}, False

    def publish(self, index: int, count: int | None) -> None:
        with self.cond:
            if count is None:
                self.failed = True
            else:
                self.counts[index] = count
                while index in self.starts and index in self.counts:
                    self.starts[index + 1] = self.starts[index] + self.counts[index]
                    index += 1
            self.cond.notify_all()

    def start(self, index: int) -> int:
        with self.cond:
            self.cond.wait_for(lambda: index in self.starts or self.failed)
            if index not in self.starts:
                raise _Irregular  # an earlier group failed; its own error is the one reported
            return self.starts[index]


def _decode_parallel(container, stream, path: Path, sink: _Sink, workers: int) -> None:
    local, opened, lock = threading.local(), [], threading.Lock()
    offsets = _Offsets()
    bad = _BadPackets()

    def decoder():
        if not hasattr(local, "ctx"):
            c = av.open(str(path), metadata_errors="ignore")
            with lock:
                opened.append(c)
            local.ctx = c.streams[stream.index].codec_context
        else:
            local.ctx.flush_buffers()  # the state of a new decoder; the pre-roll rebuilds what it needs
        return local.ctx

    def task(group: _Group):
        ctx, counter, frames, counts, key = decoder(), _BadPackets(), [], [0, 0, 0], None
        try:
            for part, packets in enumerate((group.preroll, group.own, group.postroll)):
                for packet in packets:
                    for frame in counter.decode(ctx, packet):
                        fkey = (frame.format.name, frame.layout.name, frame.sample_rate)
                        if key not in (None, fkey):
                            raise _Irregular
                        key = fkey
                        counts[part] += frame.samples
                        frames.append(frame)
        except BaseException:
            offsets.publish(group.index, None)
            raise
        offsets.publish(group.index, counts[1])
        start = offsets.start(group.index)
        if key is None:  # nothing decoded in this group
            return np.zeros(0, np.float32), counter
        return _resample_group(frames, key[2], start, counts[0], counts[1], sink.rate, group.last), counter

    pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
    pending: deque = deque()

    def collect() -> None:
        audio, counter = pending.popleft().result()
        bad.bad, bad.good = bad.bad + counter.bad, bad.good + counter.good
        bad.check()
        sink.add(audio)

    try:
        for group in _packet_groups(container, stream):
            pending.append(pool.submit(task, group))
            while pending and (len(pending) > 2 * workers or pending[0].done()):
                collect()
        while pending:
            collect()
    finally:
        offsets.publish(-1, None)  # releases any task still waiting for an offset
        pool.shutdown(wait=True, cancel_futures=True)
        for c in opened:
            c.close()


def _resample_group(frames: list, src_rate: int, start: int, pre: int, own: int, rate: int, last: bool):
    """The group's own audio at `rate`, cut exactly where a serial decode puts it.

    Output sample j of the serial decode lies at source sample j * L / M (L/M = src_rate/rate in lowest terms),
    so the resampler is started on a source sample that is a multiple of L: then its k-th output is the serial
    decode's (k + first / L * M)-th, with the same filter phase and, after the pre-roll, the same history.
    """
    g = gcd(src_rate, rate)
    big, small = src_rate // g, rate // g
    skip = (-(start - pre)) % big
    if skip > pre:  # an odd source rate with a period longer than the pre-roll: accept a sub-sample offset
        skip = 0
    first = start - pre + skip
    rs, parts = _Resampler(rate), []
    for frame in frames:
        if skip >= frame.samples:
            skip -= frame.samples
            continue
        if skip:
            frame, skip = _drop_head(frame, skip), 0
        parts += rs(frame)
    parts += rs.flush() if last else rs.push()
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def serial_index(src: int) -> int:  # ceil(src * small / big): the first output at or after `src`
        return -(-src * small // big)

    k0 = serial_index(start) - round(first * small / big)
    return audio[k0:] if last else audio[k0:k0 + serial_index(start + own) - serial_index(start)]


def _drop_head(frame, n: int):
    """A copy of `frame` without its first n samples."""
    data = frame.to_ndarray()
    data = data[:, n:] if frame.format.is_planar else data[:, n * len(frame.layout.channels):]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


def _packet_groups(container, stream):
    """Consecutive groups of ~_GROUP_S of packets, each with the packets around it for pre- and post-roll."""
    tb = float(stream.time_base or 0)

    def seconds(packet) -> float:
        return (packet.duration or 0) * tb if (packet is not None and tb and packet.duration) else 0.02

    def tail(packets: list, span: float) -> list:
        out, t = [], 0.0
        for p in reversed(packets):
            if t >= span and len(out) >= 4:
                break
            out.append(p)
            t += seconds(p)
        return out[::-1]

    index, prev, current, waiting, t = 0, [], [], None, 0.0
    for packet in _demux(container, stream):
        current.append(packet)
        t += seconds(packet)
        if waiting is not None and len(current) >= 2 and sum(map(seconds, current)) >= _POSTROLL_S:
            yield _Group(index, tail(prev, _PREROLL_S), waiting, list(current), last=False)
            index, prev, waiting = index + 1, waiting, None
        if waiting is None and t >= _GROUP_S:
            waiting, current, t = current, [], 0.0
    if waiting is not None:
        yield _Group(index, tail(prev, _PREROLL_S), waiting, list(current), last=False)
        index, prev = index + 1, waiting
    yield _Group(index, tail(prev, _PREROLL_S), current, [], last=True)
