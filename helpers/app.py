"""A web page to try a fine-tuned model: record or upload a clip, and read the base model's
and the fine-tuned model's transcripts side by side, word differences marked, with the time
each took.

Usage:
    python -m helpers.app [--adapter DIR_OR_HUB_ID] [--model SOURCE] [--language L]
                          [--precision P] [--engine faster-whisper] [--host HOST] [--port N]
                          [--share] [--no-routing]

The page listens on 127.0.0.1 (this machine only) unless --host says otherwise
(`--host 0.0.0.0`: every network interface). On Colab it is shown inline in the cell, and a
public gradio.live link is made only with --share. One model is loaded, once: the adapter
switched off (PEFT's `disable_adapter`) gives the base model's transcript, switched on the
fine-tuned one, as in notebook 05. An adapter trained on a multilingual base for one
language is used only on speech the base identifies as that language
(`helpers.transcribe.routing`; --no-routing: on everything): the fine-tuned side says which
language it decoded and whether the adapter did. With `--engine faster-whisper` both are
run by faster-whisper instead: the base, and the adapter merged and exported once
(helpers.export.engines); the merged model decodes every clip (no routing).

Audio up to MAX_PAGE_SECONDS (30 s, Whisper's window: the page transcribes one window, as
`python -m helpers.transcribe` does) in WAV, FLAC, OGG or MP3, or a microphone recording
(the page records WAV). A file that is not such audio, a silent one, a longer one or a
larger upload than MAX_UPLOAD gets a message in the page, never a stack trace.

Everything except the page (loading the model, checking the audio, transcribing, the word
diff) is plain Python here, tested without gradio. gradio is an optional dependency
(requirements-app.txt, `make app`), imported only by `build_page`: nothing else in the
project imports it.
"""
from __future__ import annotations

import argparse
import difflib
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.audio import (
    AUDIO_EXTENSIONS,
    SAMPLE_RATE,
    SILENCE_PEAK,
    WINDOW_SECONDS,
    AudioError,
    audio_duration,
    load_audio,
)
from helpers.metrics import normalize_text

DEFAULT_ADAPTER = "runs/demo/adapter"  # what `make demo` trains
DEFAULT_HOST = "127.0.0.1"  # this machine only; --host 0.0.0.0 opens the page to the network
DEFAULT_PORT = 7860         # gradio's usual port
MAX_PAGE_SECONDS = WINDOW_SECONDS  # one Whisper window (30 s); longer audio is refused, not cut
MAX_UPLOAD = "20mb"  # gradio refuses larger uploads (30 s of 48 kHz stereo float WAV: 11.5 MB)
REQUIREMENTS_APP = Path(__file__).resolve().parent.parent / "requirements-app.txt"


BASE_ONLY, FINETUNED_ONLY = "base only", "fine-tuned only"  # the diff's two labels


FORMATS = ", ".join(ext.lstrip(".").upper() for ext in AUDIO_EXTENSIONS)


class PageError(ValueError):
    """Input the page cannot transcribe; the message is shown in the page as it is."""


# ------------------------------------------------------------------ input

def check_audio(path) -> np.ndarray:
    """Load the page's input `path` (an upload or a recording) as 16 kHz mono float32.

    Raises PageError, naming the file and saying what to do, when there is no input, when
    the file is not audio this project reads, is longer than MAX_PAGE_SECONDS, or is silent
    (peak under -60 dBFS).
    """
    if path is None or str(path) == "":
        raise PageError("No audio yet: record with the microphone or upload a file, "
                        "then press Transcribe.")
    name = Path(path).name
    try:
        seconds = audio_duration(path)  # the header only: a long file is refused undecoded
        if seconds > MAX_PAGE_SECONDS + 0.5:
            raise PageError(f"{name} is {seconds:.1f} s long; this page transcribes up to "
                            f"{MAX_PAGE_SECONDS} s (one Whisper window). Cut it shorter, or "
                            "use `python -m helpers.transcribe` on pieces of it.")
        audio = load_audio(path)
    except AudioError as error:  # its message names the server's temporary copy: not shown
        raise PageError(f"{name} is not audio this page can read: it does not decode as "
                        f"{FORMATS}. Upload one of those, or record with the "
                        "microphone.") from error
    if len(audio) > (MAX_PAGE_SECONDS + 0.5) * SAMPLE_RATE:  # a header that understated it
        raise PageError(f"{name} is {len(audio) / SAMPLE_RATE:.1f} s long; this page "
                        f"transcribes up to {MAX_PAGE_SECONDS} s.")
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise PageError(f"{name} is silent (its loudest sample is under -60 dBFS): nothing to "
                        "transcribe. Check the microphone, or upload another file.")
    return audio


# ------------------------------------------------------------------ diff

def word_diff(base: str, finetuned: str) -> tuple[list[tuple[str, str | None]],
                                                  list[tuple[str, str | None]]]:
    """Mark the words in which two transcripts differ, for gradio's HighlightedText.

    Words are compared by their `normalize_text` form (case and punctuation do not count, as
    in the WER), aligned with difflib. Returns (base tokens, fine-tuned tokens): lists of
    (text, label) whose texts joined give each transcript back, word spacing normalized;
    label is BASE_ONLY / FINETUNED_ONLY for a word the other transcript lacks or has
    differently, None for a shared word. Example: ("a cat sat", "a hat sat") ->
    [("a ", None), ("cat", "base only"), (" sat", None)] and the same with "hat".
    """
    base_words, tuned_words = base.split(), finetuned.split()
    matcher = difflib.SequenceMatcher(a=[normalize_text(w) for w in base_words],
                                      b=[normalize_text(w) for w in tuned_words], autojunk=False)
    base_marks, tuned_marks = [None] * len(base_words), [None] * len(tuned_words)
    for tag, b_start, b_end, t_start, t_end in matcher.get_opcodes():
        if tag != "equal":
            base_marks[b_start:b_end] = [BASE_ONLY] * (b_end - b_start)
            tuned_marks[t_start:t_end] = [FINETUNED_ONLY] * (t_end - t_start)
    return _tokens(base_words, base_marks), _tokens(tuned_words, tuned_marks)


def _tokens(words: list[str], marks: list[str | None]) -> list[tuple[str, str | None]]:
    """(text, mark) tokens of `words` joined by spaces, runs of the same mark merged; a space
    between two differently marked words is unmarked, so a highlight covers words only."""
    tokens: list[tuple[str, str | None]] = []
    for index, (word, mark) in enumerate(zip(words, marks)):
        if index:
            _append(tokens, " ", mark if marks[index - 1] == mark else None)
        _append(tokens, word, mark)
    return tokens


def _append(tokens: list[tuple[str, str | None]], text: str, mark: str | None) -> None:
    """Add `text` to the last token when it has the same mark, else as a new token."""
    if tokens and tokens[-1][1] == mark:
        tokens[-1] = (tokens[-1][0] + text, mark)
    else:
        tokens.append((text, mark))


# ------------------------------------------------------------------ models

@dataclass
class Comparison:
    """What the page shows for one clip."""

    base: str                 # the base model's transcript (adapter off)
    finetuned: str            # the fine-tuned model's transcript (adapter on)
    base_seconds: float       # wall time of the base transcription
    finetuned_seconds: float  # wall time of the fine-tuned transcription
    audio_seconds: float      # length of the clip
    route: str = ""           # with routing: how the fine-tuned side was decoded, e.g. "identified as hi: adapter on"


class PageModels:
    """One Whisper model with its LoRA adapter, loaded once, that transcribes a clip twice.

    `model` must be a PEFT model (an adapter attached): `disable_adapter()` gives the base.
    Calls are serialized by a lock: switching the adapter off is model-wide state.
    """

    def __init__(self, model, processor, description: str = "", fallback: bool = True,
                 router=None):
        from helpers.transcribe.routing import Router

        if not hasattr(model, "disable_adapter"):
            raise ValueError("the page compares the base and the fine-tuned model: load an "
                             "adapter onto the model (helpers.model.adapters.attach_adapter)")
        self.model, self.processor, self.fallback = model, processor, fallback
        # how the fine-tuned side is decoded (helpers.transcribe.routing); None: the adapter
        # on every clip, in the model's language
        self.router = router or Router(english_only=not model.generation_config.is_multilingual,
                                       has_adapter=True, forced=_forced_code(model))
        self.description = description  # e.g. "embedded + runs/demo/adapter", for the page
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_source: str | None, adapter: str, language: str | None = None,
             precision: str = "fp32", routing: bool = True) -> "PageModels":
        """Load the model and adapter as `python -m helpers.transcribe` does (same loader,
        same arguments, same routing): the base model recorded in the adapter unless
        `model_source`."""
        from helpers.transcribe.routing import load_routed

        model, processor, router = load_routed(model_source, adapter, language, precision, routing)
        base = model_source or _recorded_base(adapter)
        return cls(model, processor, f"{base} + adapter {adapter} ({precision})", router=router)

    def transcribe(self, audio: np.ndarray) -> Comparison:
        """Transcribe one 16 kHz clip with the adapter off, then as the router routes it
        (the adapter on, unless routing sends the clip to the base); each one timed."""
        from helpers.transcribe.decode import transcribe_arrays
        from helpers.transcribe.routing import transcribe_routed

        with self._lock:
            start = time.perf_counter()
            with self.model.disable_adapter():
                base = transcribe_arrays(self.model, self.processor, [audio], fallback=self.fallback)[0]
            middle = time.perf_counter()
            [(tuned, route)] = transcribe_routed(self.model, self.processor, [audio], self.router,
                                                 fallback=self.fallback)
            end = time.perf_counter()
        way = (f"identified as {route.language}: adapter {'on' if route.adapter else 'off'}"
               if self.router.routing else "")
        return Comparison(base, tuned, middle - start, end - middle, len(audio) / SAMPLE_RATE, way)


def _forced_code(model) -> str | None:
    """The code of the language the model is set to decode (generation_config), or None."""
    from helpers.transcribe.routing import code_of

    language = getattr(model.generation_config, "language", None)  # English-only models have none
    return code_of(language) if language else None


class EnginePageModels:
    """The page's two models run by faster-whisper (`--engine faster-whisper`): the base and
    the adapter exported once (helpers.export.engines), each a faster-whisper WhisperModel."""

    def __init__(self, base, tuned, description: str = "", options=None):
        from helpers.export.engines import EngineOptions

        self.base, self.tuned, self.description = base, tuned, description
        self.options = options or EngineOptions()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_source: str | None, adapter: str, language: str | None = None,
             precision: str = "fp32", routing: bool = True) -> "EnginePageModels":
        """The base (`base_ct2`) and the adapter (`cached_ct2`) loaded in faster-whisper;
        `routing` only decides whether the note that the engine does not route is printed."""
        from helpers.export.engines import (EngineOptions, base_ct2, cached_ct2,
                                            load_faster_whisper, print_routing_note)

        base_source = model_source or _recorded_base(adapter)
        tuned = load_faster_whisper(cached_ct2(adapter, model_source, language), precision)
        print_routing_note(tuned, adapter, routing)
        base = load_faster_whisper(base_ct2(base_source, language), precision)
        return cls(base, tuned, f"{base_source} + adapter {adapter}, in faster-whisper "
                   f"({precision})", EngineOptions(language=language))

    def transcribe(self, audio: np.ndarray) -> Comparison:
        """Transcribe one 16 kHz clip with the base, then the tuned model; each one timed."""
        from helpers.export.engines import engine_text, transcribe_audio

        with self._lock:
            start = time.perf_counter()
            base = engine_text(transcribe_audio(self.base, audio, self.options))
            middle = time.perf_counter()
            tuned = engine_text(transcribe_audio(self.tuned, audio, self.options))
            end = time.perf_counter()
        return Comparison(base, tuned, middle - start, end - middle, len(audio) / SAMPLE_RATE)


def _recorded_base(adapter: str) -> str:
    """The base model an adapter names, or "?" when it cannot be read (for the page title)."""
    from helpers.model.adapters import adapter_base_model

    try:
        return adapter_base_model(adapter)
    except (OSError, ValueError):
        return "?"


# ------------------------------------------------------------------ one request

@dataclass
class PageResult:
    """The page's outputs for one press of Transcribe."""

    message: str                             # shown above the transcripts ("" when all is well)
    base: list[tuple[str, str | None]]       # HighlightedText tokens of the base transcript
    finetuned: list[tuple[str, str | None]]  # ... of the fine-tuned transcript
    base_time: str                           # e.g. "transcribed in 0.84 s"
    finetuned_time: str


def run_page(models: PageModels, path) -> PageResult:
    """Check the input at `path`, transcribe it twice and diff the transcripts.

    Never raises: bad input becomes a PageError message; anything unexpected is printed to
    the terminal with its traceback and the page says that it failed and where to look.
    """
    try:
        comparison = models.transcribe(check_audio(path))
    except PageError as error:
        return PageResult(f"⚠️ {error}", [], [], "", "")
    except Exception as error:  # a page must not show a traceback: the terminal gets it
        traceback.print_exc()
        return PageResult(f"⚠️ Transcription failed ({type(error).__name__}); the terminal "
                          "running the page shows the details.", [], [], "", "")
    base, tuned = word_diff(comparison.base, comparison.finetuned)
    return PageResult(f"{comparison.audio_seconds:.1f} s of audio transcribed.", base, tuned,
                      f"transcribed in {comparison.base_seconds:.2f} s",
                      f"transcribed in {comparison.finetuned_seconds:.2f} s"
                      + (f"; {comparison.route}" if comparison.route else ""))


# ------------------------------------------------------------------ the page (gradio)

def import_gradio():
    """Import gradio; on Colab install requirements-app.txt first if it is missing.

    Elsewhere a missing gradio raises RuntimeError saying how to install it.
    """
    try:
        import gradio
    except ImportError:
        from helpers.colab import in_colab, install_requirements

        if not in_colab():
            raise RuntimeError("the page needs gradio, an optional dependency: "
                               f"pip install -r {REQUIREMENTS_APP.name} (or `make app`)") from None
        install_requirements(REQUIREMENTS_APP)
        import gradio
    return gradio


def build_page(models: PageModels):
    """The gradio Blocks of the page (not launched). Element ids (for the browser test):
    audio-input, transcribe, message, base-transcript, finetuned-transcript, base-time,
    finetuned-time."""
    gr = import_gradio()

    colors = {BASE_ONLY: "#e76f51", FINETUNED_ONLY: "#2a9d8f"}
    with gr.Blocks(title="Whisper + LoRA: base vs fine-tuned", analytics_enabled=False) as page:
        gr.Markdown(f"## Whisper + LoRA: base vs fine-tuned\n{models.description}. Record or "
                    f"upload up to {MAX_PAGE_SECONDS} s of speech ({FORMATS}, at most "
                    f"{MAX_UPLOAD.upper()}), then press **Transcribe**. Words where the two "
                    "transcripts differ are marked.")
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="speech",
                         elem_id="audio-input")
        button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
        message = gr.Markdown(elem_id="message")
        with gr.Row():
            with gr.Column():
                base = gr.HighlightedText(label="base model (adapter off)", color_map=colors,
                                          show_inline_category=False, elem_id="base-transcript")
                base_time = gr.Markdown(elem_id="base-time")
            with gr.Column():
                tuned = gr.HighlightedText(label="fine-tuned (adapter on)", color_map=colors,
                                           show_inline_category=False,
                                           elem_id="finetuned-transcript")
                tuned_time = gr.Markdown(elem_id="finetuned-time")

        def on_transcribe(path):
            result = run_page(models, path)
            return result.message, result.base, result.finetuned, result.base_time, result.finetuned_time

        button.click(on_transcribe, inputs=audio,
                     outputs=[message, base, tuned, base_time, tuned_time])
    return page


def launch_page(page, host: str = DEFAULT_HOST, port: int | None = DEFAULT_PORT,
                share: bool = False, block: bool = True):
    """Serve `page` on host:port (port None: the first free one from 7860).

    In a notebook (Colab, Jupyter) the page is shown inline in the cell output; a public
    gradio.live link is made only when `share` is True (on Colab gradio would make one by
    itself). block=False returns at once (a notebook cell); True serves until interrupted.
    """
    page.launch(server_name=host, server_port=port, share=share, inline=None,
                max_file_size=MAX_UPLOAD, ssr_mode=False, prevent_thread_lock=True,
                show_error=False, quiet=True)
    print(f"page: {page.local_url}" + (f"  public link: {page.share_url}" if page.share_url
                                       else "  (this machine only)" if host == DEFAULT_HOST
                                       else ""), flush=True)
    if block:
        page.block_thread()  # until Ctrl+C
    return page


def open_page(model, processor, description: str = "", share: bool = False,
              port: int | None = None, router=None):
    """Open the page from a notebook on a model already loaded with its adapter (notebook
    05's last cell), routed by `router` (helpers.transcribe.routing; None: the adapter on
    every clip); returns at once, the page keeps running beside the kernel."""
    page = build_page(PageModels(model, processor, description, router=router))
    launch_page(page, port=port, share=share, block=False)
    return page


# ------------------------------------------------------------------ command line

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments of `python -m helpers.app`."""
    parser = argparse.ArgumentParser(prog="python -m helpers.app",
                                     description="A web page: base vs fine-tuned transcripts "
                                                 "of a recording or an uploaded clip.")
    parser.add_argument("--adapter", default=DEFAULT_ADAPTER,
                        help="the LoRA adapter, as `python -m helpers.transcribe --adapter` "
                             f"takes it (default {DEFAULT_ADAPTER}: what `make demo` trains)")
    parser.add_argument("--model", help="base model source (default: the one the adapter "
                                        "names): embedded, a Hub id, a local or CTranslate2 dir")
    parser.add_argument("--language", help="spoken language, e.g. hindi (multilingual models)")
    parser.add_argument("--precision", default="fp32", help="8bit, 4bit, fp16 or fp32 (default fp32)")
    parser.add_argument("--engine", choices=("transformers", "faster-whisper"), default="transformers",
                        help="transformers (default) or faster-whisper: both models run by "
                             "faster-whisper, the adapter exported once (requirements-engines.txt)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; "
                             "0.0.0.0: every network interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--no-routing", action="store_true",
                        help="the fine-tuned side uses the adapter on every clip (default: only "
                             "on speech the base identifies as the adapter's language)")
    parser.add_argument("--share", action="store_true",
                        help="also make a public gradio.live link (72 hours; anyone with it can use the page)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Load the model once, build the page and serve it until interrupted."""
    from helpers.quiet import quiet_libraries

    args = parse_args(argv)
    quiet_libraries()
    try:
        import_gradio()  # before the model loads: a missing gradio is said at once
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.adapter == DEFAULT_ADAPTER and not Path(DEFAULT_ADAPTER).exists():
        print(f"error: no adapter at {DEFAULT_ADAPTER}: run `make demo` first, or pass "
              "--adapter DIR", file=sys.stderr)
        return 2
    kind = EnginePageModels if args.engine == "faster-whisper" else PageModels
    try:
        models = kind.load(args.model, args.adapter, args.language, args.precision,
                           routing=not args.no_routing)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    launch_page(build_page(models), args.host, args.port, args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
