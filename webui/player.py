"""The transcript player as a gr.HTML component, built from player.html / player.css / player.js in this folder.

Its value is `{"transcript": <the JSON writer's dict>, "audio": <FileData or None>, "title": str,
"downloads": [FileData], "result": <the result's id>, "names": {label: name}, "notice": str | None}`. Gradio turns
each FileData into a URL it serves (and checks), and the browser side (player.js) builds the segment list from the
transcript once per result. A diarized transcript's lines show their speakers (speakers.js): `names` are the names
the user gave them (the transcript keeps the pipeline's labels); a new value for the same `result` only updates the
names, the downloads and the notice (a failed rename's message), so the audio keeps playing where it was.

Renaming: the player triggers its `submit` event with `{"result": id, "names": {label: name}}` as the event's data
(`gr.EventData`); `webui.speakers` answers with a new value.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import gradio as gr
from gradio.data_classes import FileData

from core.output.writers import transcript_to_dict
from core.types import Transcript

ASSETS = Path(__file__).resolve().parent
AUDIO_MIME = {".mp3": "audio/mpeg", ".ogg": "audio/ogg"}


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """A player file's text. HTML and CSS go through Gradio's template engine (Handlebars inside a JS template
    literal), so they must not contain `${`, `{{`, backticks or backslashes; a slip fails at start-up, not in a browser.
    """
    text = (ASSETS / name).read_text(encoding="utf-8")
    if not name.endswith(".js"):
        bad = [tok for tok in ("${", "{{", "`", "\\") if tok in text]
        if bad:
            raise ValueError(f"webui/{name} contains {bad}, which Gradio's HTML templates would interpret")
    return text


def transcript_player(**kwargs) -> gr.HTML:
    """The player component (create it inside a gr.Blocks)."""
    return gr.HTML(
        value=None,
        html_template=asset("player.html"),
        css_template=asset("player.css"),
        js_on_load=(asset("player.js") + asset("speakers.js")
                    + "\nmountTranscriptPlayer(element, props, watch, trigger);\n"),
        apply_default_css=False,
        elem_id="transcript-player",
        **kwargs,
    )


def player_value(transcript: Transcript, audio_path: str | None, title: str, downloads: Sequence[str] = (), *,
                 result: str | None = None, names: dict[str, str] | None = None, notice: str | None = None,
                 answer: str | None = None) -> dict:
    """What the player shows: the transcript, the audio to play and the download files (all in Gradio's cache), a
    title; the result's id, the speakers' names, a message about the last rename and a token that makes each
    rename's answer a new value."""
    audio = _file_data(audio_path, AUDIO_MIME.get(Path(audio_path).suffix.lower())) if audio_path else None
    return {"transcript": transcript_to_dict(transcript), "audio": audio, "title": title,
            "downloads": [_file_data(path) for path in downloads], "result": result, "names": dict(names or {}),
            "notice": notice, "answer": answer}


def _file_data(path: str, mime_type: str | None = None) -> dict:
    return FileData(path=str(path), orig_name=Path(path).name, mime_type=mime_type).model_dump()
