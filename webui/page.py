"""The page's words and looks: the header line that says where transcription runs, the summary under the button,
the messages a failed job leaves, and the page CSS (the player has its own, player.css)."""
from __future__ import annotations

import html
import re

import gradio as gr

from core.types import Transcript

TITLE = "Qwen3-ASR Transcriber"
THEME = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate")
PAGE_CSS = """
#app-header h1 { margin-bottom: 0.15rem; }
#app-header p { margin-top: 0; font-size: var(--text-lg); }
#backend details { font-size: var(--text-sm); color: var(--body-text-color-subdued); }
#backend summary { list-style: none; cursor: pointer; }
#backend summary::-webkit-details-marker { display: none; }
#backend summary .more { margin-left: 0.25rem; color: var(--color-accent); }
#backend summary .more::after { content: " ▸"; }
#backend details[open] summary .more::after { content: " ▾"; }
#transcript-player { --block-padding: 0px; }  /* the player's edges line up with the page's: on a phone every pixel
                                                 of width is the seek bar's */
#job-status .job-error, #job-status .job-error strong { color: var(--error-text-color); }
"""


def where_it_runs(described: str) -> str:
    """`Transcriber.describe()` in words a listener reads: where the work happens, not which library does it."""
    text = described.lower()
    if "runpod endpoint" in text:
        return f"Runs on a cloud GPU ({described})"
    if "zerogpu" in text:
        return "Runs on a shared Hugging Face GPU (ZeroGPU)"
    if "gpu" in text or "cuda" in text:
        return "Runs on this server's GPU"
    if "cpu" in text:
        return "Runs on this server's CPU (slower than a GPU: best for short recordings)"
    return "Runs on this server"


def backend_line(described: str) -> str:
    """The header line: where it runs in words, and behind a click the models and backend; no server paths."""
    public = public_text(described)
    details = "<br>".join(html.escape(part) for part in public.split("; "))
    return (f'<details><summary>{html.escape(where_it_runs(public))}. <span class="more">Details</span></summary>'
            f"{details}</details>")


def summary(transcript: Transcript) -> str:
    """The line under the button: language, length, counts, time taken, and any warnings."""
    n_words = sum(len(s.words) for s in transcript.segments)
    parts = [f"**{transcript.language}**", clock(transcript.duration), f"{len(transcript.segments)} segments"]
    if n_words:
        parts.append(f"{n_words} words timed")
    total = transcript.timings.get("total", 0.0)  # the whole job, as every Transcriber reports it
    if total:
        parts.append(f"done in {total:.1f} s")
    lines = [" · ".join(parts)]
    lines += [f"⚠️ {escape(w)}" for w in transcript.warnings]
    return "\n\n".join(lines)


def clock(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour; rounded down, as the player and every audio player show it."""
    s = max(0, int(seconds + 1e-6))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def failed(message: str) -> str:
    """What a failed job leaves under the button until the next job starts."""
    return f'<span class="job-error">**Not transcribed:** {escape(message)}</span>'


def public_text(text: str) -> str:
    """Text without server paths: a local model directory shows as its last component."""
    return re.sub(r"(?<![\w.])/(?:[^\s;(),/]+/)+([^\s;(),/]+)", r"\1", text)


def escape(text: str) -> str:
    """`text` shown literally in Markdown."""
    return re.sub(r"([\\`*_{}\[\]<>#|])", r"\\\1", text)
