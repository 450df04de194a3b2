"""A recording reached through several inputs (a folder, a list naming a file in it, the same URL twice, a path
spelled two ways) is one item of the batch, transcribed once, under the name its first input gave it."""
from __future__ import annotations

from audio_helpers import silence, write_audio
from core.batch import collect
from core.config import Config


def test_the_same_recording_through_several_inputs_is_one_item(tmp_path):
    (tmp_path / "show").mkdir()
    (tmp_path / "elsewhere").mkdir()
    a = write_audio(tmp_path / "show" / "a.wav", silence(1.0))
    b = write_audio(tmp_path / "show" / "b.wav", silence(1.0))
    other = write_audio(tmp_path / "elsewhere" / "a.wav", silence(1.0))  # another file of the same name
    url = "https://example.com/ep.mp3"
    listing = tmp_path / "list.txt"  # list lines are not fetched while planning: no network here
    listing.write_text(f"show/a.wav\n{tmp_path}/show/../show/b.wav\n{url}\n{other}\n{url}\n")
    plan = collect([tmp_path / "show", listing, str(a)], Config())
    assert plan.problems == []
    assert [(i.source, i.name) for i in plan.items] == [(str(a), "a"), (str(b), "b"), (url, "ep"), (str(other), "a-2")]
