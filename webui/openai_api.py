"""The OpenAI-compatible HTTP API, served by the web app's own server, on its port, over its one pipeline.

POST /v1/audio/transcriptions takes OpenAI's multipart form: file, model (any name is accepted and the served model
answers), language (an ISO-639-1 code or a name), prompt (the job's context), response_format (json, text, srt,
verbose_json, vtt, diarized_json: speaker labels), timestamp_granularities[] (word, segment; verbose_json only),
temperature (0 to 1, accepted; decoding stays greedy) and chunking_strategy ("auto": the audio is always cut at
pauses). Any other field is refused with a 400 that names it. The shapes: core.output.openai_format.
GET /v1/models lists the served model; GET /health answers {"status": "ok"} without a key.

How it is mounted: `api_routes(...)` returns Starlette routes that `webui.app.launch` hands to Gradio's FastAPI app
(`launch(app_kwargs={"routes": ...})`), so they sit in front of Gradio's own routes on the same server, and run
wherever `demo.launch` runs (local models, ZeroGPU Space, RunPod backend). Gradio's login (APP_AUTH) guards its own
routes only; these use OpenAI's scheme, "Authorization: Bearer API_KEY". With APP_AUTH set and no API_KEY the API
answers 401 to everything but /health, so a private page never has a public API beside it. The key is compared in
constant time and never logged.

Every job is an upload: read with the MAX_UPLOAD_MB limit counted as it streams (webui.api_upload), copied into a
temporary folder that is removed whatever happens, and transcribed through the page's waiting line
(`demo.waiting_line`), so page and API jobs together never run more than APP_CONCURRENCY at once; a full line is
a 429. A client that hangs up cancels its job. Errors have OpenAI's shape {"error": {message, type, param, code}}.
"""
from __future__ import annotations

import asyncio
import logging
import math
import secrets
import tempfile
import threading
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from core.config import Config
from core.errors import BusyError, CoreError, DecodeError, FetchError, InputError, JobCancelled, TooLargeError
from core.options import TranscribeOptions
from core.output.openai_format import MEDIA_TYPES, check_request, render, wants_words
from core.transcriber import Transcriber

from .api_upload import close_form, read_form, saved
from .waiting import WaitingLine

log = logging.getLogger("webui.api")

ACCEPTED_FIELDS = {"file", "model", "language", "prompt", "response_format", "temperature",
                   "timestamp_granularities[]", "timestamp_granularities", "chunking_strategy", "stream"}
OWNER = "qwen"
GENERIC_ERROR = "the server failed while transcribing; try again, and if it keeps failing, another file or format"
DISCONNECT_POLL_S = 1.0


class ApiError(Exception):
    """An error answered with OpenAI's body: `status`, and the `type`, `param` and `code` fields."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        headers = {"Retry-After": "30"} if self.status in (429, 503) else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def from_core(e: BaseException, param: str | None = None) -> ApiError:
    """A core error as the OpenAI error a client expects for it."""
    if isinstance(e, TooLargeError):
        return ApiError(413, str(e), code="request_too_large")
    if isinstance(e, BusyError):
        return ApiError(429, str(e), "requests", code="rate_limit_exceeded")
    if isinstance(e, DecodeError):
        return ApiError(400, str(e), param="file", code="invalid_audio")
    if isinstance(e, (InputError, FetchError)):
        return ApiError(400, str(e), param=param)
    if isinstance(e, JobCancelled):
        return ApiError(499, "the job was cancelled", code="cancelled")
    if isinstance(e, CoreError):  # ModelError and any other: not the input's fault
        return ApiError(503, str(e), "server_error", code="model_error")
    return ApiError(500, GENERIC_ERROR, "server_error")


def model_id(config: Config) -> str:
    """The served ASR model's name: its hub id, or a local folder's name (never the server's path)."""
    name = config.asr_model.rstrip("/")
    return Path(name).name if name.startswith(("/", ".", "~")) else name


class OpenAiApi:
    """The API's endpoints over one pipeline and the page's waiting line."""

    def __init__(self, pipeline: Transcriber, config: Config, line: WaitingLine) -> None:
        self.pipeline, self.config, self.line = pipeline, config, line
        self.model = model_id(config)

    def routes(self) -> list[Route]:
        return [Route("/v1/audio/transcriptions", self.transcriptions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/models/{model:path}", self.one_model, methods=["GET"]),
                Route("/health", self.health, methods=["GET"])]

    def check_key(self, request: Request) -> None:
        """401 unless the request carries the API key (or no key is needed: no API_KEY and no APP_AUTH)."""
        if not self.config.api_key:
            if self.config.app_auth:
                raise ApiError(401, "this server's API is closed: its page has a login (APP_AUTH) and no API_KEY is "
                               "set", code="invalid_api_key")
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <API_KEY>'.")
        if not secrets.compare_digest(given.strip().encode(), self.config.api_key.encode()):
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> Response:
        try:
            self.check_key(request)
        except ApiError as e:
            return e.response()
        return JSONResponse({"object": "list", "data": [self.model_card()]})

    async def one_model(self, request: Request) -> Response:
        try:
            self.check_key(request)
            if request.path_params["model"] != self.model:
                raise ApiError(404, f"The model '{request.path_params['model'][:80]}' does not exist.",
                               param="model", code="model_not_found")
        except ApiError as e:
            return e.response()
        return JSONResponse(self.model_card())

    def model_card(self) -> dict:
        return {"id": self.model, "object": "model", "created": 0, "owned_by": OWNER}

    async def transcriptions(self, request: Request) -> Response:
        form = None
        try:
            self.check_key(request)
            form = await read_form(request, self.config.max_upload_mb)
            response_format, granularities, options = self.parse(form)
            with tempfile.TemporaryDirectory(prefix="asr-api-") as tmp:
                try:
                    path, filename = await anyio.to_thread.run_sync(saved, form, tmp)
                except InputError as e:
                    raise ApiError(400, str(e), param="file") from None
                close_form(form)
                transcript = await self.run(request, path, filename, options)
            body = render(transcript, response_format, granularities)
        except ApiError as e:
            return e.response()
        except (CoreError, JobCancelled) as e:
            return from_core(e, getattr(e, "param", None)).response()
        except Exception:
            log.exception("an API transcription failed")
            return from_core(RuntimeError()).response()
        finally:
            close_form(form)
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body, media_type=MEDIA_TYPES.get(response_format, MEDIA_TYPES["text"]))

    def parse(self, form) -> tuple[str, list[str], TranscribeOptions]:
        """(response_format, granularities, the job's options) from the form; ApiError naming a bad field."""
        unknown = sorted(k for k in form.keys() if k not in ACCEPTED_FIELDS)
        if unknown:
            name = unknown[0][:60].removesuffix("[]")
            raise ApiError(400, f"unsupported parameter: {name}", param=name, code="unsupported_parameter")
        text = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        if text.get("stream", "false").lower() not in ("false", "0", ""):
            raise ApiError(400, "stream is not supported: the whole transcript comes in one response", param="stream")
        if text.get("chunking_strategy", "auto") != "auto":
            raise ApiError(400, "chunking_strategy must be auto (audio is always cut at pauses)",
                           param="chunking_strategy")
        self.check_temperature(text.get("temperature"))
        response_format = text.get("response_format", "json") or "json"
        granularities = [g for k in ("timestamp_granularities[]", "timestamp_granularities")
                         for g in form.getlist(k)]
        try:
            check_request(response_format, granularities)
        except InputError as e:
            raise ApiError(400, str(e), param="timestamp_granularities" if granularities else "response_format")
        try:
            options = TranscribeOptions(language=text.get("language") or None, context=text.get("prompt", "").strip(),
                                        word_timestamps=wants_words(response_format, granularities),
                                        diarize=response_format == "diarized_json")
        except InputError as e:
            param = "language" if "language" in str(e) else "prompt" if "context" in str(e) else None
            raise ApiError(400, str(e), param=param) from None
        return response_format, granularities, options

    @staticmethod
    def check_temperature(raw: str | None) -> None:
        if raw is None or raw == "":
            return
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise ApiError(400, "temperature must be a number from 0 to 1", param="temperature")

    async def run(self, request: Request, path: Path, filename: str, options: TranscribeOptions):
        """The job in a worker thread, in the waiting line; a client that hangs up cancels it."""
        cancel = threading.Event()

        def job():
            with self.line.place(cancel):
                return self.pipeline.transcribe(str(path), options, None, filename=filename, allow_local=True,
                                                cancel=cancel)

        task = asyncio.ensure_future(anyio.to_thread.run_sync(job))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
                if done:
                    return task.result()
                if not cancel.is_set() and await request.is_disconnected():
                    log.info("an API client hung up: its job is cancelled")
                    cancel.set()
        except asyncio.CancelledError:
            cancel.set()  # the server is stopping; the thread ends at the job's next step
            raise


def api_routes(pipeline: Transcriber, config: Config, line: WaitingLine) -> list[Route]:
    return OpenAiApi(pipeline, config, line).routes()
