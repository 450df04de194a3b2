"""One options gate: the CLI, the web form, the job schema and the pipeline refuse the same bad value with the same
words, and every implementation of the Transcriber interface takes the same arguments."""
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import InputError
from core.options import MAX_CONTEXT_CHARS, TranscribeOptions, as_options
from core.pipeline import Pipeline
from core.remote.client import RemotePipeline
from core.remote.schema import parse_job_input
from core.transcriber import Transcriber
from webui.handler import make_options
from webui.zerogpu import ZeroGpuPipeline

ROOT = Path(__file__).resolve().parents[1]
URL = "https://example.com/a.mp3"


def cli_error(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "core", "x.mp3", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "ASR_MODEL": "/nonexistent"})
    assert run.returncode == 2, run.stderr  # refused by the parser, before any model is loaded
    return run.stderr.strip().splitlines()[-1].split("error: ", 1)[1]


@pytest.mark.parametrize("cli_args, form, job, expected", [
    (["--chunk-seconds", "2"], dict(chunk_seconds=2), {"chunk_seconds": 2},
     "chunk_seconds must be between 5 and 180 seconds"),
    (["--language", "klingon"], dict(language="klingon"), {"language": "klingon"}, "unsupported language 'klingon'"),
    (["--context", "x" * 4001], dict(context="x" * 4001), {"context": "x" * 4001},
     f"the context is 4001 characters long; the limit is {MAX_CONTEXT_CHARS}"),
])
def test_every_front_end_refuses_a_bad_option_in_the_same_words(cli_args, form, job, expected, tiny_config):
    messages = [cli_error(*cli_args)]
    values = dict(language=None, context="", word_timestamps=True, chunk_seconds=None) | form
    with pytest.raises(InputError) as web:
        make_options(**values)
    with pytest.raises(InputError) as schema:
        parse_job_input({"audio_url": URL, **job})
    with pytest.raises(InputError) as api:
        Pipeline(tiny_config, asr=object(), aligner=None).transcribe(URL, form)
    messages += [str(e.value) for e in (web, schema, api)]
    assert all(m.startswith(expected) for m in messages), messages
    assert len(set(messages)) == 1, messages


def test_options_are_normalised_once_when_built():
    o = TranscribeOptions(language="de", chunk_seconds=45)
    assert o.language == "German" and o.chunk_seconds == 45.0 and isinstance(o.chunk_seconds, float)
    assert as_options(o) is o  # an instance is already checked: passing it on checks nothing again
    assert as_options({"language": "fr"}) == TranscribeOptions(language="French")
    assert as_options(None) == TranscribeOptions()
    with pytest.raises(InputError, match="unknown option"):
        as_options({"lang": "fr"})
    for bad in (dict(chunk_seconds=float("nan")), dict(chunk_seconds=True), dict(context=5),
                dict(word_timestamps="yes")):
        with pytest.raises(InputError):
            TranscribeOptions(**bad)


@pytest.mark.parametrize("cls", [Pipeline, RemotePipeline, ZeroGpuPipeline])
def test_each_transcriber_has_the_interface_and_its_signature(cls):
    for name in ("describe", "warm_up", "transcribe", "close"):
        ours = inspect.signature(getattr(Transcriber, name))
        theirs = inspect.signature(getattr(cls, name))
        assert [(p.name, p.kind) for p in theirs.parameters.values()] == \
            [(p.name, p.kind) for p in ours.parameters.values()], (cls.__name__, name)
