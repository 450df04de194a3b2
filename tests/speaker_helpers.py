"""What the speaker-label front-end tests (test_speakers_*.py) share: a synthetic two-voice conversation written to a
WAV file, the worker on the session's tiny models (with the tiny random diarizer), and the check that a transcript's
JSON and its SRT/VTT/TXT carry the speakers, each read by a real parser."""
from __future__ import annotations

import io

import pytest
import srt
import webvtt

from audio_helpers import write_audio
from bench.conversation import make_conversation
from core.pipeline import Pipeline
from model_helpers import make_tiny_config
from runpod_worker.handler import Worker

SR = 16000
TWO = ["Speaker 1", "Speaker 2"]


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """Six lines spoken by two espeak-ng voices in turn (about 20 s), as a WAV file."""
    conversation = make_conversation(speakers=2, lines=6)
    return write_audio(tmp_path_factory.mktemp("talk") / "talk.wav", conversation.samples, SR)


def tiny_worker(tiny_asr, tiny_aligner, **config) -> Worker:
    """The real handler over the loaded tiny models; `config` changes the settings (DIARIZER_MODEL...)."""
    return Worker(Pipeline(make_tiny_config(allow_private_urls=True, **config), asr=tiny_asr, aligner=tiny_aligner))


def close(worker: Worker) -> None:
    worker.close()
    worker.pipeline.close()


def turns_of(data: dict) -> int:
    """How many speaker turns the JSON's segments make (runs of one speaker)."""
    speakers = [s["speaker"] for s in data["segments"] if s["text"].strip()]
    return sum(1 for i, s in enumerate(speakers) if i == 0 or s != speakers[i - 1])


def assert_labelled(data: dict, srt_text: str, vtt_text: str, txt_text: str, names=TWO) -> None:
    """The JSON has `names` as its speakers, on every word and segment; SRT names each turn once at the start of a
    cue, every WebVTT cue is in a voice span, TXT has a 'Name: ' paragraph per turn."""
    assert data["speakers"] == list(names)
    words = [w for s in data["segments"] for w in s["words"]]
    assert words and all(w["speaker"] in names for w in words)
    assert all(s["speaker"] in names and all(w["speaker"] == s["speaker"] for w in s["words"])
               for s in data["segments"])
    turns = turns_of(data)
    cues = list(srt.parse(srt_text))
    labelled = [c.content.split(": ", 1)[0] for c in cues if c.content.split(": ", 1)[0] in names]
    assert cues[0].content.startswith(f"{names[0]}: ") and len(labelled) == turns and set(labelled) == set(names)
    captions = list(webvtt.from_buffer(io.StringIO(vtt_text), strict=True))
    assert captions and all(c.voice in names for c in captions) and {c.voice for c in captions} == set(names)
    paragraphs = txt_text.rstrip("\n").split("\n\n")
    assert len(paragraphs) == turns and all(p.split(": ", 1)[0] in names for p in paragraphs)
    said = " ".join(p.split(": ", 1)[1] for p in paragraphs)
    assert said.split() == " ".join(s["text"] for s in data["segments"]).split()
