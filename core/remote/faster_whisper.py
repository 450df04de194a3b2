"""Jobs written for runpod-workers/worker-faster_whisper, translated once into this worker's own job and answered in
that worker's shape as well as this product's.

The dialect rule: a job input is a faster-whisper-worker job when it has `audio` or any field that only that worker
knows (`FW_ONLY`: transcription, translate, model, beam_size...). The fields both schemas share (`audio_base64`,
`language`, `word_timestamps`) do not decide it, so `{"audio_base64": ...}` alone stays a job of our own; add
`"transcription": "plain_text"` to ask for the faster-whisper answer.

Input: `audio` -> audio_url, `initial_prompt` -> context, `language` (an ISO code, or null to detect) and
`word_timestamps` (default false, as there) keep their meaning, `transcription` picks the rendering returned as
`transcription`. `translate: true` is refused (Qwen3-ASR writes what is spoken, in its language); the Whisper
decoding knobs are accepted and ignored, each for the reason in `FW_FIELDS`. This worker's own fields (formats,
chunk_seconds, diarize...) may be added; everything then goes through `parse_job_input`, the one gate.

Output: this worker's answer (`job_output`) plus faster-whisper-worker's fields; each segment carries both shapes
(`FW_SEGMENT_FIELDS` for the values Qwen3-ASR has no counterpart for).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from core.languages import CHARACTER_LANGUAGES, LANGUAGES
from core.output.openai_format import segment as whisper_segment
from core.output.writers import to_string
from core.remote.schema import FIELDS, JobInput, check_type, job_output, parse_job_input
from core.types import Transcript

NUMBER = (int, float)
_DECODING = "Whisper's decoding search; Qwen3-ASR here always decodes greedily (temperature 0)"
_FALLBACK = ("Whisper's fallback and silence tests; here the audio is cut at silences and a repetition loop is cut "
             "off instead")


@dataclass(frozen=True)
class FwField:
    type: type | tuple
    default: Any
    use: str  # what this worker does with it (the README's table)


FW_FIELDS: dict[str, FwField] = {
    "audio": FwField(str, None, "the audio's http(s) URL: becomes `audio_url`"),
    "audio_base64": FwField(str, None, "the file itself, base64: as `audio_base64`"),
    "language": FwField(str, None, "an ISO code (or a language name), null to detect: as `language`; a language "
                                   "Qwen3-ASR does not know is refused"),
    "initial_prompt": FwField(str, None, "becomes `context` (names and terms to help recognition)"),
    "word_timestamps": FwField(bool, False, "as `word_timestamps`; off unless asked, as in faster-whisper-worker"),
    "transcription": FwField(str, "plain_text", "the answer's `transcription`: plain_text, formatted_text (a line "
                                                "per segment), srt or vtt"),
    "translate": FwField(bool, False, "refused when true: Qwen3-ASR transcribes in the spoken language and does not "
                                      "translate"),
    "translation": FwField(str, "plain_text", "ignored: it formats the translation, which is refused"),
    "model": FwField(str, "base", "ignored: the endpoint serves one Qwen3-ASR model, named in the answer's `model`"),
    "temperature": FwField(NUMBER, 0, f"ignored: {_DECODING}"),
    "best_of": FwField(int, 5, f"ignored: {_DECODING}"),
    "beam_size": FwField(int, 5, f"ignored: {_DECODING}"),
    "patience": FwField(NUMBER, 1.0, f"ignored: {_DECODING}"),
    "length_penalty": FwField(NUMBER, 0, f"ignored: {_DECODING}"),
    "temperature_increment_on_fallback": FwField(NUMBER, 0.2, f"ignored: {_FALLBACK}"),
    "compression_ratio_threshold": FwField(NUMBER, 2.4, f"ignored: {_FALLBACK}"),
    "logprob_threshold": FwField(NUMBER, -1.0, f"ignored: {_FALLBACK}"),
    "no_speech_threshold": FwField(NUMBER, 0.6, f"ignored: {_FALLBACK}"),
    "condition_on_previous_text": FwField(bool, True, "ignored: chunks are transcribed independently, in batches; "
                                                      "`initial_prompt` still reaches every chunk"),
    "suppress_tokens": FwField(str, "-1", "ignored: Whisper token ids mean nothing to Qwen3-ASR's tokenizer"),
    "enable_vad": FwField(bool, False, "ignored: the audio is always cut at silences before recognition"),
}
FW_ONLY = frozenset(FW_FIELDS) - frozenset(FIELDS)
RENAMED = {"audio": "audio_url", "initial_prompt": "context"}  # faster-whisper-worker's name -> ours
# `transcription` -> the writer that renders it (None: the transcript's text itself).
TRANSCRIPTIONS = {"plain_text": None, "formatted_text": "txt", "srt": "srt", "vtt": "vtt"}
# Segment values Qwen3-ASR has no counterpart for: numbers a faster-whisper client's filters let through.
FW_SEGMENT_FIELDS = {
    "tokens": "[]: Qwen3-ASR's token ids are not Whisper's",
    "temperature": "0.0: decoding is greedy",
    "avg_logprob": "0.0: not measured; 0 passes every log-probability filter",
    "no_speech_prob": "0.0: segments come from recognised speech",
    "seek": "the segment's start in 10 ms frames (Whisper's unit); there are no 30 s windows",
    "compression_ratio": "measured as Whisper does: the text's UTF-8 length over its zlib-compressed length",
    "id": "numbered from 1, as faster-whisper numbers them",
}


def is_faster_whisper_job(raw: Any) -> bool:
    """Whether a job input is written for faster-whisper-worker (the module docstring's rule)."""
    return isinstance(raw, dict) and ("audio" in raw or not FW_ONLY.isdisjoint(raw))


@dataclass(frozen=True)
class FasterWhisperJob:
    """A translated job: our own job, plus what shapes the faster-whisper answer."""

    job: JobInput
    transcription: str = "plain_text"
    word_timestamps: bool = False


def parse_faster_whisper_job(raw: dict) -> FasterWhisperJob:
    """Validate and translate a faster-whisper-worker job; every problem is an InputError that says what to change."""
    unknown = sorted(map(str, set(raw) - set(FW_FIELDS) - set(FIELDS)))
    if unknown:
        raise InputError(f"unknown input field(s): {', '.join(unknown)[:200]}; a faster-whisper-worker job takes "
                         f"{', '.join(FW_FIELDS)}, and this worker's own "
                         f"{', '.join(k for k in FIELDS if k not in FW_FIELDS)}")
    values = {k: v for k, v in raw.items() if v is not None}
    for name, value in values.items():
        if name in FW_ONLY:
            check_type(name, value, FW_FIELDS[name].type)
    for theirs, ours in RENAMED.items():
        if theirs in values and ours in values:
            raise InputError(f"give '{theirs}' or '{ours}', not both (they mean the same)")
    if sum(1 for k in ("audio", "audio_url", "audio_base64") if values.get(k)) != 1:
        raise InputError("give exactly one of 'audio' (the audio's URL) or 'audio_base64'")
    if values.get("translate"):
        raise InputError("'translate' is not supported: Qwen3-ASR transcribes in the spoken language and does not "
                         "translate; leave 'translate' out (or false) and translate the transcript separately")
    transcription = str(values.get("transcription", "plain_text")).strip().lower().replace(" ", "_")
    if transcription not in TRANSCRIPTIONS:
        raise InputError(f"unknown transcription format {values['transcription']!r:.40}; use one of: "
                         f"{', '.join(TRANSCRIPTIONS)}")
    ours = {RENAMED.get(k, k): v for k, v in values.items() if k in FIELDS or k in RENAMED}
    ours.setdefault("word_timestamps", FW_FIELDS["word_timestamps"].default)
    return FasterWhisperJob(job=parse_job_input(ours), transcription=transcription,
                            word_timestamps=ours["word_timestamps"])


def faster_whisper_output(transcript: Transcript, fw: FasterWhisperJob, *, model: str, device: str) -> dict:
    """This worker's answer with faster-whisper-worker's fields added; each segment holds both shapes."""
    out = job_output(transcript, fw.job.formats)
    out["segments"] = [{**whisper_segment(number, ours), **seg}  # Whisper's fields (the OpenAI API's too), then ours
                       for number, (ours, seg) in enumerate(zip(transcript.segments, out["segments"]), start=1)]
    writer = TRANSCRIPTIONS[fw.transcription]
    text = transcript.text if writer is None else to_string(transcript, writer)
    out.update(detected_language=LANGUAGES.get(transcript.language),
               transcription=text.rstrip("\n") if writer == "txt" else text,
               translation=None, model=model, device=device)
    if fw.word_timestamps:
        out["word_timestamps"] = word_timestamps(out["segments"], transcript.language)
    return out


def word_timestamps(segments: list[dict], language: str) -> list[dict]:
    """faster-whisper-worker's flat word list: each word with the space before it (none in languages written
    without spaces), so the words joined are the text."""
    lead = "" if language in CHARACTER_LANGUAGES else " "
    return [{"word": lead + w["text"], "start": w["start"], "end": w["end"],
             **({"speaker": w["speaker"]} if "speaker" in w else {})}
            for seg in segments for w in seg["words"]]


def served_model(asr_model: str) -> str:
    """The answer's `model`: a Hugging Face id as it is; a local folder by its name only (no server paths out)."""
    name = asr_model.strip().rstrip("/\\")
    is_hub_id = name.count("/") == 1 and not name.startswith((".", "/", "~")) and "\\" not in name
    return name if is_hub_id else name.replace("\\", "/").rsplit("/", 1)[-1]
