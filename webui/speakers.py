"""Renaming speakers in the player: the browser asks, the server renames its own copy and rewrites the downloads.

The player sends `{"result": <the result's id>, "names": {label: name}}` (every speaker label the pipeline gave,
"Speaker 1"…, mapped to the name the user wants; a label left out keeps its own name). Only the names come from
the browser: the transcript is the server's copy of the result (`handler.Result`, held in a gr.State per session),
renamed afresh from the pipeline's labels each time, so a rename can be repeated, undone or sent twice safely.
`core.output.speakers.rename_speakers` checks every name; two speakers given one name become one.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from core.errors import InputError
from core.output.speakers import check_speaker_name, rename_speakers
from core.types import Transcript

from .handler import Result, write_kept

STALE = "This transcript is no longer held by the server; transcribe the file again to rename its speakers."
BAD_REQUEST = "speaker names must map each speaker's label to its new name"


def from_event(event) -> dict:
    """The player's request from its event's data (a gr.EventData): `result` and `names`, None where missing."""
    request = {}
    for key in ("result", "names"):
        try:
            request[key] = getattr(event, key)
        except (AttributeError, TypeError):  # no such key, or an event sent without data
            request[key] = None
    return request


def is_for(result: Result | None, request) -> bool:
    """Whether `request` (the player's event data) was made on `result`, the session's latest one."""
    return result is not None and isinstance(request, dict) and request.get("result") == result.id


def requested_names(result: Result, request: dict) -> dict[str, str]:
    """The request's names, checked: labels the transcript has, names that make a speaker's name (stripped);
    a label mapped to itself is left out."""
    names = request.get("names")
    if not isinstance(names, dict) or len(names) > len(result.transcript.speakers):
        raise InputError(BAD_REQUEST)
    rename_speakers(result.transcript, names)  # every check and its message: unknown labels, bad names
    cleaned = {label: check_speaker_name(name) for label, name in names.items()}
    return {label: name for label, name in cleaned.items() if name != label}


def named(result: Result) -> Transcript:
    """The result's transcript with the user's names (the pipeline's own when there are none)."""
    return rename_speakers(result.transcript, result.names) if result.names else result.transcript


def rename(result: Result, request: dict, keep: Callable[[str], str]) -> Result:
    """`result` with the requested names and new download files that carry them (InputError when a name is bad;
    `result` is then still the session's result, unchanged)."""
    names = requested_names(result, request)
    if names == result.names:
        return result
    updated = replace(result, names=names)
    return replace(updated, files=write_kept(named(updated), result.title, keep))
