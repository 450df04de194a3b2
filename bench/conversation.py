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

# Later rounds say new sentences built from these (seeded): espeak-ng is deterministic, so repeating LINES would put
# exact copies of the same audio in the file, which no real talk has and which a nearest-neighbour graph latches onto.
SUBJECTS = ("the river", "our guest", "the old bridge", "a farmer", "the town council", "my sister", "the storm",
            "a young engineer", "the museum", "every village")
VERBS = ("changed", "remembered", "described", "moved", "protected", "studied", "rebuilt", "flooded", "measured",
         "followed")
OBJECTS = ("the northern valley", "a quiet harbour", "twelve stone houses", "the whole summer", "the muddy road",
           "an empty market", "the tallest tower", "three small islands", "the school garden", "a long winter")
ENDINGS = ("last year", "after the flood", "without any help", "before the election", "in the morning",
           "for a decade", "on the radio", "near the coast", "every spring", "at great cost")


def fresh_line(rng: np.random.Generator) -> str:
    pick = lambda words: words[int(rng.integers(len(words)))]  # noqa: E731
    return f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)} {pick(ENDINGS)}".capitalize()


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
                      voices: tuple[str, ...] = VOICES, seed: int = 0) -> Conversation:
    """`lines` lines spoken by `speakers` voices in turn, `gap_s` apart, `repeat` rounds: the first round from
    LINES, later ones new sentences (`fresh_line`)."""
    if not 1 <= speakers <= len(voices):
        raise ValueError(f"speakers must be 1..{len(voices)}")
    parts, turns, t = [], [], 0.0
    gap = np.zeros(int(gap_s * SR), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for k in range(lines * repeat):
        who = k % speakers
        speech = say(LINES[k % len(LINES)] if k < lines else fresh_line(rng), voices[who])
        if parts:
            parts.append(gap)
            t += gap_s
        parts.append(speech)
        turns.append((round(t, 3), round(t + len(speech) / SR, 3), who))
        t += len(speech) / SR
    samples = np.concatenate(parts) * 0.8
    return Conversation(samples.astype(np.float32), turns, tuple(voices[:speakers]))
