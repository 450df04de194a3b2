"""The diarization stage: speech stretches -> windows -> embeddings -> clusters -> named speaker turns.

Speakers are named "Speaker 1", "Speaker 2"… in order of first appearance; the merge gives each word and segment
the turn it overlaps most (core.output.merge).
"""
from __future__ import annotations

import logging

import numpy as np

from core.config import Config
from core.diarize.cluster import cluster
from core.diarize.embedder import SpeakerEmbedder
from core.diarize.windows import Window, plan_windows, speech_runs
from core.models.layout import resolve_device
from core.options import TranscribeOptions
from core.diarize.names import speaker_name
from core.types import SAMPLE_RATE, Progress, Turn, no_progress

log = logging.getLogger("core")


class Diarizer:
    """Loads the embedding model once; `diarize` is safe to call from several jobs' threads in turn.

    The embedder is the transformers model DIARIZER_MODEL names, or any object given as `embedder` with the same
    `embed(clips, progress)` (float32 16 kHz clips -> a torch tensor (n, d) of unit rows) and `describe()`: the
    benchmarks time the stage around it and measure its error rate with other speaker-embedding models.
    """

    def __init__(self, config: Config | None = None, *, embedder=None) -> None:
        if embedder is None:
            if config is None:
                raise TypeError("Diarizer needs a config or an embedder")
            device, dtype = resolve_device(config)
            embedder = SpeakerEmbedder(config.diarizer_model, device, dtype)
        self.embedder = embedder

    def describe(self) -> str:
        return self.embedder.describe()

    def diarize(self, samples: np.ndarray, spans: list[tuple[float, float]], options: TranscribeOptions,
                progress: Progress = no_progress) -> list[Turn]:
        """Turns over the speech in `spans` (seconds), with the count `options` asks for."""
        duration = len(samples) / SAMPLE_RATE
        windows = plan_windows(speech_runs(spans), duration)
        if not windows:
            return []
        clips = [samples[int(w.start * SAMPLE_RATE):max(int(w.end * SAMPLE_RATE), int(w.start * SAMPLE_RATE) + 1)]
                 for w in windows]
        embeddings = self.embedder.embed(clips, progress)
        fewest, most = options.speaker_range()
        labels = cluster(embeddings, fewest, most)
        return turns_from_labels(windows, labels)


def turns_from_labels(windows: list[Window], labels) -> list[Turn]:
    """Each window's owned stretch as a turn of its cluster, neighbours of one cluster joined, clusters renamed by
    first appearance."""
    names: dict[int, str] = {}
    turns: list[Turn] = []
    for w, label in sorted(zip(windows, (int(x) for x in labels)), key=lambda p: p[0].own_start):
        name = names.setdefault(label, speaker_name(len(names) + 1))
        last = turns[-1] if turns else None
        if last is not None and last.speaker == name and w.own_start - last.end < 1e-6:
            turns[-1] = Turn(last.start, w.own_end, name)
        else:
            turns.append(Turn(w.own_start, w.own_end, name))
    return turns


def load_diarizer(config: Config) -> Diarizer | None:
    """The diarizer DIARIZER_MODEL names, or None when it is empty (speaker labels off)."""
    if not config.diarizer_model.strip():
        return None
    log.info("loading diarizer %s", config.diarizer_model)
    return Diarizer(config)
