"""A Transcript in the shapes of OpenAI's audio transcription API (`response_format`), for the OpenAI-compatible
HTTP API (webui.openai_api) and any other front end that speaks it.

json: {"text"}. text: the plain transcript (the TXT writer's text). srt / vtt: the SRT and WebVTT writers' text.
verbose_json: task, language (the name in lower case, as OpenAI writes it: "english"), duration, text, usage, and
`segments` and/or `words` as the timestamp granularities ask (segments when none is named). diarized_json: task,
duration, text, usage and segments of type "transcript.text.segment" with their speaker's name.

Segment fields that Qwen3-ASR has no counterpart for, with the value they always carry:
  tokens []          the model's token ids are not kept past decoding;
  temperature 0.0    decoding is always greedy (a request's temperature is accepted and does not change it);
  avg_logprob 0.0    no per-token log-probabilities are kept;
  no_speech_prob 0.0 there is no no-speech head (silence is cut away before the model by voice activity detection).
`seek` is the segment's start in 10 ms frames (Whisper's window offset has no counterpart either); `compression_ratio`
is computed as Whisper does, from the segment's text (UTF-8 length over zlib-compressed length).
"""
from __future__ import annotations

import zlib

from core.errors import InputError
from core.output.speakers import label
from core.output.writers import to_string
from core.types import Segment, Transcript

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
GRANULARITIES = ("word", "segment")
JSON_FORMATS = ("json", "verbose_json", "diarized_json")
MEDIA_TYPES = {"text": "text/plain; charset=utf-8", "srt": "application/x-subrip; charset=utf-8",
               "vtt": "text/vtt; charset=utf-8"}


def check_request(response_format: str, granularities: list[str]) -> None:
    """Refuse a format or granularity OpenAI's API would refuse, naming the choices."""
    if response_format not in RESPONSE_FORMATS:
        raise InputError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, not {response_format[:40]!r}")
    for g in granularities:
        if g not in GRANULARITIES:
            raise InputError(f"timestamp_granularities[] must be word and/or segment, not {g[:40]!r}")
    if granularities and response_format != "verbose_json":
        raise InputError("timestamp_granularities[] needs response_format verbose_json")


def wants_words(response_format: str, granularities: list[str]) -> bool:
    """Whether the job needs word times: asked for, or for subtitle cues and speaker turns that follow words."""
    return "word" in granularities or response_format in ("srt", "vtt", "diarized_json")


def render(transcript: Transcript, response_format: str, granularities: list[str] = ()) -> dict | str:
    """The response body: a dict for the JSON formats, text for the others."""
    if response_format == "json":
        return {"text": transcript.text, "usage": usage(transcript)}
    if response_format == "verbose_json":
        return verbose(transcript, granularities)
    if response_format == "diarized_json":
        return diarized(transcript)
    if response_format == "text":
        return to_string(transcript, "txt")
    return to_string(transcript, response_format)


def usage(transcript: Transcript) -> dict:
    return {"type": "duration", "seconds": round(transcript.duration, 3)}


def verbose(transcript: Transcript, granularities: list[str] = ()) -> dict:
    body = {"task": "transcribe", "language": transcript.language.lower(), "duration": round(transcript.duration, 3),
            "text": transcript.text}
    if "segment" in granularities or not granularities:
        body["segments"] = [segment(i, seg) for i, seg in enumerate(transcript.segments)]
    if "word" in granularities:
        body["words"] = [{"word": w.text.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
                         for seg in transcript.segments for w in seg.words]
    body["usage"] = usage(transcript)
    return body


def segment(index: int, seg: Segment) -> dict:
    """A segment in Whisper's shape (OpenAI's verbose_json, faster-whisper-worker's output)."""
    return {"id": index, "seek": int(round(seg.start * 100)), "start": round(seg.start, 3), "end": round(seg.end, 3),
            "text": seg.text, "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
            "compression_ratio": compression_ratio(seg.text), "no_speech_prob": 0.0}


def compression_ratio(text: str) -> float:
    """Whisper's repetition measure: UTF-8 bytes over zlib-compressed bytes (0 for no text)."""
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 3) if data else 0.0


def diarized(transcript: Transcript) -> dict:
    """OpenAI's diarized_json: every segment names its speaker (an unlabelled one is "unknown")."""
    segments = [{"type": "transcript.text.segment", "id": f"seg_{i}", "start": round(s.start, 3),
                 "end": round(s.end, 3), "text": s.text, "speaker": label(s.speaker) if s.speaker else "unknown"}
                for i, s in enumerate(transcript.segments)]
    return {"task": "transcribe", "duration": round(transcript.duration, 3), "text": transcript.text,
            "segments": segments, "usage": usage(transcript)}
