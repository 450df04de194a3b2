"""Bake the ASR, aligner and diarizer weights into the Docker image at build time.

    python builder/fetch_models.py                      # ASR_MODEL, ALIGNER_MODEL, DIARIZER_MODEL from the env
    python builder/fetch_models.py Qwen/Qwen3-ASR-1.7B  # or any hub ids / local directories

Weights go into the Hugging Face cache (HF_HOME), where transformers and vLLM find them by the same hub id at run
time with HF_HUB_OFFLINE=1, so the worker never downloads anything during a cold start. After each download the
script resolves the model once more with the network off, which is exactly what the running container will do.
An empty ALIGNER_MODEL (word timestamps off) or DIARIZER_MODEL (speaker labels off) is skipped. Any failure exits non-zero with a one-line reason, so
`docker build` stops at this step instead of shipping an image that cannot start.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_ASR_MODEL = "Qwen/Qwen3-ASR-0.6B"
DEFAULT_ALIGNER_MODEL = "Qwen/Qwen3-ForcedAligner-0.6B"
DEFAULT_DIARIZER_MODEL = "microsoft/wavlm-base-plus-sv"
# Repository files the runtime never reads (model cards, pictures, other frameworks' weights).
IGNORE_PATTERNS = ["*.md", "*.png", "*.jpg", "*.jpeg", "*.gif", "*.pdf", "*.onnx", "*.gguf", "*.msgpack", "*.h5",
                   "original/*"]
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


class FetchError(Exception):
    """A model could not be fetched or is incomplete; str(e) is the whole message."""


def models_from_env(env=None) -> list[str]:
    """ASR_MODEL, ALIGNER_MODEL and DIARIZER_MODEL as the image will use them (the last two may be empty: off)."""
    env = os.environ if env is None else env
    models = [env.get("ASR_MODEL", DEFAULT_ASR_MODEL), env.get("ALIGNER_MODEL", DEFAULT_ALIGNER_MODEL),
              env.get("DIARIZER_MODEL", DEFAULT_DIARIZER_MODEL)]
    return [m.strip() for m in models if m and m.strip()]


def check_model_dir(path: Path, name: str) -> Path:
    """A usable checkpoint has a readable config.json and at least one weight file."""
    config = path / "config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FetchError(f"model {name!r} has no config.json; is it a transformers checkpoint?") from None
    except (OSError, ValueError) as e:
        raise FetchError(f"model {name!r} has an unreadable config.json ({e.__class__.__name__})") from None
    if not any(p.suffix in WEIGHT_SUFFIXES for p in path.rglob("*") if p.is_file()):
        raise FetchError(f"model {name!r} has no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    return path


def fetch_model(name: str, *, cache_dir: str | None = None, revision: str | None = None) -> Path:
    """Download `name` into the HF cache (or accept a local checkpoint directory); returns the snapshot folder."""
    local = Path(name).expanduser()
    if local.is_dir():
        return check_model_dir(local.resolve(), name)

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    kwargs = dict(repo_id=name, revision=revision, cache_dir=cache_dir, ignore_patterns=IGNORE_PATTERNS)
    try:
        snapshot_download(**kwargs)
        # What the container does at run time: resolve from the cache alone.
        path = Path(snapshot_download(**kwargs, local_files_only=True))
    except GatedRepoError:
        raise FetchError(f"model {name!r} is gated: accept its licence on huggingface.co and build with HF_TOKEN "
                         "set") from None
    except RepositoryNotFoundError:
        raise FetchError(f"model {name!r} was not found on the Hugging Face Hub (check the id, or set HF_TOKEN "
                         "for a private repository)") from None
    except RevisionNotFoundError:
        raise FetchError(f"model {name!r} has no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        from huggingface_hub import constants

        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub could not be reached or failed"
        raise FetchError(f"model {name!r} is not in the local cache and {why}; build with network access or "
                         "pre-populate HF_HOME") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        raise FetchError(f"downloading model {name!r} failed with HTTP {status}") from None
    except (OSError, ValueError) as e:  # disk full, bad id syntax (HFValidationError is a ValueError)
        raise FetchError(f"downloading model {name!r} failed: {e.__class__.__name__}: {str(e)[:200]}") from None
    return check_model_dir(path, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("models", nargs="*", help="hub ids or local directories (default: $ASR_MODEL $ALIGNER_MODEL "
                        "$DIARIZER_MODEL)")
    parser.add_argument("--cache-dir", default=None, help="HF cache folder (default: $HF_HOME/hub)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of every model")
    args = parser.parse_args(argv)
    models = args.models or models_from_env()
    if not models:
        parser.error("no model given and ASR_MODEL is empty")
    for name in models:
        try:
            path = fetch_model(name, cache_dir=args.cache_dir, revision=args.revision)
        except FetchError as e:
            print(f"fetch_models: {e}", file=sys.stderr)
            return 1
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        print(f"fetch_models: {name} ready ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
