"""The web app on loopback for tests and the README screenshot: one tiny-model pipeline per process, a real server.

`serve(config)` builds the page over a pipeline and serves it at a free port (reached on 127.0.0.1); `browser(p)` starts
Debian's chromium through Playwright (Playwright's own browser download does not work here). Browser test modules
call `playwright_or_skip()` first and take the `chromium` fixture (import it by name); `app` and `client` are the
module-scoped app on the default tiny config and a gradio_client over it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from core.config import Config

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--mute-audio", "--autoplay-policy=no-user-gesture-required"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_config(**overrides) -> Config:
    """The tiny checkpoints plus the web limits the tests exercise."""
    from model_helpers import make_tiny_config

    values = dict(max_upload_mb=2, max_duration_s=120.0, app_concurrency=1, app_queue_size=8)
    values.update(overrides)
    return make_tiny_config(**values)


@lru_cache(maxsize=None)
def tiny_pipeline(config: Config):
    from core.pipeline import make_pipeline

    return make_pipeline(config)


@contextlib.contextmanager
def serve(config: Config, pipeline=None, line=None, **launch_kwargs):
    """Yield the base URL of the app served on loopback; on exit the server stops and its file cache is removed.

    The interface is the config's (`server_name`, loopback unless a test asks otherwise) and `launch_kwargs` go to
    `webui.launch`. Gradio's cache (uploads, results) goes to a fresh GRADIO_TEMP_DIR, so the tests can see what is
    in it. `line` is the waiting line the page and the OpenAI-compatible API share (by default the config's).
    """
    from webui import build_demo, launch

    cache = tempfile.mkdtemp(prefix="webui-test-cache-")
    old = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = cache
    demo = build_demo(pipeline or tiny_pipeline(config), config, line)
    port = free_port()
    try:
        launch(demo, config, server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs)
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        if old is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old
        shutil.rmtree(cache, ignore_errors=True)


def browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def playwright_or_skip():
    """playwright.sync_api, or skip the calling test module when it or Debian's chromium is missing."""
    api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)
    return api


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = browser(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app():
    with serve(app_config()) as url:
        yield url


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    from gradio_client import Client

    return Client(app, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def wait_for_player(page, timeout_ms: int = 90_000) -> None:
    page.wait_for_selector("#transcript-player .tp[data-state=ready] .tp-seg", timeout=timeout_ms)


def upload(page, path: Path, timeout_ms: int = 90_000) -> None:
    page.wait_for_selector("#transcript-player .tp", timeout=timeout_ms)
    page.locator("#upload-file input[type=file]").set_input_files(str(path))
    # The upload is done when the component links to the server's copy.
    page.locator(f'#upload-file a[download="{Path(path).name}"]').wait_for(timeout=timeout_ms)


def upload_and_transcribe(page, path: Path, timeout_ms: int = 90_000) -> None:
    upload(page, path, timeout_ms)
    page.get_by_role("button", name="Transcribe").click()
    wait_for_player(page, timeout_ms)


__all__ = ["app_config", "browser", "free_port", "serve", "tiny_pipeline", "upload", "upload_and_transcribe",
           "wait_for_player"]
