"""Long-audio transcription with Qwen3-ASR and word timestamps from Qwen3-ForcedAligner.

    from core import Pipeline, TranscribeOptions
    transcript = Pipeline().transcribe("episode.mp3", TranscribeOptions(language="English"))

Importing `core` loads no model and no GPU package; `Pipeline()` loads the models once.
"""
from .config import Config, config_from_env, get_config
from .errors import BlockedURLError, CoreError, DecodeError, FetchError, InputError, ModelError, TooLargeError
from .types import Chunk, Segment, TranscribeOptions, Transcript, Word

__all__ = ["Config", "config_from_env", "get_config", "CoreError", "InputError", "FetchError", "BlockedURLError",
           "TooLargeError", "DecodeError", "ModelError", "Chunk", "Segment", "Transcript", "Word",
           "TranscribeOptions", "Pipeline", "make_pipeline"]


def __getattr__(name):  # the pipeline imports heavier modules; load it on first use
    if name in ("Pipeline", "make_pipeline"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
