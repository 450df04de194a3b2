"""core.audio.decode on files written by PyAV from known signals, and on the broken files users really upload."""
import numpy as np
import pytest

from audio_helpers import SR, resample, silence, speech_wav, tone, write_audio, write_video_only
from core.audio.decode import decode_audio, probe_duration
from core.errors import DecodeError, TooLargeError

# Two tones around a gap: pitch, level and timing can all be checked after a lossy round trip.
KNOWN = np.concatenate([tone(440, 1.0), silence(0.5), tone(880, 1.0)])


def dominant_hz(x: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def onset(x: np.ndarray, after_s: float, level: float = 0.05) -> float:
    return (np.flatnonzero(np.abs(x[int(after_s * SR):]) > level)[0]) / SR + after_s


def check_known(y: np.ndarray, extra_s: float = 0.0) -> None:
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(KNOWN)) <= (extra_s + 0.005) * SR
    assert np.abs(y).max() <= 1.0
    assert dominant_hz(y[int(0.1 * SR):int(0.9 * SR)]) == pytest.approx(440, abs=3)
    assert dominant_hz(y[int(1.6 * SR):int(2.4 * SR)]) == pytest.approx(880, abs=3)
    assert np.abs(y[int(1.05 * SR):int(1.45 * SR)]).max() < 0.01  # the gap stays silent
    assert onset(y, 1.2) == pytest.approx(1.5, abs=0.005)  # and in its place (codec delay compensated)
    assert np.sqrt(np.mean(y[int(0.1 * SR):int(0.9 * SR)] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


# AAC pads its last frame (1024 samples at the source rate) and PyAV's MP4 muxer writes no edit list to trim it.
@pytest.mark.parametrize("ext,extra_s", [(".wav", 0), (".mp3", 0), (".ogg", 0), (".flac", 0), (".m4a", 1024 / SR),
                                         (".mkv", 0)])
def test_formats_decode_to_the_known_signal(tmp_path, ext, extra_s):
    check_known(decode_audio(write_audio(tmp_path / f"known{ext}", KNOWN)), extra_s)


@pytest.mark.parametrize("ext,extra_s", [(".mp4", 1024 / SR), (".webm", 0)])
def test_video_files_decode_their_sound_track(tmp_path, ext, extra_s):
    check_known(decode_audio(write_audio(tmp_path / f"clip{ext}", KNOWN, video=True)), extra_s)


def test_espeak_wav_at_22khz(tmp_path):
    y = decode_audio(speech_wav(tmp_path / "s.wav", "testing one two three"))
    assert 0.8 < len(y) / SR < 3.0 and np.abs(y).max() > 0.1


def test_stereo_is_mixed_down(tmp_path):
    left, right = tone(440, 2.0), tone(660, 2.0)
    y = decode_audio(write_audio(tmp_path / "lr.flac", np.stack([left, right])))
    assert len(y) == len(left)
    spectrum = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    for f in (440, 660):  # both channels are in the mix, at equal weight
        assert spectrum[np.argmin(np.abs(freqs - f))] > 0.4 * spectrum.max()
    same = decode_audio(write_audio(tmp_path / "same.flac", np.stack([left, left])))
    assert np.abs(same).max() == pytest.approx(0.5, abs=0.01)  # identical channels keep their level


@pytest.mark.parametrize("layout", ["7.1", "octagonal"])
def test_eight_channels_are_mixed_down_within_full_scale(tmp_path, layout):
    chans = np.stack([tone(300 + 100 * i, 1.0, amplitude=0.9) for i in range(8)])
    y = decode_audio(write_audio(tmp_path / "eight.wav", chans, layout=layout))
    assert len(y) == SR
    assert 0.05 < np.abs(y).max() <= 1.0


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 192000])
def test_source_rates_are_resampled_to_16k(tmp_path, rate):
    x = tone(440, 2.0, sample_rate=rate)
    y = decode_audio(write_audio(tmp_path / f"r{rate}.wav", x, rate))
    assert abs(len(y) - 2 * SR) <= 1
    assert dominant_hz(y) == pytest.approx(440, abs=2)


def test_other_output_rates(tmp_path):
    y = decode_audio(write_audio(tmp_path / "k.wav", KNOWN), sample_rate=8000)
    assert abs(len(y) - len(KNOWN) // 2) <= 1
    assert dominant_hz(y[800:7200], 8000) == pytest.approx(440, abs=3)


def assert_user_message(err, tmp_path, *words):
    msg = str(err.value)
    assert str(tmp_path) not in msg and "Traceback" not in msg
    for w in words:
        assert w in msg


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(DecodeError) as err:
        decode_audio(tmp_path / "empty.mp3")
    assert_user_message(err, tmp_path, "empty")


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError) as err:
        decode_audio(tmp_path / "nope.mp3")
    assert_user_message(err, tmp_path, "could not be read")


def test_web_page_saved_as_mp3(tmp_path):
    page = tmp_path / "episode.mp3"
    page.write_text("<!DOCTYPE html><html><head><title>Episode 12</title></head><body>Moved</body></html>\n")
    with pytest.raises(DecodeError) as err:
        decode_audio(page)
    assert_user_message(err, tmp_path, "not a recognised audio or video file")


def test_png_renamed_to_mp3(tmp_path):
    png = tmp_path / "cover.png"
    import av

    with av.open(str(png), "w") as out:
        s = out.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 8, 8, "rgb24"
        out.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")))
        out.mux(s.encode(None))
    fake = tmp_path / "cover.mp3"
    fake.write_bytes(png.read_bytes())
    with pytest.raises(DecodeError) as err:
        decode_audio(fake)
    assert_user_message(err, tmp_path, "no audio stream")


def test_video_without_sound(tmp_path):
    with pytest.raises(DecodeError) as err:
        decode_audio(write_video_only(tmp_path / "silent.mp4"))
    assert_user_message(err, tmp_path, "no audio stream", "video")


def test_random_bytes(tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError):
        decode_audio(junk)


@pytest.mark.parametrize("ext,keep", [(".m4a", 300), (".mp4", 3000), (".wav", 44), (".ogg", 60)])
def test_truncated_to_its_header(tmp_path, ext, keep):
    whole = write_audio(tmp_path / f"whole{ext}", KNOWN, video=ext == ".mp4")
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(whole.read_bytes()[:keep])
    with pytest.raises(DecodeError) as err:
        decode_audio(cut)
    assert_user_message(err, tmp_path)


def test_truncated_mp3_with_a_vbr_header(tmp_path):
    # The Xing/Info header counts the frames, so a download cut in half is known to be one.
    whole = write_audio(tmp_path / "whole.mp3", np.tile(KNOWN, 8))
    cut = tmp_path / "cut.mp3"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError) as err:
        decode_audio(cut)
    assert_user_message(err, tmp_path, "truncated")


def test_truncated_mp3_without_a_vbr_header_decodes_what_is_there(tmp_path):
    # Without the header the duration is a guess from the bitrate, so the cut file plays up to the cut, as in
    # any player (and the log says it may be truncated).
    whole = write_audio(tmp_path / "whole.mp3", np.tile(KNOWN, 8), container_options={"write_xing": "0"})
    cut = tmp_path / "cut.mp3"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    y = decode_audio(cut)
    assert 0.4 * 8 * len(KNOWN) < len(y) < 0.6 * 8 * len(KNOWN)


def test_damaged_mp3_skips_bad_packets(tmp_path):
    whole = write_audio(tmp_path / "whole.mp3", np.tile(KNOWN, 8))
    data = bytearray(whole.read_bytes())
    rng = np.random.default_rng(1)
    for i in rng.integers(2000, len(data), 40):  # a few damaged bytes scattered over the file
        data[i] ^= 0xFF
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    y = decode_audio(damaged)
    assert abs(len(y) - 8 * len(KNOWN)) < 0.05 * 8 * len(KNOWN)


def test_mostly_garbage_mp3_is_corrupt(tmp_path):
    whole = write_audio(tmp_path / "whole.mp3", np.tile(KNOWN, 8))
    data = bytearray(whole.read_bytes())
    rng = np.random.default_rng(2)
    start = 3000
    data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(bytes(data))
    with pytest.raises(DecodeError):
        decode_audio(junk)


def test_duration_limit_from_metadata_before_decoding(tmp_path):
    # The file's header promises 60 s but only ~4 s are left: only a check of the metadata can refuse it.
    whole = write_audio(tmp_path / "long.mp3", np.tile(KNOWN, 24))
    cut = tmp_path / "claims_long.mp3"
    cut.write_bytes(whole.read_bytes()[:20_000])
    assert probe_duration(cut) == pytest.approx(60, abs=0.1)
    with pytest.raises(TooLargeError) as err:
        decode_audio(cut, max_duration_s=30)
    assert_user_message(err, tmp_path, "limit")
    with pytest.raises(DecodeError):  # without the limit, it is found to be truncated once decoded
        decode_audio(cut)


def test_duration_limit_while_decoding(tmp_path):
    # A FLAC whose header claims 1 s but holds 30 s: only a check during decoding catches it.
    flac = write_audio(tmp_path / "liar.flac", np.tile(KNOWN, 12))
    data = bytearray(flac.read_bytes())
    assert data[:4] == b"fLaC"
    claimed = SR  # STREAMINFO total samples: 36 bits from the low nibble of byte 21
    data[21] = (data[21] & 0xF0) | (claimed >> 32)
    data[22:26] = (claimed & 0xFFFFFFFF).to_bytes(4, "big")
    liar = tmp_path / "liar2.flac"
    liar.write_bytes(bytes(data))
    assert probe_duration(liar) == pytest.approx(1.0)
    assert len(decode_audio(liar)) == 12 * len(KNOWN)
    with pytest.raises(TooLargeError):
        decode_audio(liar, max_duration_s=10)
    assert len(decode_audio(liar, max_duration_s=31)) == 12 * len(KNOWN)


def test_probe_duration(tmp_path):
    assert probe_duration(write_audio(tmp_path / "k.wav", KNOWN)) == pytest.approx(2.5, abs=0.01)
    (tmp_path / "bad.mp3").write_text("<html></html>")
    assert probe_duration(tmp_path / "bad.mp3") is None


def test_a_rate_change_inside_the_stream(tmp_path):
    # Two MP3s back to back at different rates: FFmpeg decodes one stream whose rate changes half way.
    a = write_audio(tmp_path / "a.mp3", resample(tone(440, 3.0), SR, 44100), 44100)
    b = write_audio(tmp_path / "b.mp3", resample(tone(880, 3.0), SR, 22050), 22050)
    joined = tmp_path / "joined.mp3"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    y = decode_audio(joined)
    assert abs(len(y) - 6 * SR) < 0.1 * SR
    assert dominant_hz(y[int(0.5 * SR):int(2.5 * SR)]) == pytest.approx(440, abs=3)
    assert dominant_hz(y[int(3.5 * SR):int(5.5 * SR)]) == pytest.approx(880, abs=3)
