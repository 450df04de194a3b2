"""Where an MP3's frames start, read from their headers, so that a decode worker can open the file at its slice.

Every decode worker used to demux the file from its start to find its slice (`core.audio.decode_pool`): the last of
16 demuxed 15/16 of the file before decoding anything, about 0.7 s of an hour's 1 s decode on the H200, and the
16 workers together about 6 CPU-seconds an hour (bench/RESULTS.md, run 17). An MP3 is a chain of self-delimiting
frames of a fixed number of samples, so one walk along the headers (no decoding) tells the byte where each frame
starts; a worker then reads the file from the frame it needs (`FileFrom`), and frame j is sample j x frame size of
the serial numbering, shifted as the serial decoder's timestamps say.

Only MPEG audio layer III with a stated bit rate is walked; anything else (free-format bit rate, layer I/II, a
broken chain) ends the walk, and slices past its end keep the old way.
"""
from __future__ import annotations

import io
import mmap
import re

import numpy as np

# bit rates (kbit/s) of layer III by header index: MPEG-1, and MPEG-2/2.5
_BITRATES = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_SYNC = re.compile(rb"\xff(?=[\xe0-\xff])")
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def _header(data: bytes, pos: int):
    """(frame length in bytes, samples, sample rate) of a layer III header at `pos`, or None."""
    if pos + 4 > len(data) or data[pos] != 0xFF or (data[pos + 1] & 0xE0) != 0xE0:
        return None
    b1, b2 = data[pos + 1], data[pos + 2]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved version, not layer III, free-format or bad bit rate, reserved rate
    rate = _RATES[version][rate_index]
    kbps = _BITRATES[1 if version == 3 else 2][bitrate_index]
    per_byte = 144_000 if version == 3 else 72_000
    samples = 1152 if version == 3 else 576
    return per_byte * kbps // rate + padding, samples, rate


def frame_offsets(path, first: int, wanted: list[int]) -> tuple[list[int | None], int] | None:
    """(byte offset of frame number j for each j in `wanted`, counting from the frame at `first`; samples per
    frame), or None when the frame at `first` is not a layer III frame. An offset is None where the chain of
    headers breaks before that frame (a tag, damage, a change of kind).

    Vectorised: every byte pair that could start a header is a candidate, each candidate's successor is found at
    once, and the j-th successor of `first` comes from jump tables (log2 of the frame count gathers), not from a
    Python loop over 140,000 frames an hour. The file is mapped, not read."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        data = np.frombuffer(view, dtype=np.uint8)
        try:
            return _offsets(view, data, first, wanted)
        finally:
            del data  # the mmap cannot close while an array still points into it


def _offsets(view, data: np.ndarray, first: int, wanted: list[int]):
    head = _header(bytes(view[first:first + 4]), 0)
    if head is None:
        return None
    _, samples, rate = head
    # every 0xFF followed by three set bits, overlapping ones too (a regex scans at C speed; numpy compares on
    # the whole file cost twice as much); the last three bytes cannot hold a header
    cand = np.fromiter((m.start() for m in _SYNC.finditer(view, 0, max(0, len(view) - 3))), dtype=np.int64)
    b1, b2 = data[cand + 1].astype(np.int64), data[cand + 2].astype(np.int64)
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    first_b1 = int(data[first + 1])
    same = (version == ((first_b1 >> 3) & 3)) & (layer == 1) & (bitrate_index > 0) & (bitrate_index < 15) \
        & (rate_index == (int(data[first + 2]) >> 2) & 3)
    cand, bitrate_index, padding = cand[same], bitrate_index[same], padding[same]
    is_v1 = ((first_b1 >> 3) & 3) == 3
    kbps = np.asarray(_BITRATES[1 if is_v1 else 2], dtype=np.int64)[bitrate_index]
    length = (144_000 if is_v1 else 72_000) * kbps // rate + padding
    after = cand + length
    succ = np.searchsorted(cand, after)  # the candidate starting exactly where this frame ends, if any
    hit = succ < len(cand)
    hit[hit] = cand[succ[hit]] == after[hit]
    jump = np.where(hit, succ, -1)  # candidate index of the next frame, -1 where the chain breaks
    node = int(np.searchsorted(cand, first))
    if node >= len(cand) or cand[node] != first:
        return None
    top = max(wanted, default=0)
    tables = [jump]
    while (1 << len(tables)) <= top:
        last = tables[-1]
        tables.append(np.where(last >= 0, last[np.maximum(last, 0)], -1))
    out: list[int | None] = []
    for j in wanted:
        at, bit = node, 0
        while j and at >= 0:
            if j & 1:
                at = int(tables[bit][at])
            j, bit = j >> 1, bit + 1
        out.append(int(cand[at]) if at >= 0 else None)
    return out, samples


def slice_starts(path, first_pos: int, first_index: int, points: list[int]) -> list[tuple[int, int] | None]:
    """For each serial sample index in `points`: (byte, index) of a frame that starts at least one whole frame
    before it, its first sample in the serial numbering, or None where that frame is not known. `first_pos` and
    `first_index` are the byte and first sample of the file's first audio frame (the serial demuxer says both)."""
    with open(path, "rb") as f:
        f.seek(first_pos)
        head = _header(f.read(4), 0)
    if head is None or not points:
        return [None] * len(points)
    samples = head[1]
    frames = [max(0, (p - first_index) // samples - 1) for p in points]
    found = frame_offsets(path, first_pos, frames)
    if found is None:
        return [None] * len(points)
    return [None if byte is None else (byte, first_index + j * samples) for byte, j in zip(found[0], frames)]


class FileFrom(io.RawIOBase):
    """A file read from byte `base` on, as if it began there (FFmpeg, given it, never sees the bytes before)."""

    def __init__(self, path, base: int) -> None:
        self.f, self.base = open(path, "rb"), base
        self.f.seek(base)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self.f.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            return self.f.seek(self.base + offset) - self.base
        return self.f.seek(offset, whence) - self.base

    def tell(self) -> int:
        return self.f.tell() - self.base

    def close(self) -> None:
        self.f.close()
        super().close()
