"""Decoding in time slices across processes gives the serial decoder's samples, or falls back to it.

Real files in every container the service meets (encoded with PyAV here), real worker processes, and the serial
`core.audio.decode.decode_audio` as the reference.
"""
from __future__ import annotations

import glob
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

from audio_helpers import music, resample, write_audio
from core.audio.decode import decode_audio
from core.audio.decode_pool import DecodePool
from core.errors import DecodeError, TooLargeError

SECONDS = 40.0


@pytest.fixture(scope="module")
def pool():
    p = DecodePool(3, min_file_s=20.0, min_slice_s=8.0)
    p.start()
    yield p
    p.close()


def stereo(rate: int, seconds: float = SECONDS) -> np.ndarray:
    base = music(seconds, sample_rate=48000, seed=3)
    pair = np.stack([base, np.roll(base, 333)])  # two different channels: the downmix is exercised too
    return pair if rate == 48000 else np.stack([resample(ch, 48000, rate) for ch in pair])


EXACT = [  # (file name, source rate, muxer options): each decodes bit for bit as in one serial pass
    ("lame.mp3", 44100, None),
    ("cbr-no-header.mp3", 44100, {"write_xing": "0"}),  # duration estimated from the bit rate
    ("mpeg2.mp3", 22050, None),  # 576-sample frames and a start padding longer than one frame
    ("music.flac", 44100, None),
    ("studio.wav", 48000, None),
    ("phone.wav", 8000, None),
    ("voice.ogg", 48000, None),  # Opus in Ogg
    ("clip.webm", 48000, None),  # Opus in WebM: millisecond timestamps, a trimmed first frame
]


@pytest.mark.parametrize("name,rate,options", EXACT, ids=[c[0] for c in EXACT])
def test_slices_join_bit_for_bit(pool, tmp_path, name, rate, options):
    path = write_audio(tmp_path / name, stereo(rate), rate, container_options=options,
                       video=name.endswith(".webm"))
    serial = decode_audio(path)
    sliced = pool.decode(path)
    assert sliced.dtype == np.float32 and len(sliced) == len(serial)
    np.testing.assert_array_equal(sliced, serial)


def test_slices_really_run_in_parallel(pool, tmp_path):
    """The result above could also come from the fallback: the plan must actually cut this file in three."""
    from core.audio.slices import plan_slices

    path = write_audio(tmp_path / "a.mp3", stereo(44100), 44100)
    slices, _ = plan_slices(path, 3, None, 20.0, 8.0)
    try:
        assert len(slices) == 3 and slices[0].start == 0 and slices[-1].end is None
        assert all(s.start % 441 == 0 for s in slices)  # on the resampler's phase grid for 44.1 kHz
    finally:
        os.unlink(slices[0].out_path)


def test_files_decoded_at_once_each_get_their_serial_samples(pool, tmp_path):
    """Several jobs decoding at once share the pool's places (core.audio.slice_gate); each file still comes out
    sample for sample as alone."""
    import threading

    paths = [write_audio(tmp_path / f"{k}.mp3", stereo(44100, SECONDS - 6 * k), 44100) for k in range(4)]
    out = [None] * len(paths)
    threads = [threading.Thread(target=lambda k=k: out.__setitem__(k, pool.decode(paths[k]))) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for path, sliced in zip(paths, out):
        np.testing.assert_array_equal(sliced, decode_audio(path))


def test_the_gate_lets_the_file_with_least_left_go_first_then_the_earliest():
    import threading

    from core.audio.slice_gate import FairGate

    gate, order = FairGate(1), []
    early, late, short = gate.join(100), gate.join(100), gate.join(10)
    gate.acquire(early)  # the one place is taken
    gate.sent(early, 50)

    def send(job, name):
        gate.acquire(job)
        order.append(name)
        gate.sent(job, 10)
        gate.release()

    threads = [threading.Thread(target=send, args=(job, name)) for job, name in ((late, "late"), (short, "short"))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while gate.waiting() < 2 and time.monotonic() < deadline:  # both wait for the place
        time.sleep(0.01)
    assert order == []
    gate.release()
    for t in threads:
        t.join(10)
    assert order == ["short", "late"]  # 10 samples left beat 100; the early file (50 left) was not waiting


def test_aac_matches_up_to_its_noise_bands(pool, tmp_path):
    """AAC's perceptual noise substitution draws from a generator that runs across the file, so noise bands
    differ between a slice and the serial pass; everything else is equal (the error stays 50 dB down)."""
    path = write_audio(tmp_path / "talk.m4a", stereo(44100), 44100)
    serial = decode_audio(path)
    sliced = pool.decode(path)
    assert len(sliced) == len(serial)
    error = np.sum((sliced - serial) ** 2) / np.sum(serial ** 2)
    assert error < 1e-5, f"{10 * np.log10(error):.0f} dB"


def test_short_files_and_one_worker_decode_serially(tmp_path):
    path = write_audio(tmp_path / "short.mp3", stereo(44100, 10.0), 44100)
    np.testing.assert_array_equal(DecodePool(3, min_file_s=20.0).decode(path), decode_audio(path))
    one = DecodePool(1)
    np.testing.assert_array_equal(one.decode(path), decode_audio(path))
    assert one.worker_pids() == []  # no process was started


def test_a_truncated_file_gets_the_serial_result(pool, tmp_path):
    """The header promises 40 s, the bytes hold 15: the slices come out short, and the serial decoder answers."""
    path = write_audio(tmp_path / "cut.mp3", stereo(44100), 44100)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 3 // 8])
    try:
        expected = decode_audio(path)
    except DecodeError as e:
        with pytest.raises(DecodeError, match=str(e)):
            pool.decode(path)
    else:
        np.testing.assert_array_equal(pool.decode(path), expected)


def test_the_duration_limit_is_the_serial_one(pool, tmp_path):
    path = write_audio(tmp_path / "long.flac", stereo(44100), 44100)
    with pytest.raises(TooLargeError) as serial:
        decode_audio(path, max_duration_s=30.0)
    with pytest.raises(TooLargeError) as sliced:
        pool.decode(path, max_duration_s=30.0)
    assert str(sliced.value) == str(serial.value)


def test_no_scratch_file_is_left(pool, tmp_path):
    before = set(glob.glob("/dev/shm/decode-*")) | set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                                              "decode-*")))
    path = write_audio(tmp_path / "a.flac", stereo(44100), 44100)
    pool.decode(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    try:
        pool.decode(path)
    except DecodeError:
        pass
    after = set(glob.glob("/dev/shm/decode-*")) | set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                                             "decode-*")))
    assert after == before


def test_a_killed_worker_costs_one_serial_decode_then_the_pool_recovers(tmp_path):
    path = write_audio(tmp_path / "a.mp3", stereo(44100), 44100)
    serial = decode_audio(path)
    p = DecodePool(2, min_file_s=20.0, min_slice_s=8.0)
    try:
        p.start()
        victim = p.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while victim in p.worker_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        np.testing.assert_array_equal(p.decode(path), serial)  # the broken pool is noticed; serial answer
        np.testing.assert_array_equal(p.decode(path), serial)  # a fresh pool
        assert len(p.worker_pids()) == p.workers and victim not in p.worker_pids()  # all of them alive
    finally:
        p.close()
    assert not [c for c in multiprocessing.active_children() if c.pid == victim]


MP3S = [(name, rate, options) for name, rate, options in EXACT if name.endswith(".mp3")]


def packet_positions(path) -> list[int]:
    """Where the serial demuxer finds each MP3 frame: the reference the frame walk must agree with."""
    import av

    with av.open(str(path)) as container:
        return [p.pos for p in container.demux(container.streams.audio[0]) if p.size]


@pytest.mark.parametrize("name,rate,options", MP3S, ids=[c[0] for c in MP3S])
def test_mp3_workers_read_from_a_frame_before_their_slice(tmp_path, name, rate, options):
    """Each slice but the first starts its worker at a frame the serial demuxer also finds (no demuxing from the
    start), and decoded alone it gives its stretch of the serial result; one frame later it would not."""
    import dataclasses

    from core.audio.slices import decode_slice, plan_slices

    path = write_audio(tmp_path / name, stereo(rate), rate, container_options=options)
    serial = decode_audio(path)
    slices, _ = plan_slices(path, 3, None, 20.0, 8.0)
    positions = packet_positions(path)
    assert slices[0].byte_start is None and all(s.byte_start in positions for s in slices[1:])
    middle = slices[1]
    assert decode_slice(middle) > 0
    got = np.fromfile(middle.out_path, dtype=np.float32)[:len(serial)]
    lo, hi = middle.start * 16000 // rate, middle.end * 16000 // rate
    np.testing.assert_array_equal(got[lo:hi], serial[lo:hi])
    later = dataclasses.replace(middle, byte_start=positions[positions.index(middle.byte_start) + 1])
    np.memmap(middle.out_path, dtype=np.float32, mode="r+")[:] = 0
    try:
        decode_slice(later)
        moved = np.fromfile(middle.out_path, dtype=np.float32)[lo:hi]
        assert not np.array_equal(moved, serial[lo:hi])
    except Exception as e:  # or it notices: either way the frame it starts from matters
        assert type(e).__name__ == "Irregular"
    finally:
        os.unlink(middle.out_path)


def test_an_mp3_damaged_in_the_middle_still_joins_bit_for_bit(pool, tmp_path):
    """Junk inside the stream breaks the chain of frame headers: slices past it demux from the start as before."""
    from core.audio.slices import plan_slices

    path = write_audio(tmp_path / "clean.mp3", stereo(44100), 44100, container_options={"write_xing": "0"})
    data = bytearray(path.read_bytes())
    cut = len(data) // 2
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data[:cut]) + b"\x00junk\x00" * 50 + bytes(data[cut:]))
    slices, _ = plan_slices(damaged, 3, None, 20.0, 8.0)
    assert slices[1].byte_start is not None  # starts before the damage
    assert slices[-1].byte_start is None  # beyond the damage: the old way
    os.unlink(slices[0].out_path)
    np.testing.assert_array_equal(pool.decode(damaged), decode_audio(damaged))
