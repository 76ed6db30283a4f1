"""`python -m helpers.transcribe`: transcribe audio files or folders, of any length.

Usage:
    python -m helpers.transcribe [--model SOURCE] [--adapter DIR_OR_HUB_ID] [--language L]
                                 [--precision P] [--batch-size N] [--no-fallback]
                                 [--timestamps] [--no-routing] PATH...

PATH is an audio file or a folder (searched recursively for audio files), of any length.
One JSON object per file goes to stdout, `{"path": ..., "text": ..., "language": ...,
"adapter": ...}` for a clip up to 30 s (decoded in batches), `{"path", "text", "language",
"adapter", "segments": [{"start", "end", "text", "language", "adapter"}, ...]}` for a
longer file (Whisper's sequential long-form decoding over 30 s windows streamed from the
file, `helpers.transcribe.long_form.transcribe_long`) and, with --timestamps, for every
file. A path that is missing or not audio gets a one-line error on stderr naming it, the
others are still transcribed, and the exit status is 1. Decoding uses Whisper's
temperature fallback against repetition loops; --no-fallback decodes greedily only.
stderr shows the progress bar, errors and a line saying how clips are routed, nothing else.

"language" is the code the file was decoded with, "adapter" whether the adapter decoded it.
An adapter trained on a multilingual base for one language is used only on speech in that
language (`helpers.transcribe.routing`): the base, adapter off, identifies each clip (each
30 s window of a longer file, whose "language"/"adapter" are then those of most of its
audio); clips in the adapter's language are decoded with the adapter, the others by the
base in their own language. --no-routing applies the adapter to everything; --language
decodes every file in that language, with the adapter when it is the adapter's.
English-only models: "language" is "en".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator

from tqdm.auto import tqdm

from helpers.audio import AUDIO_EXTENSIONS, WINDOW_SECONDS, AudioError, audio_duration
from helpers.export.engines import add_engine_arguments, check_engine_arguments, run_engine
from helpers.model.adapters import load_for_transcription
from helpers.quiet import quiet_libraries
from helpers.transcribe.long_form import transcribe_long
from helpers.transcribe.routing import Router, load_routed, routing_line


# ------------------------------------------------------------ the command's routing
def transcribe_any(model, processor, paths: list[Path], batch_size: int = 8,
                   fallback: bool = True, timestamps: bool = False, progress: bool = True,
                   router: Router | None = None
                   ) -> Iterator[tuple[Path, dict | None, str | None]]:
    """Yield (path, result, error) per path, in order, for audio of any length.

    result: {"path", "text", "language", "adapter"} for clips up to 30 s, decoded in
    batches (`helpers.transcribe.routing.transcribe_paths_routed`); {"path", "text",
    "language", "adapter", "segments"} for longer files, and for every file when
    `timestamps` (`transcribe_long`, one file at a time). router: how clips are routed
    (None: a Router with no adapter, `helpers.transcribe.routing`). One progress bar
    ("transcribing", seconds of audio) on stderr.
    """
    router = router or Router(english_only=not model.generation_config.is_multilingual)
    lengths, errors = {}, {}
    for path in paths:
        try:
            lengths[path] = audio_duration(path)
        except AudioError as error:
            errors[path] = str(error)
    bar = tqdm(total=round(sum(lengths.values()), 1), desc="transcribing", unit="s",
               disable=not progress)
    pending: list[Path] = []  # short clips waiting for their batch, in order
    for path in [*paths, None]:
        long_file = path in lengths and (timestamps or lengths[path] > WINDOW_SECONDS)
        if path is None or long_file or path in errors or len(pending) == batch_size:
            yield from _short_batch(model, processor, pending, fallback, lengths, bar, router)
            pending = []
        if path is None:
            break
        if path in errors:
            yield path, None, errors[path]
        elif long_file:
            yield _long_file(model, processor, path, fallback, bar, router)
        else:
            pending.append(path)
    bar.close()


def _long_file(model, processor, path: Path, fallback: bool, bar, router: Router
               ) -> tuple[Path, dict | None, str | None]:
    """(path, {"path", "text", "language", "adapter", "segments"}, None) by
    `transcribe_long`, or (path, None, error)."""
    try:
        result = transcribe_long(model, processor, path, fallback=fallback, router=router,
                                 progress=lambda seconds: bar.update(round(seconds, 1)))
    except AudioError as error:
        return path, None, str(error)
    return path, {key: result.get(key) for key in ("path", "text", "language", "adapter", "segments")}, None


def _short_batch(model, processor, pending: list[Path], fallback: bool, lengths: dict, bar,
                 router: Router):
    """Transcribe short clips in one batch (`transcribe_paths_routed`); yield (path, result, error)."""
    from helpers.transcribe.routing import transcribe_paths_routed

    if not pending:
        return
    done = {path: (text, route, error) for path, text, route, error in
            transcribe_paths_routed(model, processor, pending, router, len(pending),
                                    progress=False, fallback=fallback)}
    bar.update(round(sum(lengths[path] for path in pending), 1))
    for path in pending:
        text, route, error = done[path]
        yield path, (None if error else {"path": str(path), "text": text, "language": route.language,
                                         "adapter": route.adapter}), error


def expand_paths(paths: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Expand files and folders into audio files; returns (files, errors for bad paths)."""
    files, errors = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                errors.append(f"{path}: folder holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return files, errors


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments of `python -m helpers.transcribe`."""
    parser = argparse.ArgumentParser(prog="python -m helpers.transcribe",
                                     description="Transcribe audio files with Whisper (+ LoRA adapter).")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    parser.add_argument("--model", help="model source: embedded, a Hub id, a local or CTranslate2 dir "
                                        "(default: the adapter's base model, else embedded)")
    parser.add_argument("--adapter", help="a LoRA adapter (PEFT format): a folder, or a Hub id "
                                          "USER/NAME[@REVISION]; a folder that exists wins")
    parser.add_argument("--language", help="spoken language, e.g. hindi (multilingual models)")
    parser.add_argument("--precision", default="fp32", help="8bit, 4bit, fp16 or fp32 (default fp32)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-fallback", action="store_true",
                        help="greedy decoding only, without Whisper's temperature fallback "
                             "against repetition loops (for comparison)")
    parser.add_argument("--no-routing", action="store_true",
                        help="apply the adapter to every file; by default an adapter trained on a "
                             "multilingual base for one language decodes only the speech the "
                             "base identifies as that language (helpers.transcribe.routing)")
    parser.add_argument("--timestamps", action="store_true",
                        help="segments with start/end times for every file (files over 30 s "
                             "always get them: Whisper's long-form decoding, helpers.long_form)")
    add_engine_arguments(parser)
    args = parser.parse_args(argv)
    check_engine_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    """Transcribe the given paths; print JSON lines; return the exit status."""
    args = parse_args(argv)
    quiet_libraries()
    files, errors = expand_paths(args.paths)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if files and args.engine != "transformers":
        return run_engine(args, files, errors)  # helpers.export.engines
    if files:
        try:
            model, processor, router = load_routed(args.model, args.adapter, args.language,
                                                   args.precision, routing=not args.no_routing)
        except (ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if routing_line(router):
            print(routing_line(router), file=sys.stderr)
        for path, result, error in transcribe_any(model, processor, files, args.batch_size,
                                                  fallback=not args.no_fallback,
                                                  timestamps=args.timestamps, router=router):
            if error:
                errors.append(error)
                tqdm.write(f"error: {error}", file=sys.stderr)  # on its own line, under the bar
            else:
                print(json.dumps(result, ensure_ascii=False), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
