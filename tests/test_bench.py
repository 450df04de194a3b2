"""The benchmark's CPU parts: input synthesis, the original design's chunker, the 4-tokens budget, the tables, and one
real pass of the pipeline on tiny checkpoints, the worker step, vLLM's log lines. The benchmark's timings are never
asserted here; the CPU-time helper is checked against processes that burn a known amount of CPU."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench import synth
from bench.original import toolkit_chunks, toolkit_words
from bench.pipeline_bench import FirstResult, SpeechRateText, filler_text, format_table, rtfx
from bench.report import summary
from core.asr.prompts import chunk_text as to_chunk_text
from core.asr.vllm_backend import fixed_token_budget
from core.types import SAMPLE_RATE, AsrRequest, ChunkText


# ---- input synthesis -------------------------------------------------------------------------------------------

def test_synth_has_the_asked_length_and_real_pauses():
    x = synth.synth_speech(40.0, seed=1)
    assert x.dtype == np.float32 and len(x) == 40 * synth.SYNTH_RATE
    quiet, longest = synth.pause_fraction(x)
    assert 0.05 < quiet < 0.5  # mostly talk, with pauses
    assert longest >= 0.3  # at least one pause long enough to cut at
    assert np.abs(x).max() > 0.1  # not silence


def test_synth_is_fresh_per_seed_and_repeatable():
    a, b, c = synth.synth_speech(5, 1), synth.synth_speech(5, 2), synth.synth_speech(5, 1)
    assert np.array_equal(a, c)
    assert not np.array_equal(a, b)


def test_mp3_segments_join_into_one_decodable_file(tmp_path):
    from core.audio.decode import decode_audio

    path = synth.write_speech_mp3(tmp_path / "talk.mp3", 21.0, seed=3, segment_s=8.0, workers=1)
    audio = decode_audio(path)
    # each joined segment adds the encoder's delay and padding (a few tens of ms)
    assert 21.0 <= len(audio) / SAMPLE_RATE <= 21.0 + 3 * 0.1
    quiet, longest = synth.pause_fraction(audio)
    assert quiet > 0.05 and longest >= 0.3


def test_synthetic_talk_counts_as_speech_for_the_pipeline(tmp_path):
    from core.audio.chunking import plan_chunks
    from core.audio.speech_check import speech_flags

    audio = synth.synth_speech(90.0, seed=5)
    chunks = plan_chunks(audio, target_s=30.0, max_s=60.0)
    flags = speech_flags(audio, chunks)
    assert len(chunks) >= 2 and all(flags)


# ---- the 4-tokens budget -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds,rate,expected", [(30.0, 4.0, 120), (270.0, 4.0, 1080), (2.6, 4.0, 11),
                                                   (0.01, 4.0, 1), (29.99, 4.0, 120), (10.0, 2.5, 25)])
def test_fixed_token_budget(seconds, rate, expected):
    assert fixed_token_budget(seconds, rate) == expected


def test_vllm_module_imports_without_vllm():
    import importlib.util

    import core.asr.vllm_backend as vb

    assert callable(vb.VllmAsr) and callable(vb.fixed_token_budget)
    if importlib.util.find_spec("vllm") is None:
        import sys

        assert "vllm" not in sys.modules


def test_answer_parsing_matches_the_shared_rules():
    assert to_chunk_text("language English<asr_text>hello there", None, False) == ChunkText("English", "hello there")
    assert to_chunk_text("hello", "French", True) == ChunkText("French", "hello", truncated=True)
    looped = to_chunk_text("language German<asr_text>" + "ja " * 60, None, False)
    assert looped.truncated and len(looped.text) < 20


# ---- the original design's pieces -------------------------------------------------------------------------------

def test_toolkit_chunks_tile_the_audio_and_cut_in_the_quiet():
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(700 * SAMPLE_RATE) * 0.1).astype(np.float32)
    quiet_at = [267.0, 535.0]  # a 0.3 s gap inside each search window (the 2nd: 270 s after the 1st cut)
    for q in quiet_at:
        audio[int(q * SAMPLE_RATE):int((q + 0.3) * SAMPLE_RATE)] = 0.0
    chunks = toolkit_chunks(audio)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].start == 0 and chunks[-1].end == len(audio)
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
    assert all(c.duration <= 270.0 for c in chunks)
    for c, q in zip(chunks, quiet_at):
        assert q <= c.end / SAMPLE_RATE <= q + 0.3


def test_toolkit_words_keep_letters_digits_and_apostrophes():
    assert toolkit_words("Don't stop, 42 times -- ok!") == ["Don't", "stop", "42", "times", "ok"]


# ---- filler text -------------------------------------------------------------------------------------------------

def test_filler_text_has_speaking_rate_short_words():
    text = filler_text(60.0, np.random.default_rng(0))
    words = text.split()
    assert len(words) == 150
    letters = [sum(ch.isalpha() for ch in w) for w in words]
    assert set(letters) <= {1, 2} and 1.2 < np.mean(letters) < 1.4
    assert text.endswith(".")


def test_speech_rate_text_keeps_the_inner_backends_flags():
    class Inner:
        def describe(self):
            return "inner"

        def transcribe_groups(self, groups, progress=None, on_result=None, unwanted=None):
            requests = [r for group in groups for r in group]
            return [ChunkText("", "", truncated=i == 1) for i in range(len(requests))]

    wrapped = SpeechRateText(Inner(), words_per_second=2.0)
    out = wrapped.transcribe([AsrRequest(np.zeros(SAMPLE_RATE * 10, np.float32))] * 2)
    assert [len(c.text.split()) for c in out] == [20, 20]
    assert [c.truncated for c in out] == [False, True] and out[0].language == "English"


# ---- tables ------------------------------------------------------------------------------------------------------

def test_format_table_is_markdown_with_padded_columns():
    table = format_table(["a", "value"], [["x", "1.00 s"], ["long name", "2"]])
    assert table.splitlines() == ["| a         | value  |", "|-----------|--------|",
                                  "| x         | 1.00 s |", "| long name | 2      |"]


def test_summary_puts_each_number_beside_its_target():
    results = {
        "passes": [{"total_s": 4.0, "rtfx": 900.0, "stages": {"decode": 1.0, "transcribe": 2.0, "align": 0.5},
                    "first_result_s": 3.5, "asr_stats": {"generated_tokens": 14400, "requests": 120}},
                   {"total_s": 6.0, "rtfx": 600.0, "stages": {}, "first_result_s": None}],
        "original": {"total": 25.0, "asr": 8.0},
        "many": {"files": 16, "wall_s": 24.0, "audio_s": 16 * 3600.0},
        "cold": {"eager": {"ready_s": 31.5, "first_job_s": 33.0}},
    }
    lines = summary(results).splitlines()
    row = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines[2:]}
    assert row["end to end, 60 min file (best of 2)"] == ["4.00 s", "RTFx 900", "<= 3 s"]
    assert row["GPU stages (ASR + align)"][0] == "2.50 s"
    assert row["ASR tokens/s (generated)"][0] == "7200"
    assert row["original design, same input"][1] == "ratio 5.0x"  # against the median of the passes (5 s)
    assert row["16 files in flight"][1] == "aggregate RTFx 2400"
    assert row["cold start: eager"][:2] == ["31.50 s", "first job 33.00 s"]


def test_summary_says_when_the_original_design_failed():
    results = {"passes": [{"total_s": 5.0, "rtfx": 700.0, "stages": {}, "first_result_s": None}],
               "original": {"error": "OutOfMemoryError: CUDA out of memory. Tried to allocate 10.82 GiB"}}
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in summary(results).splitlines()[2:]}
    assert rows["original design, same input"][0] == "-"
    assert rows["original design, same input"][1].startswith("OutOfMemoryError")


def test_summary_puts_speakers_beside_the_passes_without():
    results = {
        "passes": [{"total_s": 5.0, "rtfx": 720.0, "stages": {}, "first_result_s": None},
                   {"total_s": 7.0, "rtfx": 514.0, "stages": {}, "first_result_s": None}],
        "speaker_passes": [
            {"total_s": 7.5, "rtfx": 480.0, "audio_s": 3600.0, "stages": {"diarize": 1.2},
             "diarizer": {"embed_s": 0.8, "windows": 4000}},
            {"total_s": 6.5, "rtfx": 554.0, "audio_s": 1800.0, "stages": {"diarize": 0.5},
             "diarizer": {"embed_s": 0.3, "windows": 2000}}],
    }
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in summary(results).splitlines()[2:]}
    assert rows["end to end, 60 min file (best of 2)"][0] == "5.00 s"  # the pass without speakers, as before
    assert rows["end to end with speakers (best of 2)"][:2] == ["6.50 s", "RTFx 554"]
    assert rows["speakers add (median with - without)"][0] == "1.00 s"  # 7.0 - 6.0
    per_hour = rows["stage diarize, per audio hour"]
    assert per_hour[0] == "1.00 s"  # 0.5 s on half an hour beats 1.2 s on an hour
    assert per_hour[1].startswith("1.20, 1.00 s/h by pass") and "2000 windows" in per_hour[1]
    assert per_hour[2] == "<= 1.5 s"
    assert "with speakers" not in summary({"passes": results["passes"]})


def test_bench_steps_can_leave_speakers_out():
    from bench.__main__ import STEPS, build_parser

    assert "speakers" in STEPS
    assert build_parser().parse_args(["--skip", "speakers"]).skip == "speakers"


def test_speech_spans_lie_between_the_pauses():
    from bench.speakers import speech_spans, windows_per_hour

    audio = synth.synth_speech(60.0, seed=4)
    spans = speech_spans(audio)
    assert len(spans) >= 4 and all(0 <= a < b <= 60.0 for a, b in spans)
    assert all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    assert 0.5 < sum(b - a for a, b in spans) / 60.0 < 0.98  # mostly talk, the pauses left out
    assert 3000 < windows_per_hour(spans, 60.0) <= 4000  # an hour's windows hit the cap, not 60x a minute's


def test_the_cpu_speaker_mode_runs_the_stage(tmp_path, capsys):
    from bench.speakers import main

    result = main(["--size", "tiny", "--minutes", "0.5", "--repeat", "1", "--no-hour", "--work", str(tmp_path)])
    assert result["windows"] > 10 and result["turns"] >= 1 and 1 <= result["speakers"] <= 20
    assert 0 < result["embed_s"] <= result["stage_s"]
    assert result["stage_s_per_audio_hour"] == pytest.approx(result["stage_s"] * 120)
    assert "s per audio hour" in capsys.readouterr().out


def test_rtfx():
    assert rtfx(3600.0, 2.0) == 1800.0


# ---- one real pass on tiny checkpoints ---------------------------------------------------------------------------

def test_a_pass_writes_json_and_srt_with_word_times(tmp_path):
    from bench.checkpoints import build_aligner_checkpoint, build_asr_checkpoint
    from bench.pipeline_bench import run_pass
    from core.align.aligner import load_aligner
    from core.asr.transformers_backend import TransformersAsr
    from core.config import config_from_env
    from core.pipeline import Pipeline

    config = config_from_env(asr_model=str(build_asr_checkpoint(tmp_path / "asr")),
                             aligner_model=str(build_aligner_checkpoint(tmp_path / "aligner")), device="cpu",
                             asr_backend="transformers", max_tokens_per_second=2.0)
    pipeline = Pipeline(config, asr=SpeechRateText(TransformersAsr(config)), aligner=load_aligner(config))
    path = synth.write_speech_mp3(tmp_path / "in.mp3", 12.0, seed=9, workers=1)
    result = run_pass(pipeline, path, tmp_path / "out", "job")
    data = json.loads((tmp_path / "out" / "job.json").read_text())
    assert (tmp_path / "out" / "job.srt").read_text().startswith("1\n")
    assert result.words == sum(len(s["words"]) for s in data["segments"]) == 30  # 2.5 words/s x 12 s
    assert {"decode", "chunk", "transcribe", "align", "merge", "write"} <= set(result.stages)
    assert result.first_result_s is not None and result.first_result_s <= result.total_s
    assert 11.9 < result.audio_s < 12.3


def test_a_pass_with_speakers_labels_every_word(tmp_path):
    from bench.checkpoints import build_aligner_checkpoint, build_asr_checkpoint
    from bench.pipeline_bench import run_pass
    from bench.speaker_checkpoint import build_diarizer_checkpoint
    from bench.speakers import timed_diarizer
    from core.align.aligner import load_aligner
    from core.asr.transformers_backend import TransformersAsr
    from core.config import config_from_env
    from core.options import TranscribeOptions
    from core.pipeline import Pipeline

    config = config_from_env(asr_model=str(build_asr_checkpoint(tmp_path / "asr")),
                             aligner_model=str(build_aligner_checkpoint(tmp_path / "aligner")), device="cpu",
                             diarizer_model=str(build_diarizer_checkpoint(tmp_path / "diarizer")),
                             asr_backend="transformers", max_tokens_per_second=2.0)
    diarizer = timed_diarizer(config)
    pipeline = Pipeline(config, asr=SpeechRateText(TransformersAsr(config)), aligner=load_aligner(config),
                        diarizer=diarizer)
    path = synth.write_speech_mp3(tmp_path / "in.mp3", 12.0, seed=9, workers=1)
    result = run_pass(pipeline, path, tmp_path / "out", "job", TranscribeOptions(diarize=True, num_speakers=2))
    data = json.loads((tmp_path / "out" / "job.json").read_text())
    words = [w for s in data["segments"] for w in s["words"]]
    assert len(words) == 30 and all(w["speaker"] in ("Speaker 1", "Speaker 2") for w in words)
    assert "diarize" in result.stages
    assert diarizer.embedder.last["windows"] > 0 and diarizer.embedder.last["embed_s"] <= result.stages["diarize"]


def test_the_bench_times_passes_without_and_with_speakers(tmp_path, capsys, monkeypatch):
    from bench.__main__ import main

    monkeypatch.setenv("MAX_TOKENS_PER_SECOND", "0.5")  # the tiny random ASR would generate to its cap
    assert main(["--work", str(tmp_path), "--size", "tiny", "--backend", "transformers", "--device", "cpu",
                 "--minutes", "0.5", "--passes", "1", "--skip", "cold,many,worker,original,cpu"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "ckpt-tiny" / "diarizer" / "model.safetensors").exists()
    [plain], [speakers] = results["passes"], results["speaker_passes"]
    assert "diarize" not in plain["stages"] and "diarize" in speakers["stages"]
    assert speakers["name"] == "speakers0" and speakers["diarizer"]["windows"] > 0
    assert "diarizer_load_s" in results["load"]
    table = capsys.readouterr().out
    assert "end to end with speakers (best of 1)" in table and "stage diarize, per audio hour" in table
    main(["--work", str(tmp_path), "--size", "tiny", "--backend", "transformers", "--device", "cpu",
          "--minutes", "0.5", "--passes", "1", "--skip", "cold,many,worker,original,cpu,speakers"])
    assert json.loads((tmp_path / "results.json").read_text())["speaker_passes"] == []


def test_first_result_ignores_other_stages():
    first = FirstResult()
    first("decode", 1, 1)
    first("transcribe", 0, 5)
    assert first.at is None
    first("transcribe", 2, 5)
    assert first.at is not None


def test_vllm_compiles_only_when_asked():
    from core.asr.vllm_backend import NO_COMPILE, compilation
    from core.config import Config

    assert compilation(Config()) == {"compilation_config": NO_COMPILE}
    assert compilation(Config(vllm_compile=True)) == {} == compilation(Config(vllm_enforce_eager=True))


def test_the_parity_check_of_the_aligner_runs_and_finds_both_ways_equal_in_float32(tmp_path):
    """`bench.parity`'s aligner half on CPU with a tiny checkpoint: the GPU run depends on it running at all."""
    from bench.checkpoints import build_aligner_checkpoint
    from bench.parity import clips, compare_aligners

    result = compare_aligners(build_aligner_checkpoint(tmp_path / "aligner"), clips()[:2], device="cpu")
    same = result["fp32_head_on_timestamps_vs_full_logits"]
    assert same["timestamps"] > 20 and same["equal"] == same["timestamps"]
    assert result["bf16_vs_fp32_words_equal"]["words"] == same["timestamps"] // 2
