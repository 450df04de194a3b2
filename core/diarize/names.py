"""Speaker names: "Speaker 1", "Speaker 2"… in order of first appearance (what users rename in the player)."""
from __future__ import annotations

from core.types import Transcript


def speaker_name(number: int) -> str:
    return f"Speaker {number}"


def number_speakers(transcript: Transcript) -> Transcript:
    """Rename the speakers "Speaker 1", "Speaker 2"… in order of first appearance in the transcript (a cluster may
    hold only windows that no word ended up in) and list them in `transcript.speakers`."""
    names: dict[str, str] = {}
    for seg in transcript.segments:
        if seg.speaker is not None:
            seg.speaker = names.setdefault(seg.speaker, speaker_name(len(names) + 1))
        for w in seg.words:
            if w.speaker is not None:
                w.speaker = names.setdefault(w.speaker, speaker_name(len(names) + 1))
    transcript.speakers = list(names.values())
    return transcript
