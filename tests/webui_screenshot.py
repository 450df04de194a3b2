"""Make docs/screenshot.png: the real page in Chromium, with a realistic transcript loaded and playing.

    python tests/webui_screenshot.py [docs/screenshot.png [light|dark [WIDTHxHEIGHT]]]   (default 1360x1000)

The speech is espeak-ng reading SCRIPT (two voices, host and guest); the transcript is SCRIPT with each line's true
time span, its words spread over the span by length. A stand-in pipeline serves it, so no model weights are needed;
the page, the player, the encoded audio and the download files are the app's own.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio_helpers import SR, espeak, write_audio  # noqa: E402
from core.audio.decode import decode_audio  # noqa: E402
from core.types import Segment, Transcript, Word  # noqa: E402
from webui_helpers import ROOT, app_config, browser, serve, upload_and_transcribe  # noqa: E402

SCRIPT = [
    ("en-us", "Welcome back to River Stories. I'm your host, and today we are talking about floods."),
    ("en-gb", "Thanks for having me. I've spent twenty years measuring how rivers change their course."),
    ("en-us", "Let's start with the basics. Why does a river move at all?"),
    ("en-gb", "Water is always looking for the shortest way downhill."),
    ("en-gb", "On the outside of a bend it cuts into the bank, and on the inside it drops sand and gravel."),
    ("en-us", "So over decades the whole channel slowly walks across the valley."),
    ("en-gb", "Exactly. And a big flood can do in one night what normally takes a century."),
    ("en-us", "You were on the Elbe during the flood of two thousand and two. What did you see?"),
    ("en-gb", "The water rose almost a metre every hour. Whole fields disappeared under brown water."),
    ("en-gb", "When it was over, one meander had simply been cut off and the river took a new path."),
    ("en-us", "That sounds frightening for the people who live there."),
    ("en-gb", "It is. But the old channel became a quiet lake, and the birds arrived within a year."),
    ("en-us", "Which brings us to the question everyone asks. Should we build higher walls?"),
    ("en-gb", "Sometimes. But giving the river room to spread out is often cheaper and safer."),
    ("en-us", "Room for the river. I like that. Let's take a short break, and then we'll hear from a farmer."),
]
# What the default configuration shows on a CPU machine; the screenshot makes no speed claim (no timings).
DESCRIBE = ("Qwen/Qwen3-ASR-0.6B (transformers, cpu, float32); "
            "Qwen/Qwen3-ForcedAligner-0.6B (transformers, cpu, float32)")


def episode(path: Path) -> Transcript:
    """Write the spoken episode to `path` and return its true transcript."""
    parts, segments, pos = [np.zeros(int(0.6 * SR), np.float32)], [], 0.6
    for i, (voice, line) in enumerate(SCRIPT):
        speech = espeak(line, voice=voice, wpm=165)
        segments.append(_segment(line, pos, pos + len(speech) / SR))
        gap = 0.9 if i + 1 < len(SCRIPT) and SCRIPT[i + 1][0] != voice else 0.45
        parts += [speech, np.zeros(int(gap * SR), np.float32)]
        pos += len(speech) / SR + gap
    samples = np.concatenate(parts)
    write_audio(path, samples, SR, bitrate=64_000)
    return Transcript(language="English", duration=len(samples) / SR, text=" ".join(s.text for s in segments),
                      segments=segments)


def _segment(text: str, start: float, end: float) -> Segment:
    tokens = text.split()
    weights = np.array([len(t) + 2 for t in tokens], float)
    edges = start + (end - start) * np.concatenate([[0], np.cumsum(weights) / weights.sum()])
    words = [Word(round(a, 3), round(b - 0.04, 3), t.strip(".,?!")) for t, a, b in zip(tokens, edges, edges[1:])]
    return Segment(round(start, 3), round(end, 3), text, words)


class ScriptedPipeline:
    """Pipeline's surface, answering with the episode's true transcript."""

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript

    def describe(self) -> str:
        return DESCRIBE

    def transcribe(self, source, options=None, progress=None, *, filename=None, allow_local=True, on_audio=None,
                   cancel=None):
        samples = decode_audio(source)
        if on_audio:
            on_audio(samples)
        for stage, n in (("decode", 1), ("chunk", 1), ("transcribe", 4), ("align", 4), ("merge", 1)):
            progress(stage, n, n)
        return self.transcript


def screenshot(out: Path, theme: str = "light", viewport: tuple[int, int] = (1360, 1000)) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "river-stories-episode-12.mp3"
        transcript = episode(audio)
        with serve(app_config(), ScriptedPipeline(transcript)) as url, sync_playwright() as p:
            chromium = browser(p)
            page = chromium.new_page(viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=1.5)
            page.goto(f"{url}?__theme={theme}")
            page.get_by_label("Context (optional)").fill("River Stories, Elbe")
            upload_and_transcribe(page, audio)
            page.wait_for_timeout(1000)  # a phone scrolls the player into view
            page.locator("#transcript-player .tp-seg").nth(4).locator(".tp-w").nth(9).click()
            time.sleep(0.9)
            page.evaluate("() => document.querySelector('#transcript-player .tp-audio').pause()")
            page.mouse.move(5, 5)
            page.screenshot(path=str(out))
            chromium.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png",
               sys.argv[2] if len(sys.argv) > 2 else "light",
               tuple(int(n) for n in sys.argv[3].split("x")) if len(sys.argv) > 3 else (1360, 1000))
