"""The OpenAI-compatible API (webui.openai_api), driven through the real app on loopback with the real `openai` client.

One app (tiny models, an API key) serves a short and a 10-minute synthetic file in every response format; other apps
test the closed API of a private page and the full waiting line. SRT and WebVTT are parsed by `srt` and `webvtt`.
"""
from __future__ import annotations

import io
import json
import logging
import select
import socket
import threading
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import openai
import pytest
import srt
import webvtt

from audio_helpers import make_podcast
from net_helpers import wait_until
from runpod_api import RunPodAPI
from webui_helpers import app_config, serve, tiny_pipeline
from webui.waiting import WaitingLine

KEY = "sk-test-9f8e7d6c5b4a"
FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")


@pytest.fixture(scope="module")
def api():
    with serve(app_config(api_key=KEY, max_upload_mb=8, max_duration_s=900.0)) as url:
        yield url


def client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "v1", api_key=key, max_retries=0, timeout=600)


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    return make_podcast(tmp_path_factory.mktemp("api") / "short.mp3", 0.3)


@pytest.fixture(scope="module")
def long(tmp_path_factory):
    return make_podcast(tmp_path_factory.mktemp("api") / "ten-minutes.mp3", 10.0, bitrate=32_000)


def transcribe(url: str, path, **kwargs):
    with open(path, "rb") as f:
        return client(url).audio.transcriptions.create(file=f, model="whisper-1", **kwargs)


def check_subtitles(fmt: str, body: str, duration: float) -> list[tuple[float, float, str]]:
    """The cues of an SRT or WebVTT text, parsed by the reference parsers, checked in order and within the audio."""
    if fmt == "srt":
        cues = [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(body)]
    else:
        assert body.startswith("WEBVTT\n")
        cues = [(c.start_in_seconds, c.end_in_seconds, c.text) for c in webvtt.from_buffer(io.StringIO(body))]
    assert cues
    for (start, end, text), following in zip(cues, cues[1:] + [(duration, duration, "")]):
        assert 0 <= start < end <= following[0] + 1e-3 <= duration + 1e-3 and text.strip()
    return cues


def check_verbose(result, duration: float, words: bool, segments: bool) -> None:
    assert result.language == "english" and result.text.strip()
    assert abs(result.duration - duration) < 0.1 and result.usage.seconds == result.duration
    assert (result.segments is not None) == segments and (result.words is not None) == words
    if segments:
        assert [s.id for s in result.segments] == list(range(len(result.segments)))
        assert " ".join(s.text.strip() for s in result.segments) == result.text
        for s in result.segments:
            assert 0 <= s.start < s.end <= duration + 1e-3 and abs(s.seek - s.start * 100) <= 1
            assert s.tokens == [] and s.temperature == 0.0 and s.compression_ratio > 0
    if words:
        assert result.words and all(0 <= w.start <= w.end <= duration + 1e-3 and w.word == w.word.strip() for w in result.words)
        starts = [w.start for w in result.words]
        assert starts == sorted(starts)
        assert "".join(w.word for w in result.words).replace(" ", "") in result.text.replace(" ", "")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("audio", ["short", "long"])
def test_every_response_format(api, fmt, audio, request):
    pod = request.getfixturevalue(audio)
    result = transcribe(api, pod.path, response_format=fmt, language="en", temperature=0.2)
    if fmt == "json":
        assert isinstance(result, openai.types.audio.Transcription) and result.text.strip()
    elif fmt == "text":
        assert isinstance(result, str) and result.strip() and not result.lstrip().startswith("{")
    elif fmt in ("srt", "vtt"):
        check_subtitles(fmt, result, pod.duration)
    elif fmt == "verbose_json":
        check_verbose(result, pod.duration, words=False, segments=True)
    else:
        assert result.task == "transcribe" and result.segments and abs(result.duration - pod.duration) < 0.1
        assert all(s.type == "transcript.text.segment" and s.speaker.startswith("Speaker ") for s in result.segments)
        assert all(0 <= s.start < s.end <= pod.duration + 1e-3 for s in result.segments)
    if audio == "long" and fmt == "verbose_json":
        assert result.segments[-1].end > 500  # the whole ten minutes, not its first chunk


@pytest.mark.parametrize("granularities", [["word"], ["segment"], ["word", "segment"]])
@pytest.mark.parametrize("audio", ["short", "long"])
def test_timestamp_granularities(api, granularities, audio, request):
    pod = request.getfixturevalue(audio)
    result = transcribe(api, pod.path, response_format="verbose_json", timestamp_granularities=granularities,
                        prompt="A calm reading of simple sentences.")
    check_verbose(result, pod.duration, words="word" in granularities, segments="segment" in granularities)


@pytest.mark.parametrize("kwargs, param", [
    (dict(language="xx"), "language"),
    (dict(response_format="docx"), "response_format"),
    (dict(response_format="json", timestamp_granularities=["word"]), "timestamp_granularities"),
    (dict(temperature=3), "temperature"),
    (dict(extra_body={"stream": "true"}), "stream"),
    (dict(include=["logprobs"]), "include"),
])
def test_bad_options_are_bad_request_errors(api, short, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(api, short.path, **kwargs)
    error = caught.value.body
    assert caught.value.status_code == 400 and error["type"] == "invalid_request_error" and error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("content, phrase", [(b"this is not audio at all\n" * 200, "audio"), (b"", "empty")])
def test_a_file_that_is_not_audio_is_a_bad_request(api, short, tmp_path, own_tempdir, content, phrase):
    fake = tmp_path / "notes.mp3"
    fake.write_bytes(content)
    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(api, fake)
    assert caught.value.body["param"] == "file" and phrase in caught.value.message
    assert transcribe(api, short.path, response_format="text").strip()  # and the server goes on


def test_too_large_upload_is_413(api, tmp_path, own_tempdir):
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (9 * 1024 * 1024))
    with pytest.raises(openai.APIStatusError) as caught:
        transcribe(api, big)
    assert caught.value.status_code == 413 and "MAX_UPLOAD_MB" in caught.value.message


def test_too_long_audio_is_413(api, short, own_tempdir):  # api: the tiny checkpoints exist before own_tempdir
    with serve(app_config(api_key=KEY, max_duration_s=6.0)) as url:
        with pytest.raises(openai.APIStatusError) as caught:
            transcribe(url, short.path)
        assert caught.value.status_code == 413 and "the limit is 0.1 min" in caught.value.message
        assert caught.value.body["code"] == "request_too_large"


def test_too_large_body_without_length_is_cut_off_while_streaming(api):
    """A chunked body (no Content-Length) is refused once it passes the limit (8 MB), not after it is all read."""
    host, port = urlsplit(api).hostname, urlsplit(api).port
    head = ("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    chunk = b"\0" * (256 * 1024)
    sent = 0
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.sendall((f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
                      "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
                      ).encode() + b"%x\r\n%s\r\n" % (len(head), head))
        while sent < 64 * 1024 * 1024 and not select.select([sock], [], [], 0)[0]:  # until the server answers
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        answer = sock.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413") and "MAX_UPLOAD_MB" in answer
    assert sent < 24 * 1024 * 1024  # it stopped reading soon after the limit (plus socket buffers), not at 64 MB


def test_key_is_enforced_and_never_logged(api, short, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-0123456789"
    with pytest.raises(openai.AuthenticationError):
        client(api, wrong).models.list()
    with open(short.path, "rb") as f, pytest.raises(openai.AuthenticationError) as caught:
        client(api, wrong).audio.transcriptions.create(file=f, model="whisper-1")
    assert caught.value.body["code"] == "invalid_api_key"
    request = urllib.request.Request(api + "v1/models")  # no Authorization header at all
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request, timeout=30)
    assert missing.value.code == 401 and json.loads(missing.value.read())["error"]["type"] == "invalid_request_error"
    assert transcribe(api, short.path, response_format="text").strip()
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert caplog.records  # the app did log, at DEBUG
    assert KEY not in logged and wrong not in logged


def test_models_and_health(api):
    models = client(api).models.list()
    assert [m.object for m in models.data] == ["model"] and models.data[0].owned_by
    assert client(api).models.retrieve(models.data[0].id).id == models.data[0].id
    with pytest.raises(openai.NotFoundError):
        client(api).models.retrieve("gpt-nothing")
    with urllib.request.urlopen(api + "health", timeout=30) as response:  # no key needed
        assert json.loads(response.read()) == {"status": "ok"}


def test_the_page_still_serves_beside_the_api(api):
    with urllib.request.urlopen(api, timeout=30) as response:
        assert response.status == 200 and b"<html" in response.read().lower()


def test_private_page_without_api_key_keeps_the_api_closed(short):
    with serve(app_config(app_auth="user:secret-pass")) as url:
        with pytest.raises(openai.AuthenticationError):
            transcribe(url, short.path)
        with urllib.request.urlopen(url + "health", timeout=30) as response:
            assert response.status == 200


def test_full_line_is_a_rate_limit_error_and_page_and_api_share_it(short):
    line = WaitingLine(1, 0)
    with serve(app_config(api_key=KEY), line=line) as url:
        with line.place():  # a page job holds the only slot, and nobody may wait
            with pytest.raises(openai.RateLimitError) as caught:
                transcribe(url, short.path)
        assert caught.value.body["code"] == "rate_limit_exceeded"
        assert transcribe(url, short.path).text.strip()  # the slot is free again
        assert line.counts() == (0, 0)


def test_api_jobs_wait_in_the_shared_line(short):
    line = WaitingLine(1, 4)
    with serve(app_config(api_key=KEY), line=line) as url:
        results = []
        with line.place():  # the slot is taken: the API job waits in line behind it
            worker = threading.Thread(target=lambda: results.append(transcribe(url, short.path)))
            worker.start()
            for _ in range(200):
                if line.counts() == (1, 1):
                    break
                threading.Event().wait(0.05)
            assert line.counts() == (1, 1) and not results
        worker.join(120)
        assert results and results[0].text.strip()


def post_and_hang_up(url: str, path, until) -> None:
    """Send a whole transcription request on a raw connection, wait until `until()` holds, then close it unanswered."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    data = path.read_bytes()
    body = (b"--b\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\ntext\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"talk.mp3\"\r\n"
            b"Content-Type: audio/mpeg\r\n\r\n" + data + b"\r\n--b--\r\n")
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.sendall((f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
                      f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body)}\r\n\r\n"
                      ).encode() + body)
        assert wait_until(until, timeout=60)
        assert not select.select([sock], [], [], 0)[0]  # no answer yet: the job is still on


def test_a_client_that_hangs_up_cancels_its_job_and_leaves_no_file(api, short, own_tempdir):
    line = WaitingLine(1, 4)
    with serve(app_config(api_key=KEY), line=line) as url:
        with line.place():  # a page job holds the slot: the API job waits in line, its upload saved
            def uploads():
                return [p for p in own_tempdir.iterdir() if p.name.startswith("asr-api-")]
            post_and_hang_up(url, short.path, lambda: line.counts() == (1, 1) and uploads())
            assert wait_until(lambda: line.counts() == (1, 0) and not uploads(), timeout=30)  # it left the line
        assert transcribe(url, short.path, response_format="text").strip()  # the server goes on
        assert line.counts() == (0, 0)


# -- in RunPod backend mode: the API in front of an endpoint (the loopback stand-in running the real worker) -----------

RUNPOD_KEY = "rpa_API0FRONT1f2e3d4c5b6a7"


def runpod_mode(endpoint_url: str):
    from core.config import config_from_env
    from core.remote.client import RemotePipeline

    config = config_from_env({}, asr_backend="runpod", runpod_endpoint_url=endpoint_url, runpod_api_key=RUNPOD_KEY,
                             api_key=KEY, max_upload_mb=8)
    return serve(config, pipeline=RemotePipeline(config))


def test_api_in_runpod_backend_mode(api, short, own_tempdir, caplog):
    from runpod_worker.handler import Worker

    caplog.set_level(logging.DEBUG)
    worker = Worker(tiny_pipeline(app_config()))
    try:
        with RunPodAPI(worker.handle, api_key=RUNPOD_KEY) as endpoint, runpod_mode(endpoint.url) as url:
            with open(short.path, "rb") as f:
                raw = client(url).audio.transcriptions.with_raw_response.create(
                    file=f, model="whisper-1", response_format="verbose_json",
                    timestamp_granularities=["word", "segment"])
            result = raw.parse()
            check_verbose(result, short.duration, words=True, segments=True)
            assert RUNPOD_KEY not in raw.http_response.text
            (job,) = endpoint.jobs.values()  # the job ran on the endpoint, sent inline
            assert job.status == "COMPLETED" and "audio_base64" in job.input
            assert transcribe(url, short.path, response_format="srt").strip()
    finally:
        worker.close()
    assert RUNPOD_KEY not in caplog.text


def test_a_client_that_hangs_up_cancels_the_endpoint_job(api, short, own_tempdir):
    with RunPodAPI(lambda job: None, api_key=RUNPOD_KEY, workers=0) as endpoint, runpod_mode(endpoint.url) as url:
        post_and_hang_up(url, short.path, lambda: len(endpoint.jobs) == 1)  # queued there; nobody runs it
        (job_id,) = endpoint.jobs
        assert wait_until(lambda: endpoint.ops("cancel") == [job_id], timeout=30)
        assert endpoint.jobs[job_id].status == "CANCELLED"


def test_api_over_the_zerogpu_split(api, short):
    """On a ZeroGPU Space the API's jobs go through the same GPU-decorated call as the page's (the real `spaces`
    package; off ZeroGPU its decorator passes through)."""
    import spaces

    from webui.zerogpu import ZeroGpuPipeline

    config = app_config(api_key=KEY)
    with serve(config, pipeline=ZeroGpuPipeline(tiny_pipeline(config), spaces)) as url:
        result = transcribe(url, short.path, response_format="verbose_json", timestamp_granularities=["word"])
    check_verbose(result, short.duration, words=True, segments=False)
