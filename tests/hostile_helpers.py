"""The three entry points behind one call, and the leak checks every hostile case makes.

`Hostile` describes one input the way a user would give it (a link, a file, options, or a raw worker job); each
entry point turns it into its own call and returns an `Outcome` (the user-facing error, or the transcript JSON):

- `CoreEntry`: `Pipeline.transcribe` as a library caller uses it, with `allow_local=False` (files are bytes);
- `WorkerEntry`: the RunPod handler through the SDK's own `run_job`, exactly as a deployed worker calls it;
- `WebEntry`: the Gradio app's public API through `gradio_client` (and its plain HTTP API for raw payloads).

Used by test_hostile*.py, test_soak.py and hostile_netns.py (the same calls inside a network namespace).
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = ("core", "worker", "web")  # the entry points' names (`name` on each class below)
AUTO = "Auto-detect"  # the web form's language value for detection
TRACE_MARKERS = ("Traceback", 'File "', "error_traceback", "site-packages", ".py\", line")


@dataclass(frozen=True)
class Hostile:
    """One input. Exactly one of url / data / server_path / job; options left None take each front end's default.

    `data` is a file's bytes with its `filename` (core: bytes, worker: base64, web: an upload); `server_path` is a
    path on the server (core: the source string, worker: audio_url, web: a FileData naming it, sent raw); `job` is
    a raw worker `input` (worker only).
    """

    url: str | None = None
    data: bytes | None = None
    filename: str = "audio.mp3"
    server_path: str | None = None
    job: object = None
    language: str | None = None
    context: str | None = None
    chunk_seconds: float | None = None


@dataclass
class Outcome:
    error: str | None = None
    transcript: dict | None = None  # the transcript JSON (text, segments, warnings, duration...)
    shown: str = ""  # what else the user sees with it (the web app's summary line)

    @property
    def warnings(self) -> list[str]:
        return list((self.transcript or {}).get("warnings", []))


class NotApplicable(Exception):
    """This entry point has no way to express the input (e.g. a raw worker job in the web form)."""


# -- the entry points ---------------------------------------------------------------------------------------------

class CoreEntry:
    name = "core"

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    def run(self, h: Hostile) -> Outcome:
        from core.errors import CoreError
        from core.output.writers import transcript_to_dict

        if h.job is not None:
            raise NotApplicable("a raw worker job has no core equivalent")
        source = h.url if h.url is not None else h.server_path if h.server_path is not None else h.data
        options = dict(language=h.language, context=h.context or "", chunk_seconds=h.chunk_seconds)  # checked inside
        try:
            tr = self.pipeline.transcribe(source, options, filename=h.filename if h.data is not None else None,
                                          allow_local=False)
        except CoreError as e:  # anything else is a bug and propagates (the test fails with its traceback)
            return Outcome(error=str(e))
        return Outcome(transcript=transcript_to_dict(tr))


class WorkerEntry:
    name = "worker"

    def __init__(self, worker) -> None:
        self.worker = worker

    @staticmethod
    def job_input(h: Hostile):
        if h.job is not None:
            return h.job
        if h.url is not None or h.server_path is not None:
            raw = {"audio_url": h.url if h.url is not None else h.server_path}
        else:
            # an empty file is an empty data URI: the schema treats a bare "" as "no audio_base64 given"
            raw = {"audio_base64": base64.b64encode(h.data).decode() if h.data else "data:audio/mpeg;base64,",
                   "filename": h.filename}
        for key in ("language", "context", "chunk_seconds"):
            if getattr(h, key) is not None:
                raw[key] = getattr(h, key)
        return raw

    def run(self, h: Hostile, job_id: str = "hostile-1") -> Outcome:
        return self.run_job({"id": job_id, "input": self.job_input(h)})

    def run_job(self, job: dict) -> Outcome:
        """The SDK's own wrapper: {"output": ...} or {"error": ...}; a handler that raised shows up as a traceback."""
        from runpod.serverless.modules.rp_job import run_job

        result = asyncio.run(run_job(self.worker.handle, job))
        assert set(result) <= {"output", "error", "stopPod"}, result
        if "error" in result:
            return Outcome(error=result["error"])
        return Outcome(transcript=result["output"])


class WebEntry:
    name = "web"

    def __init__(self, base_url: str, folder: Path) -> None:
        from gradio_client import Client

        self.base_url = base_url
        self.folder = folder  # where uploads are written before gradio_client sends them
        # download_files=False: the client would leave an empty folder in the temp dir per downloaded file
        self.client = Client(base_url, verbose=False, download_files=False)
        self._n = 0

    def run(self, h: Hostile) -> Outcome:
        from gradio_client import handle_file
        from gradio_client.exceptions import AppError

        if h.job is not None:
            raise NotApplicable("a raw worker job has no web equivalent")
        if h.server_path is not None:
            return self.run_raw(h)
        upload = None
        if h.data is not None:
            self._n += 1
            path = self.folder / str(self._n) / h.filename
            path.parent.mkdir(parents=True)
            path.write_bytes(h.data)
            upload = handle_file(str(path))
        args = (upload, None, h.url or "", h.language or AUTO, h.context or "", True,
                30 if h.chunk_seconds is None else h.chunk_seconds)
        try:
            player, _files, summary = self.client.predict(*args, api_name="/transcribe")
        except AppError as e:
            return Outcome(error=str(e))
        return Outcome(transcript=player["transcript"], shown=summary)

    def run_raw(self, h: Hostile) -> Outcome:
        """A FileData naming a server path, posted to Gradio's HTTP API as a hostile client would (gradio_client
        refuses to send a path it cannot read itself)."""
        import requests

        upload = {"path": h.server_path, "orig_name": Path(h.server_path).name, "meta": {"_type": "gradio.FileData"}}
        data = [upload, None, "", AUTO, "", True, 30, False, "Automatic", "Automatic", "Automatic"]
        r = requests.post(self.base_url + "gradio_api/call/transcribe", json={"data": data}, timeout=30)
        r.raise_for_status()
        events = requests.get(self.base_url + f"gradio_api/call/transcribe/{r.json()['event_id']}", timeout=120).text
        m = re.search(r"^event: (\w+)\ndata: (.*)$", events, re.M)
        assert m, events
        kind, payload = m.group(1), json.loads(m.group(2))
        if kind == "error":
            return Outcome(error=(payload or {}).get("error") or "Error")
        return Outcome(transcript=payload[0]["transcript"], shown=payload[2])


# -- checks ----------------------------------------------------------------------------------------------------------

def leaks(message: str, *extra_paths) -> list[str]:
    """What a user-facing message must not contain that it does: stack traces, local paths, this machine's name."""
    found = [m for m in TRACE_MARKERS if m in message]
    paths = {str(ROOT), "/tmp/", tempfile.gettempdir(), str(Path.home()) + "/", *map(str, extra_paths)}
    found += [p for p in paths if p and p != "/" and p in message]
    for name in {socket.gethostname(), socket.getfqdn()} - {"localhost", ""}:
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", message, re.I):
            found.append(f"host name {name!r}")
    return found


def leftovers(folder: Path) -> list[str]:
    """Files or folders left in a private temp dir (torch's process-wide compile cache is not a job's)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("torchinductor_"))


def good_speech_ok(out: Outcome, duration: float) -> None:
    """The next good job: a transcript of the whole clip with text and word times."""
    assert out.error is None, out.error
    tr = out.transcript
    assert abs(tr["duration"] - duration) < 0.05 and tr["text"].strip(), tr
    assert any(seg["words"] for seg in tr["segments"]), tr


@dataclass
class Expect:
    """What a case must produce: an error containing `phrase` (per entry point where they word it differently),
    or (phrase None) a transcript: with `warning` among its warnings, empty when `empty`, with text over the whole
    clip when `speech` (odd but valid audio of the test sentence), and a duration within `duration` if given."""

    phrase: str | None = None
    per_entry: dict[str, str] = field(default_factory=dict)
    warning: str | None = None
    empty: bool = False
    speech: bool = False
    duration: tuple[float, float] | None = None

    def phrase_for(self, entry: str) -> str | None:
        return self.per_entry.get(entry, self.phrase)
