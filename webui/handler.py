"""One web job: the user's inputs -> `pipeline.transcribe` -> the player's value and the four download files.

No pipeline logic here: this picks the source, checks the options, calls the pipeline (local models or a RunPod
endpoint, whichever `make_pipeline` built) and packages what it returns. Files are written to a temporary folder,
copied into Gradio's cache (which `delete_cache` ages out) and the folder is removed before returning.
"""
from __future__ import annotations

import logging
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

from core.audio.encode import EXTENSIONS, encode_speech
from core.errors import InputError
from core.fetch.url_guard import MAX_URL_CHARS
from core.options import TranscribeOptions
from core.output.writers import FORMATS, write_files
from core.transcriber import Transcriber
from core.types import Transcript

log = logging.getLogger("webui")

PLAYER_CODEC = "mp3"  # plays in every browser; Ogg Opus is smaller but older Safari cannot play it
PLAYER_BITRATE = 32_000  # 16 kHz mono speech: about 14 MB per hour
SOURCES = ("upload", "record", "link")
AUTOMATIC = "Automatic"  # a speaker count left to the diarizer


@dataclass(frozen=True)
class Job:
    """What to transcribe and how to name the results."""

    source: str
    title: str
    filename: str | None = None
    allow_local: bool = False  # only Gradio's own upload/recording paths may be read from disk


@dataclass(frozen=True)
class Result:
    """One finished job as the page holds it (in a gr.State, per browser session): the transcript as the pipeline
    made it, and the speaker names the user has given since (`webui.speakers`), which the files carry."""

    transcript: Transcript
    files: list[str]  # JSON, SRT, VTT, TXT in Gradio's cache
    audio: str | None  # the player's audio in Gradio's cache, or None if it could not be encoded
    title: str = "transcript"
    names: dict[str, str] = field(default_factory=dict)  # a speaker's label -> the name the user gave it
    id: str = field(default_factory=lambda: secrets.token_hex(8))  # tells a rename which result it was made on


def pick_job(active: str, upload: str | None, recording: str | None, url: str | None) -> Job:
    """The input of the tab the user is on; if that one is empty, the first input that is filled."""
    url = (url or "").strip()
    given = {"upload": upload, "record": recording, "link": url}
    order = [active] + [s for s in SOURCES if s != active] if active in given else list(SOURCES)
    kind = next((s for s in order if given[s]), None)
    if kind is None:
        raise InputError("Upload a file, record something, or paste a link first.")
    if kind == "link":
        if len(url) > MAX_URL_CHARS:
            raise InputError(f"the link is longer than {MAX_URL_CHARS} characters")
        return Job(url, title_from_url(url))
    path = Path(given[kind])
    title = path.stem if kind == "upload" else "Recording"
    return Job(str(path), title, filename=path.name, allow_local=True)


def title_from_url(url: str) -> str:
    """A short human name for a link: the file name in its path, else its host."""
    parts = urlsplit(url)
    name = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return (stem or parts.hostname or "transcript")[:80]


def make_options(language: str | None, context: str | None, word_timestamps: bool, chunk_seconds: float | None,
                 diarize: bool = False, num_speakers=AUTOMATIC, min_speakers=AUTOMATIC,
                 max_speakers=AUTOMATIC) -> TranscribeOptions:
    """The form's values as TranscribeOptions (which checks them, speaker counts included); the context box's stray
    whitespace is dropped, a checkbox left unset (None) is off, and each count goes through `speaker_count`."""
    return TranscribeOptions(language=language, context=(context or "").strip(), word_timestamps=bool(word_timestamps),
                             chunk_seconds=None if chunk_seconds is None else float(chunk_seconds),
                             diarize=False if diarize is None else diarize, num_speakers=speaker_count(num_speakers),
                             min_speakers=speaker_count(min_speakers), max_speakers=speaker_count(max_speakers))


def speaker_count(value):
    """A count field's value as the options take it: None for "Automatic" (or nothing), a number typed as text as
    that number; anything else as it came, for TranscribeOptions to refuse in its own words."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", AUTOMATIC.lower())):
        return None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return value


def write_kept(transcript: Transcript, title: str, keep: Callable[[str], str], folder: str | None = None) -> list[str]:
    """The four download files of `transcript`, written to `folder` (by default a temporary one, removed after) and
    moved by `keep` into Gradio's cache; returns their kept paths."""
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="asr-webui-") as tmp:
            return write_kept(transcript, title, keep, tmp)
    return [keep(str(p)) for p in write_files(transcript, folder, title, FORMATS)]


class JobRunner:
    """Runs jobs on a shared Transcriber; `keep(path)` moves a finished file into Gradio's cache and returns its
    path."""

    def __init__(self, pipeline: Transcriber, keep: Callable[[str], str]) -> None:
        self.pipeline = pipeline
        self.keep = keep

    def run(self, job: Job, options: TranscribeOptions, progress, cancel: threading.Event | None = None) -> Result:
        with tempfile.TemporaryDirectory(prefix="asr-webui-") as tmp:
            encoder = _Encoder(Path(tmp) / ("player" + EXTENSIONS[PLAYER_CODEC]))
            try:
                transcript = self.pipeline.transcribe(job.source, options, progress, filename=job.filename,
                                                      allow_local=job.allow_local, on_audio=encoder.start,
                                                      cancel=cancel)
            except BaseException:
                encoder.wait()  # it writes into the folder that is about to be removed
                raise
            # The files are written while the player's audio may still be encoding (seconds for a long file).
            progress("write", 0, 1)
            files = write_kept(transcript, job.title, self.keep, tmp)
            progress("write", 1, 1)
            progress("player", 0, 1)
            audio = encoder.wait()
            if audio is None:
                transcript.warnings.append("the audio could not be prepared for the player")
            kept_audio = self.keep(str(audio)) if audio else None
            progress("player", 1, 1)
        return Result(transcript, files, kept_audio, job.title)


class _Encoder:
    """Encodes the player's audio in a thread while the models work; failure only costs the player its sound."""

    def __init__(self, path: Path) -> None:
        self.path, self.thread, self.ok = path, None, False

    def start(self, samples) -> None:
        self.thread = threading.Thread(target=self._encode, args=(samples,), name="player-audio", daemon=True)
        self.thread.start()

    def _encode(self, samples) -> None:
        try:
            encode_speech(samples, self.path, codec=PLAYER_CODEC, bitrate=PLAYER_BITRATE)
            self.ok = True
        except Exception:
            log.exception("encoding the player's audio failed")

    def wait(self) -> Path | None:
        if self.thread is not None:
            self.thread.join()
        return self.path if self.ok else None
