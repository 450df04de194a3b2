"""A synthetic conversation with known speaker turns: espeak-ng voices taking turns, mixed to one 16 kHz track.

espeak-ng variants differ in pitch and formants (`en-us+m3`, `en-gb+f2`…), which a real speaker-embedding model
separates; random weights cannot, so tests use this for plumbing and `bench.der` for the error rate.
"""
from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass, field

import numpy as np

SR = 16000
VOICES = ("en-us+m3", "en-gb+f2", "en-us+m7")  # a low male, a female and a higher male voice
LINES = (
    "Welcome back to the show, today we talk about rivers",
    "Thanks for having me, I have studied rivers for twenty years",
    "What surprised you most when you started",
    "How fast a river can move its whole course after one flood",
    "And that changes the towns along the banks",
    "Exactly, some villages had to move twice in a century",
    "Let us take a short question from our listeners",
    "Sure, I am happy to answer anything about floods",
    "Our listener asks whether dams make things better or worse",
)


@dataclass
class Conversation:
    samples: np.ndarray = field(repr=False)  # float32 mono at SR
    turns: list[tuple[float, float, int]]  # (start, end, voice index), in seconds, in order
    voices: tuple[str, ...]

    @property
    def duration(self) -> float:
        return len(self.samples) / SR


def say(text: str, voice: str, wpm: int = 170) -> np.ndarray:
    """espeak-ng speech as float32 at SR, leading and trailing silence trimmed."""
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(wpm), text], check=True,
                         capture_output=True).stdout
    rate = struct.unpack_from("<I", wav, 24)[0]
    pcm = np.frombuffer(wav[44:], dtype="<i2").astype(np.float32) / 32768.0
    t = np.arange(int(len(pcm) * SR / rate)) * (rate / SR)
    out = np.interp(t, np.arange(len(pcm)), pcm).astype(np.float32)
    loud = np.flatnonzero(np.abs(out) > 1e-3)
    return out[loud[0]:loud[-1] + 1] if len(loud) else out[:0]


def make_conversation(speakers: int = 2, lines: int = 6, *, gap_s: float = 0.6, repeat: int = 1,
                      voices: tuple[str, ...] = VOICES) -> Conversation:
    """`lines` lines (cycled from LINES, `repeat` rounds) spoken by `speakers` voices in turn, `gap_s` apart."""
    if not 1 <= speakers <= len(voices):
        raise ValueError(f"speakers must be 1..{len(voices)}")
    parts, turns, t = [], [], 0.0
    gap = np.zeros(int(gap_s * SR), dtype=np.float32)
    for k in range(lines * repeat):
        who = k % speakers
        speech = say(LINES[k % len(LINES)], voices[who])
        if parts:
            parts.append(gap)
            t += gap_s
        parts.append(speech)
        turns.append((round(t, 3), round(t + len(speech) / SR, 3), who))
        t += len(speech) / SR
    samples = np.concatenate(parts) * 0.8
    return Conversation(samples.astype(np.float32), turns, tuple(voices[:speakers]))
