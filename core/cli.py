"""Transcribe audio and video files, audio URLs and web pages to JSON, SRT, VTT and TXT with Qwen3-ASR.

Each input is a local file, an http(s) audio URL or a page URL. Models load once; one failing input does not stop
the others (the exit status is 1 if any failed).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.config import BACKENDS, Config
from core.errors import CoreError, InputError, JobCancelled
from core.options import CHUNK_SECONDS_RANGE, MAX_SPEAKERS, TranscribeOptions
from core.output.speakers import check_speaker_name, rename_speakers
from core.output.writers import FORMATS as FORMAT_CHOICES


class StageBars:
    """One tqdm bar per stage, on stderr, so stdout stays clean for scripts."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: float, total: float | None) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            unit, scale = ("B", True) if stage == "download" else ("it", False)
            self.bar = tqdm(total=total, desc=f"{stage:>10}", unit=unit, unit_scale=scale, leave=False,
                            file=sys.stderr)
            self.stage = stage
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None


def parse_formats(value: str) -> list[str]:
    if value.strip() == "all":
        return list(FORMAT_CHOICES)
    formats = [f.strip().lower() for f in value.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMAT_CHOICES]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"formats are a comma list of {', '.join(FORMAT_CHOICES)} or 'all'")
    return formats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qwen3-asr", description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio/video file, audio URL or page URL")
    p.add_argument("--language", default="auto", help="'auto', a language name or an ISO 639-1 code")
    p.add_argument("--context", default="", help="names and terms that help recognition")
    p.add_argument("--format", dest="formats", type=parse_formats, default="json,srt,vtt,txt",
                   help="comma list of json, srt, vtt, txt, or 'all'")
    p.add_argument("--output-dir", "-o", type=Path, default=Path("."), help="where <stem>.<ext> files go")
    p.add_argument("--no-word-timestamps", action="store_true", help="skip the forced aligner")
    lo, hi = CHUNK_SECONDS_RANGE
    p.add_argument("--chunk-seconds", type=float, default=None,
                   help=f"target chunk length, {lo:g} to {hi:g} s (default: CHUNK_TARGET_S, "
                        f"{Config.chunk_target_s:g} unless set)")
    speakers = p.add_argument_group("speaker labels", "who speaks when: 'Speaker 1', 'Speaker 2'… in every output "
                                                      "(needs DIARIZER_MODEL)")
    speakers.add_argument("--diarize", action="store_true", help="label each word and line with its speaker")
    speakers.add_argument("--num-speakers", type=int, default=None, metavar="N",
                          help=f"there are exactly N speakers (1 to {MAX_SPEAKERS}; default: found automatically)")
    speakers.add_argument("--min-speakers", type=int, default=None, metavar="N", help="there are at least N speakers")
    speakers.add_argument("--max-speakers", type=int, default=None, metavar="N", help="there are at most N speakers")
    speakers.add_argument("--speaker-names", default=None, metavar="NAMES",
                          help="names for Speaker 1, Speaker 2… in order, comma-separated, e.g. 'Alice,Bob'")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help=f"where the models run (default: ASR_BACKEND, {Config.asr_backend} unless set)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars, also not while models load")
    return p


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown in --help, except where there is none to show (the help text says what decides)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == "":
            return action.help
        return super()._get_help_string(action)


def stem_for(source: str) -> str:
    """Output file stem: the file name without extension, or the last URL path part."""
    name = source.rstrip("/").split("?")[0].split("#")[0].rsplit("/", 1)[-1]
    stem = Path(name).stem if name else ""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem).strip("._")
    return safe or "transcript"


def speaker_names(value: str | None, diarize: bool) -> list[str]:
    """--speaker-names as a list of checked names (an InputError says what is wrong with one)."""
    if value is None:
        return []
    if not diarize:
        raise InputError("--speaker-names needs --diarize")
    return [check_speaker_name(name) for name in value.split(",")]


def name_speakers(transcript, names: list[str]):
    """The transcript with Speaker 1, Speaker 2… renamed in order, and the names left over (more names than
    speakers found)."""
    found = transcript.speakers
    return rename_speakers(transcript, dict(zip(found, names))), names[len(found):]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if isinstance(args.formats, str):
        args.formats = parse_formats(args.formats)

    from core.config import config_from_env
    from core.fetch.sources import open_source
    from core.output.writers import write_files
    from core.pipeline import NO_DIARIZER, make_pipeline

    try:
        overrides = {"asr_backend": args.backend} if args.backend else {}
        config = config_from_env(**overrides)
        options = TranscribeOptions(language=args.language, context=args.context,
                                    word_timestamps=not args.no_word_timestamps, chunk_seconds=args.chunk_seconds,
                                    diarize=args.diarize, num_speakers=args.num_speakers,
                                    min_speakers=args.min_speakers, max_speakers=args.max_speakers)
        names = speaker_names(args.speaker_names, args.diarize)
        if args.diarize and config.asr_backend != "runpod" and not config.diarizer_model.strip():
            raise InputError(NO_DIARIZER)  # a RunPod endpoint's own setting decides there
    except CoreError as e:
        parser.error(str(e))
    failed, sources = 0, []
    for source in args.inputs:  # a missing or unreadable local file is said at once, not after the models load
        try:
            if not source.strip().lower().startswith(("http://", "https://")):
                with open_source(source, config=config):  # a local path: checked, nothing fetched
                    pass
            sources.append(source)
        except CoreError as e:
            failed += 1
            print(f"error: {source}: {e}", file=sys.stderr)
    if not sources:
        return 1
    if args.quiet and config.asr_backend != "runpod":  # the models' loading bars too
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        pipeline = make_pipeline(config)
    except CoreError as e:
        print(f"error: cannot start: {e}", file=sys.stderr)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for source in sources:
        bars = StageBars(not args.quiet)
        try:
            transcript = pipeline.transcribe(source, options, bars)
            bars.close()
            transcript, unused = name_speakers(transcript, names) if names else (transcript, [])
            paths = write_files(transcript, args.output_dir, stem_for(source), args.formats)
            for w in transcript.warnings:
                print(f"warning: {source}: {w}", file=sys.stderr)
            if unused:
                print(f"warning: {source}: {len(names)} speaker name(s) given but {len(names) - len(unused)} "
                      f"speaker(s) found; unused: {', '.join(unused)}", file=sys.stderr)
            print("\n".join(str(p) for p in paths))
        except (CoreError, JobCancelled) as e:
            bars.close()
            failed += 1
            print(f"error: {source}: {e}", file=sys.stderr)
    pipeline.close()
    return 1 if failed else 0

