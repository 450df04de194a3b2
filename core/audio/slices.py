"""One time slice of a long file, decoded exactly as the serial decoder (`audio.decode_audio`) decodes that stretch.

Why it is exact: each worker decodes only its slice plus a warm-up before it, then starts FFmpeg's resampler on a
sample whose index is a multiple of `rate / gcd(rate, 16000)` (441 for 44.1 kHz), where the serial run's resampler
is in the same phase, and drops the warm-up output. After the warm-up the decoder and the resampler hold the same
state as in one serial pass, so the slices join bit-for-bit (tested on MP3, FLAC, WAV, Opus). The exception is AAC
with perceptual noise substitution, whose decoder draws noise from a generator that runs across the whole file:
there the noise bands differ, inaudibly. A worker reaches its slice by demuxing from the start (no decoding), or,
for an MP3, by opening the file at a frame just before it (`core.audio.mp3_frames`).

Anything irregular (an unknown or estimated duration, timestamps that do not count samples, a decode error or a
format change inside a slice, a slice that comes out short) raises `Irregular`: the caller
(`core.audio.decode_pool`) then decodes serially, so the serial decoder stays the single definition of the result
and of every error message.
"""
from __future__ import annotations

import math
import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from core.audio import decode as audio
from core.audio.mp3_frames import FileFrom, slice_starts
from core.types import SAMPLE_RATE

MIN_SLICE_S = 30.0  # shorter slices cost more in start-up than they save
SLICE_S = 60.0  # a long file is cut in slices this long (more than one per worker): the first ones are back early
MIN_PARALLEL_S = 120.0  # files shorter than this decode serially
_WARM_DECODE_S = 1.0  # decoded and thrown away before a slice: the decoder's state (MP3 bit reservoir, MDCT overlap)
_WARM_RESAMPLE_S = 0.1  # fed to the resampler and thrown away: its filter history
_TAIL_S = 0.1  # decoded past a slice's end so that the resampler has emitted all of the slice


class Irregular(Exception):
    """This file or slice cannot be decoded exactly in parallel; decode it serially."""


@dataclass(frozen=True)
class Slice:
    path: str
    out_path: str  # the shared float32 buffer file every worker writes into
    start: int  # first source sample of the slice (serial decode numbering), a multiple of the phase period
    end: int | None  # one past its last source sample; None = to the end of the stream
    pts_offset: int  # source-sample index of a frame = its pts in samples - pts_offset
    rate: int  # the source sample rate
    key: tuple  # (sample format, layout, rate) of the stream's frames; another format is irregular
    capacity: int  # samples the buffer holds; writing past it is irregular
    byte_start: int | None = None  # an MP3 read from this frame on (core.audio.mp3_frames); pts count from it
    source_end: int | None = None  # with byte_start, the last slice: where the serial decoder ends (end padding)


def phase_period(rate: int) -> int:
    return rate // math.gcd(rate, SAMPLE_RATE)


def out_index(src: int, rate: int) -> int:
    return src * SAMPLE_RATE // rate  # exact on the phase grid


def _warm_up(start: int, rate: int) -> tuple[int, int]:
    """(first sample fed to the resampler, first sample decoded) for a slice starting at `start`."""
    period = phase_period(rate)
    feed_from = max(0, start - math.ceil(_WARM_RESAMPLE_S * rate / period) * period)
    return feed_from, feed_from - int(_WARM_DECODE_S * rate)


def _open(s: Slice, stack: ExitStack):
    """The slice's container: the file, or an MP3 from the frame at `byte_start` on."""
    if s.byte_start is None:
        return stack.enter_context(audio.open_container(s.path))
    source = stack.enter_context(FileFrom(s.path, s.byte_start))
    try:
        return stack.enter_context(av.open(source, format="mp3", metadata_errors="ignore"))
    except av.FFmpegError:
        raise Irregular("the MP3 does not open at its slice's frame") from None


def decode_slice(s: Slice) -> int:
    """Decode one slice into its place in the shared buffer; returns the number of 16 kHz samples written."""
    feed_from, decode_from = _warm_up(s.start, s.rate)
    stop_after = None if s.end is None else s.end + int(_TAIL_S * s.rate)
    out_start = out_index(s.start, s.rate)
    want = None if s.end is None else out_index(s.end, s.rate) - out_start
    skip = out_index(s.start, s.rate) - out_index(feed_from, s.rate)
    buf = np.memmap(s.out_path, dtype=np.float32, mode="r+")
    try:
        written = 0
        resample = audio.Resampler(SAMPLE_RATE)
        expect = None  # the next frame's first sample, once decoding has settled
        counted = 0 if s.start == 0 else None  # the first slice numbers samples as the serial decoder does
        with ExitStack() as stack:
            container = _open(s, stack)
            stream = audio.audio_stream(container)
            ctx = stream.codec_context
            # Sample index = (pts * num - pts_offset * den) / den, in integers: Fractions per packet cost more than
            # the demuxing itself (the last slice steps over every packet of the file).
            to_samples = Fraction(stream.time_base) * s.rate
            num, den = to_samples.numerator, to_samples.denominator
            shift = s.pts_offset * den
            lo = decode_from * den + shift
            hi = None if stop_after is None else stop_after * den + shift
            from_frame = s.byte_start is not None  # its first packet must be at time 0 (sample `-pts_offset`)
            for packet in container.demux(stream):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None and packet.size:
                    raise Irregular("a packet has no timestamp")
                if from_frame and packet.size:
                    if ts != 0:
                        raise Irregular("the MP3's slice does not start at time 0")
                    from_frame = False
                if ts is not None and packet.size:
                    scaled = ts * num
                    if scaled < lo:  # before the warm-up: demuxed, not decoded
                        continue
                    if hi is not None and scaled > hi:
                        break
                try:
                    frames = ctx.decode(packet)
                except (av.FFmpegError, ValueError):
                    if expect is not None:
                        raise Irregular("a decode error inside the slice") from None
                    continue
                for frame in frames:
                    if counted is not None:
                        index, counted = counted, counted + frame.samples
                    elif frame.pts is None:
                        raise Irregular("a frame has no timestamp")
                    else:
                        index, rest = divmod(frame.pts * num - shift, den)
                        if rest:
                            raise Irregular("timestamps do not count samples")
                    first, n = index, frame.samples
                    if first + n <= feed_from:
                        continue
                    if s.source_end is not None and first + n > s.source_end:  # the end padding, as serially
                        if first >= s.source_end:
                            break
                        frame, n = _drop_head(frame, 0, s.source_end - first), s.source_end - first
                    if expect is not None and first != expect:
                        raise Irregular("frames are not contiguous")
                    if (frame.format.name, frame.layout.name, frame.sample_rate) != s.key:
                        raise Irregular("the format changes")
                    if expect is None:
                        if first > feed_from:
                            raise Irregular("the slice starts inside a gap")
                        frame = _drop_head(frame, feed_from - first)
                    expect = first + n
                    for arr in resample(frame):
                        written, skip = _write(buf, out_start, written, skip, want, arr, s.capacity)
            if s.end is None:
                for arr in resample.flush():
                    written, skip = _write(buf, out_start, written, skip, want, arr, s.capacity)
            else:
                for arr in resample.push():
                    written, skip = _write(buf, out_start, written, skip, want, arr, s.capacity)
        buf.flush()
        return written
    finally:
        del buf


def _write(buf, out_start: int, written: int, skip: int, want: int | None, arr: np.ndarray, capacity: int):
    """Drop the warm-up samples, keep at most `want`; returns (written, skip) after this array."""
    if skip:
        cut = min(skip, len(arr))
        arr, skip = arr[cut:], skip - cut
    if want is not None:
        arr = arr[:max(0, want - written)]
    pos = out_start + written
    if pos + len(arr) > capacity:
        raise Irregular("more audio than the file declares")
    buf[pos:pos + len(arr)] = arr
    return written + len(arr), skip


def _drop_head(frame, n: int, keep: int | None = None):
    """The frame without its first `n` samples (the resampler must start on the phase grid), and with `keep`, only
    its first `keep` samples before that (an MP3's end padding, which the serial decoder drops)."""
    if n <= 0 and keep is None:
        return frame
    arr = frame.to_ndarray()
    per = 1 if frame.format.is_planar else len(frame.layout.channels)
    end = None if keep is None else keep * per
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr[:, max(n, 0) * per:end]), format=frame.format.name,
                                     layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


def slice_samples(s: Slice, total: int) -> int:
    """Source samples in a slice (the last one runs to the end of the stream: `total` is its estimate)."""
    return (s.end if s.end is not None else max(total, s.start)) - s.start


def plan_slices(path: Path, workers: int, max_duration_s: float | None, min_file_s: float,
                min_slice_s: float, slice_s: float = SLICE_S) -> tuple[list[Slice], int] | None:
    """Slices for `path` in time order, or None when the file is too short to split; Irregular when it cannot be
    split exactly. At least one slice per worker, each about `slice_s` long (at least `min_slice_s`), so that the
    first part of a long file is decoded while the pool is still at work on the rest (`DecodeStream`).

    The declared duration (counted or estimated) places the cuts and must be within the limit; a file that decodes
    to much more or less than it declares is irregular, and the serial decoder gives its errors. The first frames
    are decoded here to learn how timestamps map to samples."""
    with audio.open_container(path) as container:
        stream = audio.audio_stream(container)
        declared = audio.declared_duration(container, stream)
        if declared is None or declared < min_file_s:
            return None
        if max_duration_s is not None and declared > max_duration_s:
            raise audio.too_long(declared, max_duration_s)
        offset, key, first = _timestamp_offset(container, stream)
        mp3 = container.format.name.split(",")[0] == "mp3" and stream.codec_context.name.startswith("mp3")
        # with start padding (a LAME tag) the serial decoder also drops the end padding: where it ends, exactly
        exact_end = stream.duration * Fraction(stream.time_base) * key[2] if stream.duration else None
    rate = key[2]
    n = min(max(workers, math.ceil(declared / slice_s)), int(declared // min_slice_s))
    if n < 2:
        return None
    period = phase_period(rate)
    total = int(declared * rate)
    bounds = [0] + [total * i // n // period * period for i in range(1, n)] + [None]
    capacity = int((declared * 1.25 + 2.0) * SAMPLE_RATE)  # an estimated duration (CBR MP3) may be a little off
    if max_duration_s is not None:
        capacity = min(capacity, int(max_duration_s * SAMPLE_RATE))
    fd, out_path = tempfile.mkstemp(prefix="decode-", suffix=".f32", dir=_scratch_dir())
    try:
        os.ftruncate(fd, capacity * 4)
    finally:
        os.close(fd)
    # An MP3's workers read from a frame just before their slice instead of demuxing from the start.
    starts = [None] * n
    if mp3 and first is not None and first[0] is not None and first[0] >= 0:
        first_index = int(first[1] * rate) - offset
        starts[1:] = slice_starts(path, first[0], first_index, [_warm_up(b, rate)[1] for b in bounds[1:-1]])
    end = None
    if offset and starts[-1] is not None:  # the last slice must stop where the serial decoder does
        if exact_end is None or exact_end.denominator != 1:
            starts[-1] = None
        else:
            end = int(exact_end)
    slices = [Slice(str(path), out_path, bounds[i], bounds[i + 1], offset if starts[i] is None else -starts[i][1],
                    rate, key, capacity, None if starts[i] is None else starts[i][0],
                    end if i == n - 1 and starts[i] is not None else None) for i in range(n)]
    return slices, int(declared * SAMPLE_RATE)


def _timestamp_offset(container, stream) -> tuple[int, tuple, tuple | None]:
    """(pts_offset, frame format key, (byte, seconds) of the first packet): a frame's first sample in the serial
    numbering is pts*rate - offset.

    Learned from frames 5-8 (the first ones may have lost their heads to the codec's start padding), which must
    agree; timestamps that do not count samples exactly are irregular."""
    ctx = stream.codec_context
    to_samples = Fraction(stream.time_base)
    seen, count, offsets, key, first = 0, 0, set(), None, None
    for packet in container.demux(stream):
        if first is None and packet.size and packet.pts is not None:
            first = (packet.pos, packet.pts * to_samples)  # (byte, time in seconds) of the first packet
        try:
            frames = ctx.decode(packet)
        except (av.FFmpegError, ValueError):
            raise Irregular("the first packets do not decode") from None
        for frame in frames:
            key = key or (frame.format.name, frame.layout.name, frame.sample_rate)
            if frame.pts is None:
                raise Irregular("frames have no timestamps")
            index = frame.pts * to_samples * frame.sample_rate
            if seen >= 4:
                if index.denominator != 1:
                    raise Irregular("timestamps do not count samples")
                offsets.add(int(index) - count)
            seen += 1
            count += frame.samples
        if seen >= 8:
            break
    if seen < 8 or len(offsets) != 1:
        raise Irregular("timestamps do not follow the samples")
    return offsets.pop(), key, first


def _scratch_dir() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


__all__ = ["Irregular", "Slice", "decode_slice", "out_index", "plan_slices", "slice_samples"]
