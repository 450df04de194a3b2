"""The Gradio page: inputs on the left, the transcript player on the right, downloads below the inputs.

`build_demo(pipeline, config)` lays it out and wires the one job event (queued, `config.app_concurrency` at a
time, so the shared model never runs more jobs than configured); `launch(demo, config)` serves it with the
limits from the configuration. Errors: a `CoreError` is shown as its own message; anything else is logged here
and shown as a generic message, and the app keeps serving.
"""
from __future__ import annotations

import logging
import re
import threading

import gradio as gr

from core.config import Config
from core.errors import CoreError, JobCancelled
from core.fetch.sources import MEDIA_EXTENSIONS
from core.languages import LANGUAGES
from core.options import CHUNK_SECONDS_RANGE
from core.transcriber import Transcriber

from .handler import SOURCES, JobRunner, make_options, pick_job
from .inputs import UploadAudio, UploadFile
from .player import player_value, transcript_player
from .progress import StageProgress

log = logging.getLogger("webui")

TITLE = "Qwen3-ASR Transcriber"
AUTO = "Auto-detect"
DELETE_CACHE = (1800, 3 * 3600)  # every 30 min, remove uploads and results older than 3 h
GENERIC_ERROR = ("Something went wrong on the server while transcribing. Please try again; if it keeps failing, "
                 "try another file or format.")
THEME = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate")
PAGE_CSS = """
#app-header h1 { margin-bottom: 0.15rem; }
#app-header p { margin-top: 0; font-size: var(--text-lg); }
#backend p { margin: 0; font-size: var(--text-sm); color: var(--body-text-color-subdued); }
"""


def build_demo(pipeline: Transcriber, config: Config) -> gr.Blocks:
    """The page over `pipeline`: local models, ZeroGPU or a RunPod endpoint, through one interface."""
    running: dict[str, threading.Event] = {}  # session -> its job's cancel switch
    lock = threading.Lock()
    inputs_files = ["audio", "video"] + sorted(f".{e}" for e in MEDIA_EXTENSIONS)

    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(f"# {TITLE}\nLong audio to a word-timed transcript you can play, search and download.",
                    elem_id="app-header")
        gr.Markdown(f"Running on {_public(pipeline.describe())}", elem_id="backend")
        active = gr.State("upload")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs():
                    with gr.Tab("Upload", id="upload") as tab_upload:
                        upload = UploadFile(label="Audio or video file", type="filepath", file_types=inputs_files,
                                         elem_id="upload-file")
                    with gr.Tab("Record", id="record") as tab_record:
                        recording = UploadAudio(label="Microphone", sources=["microphone"], type="filepath")
                    with gr.Tab("Link", id="link") as tab_link:
                        url = gr.Textbox(label="Link", max_lines=1,
                                         placeholder="https://… an audio file, a YouTube video or a podcast page")
                language = gr.Dropdown([AUTO] + sorted(LANGUAGES), value=AUTO, label="Language",
                                       allow_custom_value=True, info="Auto-detect, or pick the spoken language")
                context = gr.Textbox(label="Context (optional)", lines=2,
                                     placeholder="Names, places and terms that appear in the audio")
                with gr.Accordion("Advanced", open=False):
                    words = gr.Checkbox(value=True, label="Word timestamps",
                                        info="Time every word (11 languages); off is faster")
                    chunk = gr.Slider(CHUNK_SECONDS_RANGE[0], config.chunk_max_s, value=config.chunk_target_s,
                                      step=1, label="Chunk length (seconds)",
                                      info="Audio is cut at pauses near this length")
                with gr.Row():
                    go = gr.Button("Transcribe", variant="primary", scale=3)
                    stop = gr.Button("Cancel", variant="secondary", scale=1)
                status = gr.Markdown(label="Summary", elem_id="job-status")
                files = gr.File(label="Downloads", file_count="multiple", interactive=False)
            with gr.Column(scale=3, min_width=360):
                player = transcript_player(label="Transcript", min_height=420)

        runner = JobRunner(pipeline, player.move_resource_to_block_cache)

        def transcribe(upload_file, recording, link, language, context, word_timestamps, chunk_seconds, tab,
                       request: gr.Request, progress=gr.Progress()):
            key = getattr(request, "session_hash", None)
            cancel = threading.Event()
            if key:
                with lock:
                    running[key] = cancel
            try:
                job = pick_job(tab, upload_file, recording, link)
                options = make_options(None if language == AUTO else language, context, word_timestamps,
                                       chunk_seconds)
                progress(0.0, desc="Starting")
                result = runner.run(job, options, StageProgress(progress), cancel)
            except JobCancelled:
                log.info("a job was cancelled by its user")
                raise gr.Error("The job was cancelled.", print_exception=False) from None
            except CoreError as e:
                raise gr.Error(str(e), print_exception=False) from None
            except Exception:
                log.exception("transcription failed")
                raise gr.Error(GENERIC_ERROR, print_exception=False) from None
            finally:
                if key:
                    with lock:
                        if running.get(key) is cancel:
                            del running[key]
            return (player_value(result.transcript, result.audio, job.title), result.files,
                    summary(result.transcript))

        def cancel_job(request: gr.Request):
            with lock:
                event = running.get(getattr(request, "session_hash", None))
            if event is not None:
                event.set()

        for tab, name in zip((tab_upload, tab_record, tab_link), SOURCES):
            tab.select(lambda name=name: name, None, active, queue=False, api_visibility="private")
        job_inputs = [upload, recording, url, language, context, words, chunk, active]
        job_outputs = [player, files, status]
        run = go.click(transcribe, job_inputs, job_outputs, api_name="transcribe", concurrency_id="job",
                       concurrency_limit=config.app_concurrency)
        run_url = url.submit(transcribe, job_inputs, job_outputs, api_visibility="private", concurrency_id="job",
                             concurrency_limit=config.app_concurrency)
        stop.click(cancel_job, None, None, cancels=[run, run_url], queue=False, api_visibility="private")
        demo.unload(cancel_job)

    demo.queue(default_concurrency_limit=config.app_concurrency, max_size=config.app_queue_size)
    return demo


def summary(transcript) -> str:
    """The line under the button: language, length, counts, time taken, and any warnings."""
    n_words = sum(len(s.words) for s in transcript.segments)
    minutes, seconds = divmod(round(transcript.duration), 60)
    parts = [f"**{transcript.language}**", f"{minutes}:{seconds:02d}", f"{len(transcript.segments)} segments"]
    if n_words:
        parts.append(f"{n_words} words timed")
    total = sum(v for k, v in transcript.timings.items() if not k.startswith("worker_"))
    if total:
        parts.append(f"done in {total:.1f} s")
    lines = [" · ".join(parts)]
    lines += [f"⚠️ {_escape(w)}" for w in transcript.warnings]
    return "\n\n".join(lines)


def launch(demo: gr.Blocks, config: Config, *, server_name: str = "0.0.0.0", server_port: int | None = None,
           **kwargs):
    """Serve `demo` with the configured limits; extra keyword arguments go to `gr.Blocks.launch`."""
    return demo.launch(
        server_name=server_name,
        server_port=server_port or config.port,
        max_file_size=f"{config.max_upload_mb}mb",
        show_error=False,  # gr.Error messages still reach users; Gradio's own errors (which can name server paths) do not
        enable_monitoring=config.app_monitoring,
        run_history=False,  # transcripts are not kept in the browser
        footer_links=["api", "gradio", "settings"],
        ssr_mode=False,
        theme=THEME,
        css=PAGE_CSS,
        **kwargs,
    )


def _public(text: str) -> str:
    """The backend line without server paths: a local model directory shows as its last component."""
    return re.sub(r"(?<![\w.])/(?:[^\s;(),/]+/)+([^\s;(),/]+)", r"\1", text)


def _escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#|])", r"\\\1", text)
