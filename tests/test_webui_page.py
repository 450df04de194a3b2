"""Issue 15 through the API and plain HTTP: languages as typed, the summary's clock, the player's own progress
stage, the interface the app listens on and its optional login. Real server on loopback, tiny real models."""
from __future__ import annotations

import ipaddress
import socket
import subprocess

import pytest
import requests
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from audio_helpers import make_podcast
from core.config import config_from_env
from core.options import TranscribeOptions
from core.remote.client import RemotePipeline
from core.types import Transcript
from webui.app import summary
from webui.page import backend_line, where_it_runs
from webui.handler import Job, JobRunner
from webui.progress import StageProgress
from webui_helpers import app_config, serve, tiny_pipeline


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return make_podcast(tmp_path_factory.mktemp("audio") / "clip.mp3", 0.2).path


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with serve(app_config(), tiny_pipeline(app_config())) as url:
        yield Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def transcribe(client, audio, language):
    return client.predict(handle_file(str(audio)), None, "", language, "", False, 30, api_name="/transcribe")


@pytest.mark.parametrize("typed, language", [("spa", "Spanish"), ("Spanish (es)", "Spanish"), ("de", "German"),
                                             ("ger", "German"), ("zh-tw", "Chinese")])
def test_the_api_takes_codes_names_and_their_beginnings(client, speech, typed, language):
    player, _, status = transcribe(client, speech, typed)
    assert player["transcript"]["language"] == language and language in status


@pytest.mark.parametrize("typed, message", [("sw", r"unsupported language 'sw'"),  # Swahili, not Swedish
                                            ("ch", r"unsupported language 'ch'"),  # two letters are a code
                                            ("Klingon", r"unsupported language 'Klingon'")])
def test_the_api_refuses_what_is_not_one_language(client, speech, typed, message):
    with pytest.raises(AppError, match=message):
        transcribe(client, speech, typed)


@pytest.mark.parametrize("seconds, shown", [(181.6, "3:01"), (59.99, "0:59"), (3599.9, "59:59"),
                                            (3725.2, "1:02:05")])
def test_the_summary_clock_rounds_down_like_the_player(seconds, shown):
    line = summary(Transcript(language="English", duration=seconds, text=""))
    assert line.split(" · ")[1] == shown


def test_the_header_says_where_it_runs_without_jargon_or_paths():
    local = tiny_pipeline(app_config()).describe()  # "/tmp/tiny-qwen-…/asr (transformers, cpu, float32); …"
    assert where_it_runs(local).startswith("Runs on this server's CPU")
    line = backend_line(local)
    summary_part, details = line.split("</summary>")
    assert "transformers" not in summary_part and "cpu, float32" in details and "/tmp/" not in line
    remote = RemotePipeline(config_from_env({}, asr_backend="runpod",
                                            runpod_endpoint_url="https://api.runpod.ai/v2/abc123ep42")).describe()
    assert where_it_runs(remote) == "Runs on a cloud GPU (RunPod endpoint …ep42)"
    assert where_it_runs("ASR Qwen/Qwen3-ASR-0.6B on vLLM (GPU, log-mel on the GPU)") == "Runs on this server's GPU"


def test_preparing_the_player_is_its_own_stage(speech, tmp_path):
    reports = []
    keep = lambda p: str(p)  # noqa: E731  (the files stay in the job's folder until it returns)
    JobRunner(tiny_pipeline(app_config()), keep).run(
        Job(str(speech), "clip", "clip.mp3", allow_local=True), TranscribeOptions(chunk_seconds=8.0),
        StageProgress(lambda f, desc: reports.append((f, desc)), interval=0))
    labels = [d for _, d in reports]
    assert labels.index("Writing files") < labels.index("Preparing the player")
    assert labels[-1] == "Preparing the player" and reports[-1][0] == 1.0
    assert [f for f, _ in reports] == sorted(f for f, _ in reports)


# -- where it listens, and the login ---------------------------------------------------------------------------------


def other_address() -> str:
    """An IPv4 address of this machine other than 127.0.0.1: a real interface's, else 127.0.0.2 (loopback, but a
    server bound to 127.0.0.1 alone does not answer there either)."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for token in out.split():
        if "/" in token:
            try:
                ip = ipaddress.ip_interface(token).ip
            except ValueError:
                continue
            if not ip.is_loopback:
                return str(ip)
    return "127.0.0.2"


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("server_name, elsewhere", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_the_app_listens_where_the_config_says(server_name, elsewhere):
    config = app_config(server_name=server_name)
    with serve(config, tiny_pipeline(app_config())) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert requests.get(url, timeout=10).status_code == 200
        assert answers(other_address(), port) is elsewhere


def test_app_auth_asks_for_a_login_on_the_page_and_the_api(speech, tmp_path):
    config = app_config(app_auth="podcaster:river-stories-12")
    with serve(config, tiny_pipeline(app_config())) as url:
        assert requests.get(url + "config", timeout=10).status_code == 401
        assert requests.get(url + "gradio_api/info", timeout=10).status_code == 401
        assert requests.post(url + "gradio_api/call/transcribe", json={"data": []}, timeout=10).status_code == 401
        assert "Qwen3-ASR Transcriber" not in requests.get(url, timeout=10).text  # the login page, not the app
        browser_session = requests.Session()
        assert browser_session.post(url + "login", data={"username": "podcaster", "password": "wrong"},
                                    timeout=10).status_code == 400
        assert browser_session.post(url + "login", data={"username": "podcaster", "password": "river-stories-12"},
                                    timeout=10).json() == {"success": True}
        assert "Qwen3-ASR Transcriber" in browser_session.get(url, timeout=10).text
        with pytest.raises(Exception):
            Client(url, verbose=False)
        with pytest.raises(Exception):
            Client(url, verbose=False, auth=("podcaster", "wrong"))
        client = Client(url, verbose=False, auth=("podcaster", "river-stories-12"), download_files=str(tmp_path))
        player, files, _ = transcribe(client, speech, "English")
        assert player["transcript"]["segments"] and len(files) == 4
