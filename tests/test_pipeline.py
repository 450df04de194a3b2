"""The whole pipeline and the CLI end to end on synthetic speech with the tiny rigged checkpoints."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import srt
import webvtt

from audio_helpers import make_podcast, silence, write_audio
from bench.checkpoints import RIG_WORDS
from core.errors import DecodeError
from core.pipeline import Pipeline
from core.options import TranscribeOptions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pipeline(tiny_config, tiny_asr, tiny_aligner):
    return Pipeline(tiny_config, asr=tiny_asr, aligner=tiny_aligner)


def check_timeline(tr):
    """Invariants every transcript must keep: ordered, inside the audio, text = segments joined."""
    last_start = 0.0
    for seg in tr.segments:
        assert 0.0 <= seg.start <= seg.end <= tr.duration + 1e-6
        assert seg.start >= last_start - 1e-6
        last_start = seg.start
        for w in seg.words:
            assert seg.start - 1e-6 <= w.start <= w.end <= seg.end + 1e-6
    words = [w for s in tr.segments for w in s.words]
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    assert tr.text == " ".join(s.text for s in tr.segments)


def test_ten_minute_file_through_the_cli(tmp_path, tiny_config):
    pod = make_podcast(tmp_path / "episode.mp3", 10)
    env = {"ASR_MODEL": tiny_config.asr_model, "ALIGNER_MODEL": tiny_config.aligner_model,
           "ASR_BACKEND": "transformers", "DEVICE": "cpu", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "core", str(pod.path), "--format", "all", "-o", str(out), "-q"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["episode.json", "episode.srt", "episode.txt", "episode.vtt"]

    data = json.loads((out / "episode.json").read_text())
    assert set(data) >= {"language", "duration", "text", "segments", "warnings"}
    assert abs(data["duration"] - pod.duration) < 0.1 and data["language"] == "English"
    segs = data["segments"]
    # 10 minutes at 30 s chunks: the rigged text comes back once per chunk, so many chunks were cut and merged.
    assert len(segs) >= 2 * 15
    ends = [s["end"] for s in segs]
    assert all(0 <= s["start"] <= s["end"] <= data["duration"] for s in segs)
    assert all(a["start"] <= b["start"] for a, b in zip(segs, segs[1:])) and max(ends) <= data["duration"]
    words = [w for s in segs for w in s["words"]]
    assert len(words) >= len(RIG_WORDS) * 15
    assert all(a["start"] <= b["start"] and w["start"] <= w["end"] for a, b, w in zip(words, words[1:], words))
    # Chunk texts are joined with a space: the Qwen toolkit's glued "trees!The" must not appear.
    assert "trees! The quick" in data["text"] and "trees!The" not in data["text"]

    cues = list(srt.parse((out / "episode.srt").read_text()))
    assert len(cues) >= len(segs) and all(c.start <= c.end for c in cues)
    assert cues[-1].end.total_seconds() <= data["duration"] + 1e-3
    vtt = webvtt.from_buffer(open(out / "episode.vtt"))
    assert len(vtt.captions) == len(cues)
    txt = (out / "episode.txt").read_text().splitlines()
    assert [t.strip() for t in txt if t.strip()] == [s["text"] for s in segs]


def test_cli_keeps_going_after_a_bad_input(tmp_path, tiny_config):
    good = make_podcast(tmp_path / "short.wav", 0.3).path
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"<html>not audio</html>")
    env = {"ASR_MODEL": tiny_config.asr_model, "ALIGNER_MODEL": "", "ASR_BACKEND": "transformers",
           "DEVICE": "cpu", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "core", str(bad), str(good), "--format", "txt", "-o",
                          str(tmp_path / "o"), "-q"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "broken.mp3" in run.stderr and "Traceback" not in run.stderr
    assert (tmp_path / "o" / "short.txt").exists()


def test_cli_rejects_bad_flags():
    run = subprocess.run([sys.executable, "-m", "core", "x.mp3", "--language", "klingon"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unsupported language" in run.stderr
    run = subprocess.run([sys.executable, "-m", "core", "x.mp3", "--format", "docx"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "formats" in run.stderr


def test_pipeline_progress_and_timings(tmp_path, pipeline):
    pod = make_podcast(tmp_path / "p.wav", 1.2)
    seen = []
    tr = pipeline.transcribe(str(pod.path), progress=lambda stage, done, total: seen.append((stage, done, total)))
    check_timeline(tr)
    stages = [s for s, _, _ in seen]
    assert stages.index("decode") < stages.index("chunk") < stages.index("transcribe") < stages.index("align") \
        < stages.index("merge")
    assert ("transcribe", 3, 3) in seen or any(s == "transcribe" and d == t for s, d, t in seen)
    assert set(tr.timings) >= {"decode", "chunk", "transcribe", "align", "merge"}


def test_without_aligner_segments_come_from_chunks(tmp_path, tiny_config, tiny_asr):
    pipe = Pipeline(tiny_config, asr=tiny_asr, aligner=None)
    pod = make_podcast(tmp_path / "p.wav", 1.0)
    tr = pipe.transcribe(str(pod.path))
    check_timeline(tr)
    assert tr.segments and all(not s.words for s in tr.segments)
    assert any("aligner" in w for w in tr.warnings)


def test_word_timestamps_off(tmp_path, pipeline):
    pod = make_podcast(tmp_path / "p.wav", 0.8)
    tr = pipeline.transcribe(str(pod.path), TranscribeOptions(word_timestamps=False))
    assert tr.segments and all(not s.words for s in tr.segments) and not tr.warnings


def test_language_outside_the_aligner_still_transcribes(tmp_path, pipeline):
    pod = make_podcast(tmp_path / "p.wav", 0.8)
    tr = pipeline.transcribe(str(pod.path), TranscribeOptions(language="Arabic"))
    check_timeline(tr)
    assert tr.language == "Arabic" and tr.text
    assert all(not s.words for s in tr.segments)
    assert any("Arabic" in w and "aligner" in w for w in tr.warnings)


def test_silence_gives_an_empty_transcript_and_a_warning(tmp_path, pipeline):
    path = write_audio(tmp_path / "quiet.wav", silence(40.0))
    tr = pipeline.transcribe(str(path))
    assert tr.text == "" and tr.segments == []
    assert any(w.startswith("no speech detected") for w in tr.warnings)
    assert abs(tr.duration - 40.0) < 0.05


def test_not_audio_is_a_decode_error(tmp_path, pipeline):
    bad = tmp_path / "image.mp3"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(DecodeError):
        pipeline.transcribe(str(bad))


def test_bytes_input_leaves_no_temp_file(tmp_path, pipeline, monkeypatch):
    import tempfile
    pod = make_podcast(tmp_path / "p.ogg", 0.5)
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    tr = pipeline.transcribe(pod.path.read_bytes(), filename="upload.ogg")
    assert tr.text
    with pytest.raises(DecodeError):
        pipeline.transcribe(b"\x00" * 1000, filename="upload.mp3")
    assert list(private.iterdir()) == []


def test_warm_up_puts_what_loading_made_out_of_the_collectors_reach_until_close(tiny_config, tiny_asr):
    import gc

    pipeline = Pipeline(tiny_config, asr=tiny_asr, aligner=None)
    try:
        pipeline.warm_up()
        assert gc.get_freeze_count() > 1000  # the modules and the tiny model's objects
    finally:
        pipeline.close()
    assert gc.get_freeze_count() == 0  # a closed pipeline's models can be freed again
