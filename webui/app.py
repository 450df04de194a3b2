"""The Gradio page: inputs on the left, the transcript player (with the downloads) on the right.

`build_demo(pipeline, config)` lays it out and wires the one job event. Jobs wait in our own line
(`webui.waiting`, `demo.waiting_line`: `config.app_concurrency` run at a time, `config.app_queue_size` more wait),
which says in words how many jobs are ahead; the OpenAI-compatible API (webui.openai_api) enters the same line, so
the shared model never runs more jobs than configured. Gradio's queue only lets jobs through to it.
`launch(demo, config)` serves it on `config.server_name`, behind a login when `config.app_auth` is set. Errors: a
`CoreError` is shown as its own message; anything else is logged here and shown as a generic message, and the app
keeps serving. The message stays under the button (the pop-up closes by itself) until the next job starts.

Speaker labels: the form's checkbox and counts go to `TranscribeOptions` (which checks them); the session's latest
result is kept in a gr.State, and the player's rename requests (its `submit` event) are answered by `webui.speakers`
from that copy, never from a transcript the browser sends.
"""
from __future__ import annotations

import logging
import secrets
import threading

import gradio as gr

from core.config import Config
from core.errors import CoreError, InputError, JobCancelled
from core.fetch.sources import MEDIA_EXTENSIONS
from core.options import CHUNK_SECONDS_RANGE, MAX_SPEAKERS
from core.transcriber import Transcriber

from .handler import AUTOMATIC, SOURCES, JobRunner, Result, make_options, pick_job
from .inputs import UploadAudio, UploadFile
from .languages import AUTO, CHOICES, ELEM_ID, ENTER_JS, resolve_language
from .openai_api import api_routes
from .page import PAGE_CSS, THEME, TITLE, backend_line, failed, summary
from .player import player_value, transcript_player
from .progress import StageProgress
from .speakers import STALE, from_event, is_for, rename
from .waiting import WaitingLine, waiting_text

log = logging.getLogger("webui")

DELETE_CACHE = (1800, 3 * 3600)  # every 30 min, remove uploads and results older than 3 h
GENERIC_ERROR = ("Something went wrong on the server while transcribing. Please try again; if it keeps failing, "
                 "try another file or format.")
CANCELLED = "The job was cancelled."
LOGIN_MESSAGE = "This transcriber is private: log in to use it."
SPARE_THREADS = 8  # Gradio threads beyond the job event's: the page's small unqueued events and file handling
DIARIZE_LABEL = "Who spoke when (speaker labels)"


def job_limit(line: WaitingLine) -> int:
    """The job event's Gradio concurrency: every job that the line holds gets into it, and one more, which the line
    refuses with its own message (so nobody is left in Gradio's queue, whose "queue: 1/1" says nothing)."""
    return line.slots + line.max_waiting + 1


def shown(result: Result, notice: str | None = None, answer: bool = False) -> dict:
    """The player's value for `result`: its transcript, audio, files and speaker names; a rename's `answer` carries a
    fresh token, so the page hears it even when it equals the last one."""
    return player_value(result.transcript, result.audio, result.title, result.files, result=result.id,
                        names=result.names, notice=notice, answer=secrets.token_hex(4) if answer else None)


def count_field(label: str, elem_id: str, **kwargs) -> gr.Dropdown:
    """A speaker count: "Automatic" or 1 to 20 from the list, or typed (what was typed goes to the options' check;
    a gr.Number cannot be left empty in Gradio 6.31, it shows and sends 0)."""
    return gr.Dropdown([AUTOMATIC, *range(1, MAX_SPEAKERS + 1)], value=AUTOMATIC, label=label, elem_id=elem_id,
                       allow_custom_value=True, filterable=True, **kwargs)


def speaker_counts(on: bool):
    """The count fields show with the checkbox; unticking it also resets them (a count needs speaker labels)."""
    if on:
        return gr.update(visible=True), gr.update(visible=True), gr.skip(), gr.skip()
    return gr.update(visible=False, value=AUTOMATIC), gr.update(visible=False), AUTOMATIC, AUTOMATIC


def build_demo(pipeline: Transcriber, config: Config, line: WaitingLine | None = None) -> gr.Blocks:
    """The page over `pipeline`: local models, ZeroGPU or a RunPod endpoint, through one interface.

    Its jobs enter `line` (by default one built from the config), kept as `demo.waiting_line` for other front ends.
    """
    line = line or WaitingLine(config.app_concurrency, config.app_queue_size)
    running: dict[str, threading.Event] = {}  # session -> its job's cancel switch
    outcome: dict[str, str] = {}  # session -> why its last job failed, for the message under the button
    lock = threading.Lock()
    inputs_files = ["audio", "video"] + sorted(f".{e}" for e in MEDIA_EXTENSIONS)

    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(f"# {TITLE}\nLong audio to a word-timed transcript you can play, search and download.",
                    elem_id="app-header")
        gr.Markdown(backend_line(pipeline.describe()), elem_id="backend")
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
                language = gr.Dropdown(CHOICES, value=AUTO, label="Language", allow_custom_value=True,
                                       elem_id=ELEM_ID,
                                       info="Auto-detect, or type a language or its code (es, de, ja…)")
                context = gr.Textbox(label="Context (optional)", lines=2,
                                     placeholder="Names, places and terms that appear in the audio")
                with gr.Row(equal_height=True):
                    diarize = gr.Checkbox(value=False, label=DIARIZE_LABEL, elem_id="diarize", scale=2, min_width=200,
                                          info="Name the speaker of each line; you can rename them in the player")
                    speakers = count_field("Number of speakers", "num-speakers", visible=False, scale=1,
                                           min_width=150, info="If you know it; else counted automatically")
                with gr.Accordion("Advanced", open=False):
                    words = gr.Checkbox(value=True, label="Word timestamps",
                                        info="Time every word (11 languages); off is faster")
                    chunk = gr.Slider(CHUNK_SECONDS_RANGE[0], config.chunk_max_s, value=config.chunk_target_s,
                                      step=1, label="Chunk length (seconds)",
                                      info="Audio is cut at pauses near this length")
                    with gr.Row(visible=False) as bounds:
                        fewest = count_field("Fewest speakers", "min-speakers",
                                             info="Bounds for the automatic count (speaker labels)")
                        most = count_field("Most speakers", "max-speakers")
                with gr.Row():
                    go = gr.Button("Transcribe", variant="primary", scale=3)
                    stop = gr.Button("Cancel", variant="secondary", scale=1)
                status = gr.Markdown(label="Summary", elem_id="job-status")
                # The API's downloads. The page shows them as links in the player: a multi-file gr.File shows a
                # remove button on each file even when not interactive (Gradio 6.31), which took them off the page.
                files = gr.File(label="Downloads", file_count="multiple", interactive=False, visible=False)
            with gr.Column(scale=3, min_width=360):
                player = transcript_player(label="Transcript", min_height=420)
        latest = gr.State(None)  # the session's latest Result: what renames work on

        runner = JobRunner(pipeline, player.move_resource_to_block_cache)

        def remember(key: str | None, cancel: threading.Event, message: str) -> None:
            if key:
                with lock:
                    if running.get(key) is cancel:  # not a job the session has since replaced
                        outcome[key] = message

        def transcribe(upload_file, recording, link, language, context, word_timestamps, chunk_seconds, tab,
                       diarize=False, num_speakers=None, min_speakers=None, max_speakers=None,
                       request: gr.Request = None, progress=gr.Progress()):
            key = session(request)
            cancel = threading.Event()
            if key:
                with lock:
                    running[key] = cancel
            try:
                job = pick_job(tab, upload_file, recording, link)
                options = make_options(resolve_language(language), context, word_timestamps, chunk_seconds,
                                       diarize, num_speakers, min_speakers, max_speakers)
                with line.place(cancel, lambda ahead, waited: progress(0.0, desc=waiting_text(ahead, waited))):
                    progress(0.0, desc="Starting")
                    result = runner.run(job, options, StageProgress(progress), cancel)
            except JobCancelled:
                log.info("a job was cancelled by its user")
                remember(key, cancel, CANCELLED)
                raise gr.Error(CANCELLED, print_exception=False) from None
            except CoreError as e:
                remember(key, cancel, str(e))
                raise gr.Error(str(e), print_exception=False) from None
            except Exception:
                log.exception("transcription failed")
                remember(key, cancel, GENERIC_ERROR)
                raise gr.Error(GENERIC_ERROR, print_exception=False) from None
            finally:
                if key:
                    with lock:
                        if running.get(key) is cancel:
                            del running[key]
            return shown(result), result.files, summary(result.transcript), result

        def rename_speakers(result: Result | None, event: gr.EventData):
            """The player's rename: the session's result renamed and its files rewritten; a bad name leaves the last
            good names on the page, with the reason beside them."""
            request = from_event(event)
            if result is None:
                raise gr.Error(STALE, print_exception=False)
            if not is_for(result, request):  # made on a result that a newer job has replaced
                return gr.skip(), gr.skip(), gr.skip()
            try:
                renamed = rename(result, request, runner.keep)
            except InputError as e:
                return shown(result, notice=f"Not renamed: {e}", answer=True), gr.skip(), gr.skip()
            return shown(renamed, answer=True), renamed.files, renamed

        def start_job(request: gr.Request):
            """A new job clears the last one's message."""
            with lock:
                outcome.pop(session(request), None)
            return ""

        def show_failure(request: gr.Request):
            """The failed job's message under the button; the player keeps what it shows (this event also clears
            the bare "Error" badge Gradio leaves on it)."""
            with lock:
                message = outcome.pop(session(request), None)
            if message is None:  # failed before it ran (Gradio's own checks: its pop-up says why) or cancelled
                return gr.skip(), gr.skip()
            return (CANCELLED if message == CANCELLED else failed(message)), gr.skip()

        def signal_cancel(request: gr.Request | None) -> bool:
            with lock:
                event = running.get(session(request))
            if event is not None:
                event.set()
            return event is not None

        def cancel_job(request: gr.Request):
            return CANCELLED if signal_cancel(request) else gr.skip()

        def page_closed(request: gr.Request) -> None:
            signal_cancel(request)

        for tab, name in zip((tab_upload, tab_record, tab_link), SOURCES):
            tab.select(lambda name=name: name, None, active, queue=False, api_visibility="private")
        job_inputs = [upload, recording, url, language, context, words, chunk, active, diarize, speakers, fewest, most]
        job_outputs = [player, files, status, latest]
        quiet = dict(queue=False, show_progress="hidden", api_visibility="private")
        diarize.change(speaker_counts, diarize, [speakers, bounds, fewest, most], **quiet)
        player.submit(rename_speakers, latest, [player, files, latest], trigger_mode="always_last", **quiet)
        runs = []
        for trigger, api in ((go.click, dict(api_name="transcribe")), (url.submit, dict(api_visibility="private"))):
            run = trigger(start_job, None, status, **quiet).then(
                transcribe, job_inputs, job_outputs, concurrency_id="job", concurrency_limit=job_limit(line), **api)
            run.failure(show_failure, None, [status, player], **quiet)
            runs.append(run)
        stop.click(cancel_job, None, status, cancels=runs, **quiet)
        demo.unload(page_closed)

    demo.queue(default_concurrency_limit=config.app_concurrency, max_size=config.app_queue_size)
    demo.waiting_line = line
    demo.api_routes = api_routes(pipeline, config, line)  # the OpenAI-compatible API, served by `launch` beside it
    return demo


def session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None)


def launch(demo: gr.Blocks, config: Config, *, server_name: str | None = None, server_port: int | None = None,
           **kwargs):
    """Serve `demo` with the configured interface, login and limits; extra keyword arguments go to
    `gr.Blocks.launch` (`server_name` overrides the config's). Gradio's thread pool (40 unless told) grows to hold
    every job the waiting line lets in, plus the page's other events. The OpenAI-compatible API's routes
    (`demo.api_routes`, webui.openai_api) go in front of Gradio's own, on the same server and port."""
    line = getattr(demo, "waiting_line", None)
    routes = getattr(demo, "api_routes", None)
    if routes:
        app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
        app_kwargs["routes"] = [*routes, *app_kwargs.get("routes", [])]
        kwargs["app_kwargs"] = app_kwargs
    if line is not None:
        kwargs.setdefault("max_threads", max(40, job_limit(line) + SPARE_THREADS))
    if config.app_auth:
        user, password = config.app_auth.split(":", 1)
        kwargs.setdefault("auth", (user, password))
        kwargs.setdefault("auth_message", LOGIN_MESSAGE)
    return demo.launch(
        server_name=server_name or config.server_name,
        server_port=server_port or config.port,
        max_file_size=f"{config.max_upload_mb}mb",
        show_error=False,  # gr.Error messages still reach users; Gradio's own errors (which can name server paths) do not
        enable_monitoring=config.app_monitoring,
        run_history=False,  # transcripts are not kept in the browser
        footer_links=["api", "gradio", "settings"],
        ssr_mode=False,
        theme=THEME,
        css=PAGE_CSS,
        js=ENTER_JS,
        **kwargs,
    )
