"""The tuned model run by faster-whisper, the engine users deploy to: `--engine faster-whisper`
of `python -m helpers.transcribe` and `python -m helpers.app`.

An adapter is merged and converted for CTranslate2 once (`cached_ct2`, float32 weights,
kept under helpers.model.load.cache_root()/ct2-exports/ and found again by a hash of the
adapter's files, base, language and task); a CTranslate2 folder (`--model DIR`, or what
`python -m helpers.export --to ct2` wrote) is loaded as it is. faster-whisper then decodes
with its own rules (temperature fallback, no-speech and compression checks), greedily
(beam size 1, as our own path) and, from its options:
- `vad`: Silero VAD (shipped inside the faster-whisper wheel) skips what is not speech;
  a file longer than 30 s then goes through its batched pipeline
  (`BatchedInferencePipeline`: the speech cut at pauses into pieces of up to 30 s, decoded
  `batch_size` at a time); without `vad` a long file is decoded window after window.
- `word_timestamps`: each segment lists its words with start and end (s), from the
  cross-attention alignment faster-whisper computes.
Audio is decoded by helpers.audio (soundfile + soxr), as for our own path, and handed to
faster-whisper as 16 kHz samples. faster-whisper is an optional dependency
(requirements-engines.txt, `make engines`), imported only here.
"""
from __future__ import annotations

import hashlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from helpers.audio import SAMPLE_RATE, WINDOW_SECONDS, AudioError, audio_duration, load_audio
from helpers.files import REPO_ROOT

FASTER_WHISPER = "faster-whisper"
ENGINES = ("transformers", FASTER_WHISPER)  # --engine: our own path, or faster-whisper
REQUIREMENTS_ENGINES = REPO_ROOT / "requirements-engines.txt"
COMPUTE_TYPES = {"fp32": "float32", "8bit": "int8", "fp16": "float16"}  # --precision -> CTranslate2
EXPORT_VERSION = "1"  # part of the cache key: bump when the export itself changes


def import_faster_whisper():
    """Import faster_whisper; on Colab install requirements-engines.txt first if missing.

    Elsewhere a missing faster-whisper raises RuntimeError saying how to install it.
    """
    try:
        import faster_whisper
    except ImportError:
        from helpers.colab import in_colab, install_requirements

        if not in_colab():
            raise RuntimeError("--engine faster-whisper needs faster-whisper, an optional "
                               f"dependency: pip install -r {REQUIREMENTS_ENGINES.name} "
                               "(or `make engines`)") from None
        install_requirements(REQUIREMENTS_ENGINES)
        import faster_whisper
    return faster_whisper


# ------------------------------------------------------------------ the model folder
def export_key(adapter_dir: Path, base: str, language: str | None, task: str) -> str:
    """Hash of an adapter's files (names and bytes), its base, language and task."""
    digest = hashlib.sha256(f"{EXPORT_VERSION}|{base}|{language}|{task}".encode())
    for path in sorted(p for p in Path(adapter_dir).iterdir() if p.is_file()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_ct2(adapter, model_source: str | None = None, language: str | None = None,
               task: str | None = None) -> Path:
    """The adapter merged into its base and converted for CTranslate2 (float32), made once
    and reused: cache_root()/ct2-exports/<adapter folder name>-<export_key>.

    adapter: a folder or a Hub id (helpers.model.adapters.resolve_adapter). Language and
    task default to the adapter's run (helpers.export.merge.run_settings).
    """
    from helpers.export.ctranslate2 import export_ct2
    from helpers.export.merge import run_settings
    from helpers.model.adapters import adapter_base_model, resolve_adapter
    from helpers.model.load import cache_root

    folder = resolve_adapter(adapter)
    settings = run_settings(folder)
    base = model_source or adapter_base_model(folder)
    language, task = language or settings.get("language"), task or settings.get("task", "transcribe")
    target = (cache_root() / "ct2-exports" /
              f"{folder.resolve().name}-{export_key(folder, base, language, task)}")
    if not (target / "model.bin").is_file():
        print(f"exporting {adapter} for faster-whisper once, to {target} ...", file=sys.stderr,
              flush=True)
        export_ct2(folder, target, "float32", base, language, task)
    return target


def base_ct2(model_source: str | None = None, language: str | None = None) -> Path:
    """A CTranslate2 folder faster-whisper loads for a base model with no adapter: the
    source's own folder when it is one CTranslate2 model.bin (the embedded tiny.en, a
    `--to ct2` export), else the base saved plain and converted once (cached as in
    `cached_ct2`)."""
    from helpers.export.ctranslate2 import convert_to_ct2
    from helpers.export.merge import save_plain_model
    from helpers.model.load import cache_root, load_model, resolve_source

    source = model_source or "embedded"
    kind, where = resolve_source(source)
    if kind == "ct2" and len(where.model_bin) == 1 and where.model_bin[0].name == "model.bin":
        return where.data_dir
    key = hashlib.sha256(f"{EXPORT_VERSION}|{source}|{language}".encode()).hexdigest()[:16]
    target = cache_root() / "ct2-exports" / f"base-{Path(str(source)).name}-{key}"
    if not (target / "model.bin").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"converting {source} for faster-whisper once, to {target} ...", file=sys.stderr,
              flush=True)
        model, processor = load_model(source, precision="fp32", device="cpu", language=language)
        with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as tmp:
            convert_to_ct2(save_plain_model(model, processor, Path(tmp) / "plain"), target, "float32")
    return target


def model_folder(model_source: str | None, adapter: str | None, language: str | None) -> Path:
    """What faster-whisper loads for the command line's --model / --adapter / --language."""
    if adapter:
        return cached_ct2(adapter, model_source, language)
    return base_ct2(model_source, language)


def load_faster_whisper(folder, precision: str = "fp32", threads: int = 0):
    """faster_whisper.WhisperModel(folder) on the CPU (CUDA when there is one), compute type
    from --precision (fp32 float32, 8bit int8, fp16 float16); threads 0: CTranslate2's default."""
    if precision not in COMPUTE_TYPES:
        raise ValueError(f"--engine faster-whisper runs --precision {', '.join(COMPUTE_TYPES)}, "
                         f"not {precision!r}")
    faster_whisper = import_faster_whisper()
    import ctranslate2

    device = "cuda" if ctranslate2.get_cuda_device_count() else "cpu"
    compute = COMPUTE_TYPES[precision]
    if device == "cpu" and compute == "float16":
        raise ValueError("float16 (--precision fp16) runs on a GPU only: use fp32 or 8bit on a CPU")
    return faster_whisper.WhisperModel(str(folder), device=device, compute_type=compute,
                                       cpu_threads=threads)


# ------------------------------------------------------------------ transcription
@dataclass
class EngineOptions:
    """How faster-whisper decodes (see the module docstring)."""

    vad: bool = False              # Silero VAD; long files through the batched pipeline
    word_timestamps: bool = False  # each segment lists its words with start and end
    timestamps: bool = False       # segments for every file (files over 30 s always get them)
    batch_size: int = 8            # pieces decoded at a time by the batched pipeline
    language: str | None = None    # Whisper's name or code (multilingual models)
    task: str = "transcribe"
    beam_size: int = 1             # greedy, as our own path decodes
    fallback: bool = True          # faster-whisper's temperature fallback (False: greedy only)


def decode_options(options: EngineOptions) -> dict:
    """faster-whisper's transcribe() keywords for `options` (its defaults otherwise)."""
    from helpers.model.load import canonical_language
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    language = canonical_language(options.language)
    fallback = {} if options.fallback else {"temperature": 0.0}
    return {**fallback, "beam_size": options.beam_size, "word_timestamps": options.word_timestamps,
            "vad_filter": options.vad, "task": options.task,
            "language": TO_LANGUAGE_CODE[language] if language else None}


def segment_dict(segment, words: bool) -> dict:
    """A faster-whisper Segment as {"start", "end", "text"} (+ "words": [{"start", "end",
    "word", "probability"}] when word timestamps were asked for); times in s, 0.01 s steps."""
    out = {"start": round(segment.start, 2), "end": round(segment.end, 2),
           "text": segment.text.strip()}
    if words:
        out["words"] = [{"start": round(w.start, 2), "end": round(w.end, 2),
                         "word": w.word.strip(), "probability": round(w.probability, 3)}
                        for w in segment.words or []]
    return out


def transcribe_audio(model, audio, options: EngineOptions) -> list[dict]:
    """Segments (`segment_dict`) of 16 kHz samples: with VAD, audio longer than 30 s goes
    through faster-whisper's batched pipeline; otherwise its sequential transcribe."""
    keywords = decode_options(options)
    if options.vad and len(audio) > WINDOW_SECONDS * SAMPLE_RATE:
        from faster_whisper import BatchedInferencePipeline

        # timestamps on: segments end where the model ends them, as in the sequential path
        # (the batched pipeline's default gives one segment per VAD piece of up to 30 s)
        segments, _ = BatchedInferencePipeline(model).transcribe(
            audio, batch_size=options.batch_size, without_timestamps=False, **keywords)
    else:
        segments, _ = model.transcribe(audio, **keywords)
    return [segment_dict(segment, options.word_timestamps) for segment in segments]


def engine_text(segments: list[dict]) -> str:
    """The text of an engine's segments, joined by spaces."""
    return " ".join(segment["text"] for segment in segments if segment["text"])


def transcribe_files(model, paths: list[Path], options: EngineOptions, progress: bool = True
                     ) -> Iterator[tuple[Path, dict | None, str | None]]:
    """Yield (path, result, error) per path, in order: result {"path", "text"} for a clip up
    to 30 s, with "segments" for a longer file and for every file when timestamps or word
    timestamps are asked for; error for audio that cannot be read. One progress bar
    ("transcribing", seconds of audio) on stderr."""
    from tqdm.auto import tqdm

    bar = tqdm(desc="transcribing", unit="s", disable=not progress)
    for path in paths:
        try:
            seconds = audio_duration(path)
            segments = transcribe_audio(model, load_audio(path), options)
        except AudioError as error:
            yield path, None, str(error)
            continue
        result = {"path": str(path), "text": engine_text(segments)}
        if seconds > WINDOW_SECONDS or options.timestamps or options.word_timestamps:
            result["segments"] = segments
        bar.update(round(seconds, 1))
        yield path, result, None
    bar.close()


# ------------------------------------------------------------------ the commands' hook
def add_engine_arguments(parser) -> None:
    """--engine, --vad and --word-timestamps (helpers.transcribe; --engine for helpers.app too)."""
    parser.add_argument("--engine", choices=ENGINES, default="transformers",
                        help="transformers (our own path, default) or faster-whisper (the "
                             "adapter exported once and cached; needs requirements-engines.txt)")
    parser.add_argument("--vad", action="store_true",
                        help="faster-whisper: skip what is not speech (Silero VAD); files over "
                             "30 s go through its batched pipeline")
    parser.add_argument("--word-timestamps", action="store_true",
                        help="faster-whisper: each segment lists its words with start and end")


def check_engine_arguments(parser, args) -> None:
    """parser.error when --vad or --word-timestamps come without --engine faster-whisper."""
    asked = [flag for flag, on in (("--vad", args.vad), ("--word-timestamps", args.word_timestamps)) if on]
    if asked and args.engine != FASTER_WHISPER:
        parser.error(f"{' and '.join(asked)} need --engine {FASTER_WHISPER}")


def print_routing_note(model, adapter: str | None, routing: bool) -> None:
    """On stderr, when our own path would route this adapter by spoken language (a
    multilingual base, an adapter that records its language: helpers.transcribe.routing)
    and `routing` was not turned off: the engine runs the merged model on every clip."""
    from helpers.model.adapters import adapter_languages, resolve_adapter

    if not (routing and adapter and model.model.is_multilingual):
        return
    languages = adapter_languages(resolve_adapter(adapter))
    if languages:
        print(f"note: faster-whisper runs the adapter merged into the base on every clip; it "
              f"does not route by spoken language as our own path does (the adapter is for "
              f"{', '.join(languages)}; --no-routing silences this note)", file=sys.stderr)


def run_engine(args, files: list[Path], errors: list[str]) -> int:
    """`python -m helpers.transcribe --engine faster-whisper`: print one JSON line per file,
    errors on stderr; returns the exit status (2 when the model cannot be made or loaded)."""
    import json

    from tqdm.auto import tqdm

    try:
        model = load_faster_whisper(model_folder(args.model, args.adapter, args.language),
                                    args.precision)
    except (RuntimeError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_routing_note(model, args.adapter, not getattr(args, "no_routing", False))
    options = EngineOptions(vad=args.vad, word_timestamps=args.word_timestamps,
                            timestamps=args.timestamps, batch_size=args.batch_size,
                            language=args.language, fallback=not args.no_fallback)
    for path, result, error in transcribe_files(model, files, options):
        if error:
            errors.append(error)
            tqdm.write(f"error: {error}", file=sys.stderr)
        else:
            print(json.dumps(result, ensure_ascii=False), flush=True)
    return 1 if errors else 0
