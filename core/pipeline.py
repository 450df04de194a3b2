"""The whole job: source -> audio -> chunks -> ASR -> alignment -> merged transcript.

`Pipeline` owns the loaded models (created once per process) and nothing else; every call takes its input and
options and returns a `Transcript`. Front ends (CLI, web app, RunPod worker) are thin adapters over this.
"""
from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from contextlib import contextmanager

from core.align.stream import AlignStream
from core.audio.chunking import ChunkPlanner
from core.audio.decode import too_long
from core.audio.decode_pool import DecodePool, SamplesChanged, default_workers
from core.audio.speech_check import SpeechCheck
from core.config import Config, get_config
from core.diarize.names import number_speakers
from core.errors import InputError, JobCancelled
from core.fetch.sources import open_source
from core.languages import ALIGNER_LANGUAGES
from core.options import TranscribeOptions, as_options
from core.output.merge import build_transcript
from core.transcriber import Transcriber
from core.types import SAMPLE_RATE, AsrRequest, Chunk, ChunkText, Progress, Transcript, Turn, no_progress

log = logging.getLogger("core")
_LOAD = object()  # "load from the configuration" (None means "no aligner" / "no diarizer")
NO_DIARIZER = "speaker labels are off on this server: no diarizer is configured (DIARIZER_MODEL is empty)"


class _Timer:
    """Collects per-stage wall times into a dict (reported as Transcript.timings)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t0, 4)


class Pipeline:
    """The local `core.transcriber.Transcriber`: loads the ASR backend and the aligner once; `transcribe` is safe
    to call for job after job, from several threads (concurrent jobs share each model's engine, `core.models.engine`)."""

    def __init__(self, config: Config | None = None, *, asr=None, aligner=_LOAD, diarizer=_LOAD) -> None:
        """`asr`/`aligner`/`diarizer` inject already-loaded models (tests, benchmarks); None disables that stage.
        The diarizer loads on the first job that asks for speakers (most jobs do not)."""
        from core.align.aligner import load_aligner
        from core.asr import load_asr_backend

        self.config = config or get_config()
        self.asr = asr if asr is not None else load_asr_backend(self.config)
        self.aligner = load_aligner(self.config) if aligner is _LOAD else aligner
        if diarizer is _LOAD and not self.config.diarizer_model.strip():
            diarizer = None
        self._diarizer = diarizer
        self._diarizer_lock = threading.Lock()
        self.decoder = DecodePool(self.config.decode_workers or default_workers())

    @property
    def can_diarize(self) -> bool:
        return self._diarizer is not None

    def diarizer(self):
        """The diarizer, loaded on first use (raises ModelError when DIARIZER_MODEL cannot be loaded)."""
        with self._diarizer_lock:
            if self._diarizer is _LOAD:
                from core.diarize.diarizer import load_diarizer

                self._diarizer = load_diarizer(self.config)
            return self._diarizer

    def warm_up(self) -> None:
        """Start what would otherwise start in the first job (the decode worker processes); servers call this.

        It also moves every object loading made (modules, model code: ~390k beside vLLM) out of the garbage
        collector's reach: they live as long as the process, and otherwise the first full collection walks them all
        inside a job (a 241 ms pause in a merge beside vLLM, none frozen: `bench.gc_pause`, bench/RESULTS.md)."""
        self.decoder.start()
        gc.freeze()

    def close(self) -> None:
        """Stop the decode workers (models are freed with the object, which `warm_up`'s freeze would prevent)."""
        self.decoder.close()
        gc.unfreeze()

    def describe(self) -> str:
        """One line for the UI: which models run where."""
        aligner = self.aligner.describe() if self.aligner else "no aligner"
        speakers = ("speakers: " + (self._diarizer.describe() if self._diarizer is not _LOAD
                                    else self.config.diarizer_model.rstrip("/").rsplit("/", 1)[-1])
                    if self._diarizer is not None else "no diarizer")
        return f"{self.asr.describe()}; {aligner}; {speakers}"

    def transcribe(self, source, options: TranscribeOptions | dict | None = None, progress: Progress | None = None,
                   *, filename: str | None = None, allow_local: bool = True, on_audio=None,
                   cancel: threading.Event | None = None) -> Transcript:
        """Transcribe a path, URL, page URL or raw bytes. Temporary files are gone when this returns or raises.

        The file is decoded in slices and the ASR starts on the first chunks while the rest still decodes
        (`core.audio.decode_pool.DecodeStream`, `core.audio.chunking.ChunkPlanner`): the transcript is the one
        `transcribe_audio` gives for the same samples. `on_audio(samples)`, if given, receives the decoded 16 kHz
        mono audio once it is all decoded (the web player re-encodes it); once `cancel` is set, the next progress
        report raises `JobCancelled` (a model call stops between its batches).
        """
        t0 = time.perf_counter()
        options = as_options(options)  # before any download
        if options.diarize and not self.can_diarize:
            raise InputError(NO_DIARIZER)
        progress = cancellable(progress or no_progress, cancel)
        timer = _Timer()
        with open_source(source, config=self.config, filename=filename, progress=progress,
                         allow_local=allow_local) as path:
            timer.timings["fetch"] = round(time.perf_counter() - t0, 4)
            try:
                with self.decoder.stream(path, max_duration_s=self.config.max_duration_s) as audio:
                    transcript = self._transcribe(audio, options, progress, timer, on_audio)
            except SamplesChanged as changed:  # the serial decoder's audio differs from what was handed out
                log.info("starting over on the serially decoded audio")
                transcript = self._transcribe(InMemory(changed.samples), options, progress, timer, on_audio)
        transcript.timings["total"] = round(time.perf_counter() - t0, 4)
        return transcript

    def load_audio(self, source, progress: Progress | None = None, *, filename: str | None = None,
                   allow_local: bool = True):
        """Fetch and decode: the CPU half of `transcribe`. Returns (samples, {"fetch": s, "decode": s})."""
        progress = progress or no_progress
        timer = _Timer()
        t0 = time.perf_counter()
        with open_source(source, config=self.config, filename=filename, progress=progress,
                         allow_local=allow_local) as path:
            timer.timings["fetch"] = round(time.perf_counter() - t0, 4)
            with timer.stage("decode"):
                progress("decode", 0, 1)
                samples = self.decoder.decode(path, max_duration_s=self.config.max_duration_s)
                progress("decode", 1, 1)
        return samples, timer.timings

    def transcribe_audio(self, samples, options: TranscribeOptions | dict | None = None,
                         progress: Progress | None = None, *, timings: dict[str, float] | None = None) -> Transcript:
        """Transcribe 16 kHz mono float32 samples already in memory; `timings` of earlier stages are carried on."""
        options = as_options(options)
        if options.diarize and not self.can_diarize:
            raise InputError(NO_DIARIZER)
        timer = _Timer()
        timer.timings.update(timings or {})
        return self._transcribe(InMemory(samples), options, progress or no_progress, timer, None)

    def _transcribe(self, audio, options: TranscribeOptions, progress: Progress, timer: _Timer,
                    on_audio) -> Transcript:
        """The stages after decoding, over `audio`: (available, final) pairs as it decodes, then `audio.samples`.

        Chunks are cut as the audio arrives and each group of them goes into the ASR at once, while
        `SpeechCheck` finds on its own thread which of them hold speech: a chunk ruled out is withdrawn from the ASR
        (never started if still queued, aborted if a streaming model holds it; its result is None), and the text of
        one that ran anyway is dropped at the end; with overlap, each chunk is aligned as soon as its text is back.
        Stage times: `decode` until the last samples arrived (less the chunking done meanwhile), `chunk` all the
        chunking, `transcribe` the ASR after that, `align` the alignment after that; `first_chunk` is when the first
        chunks went into the ASR and `first_text` when the first text came back (the gap is queueing in a shared
        engine), `speech_busy` the speech check's own time beside them."""
        cfg = self.config
        target = min(options.chunk_seconds or cfg.chunk_target_s, cfg.chunk_max_s)
        planner = ChunkPlanner(target_s=target, max_s=max(target, cfg.chunk_max_s))
        spoken: list[Chunk] = []
        requests: list[AsrRequest] = []
        warnings: list[str] = []
        overlap = options.word_timestamps and self.aligner is not None and cfg.overlap_align
        stream = self._align_stream() if overlap else None  # alignment while the ASR still runs
        check = SpeechCheck()
        t0, chunk_s, decoded = time.perf_counter(), 0.0, 0.0

        def groups():
            nonlocal chunk_s, decoded
            for available, final in audio:
                if audio.decoding:  # seconds of audio decoded (also where a cancel is seen while chunks go in)
                    seconds = round(available / SAMPLE_RATE)
                    progress("decode", seconds, max(seconds, round(audio.expected / SAMPLE_RATE)))
                if final and len(audio.samples) / SAMPLE_RATE > cfg.max_duration_s:
                    raise too_long(len(audio.samples) / SAMPLE_RATE, cfg.max_duration_s)
                t = time.perf_counter()
                new = check.add(audio.samples, planner.feed(audio.samples, available, final), final, planner.levels)
                chunk_s += time.perf_counter() - t
                if final:
                    decoded = time.perf_counter() - t0 - chunk_s
                    if audio.decoding:
                        timer.timings["decode"] = round(decoded, 4)
                    timer.timings["chunk"] = round(chunk_s, 4)
                    progress("chunk", 1, 1)
                    if on_audio is not None:
                        on_audio(audio.samples)
                if new:
                    timer.timings.setdefault("first_chunk", round(time.perf_counter() - t0, 4))
                    group = [AsrRequest(audio.samples[c.start:c.end], options.language, options.context) for c in new]
                    spoken.extend(new)
                    requests.extend(group)
                    yield group

        def text_back(i: int, result: ChunkText) -> None:  # aligned now, unless already found to hold no speech
            timer.timings.setdefault("first_text", round(time.perf_counter() - t0, 4))
            if stream is not None and check.heard(spoken[i].index) is not False:
                stream.add(spoken[i], result, requests[i].audio)

        try:
            results = self.asr.transcribe_groups(groups(), progress, on_result=text_back,
                                                 unwanted=lambda i: check.heard(spoken[i].index) is False)
            samples, chunks = audio.samples, planner.chunks
            heard = check.flags(len(chunks))
            timer.timings["transcribe"] = round(time.perf_counter() - t0 - decoded - chunk_s, 4)
            timer.timings["speech_busy"] = round(check.busy_s, 4)
            texts: list[ChunkText | None] = [None] * len(chunks)
            for c, r in zip(spoken, results):
                if heard[c.index]:  # the text of music or noise is dropped (None where it was withdrawn)
                    texts[c.index] = r
            if any(t.truncated for t in texts if t is not None):
                warnings.append("some chunks hit the generation limit or a repetition loop; their text was cut")

            words = [None] * len(chunks)
            if options.word_timestamps:
                with timer.stage("align"):  # with overlap: only the part left once the ASR is done
                    words = self._align(samples, chunks, texts, warnings, progress, stream)
                words = [w if t is not None else None for w, t in zip(words, texts)]
                if stream is not None:
                    timer.timings["align_busy"] = round(stream.busy_s, 4)
        finally:
            check.close()
            if stream is not None:
                stream.stop()

        turns = None
        if options.diarize:
            with timer.stage("diarize"):
                turns = self._diarize(samples, chunks, texts, words, options, warnings, progress)
        with timer.stage("merge"):
            transcript = build_transcript(chunks, texts, words, len(samples) / SAMPLE_RATE,
                                          language=options.language, turns=turns)
            if turns:
                number_speakers(transcript)
            progress("merge", 1, 1)
        transcript.warnings = warnings + transcript.warnings
        if not transcript.text.strip():
            transcript.warnings.append("no speech detected: the transcript, subtitles and text file are empty")
        transcript.timings = dict(timer.timings)
        return transcript

    def _diarize(self, samples, chunks, texts, words, options, warnings, progress) -> list[Turn] | None:
        """Speaker turns over the speech the pipeline found: each aligned chunk's words, else the whole chunk. A
        failure costs the job its speaker labels only (a warning), never its transcript."""
        spans = []
        for c, text, chunk_words in zip(chunks, texts, words):
            if text is None or not text.text.strip():
                continue
            if chunk_words:
                spans += [(c.offset + w.start, c.offset + w.end) for w in chunk_words]
            else:
                spans.append((c.offset, c.offset + c.duration))
        try:
            return self.diarizer().diarize(samples, spans, options, progress)
        except Exception as e:  # JobCancelled is a BaseException: a cancel still cancels
            log.exception("diarization failed")
            warnings.append(f"speaker labels failed ({str(e) or type(e).__name__}); the transcript has none")
            return None

    def _align_stream(self) -> AlignStream:
        return AlignStream(self.aligner, getattr(self.aligner, "batch_size", 8))

    def _align(self, samples, chunks, texts, warnings, progress, stream: AlignStream | None):
        if self.aligner is None:
            warnings.append("word timestamps are off: no aligner is configured (ALIGNER_MODEL is empty)")
            return [None] * len(chunks)
        if stream is None:  # not overlapped: every chunk goes in now
            stream = self._align_stream()
            for c, t in zip(chunks, texts):
                stream.add(c, t, samples[c.start:c.end])
        words = stream.finish(len(chunks), progress)
        if stream.skipped_languages:
            warnings.append(f"no word timestamps for {', '.join(sorted(stream.skipped_languages))}: the aligner "
                            f"covers {', '.join(sorted(ALIGNER_LANGUAGES))}")
        if stream.failed:
            warnings.append(f"alignment failed on {stream.failed} chunk(s); those have segment-level times only")
        return words


class InMemory:
    """Samples already decoded, in the form `Pipeline._transcribe` reads a decoding file in: all at once."""

    decoding = False

    def __init__(self, samples) -> None:
        self.samples = samples

    def __iter__(self):
        yield len(self.samples), True


def cancellable(progress: Progress, cancel: threading.Event | None) -> Progress:
    """`progress` that raises JobCancelled at the first report after `cancel` is set."""
    if cancel is None:
        return progress

    def report(stage: str, done: float, total: float | None) -> None:
        if cancel.is_set():
            raise JobCancelled()
        progress(stage, done, total)

    return report


def make_pipeline(config: Config | None = None) -> Transcriber:
    """The pipeline the configuration asks for: local models, or a RunPod endpoint (ASR_BACKEND=runpod)."""
    config = config or get_config()
    if config.asr_backend == "runpod":
        from core.remote.client import RemotePipeline

        return RemotePipeline(config)
    return Pipeline(config)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM stop a front end as Ctrl-C does, for its main thread to call first: KeyboardInterrupt there
    (after the handler that was set before, if that was a Python one), so servers shut down as on SIGINT and the
    front end's `finally: pipeline.close()` stops the decode workers. Containers are stopped with SIGTERM, whose
    default kills the process at once. A server that handles SIGTERM itself while it runs keeps doing so (the RunPod
    SDK's job loop; uvicorn, which then puts this handler back and raises the signal again once it has stopped)."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        return

    def on_sigterm(signum, frame) -> None:
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)


__all__ = ["Pipeline", "cancellable", "interrupt_on_sigterm", "make_pipeline"]
