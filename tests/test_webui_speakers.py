"""Speaker labels through the web app's API and its rename requests (issue 16), on a real server on loopback over the
tiny real models (with the tiny random diarizer: the count is fixed at 2, as random weights cannot tell voices apart).

`/transcribe` takes the checkbox and the counts and hands them to the options gate, whose words come back for a bad
one; a server without a diarizer says so (the ZeroGPU wrapper before it fetches anything). Renames are posted the way
the player sends them (its `submit` event with the names as event data, in the session of the job): the server
renames its own copy of the result, rewrites the four files, refuses bad names in the core's words and ignores
anything else the request carries.
"""
from __future__ import annotations

import json

import pytest
import requests
import spaces
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from core.errors import InputError
from core.pipeline import NO_DIARIZER, Pipeline
from model_helpers import make_tiny_config
from speaker_helpers import TWO, assert_labelled, talk  # noqa: F401 (talk: a fixture)
from webui.handler import AUTOMATIC, make_options, speaker_count
from webui.speakers import BAD_REQUEST, STALE
from webui.zerogpu import ZeroGpuPipeline
from webui_helpers import app, app_config, client, serve, tiny_pipeline  # noqa: F401 (app, client: fixtures)

FORMATS = ("json", "srt", "vtt", "txt")


def transcribe(client, audio, **speakers):
    return client.predict(handle_file(str(audio)), None, "", "English", "", True, 30, api_name="/transcribe",
                          **speakers)


class Player:
    """One session's result and the player's rename requests for it, posted as the page posts them."""

    def __init__(self, base: str, client: Client, value: dict) -> None:
        config = requests.get(base + "config", timeout=10).json()
        self.player = next(c["id"] for c in config["components"]
                           if c.get("props", {}).get("elem_id") == "transcript-player")
        self.fn = next(d["id"] for d in config["dependencies"] if [self.player, "submit"] in map(list, d["targets"]))
        self.base, self.session, self.value = base, client.session_hash, value
        # gradio_client swaps the downloads' URLs for local copies: the page's value is the answer to a rename that
        # changes nothing (no files are rewritten for it).
        paths = list(value["downloads"])
        assert self.rename({})["downloads"] and len(paths) == 4

    def post(self, data, session: str | None = None) -> requests.Response:
        return requests.post(self.base + "gradio_api/run/predict", timeout=30, json={
            "data": [None], "event_data": data, "fn_index": self.fn, "trigger_id": self.player,
            "session_hash": session or self.session})

    def rename(self, names, **extra) -> dict:
        """The player's new value (kept as the one on show when it carries one)."""
        r = self.post({"result": self.value["result"], "names": names, **extra})
        assert r.status_code == 200, r.text
        value = r.json()["data"][0]
        if "transcript" in value:
            self.value = value
        return value

    def files(self) -> dict[str, str]:
        got = {}
        for f in self.value["downloads"]:
            got[f["orig_name"].rsplit(".", 1)[-1]] = requests.get(f["url"], timeout=10).text
        return got


def check_files(files: dict[str, str], names: list[str]) -> dict:
    data = json.loads(files["json"])
    assert_labelled(data, files["srt"], files["vtt"], files["txt"], names=names)
    return data


@pytest.fixture
def labelled(app, client, talk):
    value, paths, summary = transcribe(client, talk, diarize=True, num_speakers=2)
    return Player(app, client, value)


# -- the form's options --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, count", [(AUTOMATIC, None), ("automatic", None), ("", None), (None, None), (3, 3),
                                          ("3", 3), (" 20 ", 20), ("2.0", 2), ("2.5", 2.5), ("two", "two")])
def test_a_count_field_is_read_as_typed_and_checked_by_the_gate(value, count):
    assert speaker_count(value) == count


@pytest.mark.parametrize("counts, message", [
    (dict(num_speakers="0"), "num_speakers must be a whole number from 1 to 20"),
    (dict(num_speakers=100), "num_speakers must be a whole number from 1 to 20"),
    (dict(num_speakers="two"), "num_speakers must be a whole number from 1 to 20"),
    (dict(min_speakers=5, max_speakers=2), r"min_speakers \(5\) is more than max_speakers \(2\)"),
    (dict(num_speakers=2, min_speakers=1), "give num_speakers, or min_speakers and/or max_speakers, not both"),
])
def test_bad_counts_are_the_gates_errors(counts, message):
    with pytest.raises(InputError, match=message):
        make_options(None, "", True, 30, True, **counts)


def test_a_count_needs_the_checkbox_and_automatic_needs_nothing():
    with pytest.raises(InputError, match="num_speakers needs diarize"):
        make_options(None, "", True, 30, False, 3)
    options = make_options(None, "", True, 30, True, AUTOMATIC, "2", AUTOMATIC)
    assert (options.diarize, options.num_speakers, options.min_speakers, options.max_speakers) == (True, None, 2,
                                                                                                  None)
    assert make_options(None, "", True, 30, None).diarize is False  # an API caller's unset checkbox


# -- /transcribe ---------------------------------------------------------------------------------------------------

def test_the_api_labels_speakers_in_the_player_and_every_file(client, talk):
    value, paths, summary = transcribe(client, talk, diarize=True, num_speakers=2)
    assert value["transcript"]["speakers"] == TWO and value["names"] == {} and value["result"]
    by_ext = {p.rsplit(".", 1)[-1]: open(p, encoding="utf-8").read() for p in paths}
    data = check_files(by_ext, TWO)
    assert data["segments"] == value["transcript"]["segments"]
    plain, _, _ = transcribe(client, talk)  # the checkbox off: no labels anywhere
    assert "speakers" not in plain["transcript"] and all("speaker" not in s for s in plain["transcript"]["segments"])


@pytest.mark.parametrize("counts, message", [
    (dict(diarize=True, num_speakers=0), "num_speakers must be a whole number from 1 to 20"),
    (dict(diarize=True, num_speakers="100"), "num_speakers must be a whole number from 1 to 20"),
    (dict(diarize=True, min_speakers=5, max_speakers=2), r"min_speakers \(5\) is more than max_speakers \(2\)"),
    (dict(num_speakers=2), r"num_speakers needs diarize \(speaker labels\) to be on"),
])
def test_the_api_refuses_bad_counts_in_the_gates_words(client, talk, counts, message):
    with pytest.raises(AppError, match=message):
        transcribe(client, talk, **counts)


def test_a_server_without_a_diarizer_says_so(talk, tmp_path):
    config = app_config(diarizer_model="")
    with serve(config, tiny_pipeline(config)) as url:
        client = Client(url, verbose=False, download_files=str(tmp_path))
        with pytest.raises(AppError, match="no diarizer is configured"):
            transcribe(client, talk, diarize=True)
        assert transcribe(client, talk)[0]["transcript"]["segments"]  # without speakers it works


def test_zerogpu_refuses_speakers_without_a_diarizer_before_fetching(tiny_asr, tiny_aligner):
    zero = ZeroGpuPipeline(Pipeline(make_tiny_config(diarizer_model=""), asr=tiny_asr, aligner=tiny_aligner), spaces)
    fetched = []
    with pytest.raises(InputError) as refused:
        zero.transcribe("https://example.invalid/talk.mp3", {"diarize": True}, lambda *a: fetched.append(a))
    assert str(refused.value) == NO_DIARIZER and not fetched


# -- renaming, as the player asks ----------------------------------------------------------------------------------

def test_a_rename_rewrites_the_files_from_the_servers_copy(labelled):
    original, result = labelled.value["transcript"], labelled.value["result"]
    before = [f["url"] for f in labelled.value["downloads"]]
    value = labelled.rename({"Speaker 1": " Alice "})
    assert value["names"] == {"Speaker 1": "Alice"} and value["notice"] is None
    assert value["transcript"] == original  # the player keeps the pipeline's labels; the names go beside them
    assert value["result"] == result
    assert [f["orig_name"] for f in value["downloads"]] == [f"talk.{e}" for e in FORMATS]
    assert all(f["url"] not in before for f in value["downloads"])
    files = labelled.files()
    check_files(files, ["Alice", "Speaker 2"])
    assert all("Speaker 1" not in text for text in files.values())

    # Names are always given from the labels: a second rename replaces the first, an empty map undoes them.
    labelled.rename({"Speaker 1": "Bob", "Speaker 2": "Carol"})
    check_files(labelled.files(), ["Bob", "Carol"])
    labelled.rename({"Speaker 1": "Same", "Speaker 2": "Same"})  # two speakers, one name: one speaker
    assert check_files(labelled.files(), ["Same"])["speakers"] == ["Same"]
    labelled.rename({})
    check_files(labelled.files(), TWO)


def test_the_request_cannot_bring_its_own_transcript(labelled):
    fake = {**labelled.value["transcript"], "segments": [{"start": 0, "end": 1, "text": "injected",
                                                          "words": [], "speaker": "Speaker 1"}]}
    labelled.rename({"Speaker 1": "Alice"}, transcript=fake, downloads=["/etc/passwd"])
    files = labelled.files()
    assert "injected" not in "".join(files.values()) and len(labelled.value["downloads"]) == 4
    assert [s["text"] for s in check_files(files, ["Alice", "Speaker 2"])["segments"]] == \
        [s["text"] for s in labelled.value["transcript"]["segments"]]


@pytest.mark.parametrize("names, message", [
    ({"Speaker 1": "A" * 61}, "is 61 characters long; the limit is 60"),
    ({"Speaker 1": "Ann\nBob"}, "holds a control character"),
    ({"Speaker 1": "   "}, "a speaker name cannot be empty"),
    ({"Speaker 1": 7}, "a speaker name must be text, not int"),
    ({"Speaker 9": "Zed"}, "this transcript has no speaker 'Speaker 9'; its speakers are Speaker 1, Speaker 2"),
    ("Alice", BAD_REQUEST),
    ({"Speaker 1": "A", "Speaker 2": "B", "Speaker 3": "C"}, BAD_REQUEST),
])
def test_a_bad_name_keeps_the_last_good_ones_and_says_why(labelled, names, message):
    labelled.rename({"Speaker 1": "Alice"})
    good = labelled.files()
    urls = [f["url"] for f in labelled.value["downloads"]]
    value = labelled.rename(names)
    assert value["notice"].startswith("Not renamed: ") and message in value["notice"]
    assert value["names"] == {"Speaker 1": "Alice"} and [f["url"] for f in value["downloads"]] == urls
    assert labelled.files() == good


def test_a_rename_for_another_result_or_session_changes_nothing(labelled, client, talk):
    stale = dict(labelled.value)
    newer = Player(labelled.base, client, transcribe(client, talk, diarize=True, num_speakers=2)[0])
    r = labelled.post({"result": stale["result"], "names": {"Speaker 1": "Old"}})  # made on the replaced result
    assert r.status_code == 200 and all("transcript" not in (out or {}) for out in r.json()["data"])
    check_files(newer.files(), TWO)
    r = labelled.post({"result": stale["result"], "names": {"Speaker 1": "X"}}, session="a-session-with-no-job")
    assert r.status_code >= 400 and r.json()["error"] == STALE
    r = labelled.post(None)  # an event without data
    assert r.status_code == 200 and all("transcript" not in (out or {}) for out in r.json()["data"])
