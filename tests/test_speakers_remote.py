"""Speaker labels in RunPod mode (issue 16): the job schema's speaker fields, and `RemotePipeline` over
tests/runpod_api.py (RunPod's documented job API on loopback) running the real handler on the tiny models, on a
synthetic two-voice conversation sent as an upload. The API key never leaks (remote_helpers.key_never_leaks).
"""
from __future__ import annotations

import pytest

from core.errors import InputError
from core.options import OPTION_NAMES, TranscribeOptions
from core.output.writers import to_string, transcript_to_dict
from core.pipeline import Pipeline
from core.remote.client import RemoteJobError
from core.remote.schema import FIELDS, JobInput, parse_job_input
from model_helpers import make_tiny_config
from remote_helpers import KEY, direct, failure, key_never_leaks, never_called, remote  # noqa: F401 (a fixture)
from runpod_api import RunPodAPI
from speaker_helpers import TWO, assert_labelled, close, talk, tiny_worker  # noqa: F401 (talk: a fixture)

pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind
OFF = "speaker labels are off on this server: no diarizer is configured (DIARIZER_MODEL is empty)"


# -- the job schema ----------------------------------------------------------------------------------------------

def test_every_option_is_a_job_field():
    assert set(OPTION_NAMES) <= set(FIELDS)


def test_speaker_fields_travel_and_are_left_out_when_unused():
    options = TranscribeOptions(diarize=True, min_speakers=2, max_speakers=4)
    payload = JobInput(audio_url="https://example.com/a.mp3", options=options).to_payload()
    assert payload == {"audio_url": "https://example.com/a.mp3", "diarize": True, "min_speakers": 2,
                       "max_speakers": 4}
    assert parse_job_input(payload).options == options
    plain = JobInput(audio_url="https://example.com/a.mp3").to_payload()
    assert plain == {"audio_url": "https://example.com/a.mp3"}  # the same request as before speaker labels
    assert parse_job_input({**plain, "diarize": True, "num_speakers": 3.0}).options.num_speakers == 3


# -- RemotePipeline over the loopback API ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def worker(tiny_asr, tiny_aligner):
    w = tiny_worker(tiny_asr, tiny_aligner)
    yield w
    close(w)


def test_remote_job_gives_speakers_as_the_local_pipeline_does(worker, talk, tiny_asr, tiny_aligner):
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        transcript = remote(api.url).transcribe(str(talk), {"diarize": True, "num_speakers": 2})
        (job,) = api.jobs.values()
    assert job.status == "COMPLETED"
    sent = parse_job_input(job.input)
    assert sent.options == TranscribeOptions(diarize=True, num_speakers=2)
    assert job.input["diarize"] is True and job.input["num_speakers"] == 2
    # What came back is what the worker makes of that job, speakers and all.
    answer = direct(worker, job.input)
    assert (transcript.segments, transcript.speakers) == (answer.segments, answer.speakers)
    assert transcript.speakers == TWO and "worker_diarize" in transcript.timings
    assert_labelled(transcript_to_dict(transcript), *(to_string(transcript, f) for f in ("srt", "vtt", "txt")))
    # The local pipeline, asked the same of the same file, gives the same shape of answer.
    local = Pipeline(make_tiny_config(), asr=tiny_asr, aligner=tiny_aligner)
    try:
        here = local.transcribe(str(talk), {"diarize": True, "num_speakers": 2})
    finally:
        local.close()
    assert here.speakers == transcript.speakers and here.text == transcript.text


def test_remote_job_without_speakers_is_unchanged(worker, talk):
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        transcript = remote(api.url).transcribe(str(talk))
        (job,) = api.jobs.values()
    assert set(job.input) == {"audio_base64", "filename"}
    assert transcript.speakers == [] and transcript.text
    assert all(s.speaker is None and all(w.speaker is None for w in s.words) for s in transcript.segments)


@pytest.mark.parametrize("options, message", [
    ({"diarize": True, "num_speakers": 0}, "num_speakers must be a whole number from 1 to 20"),
    ({"diarize": True, "num_speakers": 100}, "num_speakers must be a whole number from 1 to 20"),
    ({"diarize": True, "min_speakers": 3, "max_speakers": 2}, "min_speakers (3) is more than max_speakers (2)"),
    ({"num_speakers": 2}, "num_speakers needs diarize (speaker labels) to be on"),
])
def test_remote_refuses_bad_speaker_options_before_sending_anything(talk, options, message):
    with RunPodAPI(never_called, api_key=KEY) as api:
        with pytest.raises(InputError) as e:
            remote(api.url).transcribe(str(talk), options)
        assert api.calls == []
    assert failure(e) == message


def test_remote_endpoint_without_a_diarizer_says_so(tiny_asr, tiny_aligner, talk):
    w = tiny_worker(tiny_asr, tiny_aligner, diarizer_model="")
    try:
        with RunPodAPI(w.handle, api_key=KEY) as api:
            with pytest.raises(RemoteJobError) as e:
                remote(api.url).transcribe(str(talk), {"diarize": True})
            assert failure(e) == f"the job failed on the RunPod endpoint …ep42: {OFF}"
            assert remote(api.url).transcribe(str(talk)).text  # the worker still serves other jobs
    finally:
        close(w)


def test_remote_endpoint_whose_diarizer_cannot_run_returns_the_transcript_with_a_warning(tiny_asr, tiny_aligner,
                                                                                         talk, tiny_asr_dir):
    w = tiny_worker(tiny_asr, tiny_aligner, diarizer_model=str(tiny_asr_dir))  # not an x-vector checkpoint
    try:
        with RunPodAPI(w.handle, api_key=KEY) as api:
            transcript = remote(api.url).transcribe(str(talk), {"diarize": True, "num_speakers": 2})
    finally:
        close(w)
    assert transcript.text and transcript.speakers == []
    assert any(m.startswith("speaker labels failed (") for m in transcript.warnings), transcript.warnings
