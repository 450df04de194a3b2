"""Make docs/screenshot.png: the real page in Chromium, with a two-speaker podcast transcribed, its speakers named and
a line playing.

    python tests/webui_screenshot.py [docs/screenshot.png [light|dark [WIDTHxHEIGHT]]]   (default 1360x1000)

The viewport is WIDTHxHEIGHT; the image is the whole page, down to its footer (a little taller).

The speech is espeak-ng reading SCRIPT in two voices (the host and her guest); the transcript is SCRIPT with each
line's true time span, its words spread over the span by length, and each line's true speaker. A stand-in pipeline
serves it, so no model weights are needed; it labels the speakers only when the form asks for them, and numbers them
"Speaker 1", "Speaker 2" with the pipeline's own code. The page, the player, the encoded audio, the download files
and the renames (typed into the player's name chips, answered by the server) are the app's own.
"""
from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio_helpers import SR, espeak, write_audio  # noqa: E402
from core.audio.decode import decode_audio  # noqa: E402
from core.diarize.names import number_speakers  # noqa: E402
from core.types import Segment, Transcript, Word  # noqa: E402
from webui.app import DIARIZE_LABEL  # noqa: E402
from webui_helpers import ROOT, app_config, browser, serve, upload_and_transcribe  # noqa: E402

HOST, GUEST = "Maya (host)", "Dr. Okafor"  # the names typed into the player
VOICES = {HOST: "en-us+f3", GUEST: "en-gb"}
SCRIPT = [
    (HOST, "Welcome back to River Stories. I'm Maya, and today we are talking about floods."),
    (HOST, "My guest is the hydrologist Dr. Ada Okafor. Thanks for coming in."),
    (GUEST, "Thanks for having me. I've spent twenty years measuring how rivers change their course."),
    (HOST, "Let's start with the basics. Why does a river move at all?"),
    (GUEST, "Water is always looking for the shortest way downhill."),
    (GUEST, "On the outside of a bend it cuts into the bank, and on the inside it drops sand and gravel."),
    (HOST, "So over decades the whole channel slowly walks across the valley."),
    (GUEST, "Exactly. And a big flood can do in one night what normally takes a century."),
    (HOST, "You were on the Elbe during the flood of two thousand and two. What did you see?"),
    (GUEST, "The water rose almost a metre every hour. Whole fields disappeared under brown water."),
    (GUEST, "When it was over, one meander had simply been cut off and the river took a new path."),
    (HOST, "That sounds frightening for the people who live there."),
    (GUEST, "It is. But the old channel became a quiet lake, and the birds arrived within a year."),
    (HOST, "Which brings us to the question everyone asks. Should we build higher walls?"),
    (GUEST, "Sometimes. But giving the river room to spread out is often cheaper and safer."),
    (HOST, "Room for the river. I like that. After the break, we'll hear from a farmer on the Elbe."),
]
PLAYING = (5, 9)  # the line and word clicked before the screenshot (the audio plays from there, then pauses)
# What the default configuration shows on a CPU machine (the diarizer loads on the first job that asks for speakers);
# the screenshot makes no speed claim (no timings).
DESCRIBE = ("Qwen/Qwen3-ASR-0.6B (transformers, cpu, float32); "
            "Qwen/Qwen3-ForcedAligner-0.6B (transformers, cpu, float32); speakers: wavlm-base-plus-sv")
PLAYER = "#transcript-player"


def episode(path: Path) -> Transcript:
    """Write the spoken episode to `path` and return its true transcript, each line and word with its speaker's
    label as a diarizer gives it (a cluster id, numbered later)."""
    parts, segments, pos = [np.zeros(int(0.6 * SR), np.float32)], [], 0.6
    for i, (who, line) in enumerate(SCRIPT):
        speech = espeak(line, voice=VOICES[who], wpm=165)
        segments.append(_segment(line, pos, pos + len(speech) / SR, f"cluster-{list(VOICES).index(who)}"))
        gap = 0.9 if i + 1 < len(SCRIPT) and SCRIPT[i + 1][0] != who else 0.45
        parts += [speech, np.zeros(int(gap * SR), np.float32)]
        pos += len(speech) / SR + gap
    samples = np.concatenate(parts)
    write_audio(path, samples, SR, bitrate=64_000)
    return Transcript(language="English", duration=len(samples) / SR, text=" ".join(s.text for s in segments),
                      segments=segments)


def _segment(text: str, start: float, end: float, speaker: str) -> Segment:
    tokens = text.split()
    weights = np.array([len(t) + 2 for t in tokens], float)
    edges = start + (end - start) * np.concatenate([[0], np.cumsum(weights) / weights.sum()])
    words = [Word(round(a, 3), round(b - 0.04, 3), t.strip(".,?!"), speaker)
             for t, a, b in zip(tokens, edges, edges[1:])]
    return Segment(round(start, 3), round(end, 3), text, words, speaker)


class ScriptedPipeline:
    """Pipeline's surface, answering with the episode's true transcript: with speaker labels ("Speaker 1"…, numbered
    by the pipeline's own `number_speakers`) when the options ask for them, without otherwise."""

    can_diarize = True

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript

    def describe(self) -> str:
        return DESCRIBE

    def transcribe(self, source, options=None, progress=None, *, filename=None, allow_local=True, on_audio=None,
                   cancel=None):
        samples = decode_audio(source)
        if on_audio:
            on_audio(samples)
        transcript = copy.deepcopy(self.transcript)
        diarize = bool(getattr(options, "diarize", False))
        stages = (("decode", 1), ("chunk", 1), ("transcribe", 4), ("align", 4)) + (("diarize", 16),) * diarize
        for stage, n in stages + (("merge", 1),):
            progress(stage, n, n)
        if diarize:
            return number_speakers(transcript)
        for seg in transcript.segments:
            seg.speaker = None
            for w in seg.words:
                w.speaker = None
        return transcript


def rename(page, label: str, name: str) -> None:
    """Type `name` into the name chip of `label`'s first line, as a user does, and wait for the server's answer
    (the downloads are rewritten with the new name)."""
    srt = page.locator(f"{PLAYER} a[download$='.srt']").get_attribute("href")
    page.locator(f"{PLAYER} .tp-seg .tp-spk", has_text=label).first.click()
    box = page.locator(f"{PLAYER} .tp-rename")
    box.fill(name)
    box.press("Enter")
    page.wait_for_function(f"h => document.querySelector('{PLAYER} a[download$=\".srt\"]').href !== h", arg=srt,
                           timeout=10_000)


def screenshot(out: Path, theme: str = "light", viewport: tuple[int, int] = (1360, 1000)) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "river-stories-episode-12.mp3"
        transcript = episode(audio)
        with serve(app_config(), ScriptedPipeline(transcript)) as url, sync_playwright() as p:
            chromium = browser(p)
            page = chromium.new_page(viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=1.5)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{url}?__theme={theme}")
            page.get_by_label("Context (optional)").fill("River Stories, Maya, Dr. Ada Okafor, Elbe")
            page.get_by_label(DIARIZE_LABEL).check()
            page.locator("#num-speakers input").click()
            page.get_by_role("option", name="2", exact=True).click()
            upload_and_transcribe(page, audio)
            rename(page, "Speaker 1", HOST)
            rename(page, "Speaker 2", GUEST)
            names = page.locator(f"{PLAYER} .tp-seg .tp-spk").all_text_contents()
            assert names == [who for who, _ in SCRIPT], names
            page.wait_for_timeout(1000)  # a phone scrolls the player into view
            line, word = PLAYING
            page.locator(f"{PLAYER} .tp-seg").nth(line).locator(".tp-w").nth(word).click()
            time.sleep(0.9)
            page.evaluate(f"() => document.querySelector('{PLAYER} .tp-audio').pause()")
            page.mouse.move(5, 5)
            assert not errors, errors
            assert page.locator(f"{PLAYER} .tp-speaker-notice").is_hidden()
            page.screenshot(path=str(out), full_page=True)  # the lines scroll in the player; the page ends below
            chromium.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png",
               sys.argv[2] if len(sys.argv) > 2 else "light",
               tuple(int(n) for n in sys.argv[3].split("x")) if len(sys.argv) > 3 else (1360, 1000))
