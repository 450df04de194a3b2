"""The player in a real browser: Debian chromium, headless, driven by Playwright.

Part one runs the whole app on loopback over tiny real models: upload, wait for the transcript, click, play, search,
copy. Part two mounts the player alone on an hour-long transcript (600 segments, 7,200 words) with the audio
element's clock driven by the test, to check that following playback touches only what changes.
"""
from __future__ import annotations

import re
import time
from bisect import bisect_right
from pathlib import Path

import pytest
import requests

from audio_helpers import make_podcast
from webui.player import asset
from webui_helpers import ARTIFACTS, app_config, browser, serve, upload_and_transcribe

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)

ACTIVE_INDEX = """() => {
  const a = document.querySelector('#transcript-player .tp-audio');
  const segs = [...document.querySelectorAll('#transcript-player .tp-seg')];
  const w = document.querySelector('#transcript-player .tp-word-active');
  return {t: a.currentTime, paused: a.paused, active: segs.findIndex(s => s.classList.contains('tp-active')),
          word: w ? w.textContent : null};
}"""


def clock(t: float) -> str:
    s = int(t + 1e-6)
    return f"{s // 60}:{s % 60:02d}"


@pytest.fixture(scope="module")
def pw():
    with playwright_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def session(pw, tmp_path_factory):
    """The app with a transcript loaded: (page, the transcript's JSON as served in Downloads, page errors)."""
    audio = make_podcast(tmp_path_factory.mktemp("audio") / "episode.mp3", 0.35).path
    with serve(app_config(chunk_target_s=8.0)) as url:
        chromium = browser(pw)
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rstrip("/"))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        upload_and_transcribe(page, audio)
        href = page.locator("a[download$='.json']").first.get_attribute("href")
        transcript = requests.get(href, timeout=10).json()
        try:
            yield page, transcript, errors
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)
            chromium.close()


def pause_at(page, t: float) -> None:
    page.evaluate("t => { const a = document.querySelector('#transcript-player .tp-audio'); a.pause(); "
                  "a.currentTime = t; }", t)


def test_segments_are_rendered_with_their_timestamps(session):
    page, transcript, errors = session
    segments = transcript["segments"]
    assert len(segments) >= 4  # 21 s in 8 s chunks
    rows = page.locator("#transcript-player .tp-seg")
    assert rows.count() == len(segments)
    assert rows.locator(".tp-time").all_text_contents() == [clock(s["start"]) for s in segments]
    assert rows.locator(".tp-text").all_text_contents() == [s["text"] for s in segments]
    words = sum(len(s["words"]) for s in segments)
    assert page.locator("#transcript-player .tp-w").count() == words
    meta = page.locator("#transcript-player .tp-meta").text_content()
    assert f"{len(segments)} segments" in meta and "English" in meta
    assert not errors


def test_clicking_a_segment_or_a_word_seeks_and_plays(session):
    page, transcript, _ = session
    second = transcript["segments"][1]
    pause_at(page, 0)
    page.locator("#transcript-player .tp-seg").nth(1).locator(".tp-time").click()
    state = page.evaluate(ACTIVE_INDEX)
    assert abs(state["t"] - second["start"]) <= 0.25
    assert state["active"] == 1
    page.wait_for_function("() => !document.querySelector('#transcript-player .tp-audio').paused")

    third_word = transcript["segments"][2]["words"][2]
    pause_at(page, 0)
    page.locator("#transcript-player .tp-seg").nth(2).locator(".tp-w").nth(2).click()
    state = page.evaluate(ACTIVE_INDEX)
    assert abs(state["t"] - third_word["start"]) <= 0.25
    assert state["active"] == 2 and state["word"] == third_word["text"]


def test_highlight_follows_playback(session):
    page, transcript, errors = session
    segments = transcript["segments"]
    starts = [s["start"] for s in segments]
    target = 3 if len(segments) > 3 else 2
    pause_at(page, starts[target] - 0.8)
    page.evaluate("() => document.querySelector('#transcript-player .tp-audio').play()")
    seen = set()
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and (len(seen) < 2 or page.evaluate(ACTIVE_INDEX)["t"] < starts[target] + 0.6):
        state = page.evaluate(ACTIVE_INDEX)
        t = state["t"]
        if min(abs(t - s) for s in starts) > 0.1:  # a frame can lag a boundary; judge only clear cases
            expected = bisect_right(starts, t) - 1
            assert state["active"] == expected, (t, state)
            seen.add(expected)
            seg = segments[expected]
            word_starts = [w["start"] for w in seg["words"]]
            j = bisect_right(word_starts, t) - 1
            if j >= 0 and t < seg["end"] and min(abs(t - w) for w in word_starts) > 0.1:
                assert state["word"] == seg["words"][j]["text"], (t, state)
        time.sleep(0.1)
    page.evaluate("() => document.querySelector('#transcript-player .tp-audio').pause()")
    assert {target - 1, target} <= seen  # it moved from one segment to the next while playing
    assert not errors


def test_search_filters_and_highlights(session):
    page, transcript, _ = session
    box = page.locator("#transcript-player .tp-search")
    rows = page.locator("#transcript-player .tp-seg")
    box.fill("birds")
    expected = [i for i, s in enumerate(transcript["segments"]) if "birds" in s["text"].lower()]
    assert 0 < len(expected) < len(transcript["segments"])
    page.wait_for_function("n => document.querySelectorAll('#transcript-player .tp-seg:not([hidden])').length === n",
                           arg=len(expected))
    visible = [i for i in range(rows.count()) if rows.nth(i).is_visible()]
    assert visible == expected
    count = page.locator("#transcript-player .tp-count").text_content()
    assert count == f"{len(expected)} of {len(transcript['segments'])} lines"
    assert page.evaluate("() => CSS.highlights.get('tp-match').size") == len(expected)

    box.fill("no such words here")
    page.wait_for_function("() => !document.querySelector('#transcript-player .tp-none').hidden")
    box.fill("")
    page.wait_for_function("n => document.querySelectorAll('#transcript-player .tp-seg:not([hidden])').length === n",
                           arg=len(transcript["segments"]))


def test_copy_all_copies_the_text(session):
    page, transcript, _ = session
    page.locator("#transcript-player .tp-copy").click()
    page.wait_for_function("() => document.querySelector('#transcript-player .tp-copy').textContent.includes('Copied')")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == "\n".join(s["text"] for s in transcript["segments"])


# --- the player alone, on an hour-long transcript --------------------------------------------------------------


def long_transcript(n_segments: int = 600, words_per_segment: int = 12) -> dict:
    segments, t = [], 0.0
    for i in range(n_segments):
        words = []
        for j in range(words_per_segment):
            words.append({"start": round(t, 3), "end": round(t + 0.4, 3), "text": f"w{i}x{j}"})
            t += 0.5
        segments.append({"start": words[0]["start"], "end": words[-1]["end"],
                         "text": " ".join(w["text"] for w in words) + ".", "words": words})
    return {"transcript": {"language": "English", "duration": t, "text": "", "segments": segments,
                           "warnings": [], "timings": {}}, "audio": None, "title": "An hour"}


@pytest.fixture()
def player_page(pw):
    """player.html/.css/.js mounted the way Gradio mounts them, with the audio clock under the test's control."""
    chromium = browser(pw)
    page = chromium.new_page(viewport={"width": 1000, "height": 800})
    page.set_content(f"<div id='root'>{asset('player.html')}</div><style>#root {{ {asset('player.css')} }}</style>")
    page.add_script_tag(content=asset("player.js"))
    page.evaluate("""value => {
      const a = document.querySelector('.tp-audio');
      let t = 0;
      Object.defineProperty(a, 'currentTime', {get: () => t, set: v => { t = v; }});
      window.setClock = v => { t = v; a.dispatchEvent(new Event('timeupdate')); };
      window.props = {value};
      mountTranscriptPlayer(document.getElementById('root'), window.props, (name, cb) => { window.onValue = cb; });
    }""", long_transcript())
    yield page
    chromium.close()


def test_hour_long_transcript_follows_with_few_dom_changes(player_page):
    page = player_page
    assert page.locator(".tp-seg").count() == 600
    assert page.locator(".tp-time").nth(599).text_content() == "0:59:54"  # hours shown for an hour-long file
    result = page.evaluate("""() => {
      const list = document.querySelector('.tp-segments');
      const log = [];
      const observer = new MutationObserver(records => log.push(records.length));
      observer.observe(list, {subtree: true, childList: true, attributes: true, characterData: true});
      const checks = [];
      for (const t of [0.1, 0.2, 0.3, 1800.1, 1800.2, 1800.6, 3599.0]) {
        setClock(t);
        const active = [...document.querySelectorAll('.tp-active')].map(e => +e.dataset.i);
        const word = document.querySelector('.tp-word-active');
        checks.push({t, active, word: word && word.textContent});
      }
      return new Promise(resolve => setTimeout(() => {
        observer.disconnect();
        resolve({checks, changes: log.reduce((a, b) => a + b, 0), scrollTop: list.scrollTop,
                 activeTop: document.querySelector('.tp-active').offsetTop, height: list.clientHeight});
      }, 50));
    }""")
    got = {c["t"]: (c["active"], c["word"]) for c in result["checks"]}
    assert got[0.1] == ([0], "w0x0")
    assert got[1800.1] == ([300], "w300x0")  # 6 s per segment: 1800 s is segment 300's start
    assert got[1800.6] == ([300], "w300x1")
    assert got[3599.0] == ([599], "w599x10")
    # Seven clock updates, three segment changes: each change is two class flips plus two word flips, nothing
    # re-rendered (a re-render of 600 segments would be thousands of records).
    assert result["changes"] <= 4 * 4 + 4
    # Following kept the current line in view of the scrolled list.
    assert result["scrollTop"] <= result["activeTop"] <= result["scrollTop"] + result["height"]


def test_a_new_value_replaces_the_transcript(player_page):
    page = player_page
    page.evaluate("""() => {
      const v = {transcript: {language: 'German', duration: 4, segments: [
        {start: 0.5, end: 2, text: 'Guten Tag.', words: []}, {start: 2.5, end: 3.5, text: 'Danke!', words: []}]},
        audio: null, title: 'Kurz'};
      setClock(3);
      window.props.value = v;
      window.onValue();
    }""")
    assert page.locator(".tp-seg").all_text_contents() == ["0:00Guten Tag.", "0:02Danke!"]
    assert page.locator(".tp-active").all_text_contents() == ["0:02Danke!"]
    assert page.locator(".tp-title").text_content() == "Kurz"
    assert re.search(r"German · 0:04 · 2 segments$", page.locator(".tp-meta").text_content())
