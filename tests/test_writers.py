"""core.output.writers: golden SRT/VTT/TXT/JSON, read back by real parsers; transcript_from_dict; write_files."""
import dataclasses
import html
import io
import json
import math

import pytest
import srt
import webvtt
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InputError
from core.output.text import display_width
from core.types import Segment, Transcript, Word
from core.output.writers import (FORMATS, WriteJSON, WriteSRT, WriteTXT, WriteVTT, format_timestamp, to_string,
                          transcript_from_dict, transcript_to_dict, write_files)


def small():
    return Transcript(
        language="English", duration=10.0, text="Hello, world. Second line here.",
        segments=[
            Segment(0.0, 1.5, "Hello, world.", [Word(0.0, 0.5, "Hello,"), Word(0.6, 1.5, "world.")]),
            Segment(2.0, 4.25, "Second line here.",
                    [Word(2.0, 2.5, "Second"), Word(2.5, 3.0, "line"), Word(3.5, 4.25, "here.")]),
        ],
        warnings=["a warning"], timings={"asr": 1.23456})


def render(writer, transcript):
    buffer = io.StringIO()
    writer.write(transcript, buffer)
    return buffer.getvalue()


def srt_cues(text):
    return [(c.start.total_seconds(), c.end.total_seconds(), c.content.split("\n")) for c in srt.parse(text)]


def vtt_cues(text):
    return [(c.start_in_seconds + int(c.start[-3:]) / 1000, c.end_in_seconds + int(c.end[-3:]) / 1000,
             [html.unescape(line) for line in c.lines]) for c in webvtt.from_buffer(io.StringIO(text), strict=True)]


# --- golden output ----------------------------------------------------------------------------------------------


def test_srt_golden():
    assert render(WriteSRT(), small()) == (
        "1\n"
        "00:00:00,000 --> 00:00:01,500\n"
        "Hello, world.\n"
        "\n"
        "2\n"
        "00:00:02,000 --> 00:00:04,250\n"
        "Second line here.\n"
        "\n")


def test_vtt_golden():
    assert render(WriteVTT(), small()) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:01.500\n"
        "Hello, world.\n"
        "\n"
        "00:00:02.000 --> 00:00:04.250\n"
        "Second line here.\n"
        "\n")


def test_txt_golden():
    assert render(WriteTXT(), small()) == "Hello, world.\nSecond line here.\n"


def test_json_is_the_dataclass_with_times_to_the_millisecond():
    out = render(WriteJSON(), small())
    assert json.loads(out) == {
        "language": "English", "duration": 10.0, "text": "Hello, world. Second line here.",
        "segments": [
            {"start": 0.0, "end": 1.5, "text": "Hello, world.",
             "words": [{"start": 0.0, "end": 0.5, "text": "Hello,"}, {"start": 0.6, "end": 1.5, "text": "world."}]},
            {"start": 2.0, "end": 4.25, "text": "Second line here.",
             "words": [{"start": 2.0, "end": 2.5, "text": "Second"}, {"start": 2.5, "end": 3.0, "text": "line"},
                       {"start": 3.5, "end": 4.25, "text": "here."}]},
        ],
        "warnings": ["a warning"], "timings": {"asr": 1.235}}


def test_two_lines_are_balanced_and_prefer_a_break_after_punctuation():
    t = Transcript("English", 20.0, "", [
        Segment(0.0, 4.0, "The quick brown fox jumps over the lazy dog near the riverbank"),
        Segment(5.0, 9.0, "Once upon a time, in a small village by the sea,"),
        Segment(10.0, 15.0, "今天天气很好，我们一起去公园散步吧，然后去超市买东西。"),
    ])
    assert to_string(t, "srt") == (
        "1\n00:00:00,000 --> 00:00:04,000\nThe quick brown fox jumps over\nthe lazy dog near the riverbank\n\n"
        "2\n00:00:05,000 --> 00:00:09,000\nOnce upon a time,\nin a small village by the sea,\n\n"
        "3\n00:00:10,000 --> 00:00:15,000\n今天天气很好，我们一起去公园散步吧，\n然后去超市买东西。\n\n")


def long_segment(with_words):
    tokens = [f"word{i:02d}" for i in range(1, 25)]
    words = [Word(i - 1.0, i - 0.5, tok) for i, tok in enumerate(tokens, start=1)] if with_words else []
    end = 23.5 if with_words else 16.7
    return Transcript("English", 30.0, " ".join(tokens), [Segment(0.0, end, " ".join(tokens), words)])


def test_a_segment_too_long_for_two_lines_becomes_cues_timed_by_its_words():
    # Six 6-letter words fill a 42-column line; 24 words make two cues of two lines, split between word12 and
    # word13 (which start at 11 s and 12 s and end half a second later).
    assert to_string(long_segment(True), "srt") == (
        "1\n00:00:00,000 --> 00:00:11,500\n"
        "word01 word02 word03 word04 word05 word06\nword07 word08 word09 word10 word11 word12\n\n"
        "2\n00:00:12,000 --> 00:00:23,500\n"
        "word13 word14 word15 word16 word17 word18\nword19 word20 word21 word22 word23 word24\n\n")


def test_without_words_the_cue_times_follow_character_counts():
    # 167 characters over 16.7 s: 0.1 s each; the first cue ends at character 83, the second starts at 84.
    assert to_string(long_segment(False), "vtt") == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:08.300\n"
        "word01 word02 word03 word04 word05 word06\nword07 word08 word09 word10 word11 word12\n\n"
        "00:00:08.400 --> 00:00:16.700\n"
        "word13 word14 word15 word16 word17 word18\nword19 word20 word21 word22 word23 word24\n\n")


def test_markup_characters_are_escaped_in_vtt_and_arrows_broken_in_srt():
    t = Transcript("English", 5.0, "", [Segment(0.0, 2.0, "if a < b && c > d --> done")])
    vtt = to_string(t, "vtt")
    assert "if a &lt; b &amp;&amp; c &gt; d --&gt; done" in vtt
    assert vtt_cues(vtt)[0][2] == ["if a < b && c > d --> done"]
    assert srt_cues(to_string(t, "srt"))[0][2] == ["if a < b && c > d -> done"]


def test_empty_transcript_gives_valid_empty_files():
    t = Transcript("unknown", 0.0, "")
    assert to_string(t, "srt") == "" and srt_cues("") == []
    assert to_string(t, "vtt") == "WEBVTT\n\n" and vtt_cues(to_string(t, "vtt")) == []
    assert to_string(t, "txt") == ""
    assert transcript_from_dict(json.loads(to_string(t, "json"))) == t


def test_overlapping_or_overlong_segments_still_give_ordered_cues_inside_the_duration():
    t = Transcript("English", 6.0, "", [Segment(0.0, 5.0, "one"), Segment(3.0, 4.0, "two"),
                                        Segment(5.5, 9.0, "three"), Segment(8.0, 8.5, " ")])
    cues = srt_cues(to_string(t, "srt"))
    assert [(s, e) for s, e, _ in cues] == [(0.0, 5.0), (5.0, 5.0), (5.5, 6.0)]


def as_json_dict(t):
    """The definition transcript_to_dict keeps to: asdict, then every float rounded to the millisecond, and speaker
    labels left out where there are none (a `speaker` of None, an empty `speakers`)."""
    def rounded(v):
        if isinstance(v, float):
            return round(v, 3)
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items() if x or k not in ("speaker", "speakers")}
        return [rounded(x) for x in v] if isinstance(v, list) else v

    return rounded(dataclasses.asdict(t))


class Seconds(float):
    """A float subclass (numpy's float64 is one) in a place where a transcript holds floats."""


def test_json_dict_is_asdict_rounded_for_unusual_values_too():
    t = small()
    t.timings = {"asr": Seconds(1.23456), "n": 3, "flag": True, "none": None}
    t.warnings = ("a tuple", 1.23456)  # kept as asdict gives it: a tuple, unrounded
    t.segments[0].words.append(Word(1.0004, 2, "int end"))
    for value in (t, small(), Transcript("x", 0.0, "")):
        got, want = transcript_to_dict(value), as_json_dict(value)
        assert got == want and json.dumps(got) == json.dumps(want)  # dumps tells 1 from 1.0 and keeps key order
    with pytest.raises(TypeError):
        transcript_to_dict({"language": "English"})


# --- format_timestamp and format names ----------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, kwargs, expected", [
    (0.0, {}, "00:00.000"),
    (1.5, {"always_include_hours": True}, "00:00:01.500"),
    (61.25, {"decimal_marker": ","}, "01:01,250"),
    (3661.5, {}, "01:01:01.500"),
    (59.9996, {}, "01:00.000"),  # rounds up across the minute
    (360000.0, {}, "100:00:00.000"),
])
def test_format_timestamp(seconds, kwargs, expected):
    assert format_timestamp(seconds, **kwargs) == expected


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_format_timestamp_rejects_impossible_times(bad):
    with pytest.raises(InputError):
        format_timestamp(bad)


def test_unknown_format_lists_the_valid_ones():
    with pytest.raises(InputError) as err:
        to_string(small(), "docx")
    assert all(f in str(err.value) for f in FORMATS)
    assert to_string(small(), ".SRT") == to_string(small(), "srt")


# --- JSON round trip ------------------------------------------------------------------------------------------------


def test_json_round_trip_keeps_unicode():
    t = Transcript("Chinese", 3.0, "你好，世界 👋🏽 café",
                   [Segment(0.0, 2.5, "你好，世界 👋🏽 café",
                            [Word(0.0, 0.2, "你"), Word(0.2, 0.4, "好，"), Word(1.0, 2.5, "👋🏽")])],
                   warnings=["注意"], timings={"decode": 0.5})
    out = to_string(t, "json")
    assert "你好，世界 👋🏽 café" in out and "\\u" not in out
    assert transcript_from_dict(json.loads(out)) == t
    assert "👋🏽" in to_string(t, "srt") and "👋🏽" in to_string(t, "vtt")


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("segments"), "segments"),
    (lambda d: d.update(language=None), "language"),
    (lambda d: d.update(duration="10"), "duration"),
    (lambda d: d.update(duration=True), "duration"),
    (lambda d: d["segments"][1].update(start=-1), "segments[1].start"),
    (lambda d: d["segments"][0].update(end=float("nan")), "segments[0].end"),
    (lambda d: d["segments"][0].update(text=3), "segments[0].text"),
    (lambda d: d["segments"][1]["words"][2].update(text=None), "segments[1].words[2].text"),
    (lambda d: d["segments"][1].update(words={}), "segments[1].words"),
    (lambda d: d.update(segments=["x"]), "segments[0]"),
    (lambda d: d.update(warnings=[1]), "warnings[0]"),
    (lambda d: d.update(timings={"asr": "fast"}), "timings.asr"),
])
def test_malformed_dicts_name_the_bad_field(mutate, field):
    d = json.loads(to_string(small(), "json"))
    mutate(d)
    with pytest.raises(InputError) as err:
        transcript_from_dict(d)
    assert f"{field} must be" in str(err.value)


def test_optional_fields_default_and_extra_keys_are_ignored():
    d = json.loads(to_string(small(), "json"))
    for key in ("warnings", "timings"):
        del d[key]
    for seg in d["segments"]:
        del seg["words"]
    d["srt"] = "ignored"
    t = transcript_from_dict(d)
    assert (t.warnings, t.timings, [s.words for s in t.segments]) == ([], {}, [[], []])
    with pytest.raises(InputError):
        transcript_from_dict([1, 2])


# --- files ----------------------------------------------------------------------------------------------------------


def test_write_files_writes_each_format_once_inside_out_dir(tmp_path):
    paths = write_files(small(), tmp_path / "out", "../../my talk", ["srt", "json", "SRT", "txt"])
    # Separators become "_" and leading dots go, so the name cannot climb out of out_dir or hide.
    assert [p.name for p in paths] == ["_.._my talk.srt", "_.._my talk.json", "_.._my talk.txt"]
    assert all(p.parent == tmp_path / "out" for p in paths)
    assert paths[0].read_text(encoding="utf-8") == to_string(small(), "srt")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)


def test_write_files_checks_formats_first_and_leaves_no_partial_file(tmp_path):
    with pytest.raises(InputError):
        write_files(small(), tmp_path, "a", ["srt", "pdf"])
    assert list(tmp_path.iterdir()) == []
    broken = small()
    broken.segments[0].end = math.nan
    with pytest.raises(InputError):
        write_files(broken, tmp_path, "b", ["json"])
    assert list(tmp_path.iterdir()) == []


# --- properties -------------------------------------------------------------------------------------------------

_word = st.one_of(st.text("abcdefghijklmnopqrstuvwxyz&<>',.?", min_size=1, max_size=12),
                  st.text("今天气很好我们，。", min_size=1, max_size=30),
                  st.text("abc/:", min_size=40, max_size=70))  # URL-like tokens wider than a line


@st.composite
def transcripts(draw):
    duration = draw(st.floats(1, 3600))
    times = sorted(draw(st.lists(st.floats(0, duration), min_size=0, max_size=16)))
    segments = []
    for a, b in zip(times[::2], times[1::2]):
        tokens = draw(st.lists(_word, min_size=1, max_size=30))
        text = " ".join(tokens)
        words = []
        if draw(st.booleans()):
            step = (b - a) / len(tokens)
            words = [Word(a + i * step, a + (i + 1) * step, tok) for i, tok in enumerate(tokens)]
        segments.append(Segment(a, b, text, words))
    return Transcript("English", duration, " ".join(s.text for s in segments), segments)


def check_cues(cues, t):
    prev_end = 0.0
    for start, end, lines in cues:
        assert prev_end <= start <= end <= t.duration + 0.0005
        assert 1 <= len(lines) <= 2
        for line in lines:
            assert line and line == line.strip()
            assert len(line) <= 42 and display_width(line) <= 42
        prev_end = end
    said = "".join("".join(lines) for _, _, lines in cues).replace(" ", "")
    assert said == "".join(s.text for s in t.segments).replace(" ", "")


@given(transcripts())
def test_property_srt_and_vtt_parse_back_with_ordered_cues_and_short_lines(t):
    check_cues(srt_cues(to_string(t, "srt")), t)
    check_cues(vtt_cues(to_string(t, "vtt")), t)
    assert transcript_from_dict(json.loads(to_string(t, "json"))).text == t.text
    assert json.dumps(transcript_to_dict(t)) == json.dumps(as_json_dict(t))
