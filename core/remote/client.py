"""RunPod backend mode: the same `transcribe` as `Pipeline`, done by a RunPod endpoint running this project's worker.

No model is loaded and no GPU package imported here, so a free CPU machine (a Hugging Face Space) can drive
serverless GPUs. A job goes through RunPod's documented queue API: POST `/run`, GET `/status/<id>` polled with
backoff (the worker's `progress_update` messages arrive as the `output` of an IN_PROGRESS status), POST
`/cancel/<id>` when the caller gives up. A URL is passed through for the worker to fetch; anything else is decoded
here and sent as a small mono Opus file in `audio_base64`.

The API key is only ever an HTTP header: it is not logged, not put in any message, and `Config`'s repr hides it.
Messages name the endpoint by the last characters of its id, never by host.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import requests

from core.config import Config, get_config
from core.errors import CoreError, InputError, JobCancelled, TooLargeError
from core.fetch.sources import is_url
from core.options import TranscribeOptions, as_options
from core.remote.schema import RUN_PAYLOAD_LIMIT, JobInput, parse_job_input, parse_progress, transcript_from_output
from core.types import SAMPLE_RATE, Progress, Transcript, no_progress

log = logging.getLogger("core.remote.client")

PRODUCTION_API = "https://api.runpod.ai/v2/"
POLL_FIRST_S = 0.5  # first wait between status polls; grows by POLL_GROWTH up to POLL_MAX_S
POLL_GROWTH = 1.5
POLL_MAX_S = 5.0
MAX_POLL_FAILURES = 6  # consecutive failed polls (network blips, 429, 5xx) before giving up on a running job
READ_TIMEOUT_S = 60.0  # for /run, /status and /cancel answers (a documented-API status answer is immediate)
MIN_EXECUTION_TIMEOUT_MS = 5001  # RunPod rejects an executionTimeout of 5 s or less
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
SPEECH_CODEC = "opus"
SPEECH_SUFFIX = ".ogg"
# Opus bit rates for uploads: the shared default when it fits in one request, down to the floor for long ones
# (wideband Opus at 12 kbit/s still carries speech cleanly); 5% of the room is kept for the container's overhead.
SPEECH_BITRATE = 24_000
MIN_SPEECH_BITRATE = 12_000
CONTAINER_MARGIN = 0.95


class RemoteJobError(CoreError):
    """The endpoint could not be reached or refused us, or the job failed or timed out there."""


def endpoint_base(value: str) -> str:
    """RUNPOD_ENDPOINT_URL as a base URL: a full URL as given, or a bare endpoint id on RunPod's production API."""
    value = value.strip().rstrip("/")
    if not value:
        raise InputError("ASR_BACKEND=runpod needs RUNPOD_ENDPOINT_URL, e.g. https://api.runpod.ai/v2/<endpoint id>")
    if re.fullmatch(r"[A-Za-z0-9_-]+", value):
        return PRODUCTION_API + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError("RUNPOD_ENDPOINT_URL must be an http(s) URL such as https://api.runpod.ai/v2/<endpoint id>, "
                         "or the bare endpoint id")
    if parts.query or parts.fragment:
        raise InputError("RUNPOD_ENDPOINT_URL must be the endpoint's base URL, without ?query or #fragment")
    return value


def _span(seconds: float) -> str:
    """'95 min' or '40 s': how long a recording is, for messages."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _worker_error_text(error) -> str:
    """The worker's error for the user: its own message, or the first line of an exception the SDK reported."""
    if isinstance(error, str):
        try:
            parsed = json.loads(error)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            error = parsed
    if isinstance(error, dict):  # the SDK's report of an uncaught exception: keep the message, drop the traceback
        message = str(error.get("error_message") or error.get("error") or "").strip()
        return "the worker crashed: " + (message.splitlines()[0][:300] if message else "no message")
    text = str(error or "").strip()
    return text[:500] if text else "no error message"


class RemotePipeline:
    """The `core.transcriber.Transcriber` over a RunPod endpoint; safe to share between threads (one HTTP session
    per job)."""

    def __init__(self, config: Config | None = None, *, payload_limit: int = RUN_PAYLOAD_LIMIT) -> None:
        self.config = config or get_config()
        self.base_url = endpoint_base(self.config.runpod_endpoint_url)
        self.payload_limit = payload_limit
        parts = urlsplit(self.base_url)
        ident = parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.netloc
        self.name = f"RunPod endpoint …{ident[-4:]}"
        if not self.config.runpod_api_key:
            log.warning("RUNPOD_API_KEY is empty: only a local test API will accept these requests")

    def describe(self) -> str:
        """One line for the UI: where transcription runs."""
        return self.name

    def warm_up(self) -> None:
        """Nothing to start: the endpoint's workers warm up on RunPod's side."""

    def close(self) -> None:
        """Nothing held between jobs: each job opens and closes its own HTTP session."""

    def transcribe(self, source, options: TranscribeOptions | dict | None = None, progress: Progress | None = None, *,
                   filename: str | None = None, allow_local: bool = True, on_audio=None,
                   cancel: threading.Event | None = None) -> Transcript:
        """Run one job on the endpoint and return its transcript.

        `cancel`, when set, stops the job (the endpoint gets /cancel). Any exception while waiting (Ctrl-C, a
        progress callback that raises because its page went away) also cancels the job before propagating.
        """
        options = as_options(options)
        progress = progress or no_progress
        t0 = time.perf_counter()
        body = self._request_body(source, options, progress, filename, allow_local, on_audio)
        timings = {"prepare": round(time.perf_counter() - t0, 4)}
        # A URL goes to the worker as it is; a player still wants the audio, so fetch a copy here meanwhile.
        player = _PlayerCopy(self, source, on_audio) if on_audio is not None and is_url(source) else None

        t1, done = time.perf_counter(), False
        try:
            with requests.Session() as session:
                if self.config.runpod_api_key:
                    session.headers["Authorization"] = f"Bearer {self.config.runpod_api_key}"
                job_id = self._submit(session, body, progress)
                output = self._wait(session, job_id, progress, cancel, deadline=t1 + self.config.runpod_timeout_s)
            try:
                transcript = transcript_from_output(output)
            except (InputError, TypeError, KeyError, ValueError):
                raise RemoteJobError(f"the {self.name} returned something that is not a transcript; is it "
                                     "running this project's worker image?") from None
            timings["endpoint"] = round(time.perf_counter() - t1, 4)
            done = True
        finally:
            if player is not None:
                player.finish(wait=done)
        timings["total"] = round(time.perf_counter() - t0, 4)
        transcript.timings = {**timings, **{f"worker_{k}": v for k, v in transcript.timings.items()}}
        return transcript

    # -- the request ------------------------------------------------------------------------------------------------

    def _request_body(self, source, options, progress, filename, allow_local, on_audio) -> bytes:
        """The /run body. A URL passes through for the worker to fetch; anything else is sent inline as Opus."""
        # RunPod's per-job policy: let the job run as long as we are willing to wait (the endpoint default is 10 min).
        policy = {"executionTimeout": max(MIN_EXECUTION_TIMEOUT_MS, int(self.config.runpod_timeout_s * 1000))}

        def body(job: JobInput) -> bytes:
            payload = job.to_payload()
            parse_job_input(payload)  # the worker's own validation, here, before anything is sent
            return json.dumps({"input": payload, "policy": policy}).encode()

        if is_url(source):
            data = body(JobInput(audio_url=source.strip(), options=options))
            if len(data) > self.payload_limit:
                raise TooLargeError(f"the request is larger than RunPod's {self.payload_limit / 1e6:g} MB limit")
            return data

        probe = JobInput(audio_base64="AAAA", filename="speech" + SPEECH_SUFFIX, options=options)
        room = self.payload_limit - len(body(probe)) + 4  # what the base64 text may take; bad options fail here
        samples = self._decode(source, filename, allow_local, progress)
        if on_audio is not None:
            on_audio(samples)
        duration = max(len(samples) / SAMPLE_RATE, 1e-3)
        # Base64 characters per second at the floor, as planned; Opus is VBR and speech usually comes in under.
        floor_rate = MIN_SPEECH_BITRATE / 8 * 4 / 3 / CONTAINER_MARGIN
        if floor_rate * duration > 1.5 * room:  # hopeless even at the floor: say so before encoding an hour
            raise self._too_large(duration, room / floor_rate)
        planned = max(MIN_SPEECH_BITRATE, min(SPEECH_BITRATE, int(room * 3 / 4 * 8 * CONTAINER_MARGIN / duration)))
        for bitrate in dict.fromkeys((planned, MIN_SPEECH_BITRATE)):
            encoded = self._encode(samples, bitrate)
            data = body(replace(probe, audio_base64=encoded))
            if len(data) <= self.payload_limit:
                return data
        raise self._too_large(duration, room / (len(encoded) / duration))  # measured at the floor

    def _decode(self, source, filename, allow_local, progress):
        from core.audio import decode as audio
        from core.fetch.sources import open_source

        with open_source(source, config=self.config, filename=filename, progress=progress,
                         allow_local=allow_local) as path:
            progress("decode", 0, 1)
            samples = audio.decode_audio(path, max_duration_s=self.config.max_duration_s)
            progress("decode", 1, 1)
        return samples

    @staticmethod
    def _encode(samples, bitrate: int) -> str:
        """16 kHz mono Opus, base64: a few percent of the WAV's size, and the recognition does not notice."""
        from core.audio.encode import encode_speech

        with tempfile.TemporaryDirectory(prefix="asr-remote-") as tmp:
            path = encode_speech(samples, Path(tmp) / ("speech" + SPEECH_SUFFIX), codec=SPEECH_CODEC,
                                 bitrate=bitrate)
            data = Path(path).read_bytes()
        return base64.b64encode(data).decode("ascii")

    def _too_large(self, duration: float, fits: float) -> TooLargeError:
        return TooLargeError(f"this recording is {_span(duration)} long, but one request to RunPod holds at most "
                             f"{self.payload_limit / 1e6:g} MB, about {_span(fits)} of speech; put the file "
                             "somewhere the endpoint can download it and give its URL instead")

    # -- the job on the endpoint -----------------------------------------------------------------------------------

    def _url(self, op: str, job_id: str = "") -> str:
        return f"{self.base_url}/{op}/{job_id}" if job_id else f"{self.base_url}/{op}"

    def _unreachable(self) -> RemoteJobError:
        return RemoteJobError(f"cannot reach the {self.name}; check RUNPOD_ENDPOINT_URL and the network, then try "
                              "again")

    def _refused(self, resp: requests.Response, doing: str) -> RemoteJobError | TooLargeError:
        code = resp.status_code
        if code in (401, 403):
            return RemoteJobError(f"the {self.name} refused the API key (HTTP {code}); check RUNPOD_API_KEY")
        if code == 404:
            return RemoteJobError(f"the {self.name} does not exist or does not know this job (HTTP 404) while "
                                  f"{doing}; check RUNPOD_ENDPOINT_URL")
        if code == 413:
            return TooLargeError(f"the {self.name} refused the request as too large (HTTP 413); give a URL instead")
        if code == 429:
            return RemoteJobError(f"the {self.name} is rate-limiting requests (HTTP 429); try again in a minute")
        return RemoteJobError(f"the {self.name} answered HTTP {code} while {doing}; try again later")

    def _submit(self, session: requests.Session, body: bytes, progress: Progress) -> str:
        """POST /run; a 429 (queue full) is retried a few times, anything else fails at once."""
        progress("upload", 0, 1)
        delay = 2.0
        for attempt in range(4):
            try:
                resp = session.post(self._url("run"), data=body, headers={"Content-Type": "application/json"},
                                    timeout=(self.config.connect_timeout_s, READ_TIMEOUT_S))
            except requests.RequestException:
                raise self._unreachable() from None
            if resp.status_code == 429 and attempt < 3:
                time.sleep(delay)
                delay *= 2
                continue
            if resp.status_code != 200:
                raise self._refused(resp, "submitting the job")
            break
        try:
            job_id = resp.json()["id"]
        except (ValueError, KeyError, TypeError):
            job_id = None
        if not isinstance(job_id, str) or not job_id:
            raise RemoteJobError(f"the {self.name} accepted the job but returned no job id")
        progress("upload", 1, 1)
        log.info("RunPod job %s submitted (%d bytes)", job_id, len(body))
        return job_id

    def _wait(self, session, job_id: str, progress: Progress, cancel: threading.Event | None,
              deadline: float) -> object:
        """Poll /status until the job ends; whatever stops us first also cancels the job on the endpoint."""
        status = None
        try:
            status = self._poll(session, job_id, progress, cancel, deadline)
        finally:
            if status is None:
                self._cancel(session, job_id)
        return self._final(status)

    def _poll(self, session, job_id: str, progress: Progress, cancel: threading.Event | None, deadline: float):
        method = "GET"  # the documented API; the SDK's local test API only answers POST (see the README, "Testing against RunPod's local API")
        delay, failures, last_state, last_progress = POLL_FIRST_S, 0, None, None
        while True:
            if cancel is not None and cancel.is_set():
                raise JobCancelled("the job was cancelled")
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise RemoteJobError(f"no result from the {self.name} after {self.config.runpod_timeout_s / 60:.0f} "
                                     "min (RUNPOD_TIMEOUT_S); the job was cancelled")
            status = None
            try:
                # A POST /status on the SDK's local API runs the whole job before answering: wait as long as allowed.
                read = READ_TIMEOUT_S if method == "GET" else remaining
                resp = session.request(method, self._url("status", job_id),
                                       timeout=(self.config.connect_timeout_s, read))
                if resp.status_code == 405 and method == "GET":
                    method = "POST"
                    log.info("RunPod job %s: /status answers POST only (the SDK's local API)", job_id)
                    continue
                if resp.status_code in (401, 403, 404):
                    raise self._refused(resp, "checking the job")
                if resp.status_code == 200:
                    status = resp.json()
            except (requests.RequestException, ValueError):  # no answer, or a 200 that is not JSON
                status = None
            if not isinstance(status, dict):
                failures += 1
                if failures >= MAX_POLL_FAILURES:
                    raise RemoteJobError(f"lost contact with the {self.name} while the job was running; "
                                         "the job was cancelled")
            else:
                failures = 0
                state = str(status.get("status", ""))
                if state != last_state:
                    log.info("RunPod job %s: %s", job_id, state)
                    delay, last_state = POLL_FIRST_S, state
                if state in FINAL_STATES:
                    return status
                if state == "IN_QUEUE":
                    progress("queue", 0, None)
                else:
                    step = parse_progress(status.get("output"))
                    if step is not None and step != last_progress:
                        progress(*step)
                        last_progress = step
            wait = min(delay, max(0.0, deadline - time.perf_counter()))
            if cancel is not None:
                cancel.wait(wait)
            else:
                time.sleep(wait)
            delay = min(delay * POLL_GROWTH, POLL_MAX_S)

    def _final(self, status: dict):
        """The output of a COMPLETED job, or the error that says how it ended."""
        state = status["status"]
        if state == "COMPLETED":
            output = status.get("output")
            if not (isinstance(output, dict) and output.get("error")):
                return output
            raise RemoteJobError(f"the job failed on the {self.name}: {_worker_error_text(output['error'])}")
        if state == "FAILED":
            raise RemoteJobError(f"the job failed on the {self.name}: {_worker_error_text(status.get('error'))}")
        if state == "CANCELLED":
            raise JobCancelled(f"the job was cancelled on the {self.name}")
        raise RemoteJobError(f"the job timed out on the {self.name} (TIMED_OUT): no worker finished it within the "
                             "endpoint's execution timeout; raise that timeout or send a shorter file")

    def _cancel(self, session, job_id: str) -> None:
        """POST /cancel/<id>, best effort: the caller is already leaving with an error of its own."""
        try:
            resp = session.post(self._url("cancel", job_id), timeout=(self.config.connect_timeout_s, 10.0))
            log.info("RunPod job %s: cancel answered HTTP %d", job_id, resp.status_code)
        except requests.RequestException as e:
            log.warning("RunPod job %s: cancel request failed (%s)", job_id, type(e).__name__)


class _Stopped(Exception):
    """Ends the player's copy early: the job it was for has failed or been cancelled."""


class _PlayerCopy:
    """The audio of a URL job, fetched and decoded here (with this side's own guards) for `on_audio`, the player.

    It runs beside the remote job and never fails it: if the copy cannot be had (the site refuses this machine,
    the file is too large here), the transcript still arrives and the player goes without sound.
    """

    def __init__(self, remote: RemotePipeline, url: str, on_audio) -> None:
        self.remote, self.url, self.on_audio = remote, url, on_audio
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="player-copy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            samples = self.remote._decode(self.url, None, False, self._progress)
            if not self.stop.is_set():
                self.on_audio(samples)
        except _Stopped:
            pass
        except CoreError as e:
            log.warning("no audio for the player: %s", e)
        except Exception:
            log.exception("no audio for the player: fetching the URL here failed")

    def _progress(self, stage, done, total) -> None:
        if self.stop.is_set():
            raise _Stopped

    def finish(self, wait: bool) -> None:
        """After a result, wait for the copy (bounded by the download limits) so the caller has it on return;
        after an error or a cancel, tell it to stop at its next step instead."""
        if wait:
            self.thread.join()
        else:
            self.stop.set()
