"""Speaker labels in the outputs (issue 16): golden JSON/SRT/VTT/TXT of a hand-built diarized transcript, written
from the format rules, read back by real parsers (`srt`, `webvtt-py`); the JSON round trip and its checks;
`rename_speakers`; and transcripts without speakers, whose outputs stay as they were."""
import html
import io
import json

import pytest
import srt
import webvtt
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InputError
from core.output.speakers import MAX_NAME_CHARS, check_speaker_name, rename_speakers
from core.output.text import display_width
from core.output.writers import to_string, transcript_from_dict, transcript_to_dict
from core.types import Segment, Transcript, Word

S1, S2 = "Speaker 1", "Speaker 2"


def seg(start, end, text, speaker, step=None):
    """A segment whose words share its speaker, timed `step` seconds apart from `start` (no words without)."""
    words = [Word(start + i * step, start + (i + 1) * step, w, speaker) for i, w in enumerate(text.split())] \
        if step else []
    return Segment(start, end, text, words, speaker)


def talk():
    return Transcript(language="English", duration=12.0,
                      text="Welcome back. Thanks. Glad to be here. Let us start.",
                      segments=[seg(0.0, 1.5, "Welcome back.", S1, 0.75), seg(2.0, 3.0, "Thanks.", S2, 1.0),
                                seg(3.5, 5.0, "Glad to be here.", S2), seg(6.0, 6.75, "Let us start.", S1, 0.25)],
                      speakers=[S1, S2], warnings=["w"], timings={"diarize": 0.5})


def vtt_captions(text):
    return list(webvtt.from_buffer(io.StringIO(text), strict=True))


# --- golden output ----------------------------------------------------------------------------------------------


def test_srt_names_the_speaker_at_the_start_of_each_turn_only():
    assert to_string(talk(), "srt") == (
        "1\n00:00:00,000 --> 00:00:01,500\nSpeaker 1: Welcome back.\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nSpeaker 2: Thanks.\n\n"
        "3\n00:00:03,500 --> 00:00:05,000\nGlad to be here.\n\n"
        "4\n00:00:06,000 --> 00:00:06,750\nSpeaker 1: Let us start.\n\n")
    cues = list(srt.parse(to_string(talk(), "srt")))
    assert [c.content for c in cues] == ["Speaker 1: Welcome back.", "Speaker 2: Thanks.", "Glad to be here.",
                                         "Speaker 1: Let us start."]
    assert [c.start.total_seconds() for c in cues] == [0.0, 2.0, 3.5, 6.0]


def test_vtt_puts_every_cue_in_its_speakers_voice_span():
    assert to_string(talk(), "vtt") == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.500\n<v Speaker 1>Welcome back.\n\n"
        "00:00:02.000 --> 00:00:03.000\n<v Speaker 2>Thanks.\n\n"
        "00:00:03.500 --> 00:00:05.000\n<v Speaker 2>Glad to be here.\n\n"
        "00:00:06.000 --> 00:00:06.750\n<v Speaker 1>Let us start.\n\n")
    captions = vtt_captions(to_string(talk(), "vtt"))
    assert [c.voice for c in captions] == [S1, S2, S2, S1]
    assert [c.text for c in captions] == ["Welcome back.", "Thanks.", "Glad to be here.", "Let us start."]


def test_txt_is_a_paragraph_per_turn():
    assert to_string(talk(), "txt") == ("Speaker 1: Welcome back.\n\n"
                                        "Speaker 2: Thanks. Glad to be here.\n\n"
                                        "Speaker 1: Let us start.\n")


def test_json_has_speakers_on_words_and_segments_and_a_list():
    assert json.loads(to_string(talk(), "json")) == {
        "language": "English", "duration": 12.0, "text": "Welcome back. Thanks. Glad to be here. Let us start.",
        "segments": [
            {"start": 0.0, "end": 1.5, "text": "Welcome back.", "speaker": "Speaker 1",
             "words": [{"start": 0.0, "end": 0.75, "text": "Welcome", "speaker": "Speaker 1"},
                       {"start": 0.75, "end": 1.5, "text": "back.", "speaker": "Speaker 1"}]},
            {"start": 2.0, "end": 3.0, "text": "Thanks.", "speaker": "Speaker 2",
             "words": [{"start": 2.0, "end": 3.0, "text": "Thanks.", "speaker": "Speaker 2"}]},
            {"start": 3.5, "end": 5.0, "text": "Glad to be here.", "speaker": "Speaker 2", "words": []},
            {"start": 6.0, "end": 6.75, "text": "Let us start.", "speaker": "Speaker 1",
             "words": [{"start": 6.0, "end": 6.25, "text": "Let", "speaker": "Speaker 1"},
                       {"start": 6.25, "end": 6.5, "text": "us", "speaker": "Speaker 1"},
                       {"start": 6.5, "end": 6.75, "text": "start.", "speaker": "Speaker 1"}]},
        ],
        "speakers": ["Speaker 1", "Speaker 2"], "warnings": ["w"], "timings": {"diarize": 0.5}}


def test_a_long_turn_is_named_in_its_first_cue_and_the_name_counts_in_the_line_width():
    # "Speaker 1:" plus four 6-letter words fill 38 of 42 columns; the fifth would make 45. Ten words and the name
    # make two lines (the first cue); word11 and word12 the second cue, unnamed, timed from its words.
    text = " ".join(f"word{i:02d}" for i in range(1, 13))
    t = Transcript("English", 20.0, text, [Segment(0.0, 11.5, text, [Word(i - 1.0, i - 0.5, f"word{i:02d}", S1)
                                                                     for i in range(1, 13)], S1)], speakers=[S1])
    assert to_string(t, "srt") == (
        "1\n00:00:00,000 --> 00:00:09,500\nSpeaker 1: word01 word02 word03 word04\n"
        "word05 word06 word07 word08 word09 word10\n\n"
        "2\n00:00:10,000 --> 00:00:11,500\nword11 word12\n\n")
    # Unnamed (the voice span is markup, not text), the same words fit in one cue of two lines.
    assert [(c.voice, c.text) for c in vtt_captions(to_string(t, "vtt"))] == [
        (S1, "word01 word02 word03 word04 word05 word06\nword07 word08 word09 word10 word11 word12")]


def test_the_name_never_stands_alone_on_a_line():
    # 10 + 1 + 32 columns: two lines. Breaking after "Speaker 1:" would be the best balance with the bonus a colon
    # earns; the name keeps its first word instead.
    text = "< < < < < <<<<<<<<<< <<<<<<<<<<<"
    t = Transcript("English", 1.0, text, [Segment(0.0, 1.0, text, [], S1)], speakers=[S1])
    assert to_string(t, "srt") == "1\n00:00:00,000 --> 00:00:01,000\nSpeaker 1: < < < < <\n<<<<<<<<<< <<<<<<<<<<<\n\n"


def test_names_are_escaped_in_vtt_and_kept_on_one_line():
    t = rename_speakers(talk(), {S1: "Tom & <Jerry>", S2: "Ann -->"})
    vtt = to_string(t, "vtt")
    assert "<v Tom &amp; &lt;Jerry&gt;>Welcome back." in vtt and "<v Ann --&gt;>Thanks." in vtt
    assert [html.unescape(c.voice) for c in vtt_captions(vtt)] == ["Tom & <Jerry>", "Ann -->", "Ann -->",
                                                                   "Tom & <Jerry>"]
    assert [c.content for c in srt.parse(to_string(t, "srt"))][:2] == ["Tom & <Jerry>: Welcome back.",
                                                                       "Ann ->: Thanks."]
    # A name that reached the writers without rename_speakers' checks still cannot break a cue or a paragraph.
    raw = talk()
    for s in raw.segments:
        s.speaker = {S1: "Ann\nLee", S2: "Bo\tKim"}[s.speaker]
    assert [c.voice for c in vtt_captions(to_string(raw, "vtt"))] == ["Ann Lee", "Bo Kim", "Bo Kim", "Ann Lee"]
    assert to_string(raw, "txt").startswith("Ann Lee: Welcome back.\n\nBo Kim: Thanks.")


def test_wide_scripts_join_without_spaces_in_a_turn():
    segments = [seg(0.0, 1.0, "你好。", S1), seg(1.0, 2.0, "我很好。", S1), seg(2.0, 3.0, "OK", S2)]
    t = Transcript("Chinese", 5.0, "你好。我很好。OK", segments, speakers=[S1, S2])
    assert to_string(t, "txt") == "Speaker 1: 你好。我很好。\n\nSpeaker 2: OK\n"


def test_a_segment_without_a_speaker_in_a_diarized_transcript_is_left_unlabelled():
    t = talk()
    t.segments[2].speaker = None
    assert to_string(t, "txt") == ("Speaker 1: Welcome back.\n\nSpeaker 2: Thanks.\n\nGlad to be here.\n\n"
                                   "Speaker 1: Let us start.\n")
    assert [c.voice for c in vtt_captions(to_string(t, "vtt"))] == [S1, S2, None, S1]


# --- without speakers: as before -----------------------------------------------------------------------------


def plain():
    t = talk()
    for s in t.segments:
        s.speaker = None
        for w in s.words:
            w.speaker = None
    t.speakers = []
    return t


def test_without_speakers_nothing_changes():
    out = to_string(plain(), "json")
    assert '"speaker' not in out
    assert json.loads(out)["segments"][0] == {"start": 0.0, "end": 1.5, "text": "Welcome back.",
                                              "words": [{"start": 0.0, "end": 0.75, "text": "Welcome"},
                                                        {"start": 0.75, "end": 1.5, "text": "back."}]}
    assert to_string(plain(), "txt") == "Welcome back.\nThanks.\nGlad to be here.\nLet us start.\n"
    assert to_string(plain(), "srt").split("\n")[2] == "Welcome back."
    assert "<v" not in to_string(plain(), "vtt")
    assert transcript_from_dict(json.loads(out)) == plain()


# --- JSON back to a Transcript --------------------------------------------------------------------------------


def test_json_round_trip_keeps_the_speakers():
    t = talk()
    assert transcript_from_dict(json.loads(to_string(t, "json"))) == t
    assert transcript_from_dict(transcript_to_dict(t)).speakers == [S1, S2]


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(speakers="Speaker 1"), "speakers must be a list"),
    (lambda d: d.update(speakers=["Speaker 1", 2]), "speakers[1] must be a speaker's name"),
    (lambda d: d.update(speakers=["Speaker 1", ""]), "speakers[1] must be a speaker's name"),
    (lambda d: d.update(speakers=["Speaker 1", "a\nb"]), "speakers[1] must be a speaker's name"),
    (lambda d: d.update(speakers=["Speaker 1", "Speaker 1"]), "different names"),
    (lambda d: d["segments"][1].update(speaker="Speaker 3"), "segments[1].speaker must be one of"),
    (lambda d: d["segments"][0]["words"][1].update(speaker=7), "segments[0].words[1].speaker must be one of"),
    (lambda d: d.pop("speakers"), "segments[0].words[0].speaker must be one of"),
])
def test_malformed_speakers_name_the_bad_field(mutate, field):
    d = json.loads(to_string(talk(), "json"))
    mutate(d)
    with pytest.raises(InputError) as err:
        transcript_from_dict(d)
    assert field in str(err.value) and str(err.value).startswith("malformed transcript: ")


# --- renaming -------------------------------------------------------------------------------------------------


def test_rename_gives_a_renamed_copy_in_every_format():
    t = talk()
    renamed = rename_speakers(t, {S1: "  Alice ", S2: "Bob"})
    assert renamed.speakers == ["Alice", "Bob"]
    assert [s.speaker for s in renamed.segments] == ["Alice", "Bob", "Bob", "Alice"]
    assert [w.speaker for s in renamed.segments for w in s.words] == ["Alice"] * 2 + ["Bob"] + ["Alice"] * 3
    assert to_string(renamed, "txt").startswith("Alice: Welcome back.\n\nBob: Thanks. Glad to be here.\n\n")
    assert t == talk()  # the original is untouched
    partly = rename_speakers(t, {S2: "Bob"})
    assert partly.speakers == [S1, "Bob"] and partly.segments[0].speaker == S1


def test_two_speakers_given_one_name_become_one():
    merged = rename_speakers(talk(), {S1: "Host", S2: "Host"})
    assert merged.speakers == ["Host"]
    assert to_string(merged, "txt") == "Host: Welcome back. Thanks. Glad to be here. Let us start.\n"
    srt_text = to_string(merged, "srt")
    assert [c.content for c in srt.parse(srt_text)] == ["Host: Welcome back.", "Thanks.", "Glad to be here.",
                                                        "Let us start."]
    onto = rename_speakers(talk(), {S2: S1})  # onto a name already there
    assert onto.speakers == [S1] and {s.speaker for s in onto.segments} == {S1}
    assert transcript_from_dict(json.loads(to_string(merged, "json"))) == merged


@pytest.mark.parametrize("names, needle", [
    ({S1: ""}, "cannot be empty"),
    ({S1: "   "}, "cannot be empty"),
    ({S1: "x" * (MAX_NAME_CHARS + 1)}, f"is {MAX_NAME_CHARS + 1} characters long; the limit is {MAX_NAME_CHARS}"),
    ({S1: "Ann\nLee"}, "control character"),
    ({S1: "Ann\tLee"}, "control character"),
    ({S1: "Ann\u2028Lee"}, "control character"),
    ({S1: 5}, "must be text"),
    ({"Speaker 9": "Zed"}, "no speaker 'Speaker 9'; its speakers are Speaker 1, Speaker 2"),
])
def test_bad_names_are_refused_with_a_reason(names, needle):
    with pytest.raises(InputError) as err:
        rename_speakers(talk(), names)
    assert needle in str(err.value)


def test_name_limits():
    assert check_speaker_name(" " + "é" * MAX_NAME_CHARS + " ") == "é" * MAX_NAME_CHARS
    assert check_speaker_name("Dr. Lee (host) 👋🏽") == "Dr. Lee (host) 👋🏽"
    with pytest.raises(InputError, match="no speaker labels"):
        rename_speakers(plain(), {S1: "Alice"})
    with pytest.raises(InputError, match="map each current name"):
        rename_speakers(talk(), [("Speaker 1", "Alice")])


# --- properties -----------------------------------------------------------------------------------------------

_token = st.text("abcdefghijklmnopqrstuvwxyz&<>',.?", min_size=1, max_size=12)


@st.composite
def diarized(draw):
    names = draw(st.lists(st.sampled_from(["Speaker 1", "Speaker 2", "Speaker 3", "Ann & <Bo>"]), min_size=1,
                          max_size=8))
    segments, t = [], 0.0
    for name in names:
        tokens = draw(st.lists(_token, min_size=1, max_size=25))
        length = draw(st.floats(0.1, 10))
        step = length / len(tokens)
        words = [Word(t + i * step, t + (i + 1) * step, tok, name) for i, tok in enumerate(tokens)]
        segments.append(Segment(t, t + length, " ".join(tokens), words, name))
        t += length + draw(st.floats(0, 2))
    return Transcript("English", t, " ".join(s.text for s in segments), segments,
                      speakers=list(dict.fromkeys(names)))


@given(diarized())
def test_property_every_cue_parses_with_its_speaker_and_every_turn_is_named_once(t):
    turn_starts = [i for i, s in enumerate(t.segments) if i == 0 or s.speaker != t.segments[i - 1].speaker]
    srt_cues = list(srt.parse(to_string(t, "srt")))
    named = [c.content for c in srt_cues if any(c.content.startswith(f"{n}: ") for n in t.speakers)]
    assert len(named) == len(turn_starts)
    for c in srt_cues:
        assert all(display_width(line) <= 42 for line in c.content.split("\n"))
    captions = vtt_captions(to_string(t, "vtt"))
    assert {html.unescape(c.voice) for c in captions} == set(t.speakers)
    said = "".join(html.unescape(c.text) for c in captions).replace(" ", "").replace("\n", "")
    assert said == "".join(s.text for s in t.segments).replace(" ", "")
    back = transcript_from_dict(json.loads(to_string(t, "json")))
    assert back.speakers == t.speakers
    assert [(s.speaker, [w.speaker for w in s.words]) for s in back.segments] == \
        [(s.speaker, [w.speaker for w in s.words]) for s in t.segments]
    paragraphs = to_string(t, "txt").rstrip("\n").split("\n\n")
    assert len(paragraphs) == len(turn_starts)
