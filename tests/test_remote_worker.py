"""RunPod backend mode with the real worker (tiny checkpoints) behind tests/runpod_api.py, RunPod's documented job
API on loopback: jobs by URL and by upload (Opus, squeezed to fit), the worker's own failures and cancels, and a
client process that imports no model package. The key never leaks (remote_helpers.key_never_leaks).
"""
from __future__ import annotations

import base64
import subprocess
import sys
import threading

import pytest

from core.audio.decode import decode_audio
from core.errors import InputError, TooLargeError
from core.options import TranscribeOptions
from core.errors import JobCancelled
from core.remote.client import RemoteJobError, RemotePipeline
from core.remote.schema import JobInput, parse_job_input
from remote_helpers import (KEY, ROOT, SR, direct, failure, key_never_leaks, media, never_called,  # noqa: F401
                            remote, same_result, speech, worker)
from runpod_api import RunPodAPI

pytestmark = pytest.mark.usefixtures("own_tempdir")  # conftest: no temp file may be left behind


def test_job_by_url(worker, media, speech):
    seen, heard = [], []
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        client = remote(api.url, allow_private_urls=True)  # lets the player's copy reach the loopback server
        transcript = client.transcribe(media.url("/slow.wav"), TranscribeOptions(language="English"),
                                       progress=lambda *a: seen.append(a), on_audio=heard.append)
        (job,) = api.jobs.values()
    assert media.paths_seen().count("/slow.wav") == 2  # the worker's download and the player's copy
    assert parse_job_input(job.input) == JobInput(audio_url=media.url("/slow.wav"), options=TranscribeOptions(language="English"))
    assert job.execution_timeout_s == 3600  # the client's policy.executionTimeout, RUNPOD_TIMEOUT_S's default
    assert transcript.duration == pytest.approx(len(speech[0]) / SR, abs=0.05)
    assert transcript.segments and all(seg.words for seg in transcript.segments)
    assert same_result(transcript, direct(worker, job.input))
    assert {"prepare", "endpoint", "worker_transcribe", "worker_total"} <= set(transcript.timings)
    # The worker's progress came through the status polls: its download in bytes (sent as MB, one decimal).
    downloads = [(done, total) for stage, done, total in seen if stage == "download"]
    assert downloads and all(total == pytest.approx(len(speech[1]), abs=0.051e6) for _, total in downloads)
    assert [s for s, *_ in seen][:2] == ["upload", "upload"]
    # The player got its own copy of the audio, fetched on this side while the worker transcribed.
    assert len(heard) == 1 and len(heard[0]) == pytest.approx(len(speech[0]), abs=SR * 0.02)


def test_player_copy_refused_here_still_gives_the_transcript(worker, media, caplog):
    heard = []
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        # This side blocks loopback URLs (the default) though the worker may fetch them: no sound, same transcript.
        transcript = remote(api.url).transcribe(media.url("/speech.wav"), on_audio=heard.append)
    assert transcript.segments and heard == []
    assert "no audio for the player" in caplog.text


def test_job_by_upload_is_sent_inline_as_opus(worker, speech, tmp_path):
    path = tmp_path / "take 1.wav"
    path.write_bytes(speech[1])
    heard, seen = [], []
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        transcript = remote(api.url).transcribe(str(path), progress=lambda s, *_: seen.append(s),
                                                on_audio=heard.append)
        from_bytes = remote(api.url).transcribe(speech[1], filename="take.wav")
        first, second = api.jobs.values()
    assert parse_job_input(first.input) == JobInput(audio_base64=first.input["audio_base64"], filename="speech.ogg")
    sent = base64.b64decode(first.input["audio_base64"])
    assert sent[:4] == b"OggS" and len(sent) < len(speech[1]) / 8  # Opus, far smaller than the WAV
    assert len(heard) == 1 and len(heard[0]) == pytest.approx(len(speech[0]), abs=SR * 0.02)
    (tmp_path / "sent.ogg").write_bytes(sent)
    assert len(decode_audio(tmp_path / "sent.ogg")) == pytest.approx(len(speech[0]), abs=SR * 0.02)
    assert transcript.duration == pytest.approx(len(speech[0]) / SR, abs=0.05) and transcript.segments
    assert same_result(transcript, direct(worker, first.input))
    assert same_result(from_bytes, transcript)
    assert second.input.keys() == first.input.keys() and second.input["filename"] == first.input["filename"]
    assert seen.index("decode") < seen.index("upload")


def test_local_paths_are_refused_when_not_allowed(speech, tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(speech[1])
    with RunPodAPI(never_called, api_key=KEY) as api:
        with pytest.raises(InputError):
            remote(api.url).transcribe(str(path), allow_local=False)
        assert api.calls == []


def test_long_recordings_get_a_lower_bit_rate_then_a_clear_refusal(worker, speech):
    seconds = len(speech[0]) / SR
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        # Room for about 16 kbit/s: the upload is squeezed below the default 24 kbit/s and still transcribed.
        squeezed = RemotePipeline(remote(api.url).config, payload_limit=int(16_000 / 8 * seconds * 4 / 3) + 400)
        transcript = squeezed.transcribe(speech[1])
        (job,) = api.jobs.values()
        sent = len(base64.b64decode(job.input["audio_base64"]))
        assert 12_000 / 8 * seconds < sent < 20_000 / 8 * seconds
        assert transcript.segments
        # Room for 9 kbit/s: tried at the 12 kbit/s floor (VBR speech may come in under), still too large.
        # Room for 6 kbit/s: hopeless, refused without encoding. Either way nothing is sent.
        refusals = []
        for room_bps in (9_000, 6_000):
            tight = RemotePipeline(remote(api.url).config, payload_limit=int(room_bps / 8 * seconds * 4 / 3) + 400)
            with pytest.raises(TooLargeError) as e:
                tight.transcribe(speech[1])
            refusals.append(failure(e))
        assert len(api.jobs) == 1
    fits = []
    for msg in refusals:
        assert f"this recording is {seconds:.0f} s long" in msg and "give its URL instead" in msg
        fits.append(float(msg.split("about ")[1].split(" s of speech")[0]) / seconds)
    assert 0.5 < fits[0] < 1.0 and 0.3 < fits[1] < 0.6  # how much of the recording would have fitted


def test_failing_job_shows_the_workers_message(worker, media):
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        with pytest.raises(RemoteJobError) as e:
            remote(api.url).transcribe(media.url("/missing.mp3"))
        (job,) = api.jobs.values()
    assert job.status == "FAILED" and isinstance(job.error, str) and job.error
    assert failure(e) == f"the job failed on the RunPod endpoint …ep42: {job.error}"


def test_cancel_a_running_job_stops_the_worker(worker, media):
    cancel = threading.Event()
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        with pytest.raises(JobCancelled):
            remote(api.url).transcribe(media.url("/endless.wav"), cancel=cancel,
                                       progress=lambda stage, *_: stage == "download" and cancel.set())
        (job,) = api.jobs.values()
        assert api.ops("cancel") == [job.id] and job.status == "CANCELLED"
        assert job.worker_done.wait(5)  # the handler's task was stopped, as RunPod's stop signal does
        # The worker is free again: the next job runs to the end.
        assert remote(api.url).transcribe(media.url("/speech.wav")).segments


def test_client_process_transcribes_without_any_model_package(worker, media, speech, tmp_path):
    """A client process (the Space in RunPod mode) runs whole jobs, by URL and by upload, and never imports torch."""
    path = tmp_path / "take.wav"
    path.write_bytes(speech[1])
    code = (
        "import sys\n"
        "from core.config import config_from_env\n"
        "from core.remote.client import RemotePipeline\n"
        "p = RemotePipeline(config_from_env())\n"
        "for source in sys.argv[1:]:\n"
        "    print(len(p.transcribe(source).segments))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'silero_vad') if m in sys.modules))\n"
    )
    with RunPodAPI(worker.handle, api_key=KEY) as api:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ASR_BACKEND": "runpod",
               "RUNPOD_ENDPOINT_URL": api.url, "RUNPOD_API_KEY": KEY}
        out = subprocess.run([sys.executable, "-c", code, media.url("/speech.wav"), str(path)], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
        assert len(api.jobs) == 2
    assert out.returncode == 0, out.stderr[-2000:]
    *counts, imported = out.stdout.splitlines()
    assert imported == "[]" and len(counts) == 2 and all(int(c) > 0 for c in counts)
    assert KEY not in out.stdout + out.stderr
