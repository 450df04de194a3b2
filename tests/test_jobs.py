import pytest
from hypothesis import given, strategies as st

from core.errors import InputError
from core.remote.schema import FIELDS, JobInput, parse_job_input
from core.options import TranscribeOptions

URL = "https://example.com/episode.mp3"


def test_defaults():
    job = parse_job_input({"audio_url": URL})
    assert job == JobInput(audio_url=URL)
    assert job.options == TranscribeOptions()


def test_all_fields():
    job = parse_job_input({"audio_base64": "AAAA", "filename": "a.ogg", "language": "fr", "word_timestamps": False,
                           "context": "Qwen", "formats": ["SRT", "vtt", "srt"], "chunk_seconds": 45})
    assert job.options.language == "French" and job.formats == ("srt", "vtt") and job.options.chunk_seconds == 45.0
    assert job.options == TranscribeOptions(language="French", context="Qwen", word_timestamps=False,
                                              chunk_seconds=45.0)


@pytest.mark.parametrize("raw, needle", [
    ("not a dict", "JSON object"),
    ({}, "exactly one"),
    ({"audio_url": URL, "audio_base64": "AAAA"}, "exactly one"),
    ({"audio_url": ""}, "exactly one"),
    ({"audio_url": URL, "speed": 2}, "unknown input field"),
    ({"audio_url": 5}, "'audio_url' must be a string"),
    ({"audio_url": URL, "word_timestamps": "yes"}, "boolean"),
    ({"audio_url": URL, "formats": "srt"}, "'formats' must be a list"),
    ({"audio_url": URL, "formats": ["docx"]}, "unknown format"),
    ({"audio_url": URL, "formats": [3]}, "unknown format"),
    ({"audio_url": URL, "chunk_seconds": 1}, "between 5 and 180"),
    ({"audio_url": URL, "chunk_seconds": 1000}, "between 5 and 180"),
    ({"audio_url": URL, "chunk_seconds": float("nan")}, "between 5 and 180"),
    ({"audio_url": URL, "chunk_seconds": True}, "number"),
    ({"audio_url": URL, "language": "klingon"}, "unsupported language"),
    ({"audio_url": URL, "context": "x" * 5000}, "context"),
    ({"audio_url": "https://a/" + "x" * 5000}, "longer than"),
    ({"audio_base64": "A" * 20_000_001}, "audio_url"),
])
def test_bad_jobs_say_what_to_change(raw, needle):
    with pytest.raises(InputError, match=needle):
        parse_job_input(raw)


def test_payload_round_trip():
    job = parse_job_input({"audio_url": URL, "language": "de", "formats": ["txt"], "context": "x"})
    assert parse_job_input(job.to_payload()) == job
    assert parse_job_input(JobInput(audio_url=URL).to_payload()) == JobInput(audio_url=URL)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)


@given(st.dictionaries(st.sampled_from(list(FIELDS) + ["x", "audio"]), json_values, max_size=6))
def test_fuzzed_inputs_either_parse_or_raise_input_error(raw):
    try:
        job = parse_job_input(raw)
    except InputError as e:
        assert str(e) and "Traceback" not in str(e)
    else:
        assert (job.audio_url is None) != (job.audio_base64 is None)
