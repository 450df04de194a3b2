"""The page as people use it (issue 15), in headless Debian chromium over the tiny real models on loopback.

The language box takes what was typed (a code or the start of a name), never Gradio's first substring match; on a
phone the player fits the screen, its seek bar can be dragged and the transcript comes into view when a job ends;
a failed or cancelled job leaves its message on the page; the downloads cannot be removed from it; the header says
where transcription runs in plain words, with the details behind a click.
"""
from __future__ import annotations

import re
import time

import pytest
import requests

from audio_helpers import make_podcast
from webui_helpers import DESKTOP, PHONE, app_config, chromium, playwright_or_skip, serve, upload  # noqa: F401
from webui_helpers import upload_and_transcribe

pytestmark = pytest.mark.browser
expect = playwright_or_skip().expect
AUDIO = "document.querySelector('#transcript-player .tp-audio')"


@pytest.fixture(scope="module")
def app():
    with serve(app_config(chunk_target_s=8.0)) as url:
        yield url


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return make_podcast(tmp_path_factory.mktemp("audio") / "interview.mp3", 0.35).path


@pytest.fixture
def open_page(chromium, app):
    """open_page(viewport) -> a fresh page on the app; every page of the test is closed after it."""
    contexts = []

    def open_(viewport=DESKTOP):
        context = chromium.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.goto(app)
        page.wait_for_selector("#transcript-player .tp", timeout=60_000)
        return page

    yield open_
    for context in contexts:
        context.close()


def choose_language(page, typed: str, *keys: str):
    """Click the language box, type key by key (what it shows is replaced), press `keys` and Enter; returns the box."""
    box = page.get_by_role("combobox", name="Language")
    box.click()
    page.keyboard.type(typed, delay=40)
    for key in (*keys, "Enter"):
        page.keyboard.press(key)
    page.wait_for_function("() => document.activeElement?.getAttribute('role') !== 'combobox'")
    return box


def json_download(page) -> dict:
    href = page.locator("a[download$='.json']").first.get_attribute("href")
    return requests.get(href, timeout=10).json()


# -- the language box ------------------------------------------------------------------------------------------------


def test_enter_takes_the_code_or_the_name_typed(open_page):
    page = open_page()
    for typed, shown in [("es", "Spanish (es)"), ("de", "German (de)"), ("spa", "Spanish (es)"),
                         ("Spanish", "Spanish (es)"), ("ja", "Japanese (ja)"), ("EN", "English (en)"),
                         ("chi", "Chinese (zh)"), ("yue", "Cantonese (yue)"), ("aut", "Auto-detect")]:
        expect(choose_language(page, typed)).to_have_value(shown)
    # Arrow keys choose among Gradio's matches as before: Enter then takes the highlighted one, not the typed code.
    moved = choose_language(page, "es", "ArrowDown", "ArrowDown").input_value()
    assert moved != "Spanish (es)" and "es" in moved


def test_a_job_runs_in_the_language_typed(open_page, speech):
    """The tiny model says "language English" unless a language is forced; a forced one is what the result reports."""
    page = open_page()
    expect(choose_language(page, "es")).to_have_value("Spanish (es)")
    upload_and_transcribe(page, speech)
    assert page.locator("#transcript-player .tp-meta").text_content().startswith("Spanish ·")
    expect(page.locator("#job-status")).to_contain_text("Spanish")
    assert json_download(page)["language"] == "Spanish"


def test_a_code_it_does_not_know_is_refused_not_taken_for_another_language(open_page, speech):
    page = open_page()
    box = choose_language(page, "sw")  # Swahili: not one of the 30; "Swedish" begins with "sw"
    assert "Swedish" not in box.input_value()
    upload(page, speech)
    page.get_by_role("button", name="Transcribe").click()
    expect(page.locator("#job-status")).to_contain_text("unsupported language 'sw'", timeout=60_000)
    assert page.locator("#transcript-player .tp").get_attribute("data-state") == "empty"


# -- a phone ---------------------------------------------------------------------------------------------------------


def test_on_a_phone_the_player_fits_seeks_by_dragging_and_comes_into_view(open_page, speech):
    page = open_page(PHONE)
    upload_and_transcribe(page, speech)
    # The job's end brings the player and the transcript's first lines on screen (they start below the form).
    page.wait_for_function("""() => {
      const audio = document.querySelector('#transcript-player .tp-audio').getBoundingClientRect();
      const first = document.querySelector('#transcript-player .tp-seg').getBoundingClientRect();
      return audio.top >= 0 && first.bottom <= innerHeight;
    }""", timeout=10_000)
    settled = page.evaluate("() => new Promise(done => { let last = -1, still = 0; const id = setInterval(() => {"
                            "  still = scrollY === last ? still + 1 : 0; last = scrollY;"
                            "  if (still >= 3) { clearInterval(id); done(true); } }, 100); })")
    assert settled  # the page has stopped scrolling: the control's box is where the mouse will go
    audio = page.locator("#transcript-player .tp-audio")
    box = audio.bounding_box()
    assert box["width"] >= 300 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    page.wait_for_function(f"() => {AUDIO}.duration > 0")
    duration = page.evaluate(f"() => {AUDIO}.duration")

    # Drag along the seek bar (Chrome's control: play, time, seek bar, volume, menu) as a finger would.
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    during = page.evaluate(f"() => {AUDIO}.currentTime")
    page.mouse.move(box["x"] + box["width"] * 0.68, y, steps=10)
    page.mouse.up()
    after = page.evaluate(f"() => {AUDIO}.currentTime")
    assert 0 < during < after < 0.97 * duration and after - during > 0.2 * duration, (during, after, duration)

    # Following keeps the line being played in view of the transcript's own scroller.
    page.evaluate(f"() => {{ const a = {AUDIO}; a.pause(); a.currentTime = a.duration - 0.3; }}")
    page.wait_for_function("""() => {
      const list = document.querySelector('#transcript-player .tp-segments').getBoundingClientRect();
      const on = document.querySelector('#transcript-player .tp-active');
      if (!on) return false;
      const r = on.getBoundingClientRect();
      return r.top >= list.top - 1 && r.bottom <= list.bottom + 1;
    }""", timeout=5_000)


# -- errors, cancelling, downloads, header ---------------------------------------------------------------------------


def test_a_failed_job_keeps_its_message_after_the_popup_closes(open_page):
    page = open_page()
    page.get_by_role("tab", name="Link").click()
    page.get_by_role("button", name="Transcribe").click()  # nothing to transcribe
    message = "Upload a file, record something, or paste a link first."
    status = page.locator("#job-status")
    expect(status).to_contain_text(message, timeout=30_000)
    shown = time.monotonic()
    toast = page.get_by_test_id("toast-body")
    expect(toast.first).to_be_visible()
    expect(toast).to_have_count(0, timeout=25_000)  # Gradio closes its pop-up after 10 s ...
    page.wait_for_timeout(max(0.0, 30.0 - (time.monotonic() - shown)) * 1000)
    expect(status).to_contain_text(message)  # ... the page keeps the message, 30 s later too
    expect(page.locator("#transcript-player").get_by_text("Error", exact=True)).to_have_count(0)  # no bare badge


def test_cancel_says_the_job_was_cancelled(open_page, tmp_path):
    long = make_podcast(tmp_path / "long.mp3", 1.9).path  # 114 s (the limit is 120): seconds of work to cancel
    page = open_page()
    upload(page, long)
    page.get_by_role("button", name="Transcribe").click()
    page.get_by_text(re.compile(r"Decoding audio|Finding pauses|Transcribing")).first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#job-status")).to_contain_text("cancelled", timeout=30_000)
    page.wait_for_timeout(1500)
    expect(page.locator("#job-status")).to_contain_text("cancelled")
    assert page.locator("#transcript-player .tp").get_attribute("data-state") == "empty"


def test_the_four_downloads_stay_and_cannot_be_removed(open_page, speech):
    page = open_page()
    upload_and_transcribe(page, speech)
    assert page.get_by_role("button", name="Remove this file").count() == 0
    links = page.locator("#transcript-player a[download]")
    names = sorted(links.evaluate_all("els => els.map(e => e.getAttribute('download'))"))
    assert names == ["interview.json", "interview.srt", "interview.txt", "interview.vtt"]
    for i in range(links.count()):
        assert requests.get(links.nth(i).get_attribute("href"), timeout=10).status_code == 200
    with page.expect_download() as info:
        links.filter(has_text="SRT").click()
    assert info.value.suggested_filename == "interview.srt"


def test_the_header_says_where_it_runs_in_words(open_page):
    page = open_page()
    header = page.locator("#backend")
    assert "this server's CPU" in header.inner_text()
    for jargon in ("float32", "transformers", "Running on"):
        assert jargon not in header.inner_text()
    header.get_by_text("Details").click()
    expect(header).to_contain_text("transformers, cpu, float32")  # the models' own line, one click away
    assert "/tiny-qwen-" not in page.content()  # no server paths
