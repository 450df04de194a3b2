"""Transcribe audio and video files, folders, lists, podcast feeds, audio URLs and web pages to JSON, SRT, VTT and
TXT with Qwen3-ASR.

Each input is a file, a folder (its media files, recursively), a list file (.txt/.list/.lst/.m3u: one path or URL a
line), an http(s) audio or page URL, or a podcast feed URL. Models load once; one failing item does not stop the
others. Exit status: 0 all done, 1 something failed, 2 the models could not start, 130 stopped by Ctrl-C.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from core.batch.feeds import parse_since
from core.batch.runner import ENGINE_PARALLEL, REMOTE_PARALLEL
from core.config import BACKENDS, Config
from core.errors import CoreError, InputError
from core.options import CHUNK_SECONDS_RANGE, MAX_SPEAKERS, TranscribeOptions
from core.output.speakers import check_speaker_name
from core.output.writers import FORMATS as FORMAT_CHOICES


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
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="file, folder, list file, audio or page URL, or podcast feed URL")
    p.add_argument("--language", default="auto", help="'auto', a language name or an ISO 639-1 code")
    p.add_argument("--context", default="", help="names and terms that help recognition")
    p.add_argument("--format", dest="formats", type=parse_formats, default="json,srt,vtt,txt",
                   help="comma list of json, srt, vtt, txt, or 'all'")
    p.add_argument("--output-dir", "-o", type=Path, default=Path("."),
                   help="where <name>.<ext> files go (a folder's subfolders are kept) and, for a batch, batch.json")
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
    batch = p.add_argument_group("batches", "several items, a folder, a list or a feed; a rerun skips items whose "
                                            "files are all written")
    batch.add_argument("--parallel", type=int, default=None, metavar="N",
                       help="items in flight at once (default: BATCH_PARALLEL if set, else "
                            f"{REMOTE_PARALLEL} with a RunPod endpoint, whose 3 default workers it keeps busy with "
                            f"more queued for its scaler; {ENGINE_PARALLEL} with vLLM, sharing its batches; 1 with "
                            "transformers)")
    batch.add_argument("--overwrite", action="store_true", help="transcribe again items whose files exist")
    batch.add_argument("--retry-failed", action="store_true",
                       help="run only what OUTPUT_DIR/batch.json lists as failed or cancelled (INPUTs optional)")
    batch.add_argument("--limit", type=int, default=None, metavar="N", help="a feed's newest N episodes only")
    batch.add_argument("--since", default=None, metavar="YYYY-MM-DD",
                       help="a feed's episodes published on or after that day only")
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


def speaker_names(value: str | None, diarize: bool) -> list[str]:
    """--speaker-names as a list of checked names (an InputError says what is wrong with one)."""
    if value is None:
        return []
    if not diarize:
        raise InputError("--speaker-names needs --diarize")
    return [check_speaker_name(name) for name in value.split(",")]


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while inputs are read or models load; a running batch handles its own
        print("stopped by Ctrl-C", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if isinstance(args.formats, str):
        args.formats = parse_formats(args.formats)
    if not args.inputs and not args.retry_failed:
        parser.error("give at least one INPUT (a file, folder, list file, URL or feed URL), or --retry-failed")

    from core.batch import plan_batch
    from core.config import config_from_env
    from core.pipeline import NO_DIARIZER

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
        since = parse_since(args.since) if args.since is not None else None
        if args.limit is not None and args.limit < 1:
            raise InputError("--limit must be at least 1")
        if args.parallel is not None and args.parallel < 1:
            raise InputError("--parallel must be at least 1")
        # Every input is checked (folders listed, feeds read) before any model loads.
        plan, record = plan_batch(args.inputs, args.output_dir, config, retry_failed=args.retry_failed,
                                  limit=args.limit, since=since)
    except CoreError as e:
        parser.error(str(e))
    for problem in plan.problems:
        print(f"error: {problem}", file=sys.stderr)
    if not plan.items:
        if args.retry_failed and not plan.problems:
            print(f"nothing to retry: {record.path} lists no failed or cancelled items", file=sys.stderr)
        return 1 if plan.problems or not args.retry_failed else 0
    return _run(args, config, options, names, plan, record, retry_command(argv, args.inputs))


def retry_command(argv: list[str], inputs: list[str]) -> str:
    """This command again for the failures only: the same options (backend, formats, language…), no INPUTs."""
    rest = [t for t in argv if t not in inputs and t not in ("--overwrite", "--retry-failed")]
    return shlex.join(["python", "-m", "core", "--retry-failed", *rest])


def _run(args, config, options, names, plan, record, retry: str) -> int:
    from core.batch import BatchRunner, default_parallel
    from core.batch.runner import needs_transcriber
    from core.batch.console import BatchBars, SingleBars, after_text, before_text
    from core.pipeline import interrupt_on_sigterm, make_pipeline

    if args.quiet and config.asr_backend != "runpod":  # the models' loading bars too
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    interrupt_on_sigterm()
    many = len(plan.items) > 1 or plan.expanded or record.existed or args.retry_failed
    record.keep = many  # a single file's run leaves no batch.json behind
    if many and not args.quiet:
        print(before_text(plan), file=sys.stderr)
    try:  # no model loads when every item is already done
        needed = needs_transcriber(plan.items, args.output_dir, args.formats, args.overwrite)
        pipeline = make_pipeline(config) if needed else None
    except CoreError as e:
        print(f"error: cannot start: {e}", file=sys.stderr)
        return 2
    try:
        parallel, why = (args.parallel, "--parallel") if args.parallel else default_parallel(pipeline, config)
        if many and not args.quiet:
            print(f"{parallel} at a time ({why})", file=sys.stderr)
        watcher = BatchBars(not args.quiet, len(plan.items)) if many else SingleBars(not args.quiet)
        runner = BatchRunner(pipeline, options, output_dir=args.output_dir, formats=args.formats,
                             parallel=parallel, overwrite=args.overwrite, speaker_names=names, watcher=watcher)
        report = runner.run(plan.items, record, plan.problems)
        watcher.close()
    finally:
        if pipeline is not None:
            pipeline.close()
    if many:
        print(after_text(report, record.path, retry), file=sys.stderr)
    return 130 if report.interrupted else (0 if report.ok else 1)
