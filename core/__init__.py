"""Long-audio transcription with Qwen3-ASR and word timestamps from Qwen3-ForcedAligner.

    from core import Pipeline, TranscribeOptions
    transcript = Pipeline().transcribe("episode.mp3", TranscribeOptions(language="English"))

Importing `core` loads no model and no GPU package; `Pipeline()` loads the models once.
"""
from core.config import Config, config_from_env, get_config
from core.errors import (BlockedURLError, CoreError, DecodeError, FetchError, InputError, JobCancelled, ModelError,
                         TooLargeError)
from core.options import TranscribeOptions
from core.transcriber import Transcriber
from core.types import Chunk, Segment, Transcript, Word

__all__ = ["Config", "config_from_env", "get_config", "CoreError", "InputError", "FetchError", "BlockedURLError",
           "TooLargeError", "DecodeError", "ModelError", "JobCancelled", "Chunk", "Segment", "Transcript", "Word",
           "TranscribeOptions", "Transcriber", "Pipeline", "make_pipeline"]


def __getattr__(name):  # the pipeline imports heavier modules; load it on first use
    if name in ("Pipeline", "make_pipeline"):
        from core import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
