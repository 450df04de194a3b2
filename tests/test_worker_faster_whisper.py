"""Jobs written for runpod-workers/worker-faster_whisper (issue 19): the translation into our own job, the answer in
that worker's shape, and such jobs end to end through the real handler with the tiny models, directly and behind
the loopback RunPod API (tests/runpod_api.py); the worker keeps serving after every refusal."""
from __future__ import annotations

import base64
import io
import json
import time

import pytest
import requests
import srt
import webvtt

from bench.checkpoints import RIG_TEXT
from core.errors import InputError
from core.options import TranscribeOptions
from core.output.openai_format import compression_ratio
from core.remote.faster_whisper import (FW_FIELDS, FasterWhisperJob, faster_whisper_output,
                                        is_faster_whisper_job, parse_faster_whisper_job, served_model)
from core.remote.schema import JobInput
from core.types import Segment, Transcript, Word
from model_helpers import tiny_aligner_dir, tiny_asr_dir  # noqa: F401 (fixtures)
from runpod_api import RunPodAPI
from worker_helpers import assert_clean_error, assert_transcript, job, media, pipeline, speech, worker  # noqa: F401

pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind

OUR_KEYS = {"text", "language", "duration", "segments", "warnings", "timings"}
FW_KEYS = {"detected_language", "transcription", "translation", "model", "device"}
FW_SEGMENT = ["id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio",
              "no_speech_prob"]
URL = "https://media.example/talk.mp3"


# -- the dialect rule and the translation ------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ({"audio": URL}, True),
    ({"audio_url": URL, "transcription": "srt"}, True),
    ({"audio_base64": "AAAA", "beam_size": 5}, True),
    ({"audio_base64": "AAAA", "language": "en", "word_timestamps": True}, False),  # fields both schemas share
    ({"audio_url": URL, "formats": ["srt"]}, False),
    ("audio", False),
    (None, False),
])
def test_dialect_rule(raw, expected):
    assert is_faster_whisper_job(raw) is expected


def test_translation_into_our_job():
    fw = parse_faster_whisper_job({"audio": URL, "language": "de", "initial_prompt": "Qwen, RunPod",
                                   "word_timestamps": True, "transcription": "vtt", "model": "large-v3",
                                   "beam_size": 1, "temperature": 0.4, "enable_vad": True, "translate": False})
    assert fw == FasterWhisperJob(
        job=JobInput(audio_url=URL, options=TranscribeOptions(language="German", context="Qwen, RunPod",
                                                              word_timestamps=True)),
        transcription="vtt", word_timestamps=True)


def test_faster_whisper_defaults():
    fw = parse_faster_whisper_job({"audio_base64": "AAAA", "language": None, "transcription": "plain_text"})
    assert fw == FasterWhisperJob(job=JobInput(audio_base64="AAAA", options=TranscribeOptions(
        language=None, word_timestamps=False)))  # words only when asked, as there; null language: detect


def test_every_ignored_field_at_its_default_is_accepted():
    raw = {name: f.default for name, f in FW_FIELDS.items() if f.default is not None}
    fw = parse_faster_whisper_job({**raw, "audio": URL})
    assert fw.job == JobInput(audio_url=URL, options=TranscribeOptions(word_timestamps=False))


def test_our_own_fields_may_join_a_faster_whisper_job():
    fw = parse_faster_whisper_job({"audio": URL, "transcription": "srt", "formats": ["txt"], "chunk_seconds": 30})
    assert fw.job == JobInput(audio_url=URL, formats=("txt",),
                              options=TranscribeOptions(chunk_seconds=30.0, word_timestamps=False))


BAD = [
    ("translate", {"audio": URL, "translate": True}, "does not translate"),
    ("unknown field", {"audio": URL, "speed": 2}, "unknown input field(s): speed"),
    ("audio and audio_url", {"audio": URL, "audio_url": URL}, "give 'audio' or 'audio_url', not both"),
    ("prompt and context", {"audio": URL, "initial_prompt": "a", "context": "b"}, "'initial_prompt' or 'context'"),
    ("no audio", {"transcription": "srt"}, "exactly one of 'audio'"),
    ("two sources", {"audio": URL, "audio_base64": "AAAA"}, "exactly one of 'audio'"),
    ("bad transcription", {"audio": URL, "transcription": "docx"}, "plain_text, formatted_text, srt, vtt"),
    ("ignored field of a wrong type", {"audio": URL, "beam_size": "five"}, "'beam_size' must be a number"),
    ("language Qwen3-ASR lacks", {"audio": URL, "language": "uk"}, "unsupported language"),
    ("prompt too long", {"audio": URL, "initial_prompt": "x" * 4001}, "the limit is 4000"),
]


@pytest.mark.parametrize("name, raw, phrase", BAD, ids=[b[0] for b in BAD])
def test_refused_with_a_message(name, raw, phrase):
    with pytest.raises(InputError) as e:
        parse_faster_whisper_job(raw)
    assert phrase in str(e.value)


def test_served_model_names_no_server_path():
    assert served_model("Qwen/Qwen3-ASR-1.7B") == "Qwen/Qwen3-ASR-1.7B"
    assert served_model("/models/Qwen3-ASR-1.7B/") == "Qwen3-ASR-1.7B"
    assert served_model("./ckpt/asr") == "asr"


def test_compression_ratio_flags_repetition_like_whisper():
    assert compression_ratio("") == 0.0
    assert compression_ratio("The quick brown fox jumps over a lazy dog.") < 2.4  # Whisper's default threshold
    assert compression_ratio("la la " * 200) > 2.4


# -- the answer's shape, from a hand-made transcript --------------------------------------------------------------

def two_segments(language="English") -> Transcript:
    return Transcript(language=language, duration=3.0, text="Hello there. Bye now.", segments=[
        Segment(0.0, 1.5, "Hello there.", [Word(0.0, 0.5, "Hello"), Word(0.6, 1.5, "there.")]),
        Segment(2.0, 3.0, "Bye now.", [Word(2.0, 2.4, "Bye"), Word(2.5, 3.0, "now.")])])


def answer(transcription="plain_text", word_timestamps=False, language="English"):
    fw = FasterWhisperJob(job=JobInput(audio_url=URL), transcription=transcription, word_timestamps=word_timestamps)
    return faster_whisper_output(two_segments(language), fw, model="Qwen/Qwen3-ASR-0.6B", device="cuda")


def test_answer_holds_both_shapes():
    out = answer(word_timestamps=True)
    assert set(out) == OUR_KEYS | FW_KEYS | {"word_timestamps"}
    assert (out["detected_language"], out["model"], out["device"]) == ("en", "Qwen/Qwen3-ASR-0.6B", "cuda")
    assert out["translation"] is None and out["language"] == "English"
    first = out["segments"][0]
    assert list(first)[:len(FW_SEGMENT)] == FW_SEGMENT
    assert {k: first[k] for k in FW_SEGMENT if k != "compression_ratio"} == {
        "id": 1, "seek": 0, "start": 0.0, "end": 1.5, "text": "Hello there.", "tokens": [], "temperature": 0.0,
        "avg_logprob": 0.0, "no_speech_prob": 0.0}
    assert first["words"] == [{"start": 0.0, "end": 0.5, "text": "Hello"}, {"start": 0.6, "end": 1.5, "text": "there."}]
    assert (out["segments"][1]["id"], out["segments"][1]["seek"]) == (2, 200)
    assert out["word_timestamps"] == [{"word": " Hello", "start": 0.0, "end": 0.5},
                                      {"word": " there.", "start": 0.6, "end": 1.5},
                                      {"word": " Bye", "start": 2.0, "end": 2.4},
                                      {"word": " now.", "start": 2.5, "end": 3.0}]


def test_words_of_a_language_without_spaces_have_no_leading_space():
    assert answer(word_timestamps=True, language="Chinese")["word_timestamps"][0]["word"] == "Hello"
    assert answer(language="Cantonese")["detected_language"] == "yue"


@pytest.mark.parametrize("fmt, expected", [
    ("plain_text", "Hello there. Bye now."),
    ("formatted_text", "Hello there.\nBye now."),
    ("srt", "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:02,000 --> 00:00:03,000\nBye now.\n\n"),
    ("vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n00:00:02.000 --> 00:00:03.000\nBye now.\n\n"),
])
def test_transcription_formats(fmt, expected):
    out = answer(fmt)
    assert out["transcription"] == expected
    assert "word_timestamps" not in out


# -- end to end through the real handler -------------------------------------------------------------------------

def assert_fw_answer(out: dict, duration: float, worker) -> None:
    assert_transcript({k: v for k, v in out.items() if k not in FW_KEYS | {"word_timestamps"}}, duration)
    assert FW_KEYS <= set(out)
    assert out["model"] == served_model(worker.config.asr_model) and out["device"] == "cpu"
    assert out["detected_language"] == "en" and out["translation"] is None
    for number, seg in enumerate(out["segments"], start=1):
        assert set(FW_SEGMENT) <= set(seg) and seg["id"] == number
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize("fmt", ["plain_text", "formatted_text", "srt", "vtt"])
def test_each_transcription_format_by_url(worker, media, speech, fmt):
    out = worker.run(job(audio=media.url("/speech.wav"), transcription=fmt, language="en"))
    assert_fw_answer(out, speech[1], worker)
    text = out["transcription"]
    if fmt == "srt":
        assert " ".join(c.content.replace("\n", " ") for c in srt.parse(text)).split() == RIG_TEXT.split()
    elif fmt == "vtt":
        captions = webvtt.from_buffer(io.StringIO(text), strict=True)
        assert " ".join(c.text.replace("\n", " ") for c in captions).split() == RIG_TEXT.split()
    else:
        assert text.split() == RIG_TEXT.split() and ("\n" in text) == (fmt == "formatted_text" and
                                                                       len(out["segments"]) > 1)


def test_word_timestamps_on_by_base64_with_ignored_fields(worker, speech):
    ignored = {name: f.default for name, f in FW_FIELDS.items() if f.use.startswith("ignored")}
    out = worker.run(job(audio_base64=base64.b64encode(speech[0]).decode(), word_timestamps=True,
                         initial_prompt="fox, birds", **{**ignored, "model": "large-v3", "beam_size": 1}))
    assert_fw_answer(out, speech[1], worker)  # detected: no language given
    words = out["word_timestamps"]
    assert "".join(w["word"] for w in words).strip() == out["text"] == RIG_TEXT
    assert all(0 <= w["start"] <= w["end"] <= out["duration"] + 1e-6 for w in words)
    assert [w["text"] for seg in out["segments"] for w in seg["words"]] == [w["word"].strip() for w in words]


def test_word_timestamps_off_by_default(worker, media, speech):
    out = worker.run(job(audio=media.url("/speech.wav")))
    assert_fw_answer(out, speech[1], worker)
    assert "word_timestamps" not in out and all(seg["words"] == [] for seg in out["segments"])
    assert out["transcription"] == out["text"] == RIG_TEXT


def test_refusals_then_the_worker_goes_on(worker, media, speech):
    for raw, phrase in [({"audio": media.url("/speech.wav"), "translate": True}, "does not translate"),
                        ({"audio": media.url("/speech.wav"), "vad_threshold": 0.5}, "unknown input field(s)"),
                        ({"audio": media.url("/missing.mp3")}, "404")]:
        out = worker.run(job(**raw))
        assert_clean_error(out, phrase)
        assert "refresh_worker" not in out
    assert_fw_answer(worker.run(job(audio=media.url("/speech.wav"))), speech[1], worker)


def test_our_own_jobs_keep_their_shape(worker, media, speech):
    assert_transcript(worker.run(job(audio_url=media.url("/speech.wav"), formats=["srt"])), speech[1],
                      formats=("srt",))


def run_job(api: RunPodAPI, raw: dict) -> dict:
    headers = {"Authorization": f"Bearer {api.api_key}"}
    job_id = requests.post(f"{api.url}/run", json={"input": raw}, headers=headers, timeout=10).json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = requests.get(f"{api.url}/status/{job_id}", headers=headers, timeout=10).json()
        if status["status"] in ("COMPLETED", "FAILED"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def test_through_the_runpod_api(worker, media, speech):
    """A faster-whisper-worker client's request as RunPod receives it: POST /run, then poll /status."""
    with RunPodAPI(worker.handle) as api:
        done = run_job(api, {"audio": media.url("/speech.wav"), "transcription": "srt", "word_timestamps": True,
                             "model": "base", "beam_size": 5})
        refused = run_job(api, {"audio": media.url("/speech.wav"), "translate": True})
        again = run_job(api, {"audio": media.url("/speech.wav"), "transcription": "vtt"})
    assert done["status"] == "COMPLETED", done
    assert_fw_answer(done["output"], speech[1], worker)
    assert list(srt.parse(done["output"]["transcription"])) and done["output"]["word_timestamps"]
    assert refused["status"] == "FAILED" and "does not translate" in refused["error"]
    assert again["status"] == "COMPLETED" and again["output"]["transcription"].startswith("WEBVTT")
