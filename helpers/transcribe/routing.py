"""Routing by spoken language: the adapter only on the speech it was trained on.

A LoRA adapter trained on a multilingual Whisper for one language (Hindi) makes the model
worse at the others: on the forgetting benchmark English WER went from 12.5% to 25.0% with
the adapter on, and no English clip was identified as English any more, while the base with
the adapter off stays untouched (routed: 12.0% English WER, the adapter's Hindi CER, every
test clip sent the right way; docs/routing.md). So each clip (each 30 s window of a long
recording) is routed in two stages:

1. The base, adapter off, identifies its language (Whisper's language identification: the
   language token it scores highest right after <|startoftranscript|>). A clip identified
   as the adapter's language goes to the adapter, decoded in that language. Which codes
   count as Hindi was measured (docs/routing.md): "hi", and "ur" (Urdu: the same spoken
   language in another script, second to "hi" on many Hindi clips; `HEARD_AS`).
2. Any other clip is a doubt, not a verdict: on the embedded Hindi corpus the base names
   a dozen languages for Hindi speech (Thai, Japanese, English ... ; Hindi or Urdu for
   about one clip in six), while it names English for every English clip. So such a clip
   is transcribed greedily both ways, by the base in the language it named and by the
   adapter in its own, and compared by confidence (mean log-probability per token, the
   measure Whisper's own fallback uses, with a share of the language token's; a repetition
   loop or a transcript cut by the token cap loses). The adapter is confident in its language even on other speech, so it wins
   only with a clear lead (SETTLE_MARGIN); the base is confident on its English and
   falters on Hindi (`settle_doubts`). That costs two more decodings of each such clip;
   the forgetting benchmark measures it.

Batches that mix routed and unrouted clips are split into groups of one (adapter, language)
each, decoded one group after the other. PEFT's per-sample `adapter_names` would run one
`generate` call, but Whisper's temperature fallback decodes again only the clips that need
it, in a smaller batch (generation_whisper.py, `generate_with_fallback`), which a fixed
list of adapter names per sample cannot follow.

`Router` holds the decision for one model; `transcribe_routed` decodes a batch with it and
says, per clip, which language and adapter it was decoded with. Routing is on by default
(`router_for`) when an adapter with a recorded language sits on a multilingual base;
English-only bases are decoded as before. With --language (a language given for every
clip) nothing is identified: the adapter decodes the clips when it is its language.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

# Detected codes routed straight to an adapter of the key's language (stage one). Urdu and
# Hindi are one spoken language written in two scripts: Whisper's base gives "ur" the
# second-highest score on many cv-mini Hindi clips, and names it for none of the English
# ones (docs/routing.md). Any other language counts as itself only.
HEARD_AS = {"hi": ("hi", "ur")}


# Stage two compares confidences: the mean log-probability per token of each side's greedy
# transcript, plus LANGUAGE_WEIGHT times the log-probability of the language token it was
# decoded with (the base's doubt about the language it named counts against it; the adapter
# is sure of its own). The adapter wins only with a lead over SETTLE_MARGIN: trained on one
# language, it is confident in it even where it hears another (its Hindi transcripts of
# cv-mini English clips scored -0.61 to -0.80 per token, the base's English -0.12 to -1.01).
# Both were chosen on cv-mini dev clips (docs/routing.md); the forgetting benchmark checks
# them on the test clips and records the same figures for its dev clips.
LANGUAGE_WEIGHT = 0.2
SETTLE_MARGIN = 0.5


@dataclass(frozen=True)
class Route:
    """How one clip is decoded: `language` (a Whisper code, "hi") and with the adapter or not."""

    language: str
    adapter: bool


@dataclass
class Router:
    """Which clips go to the adapter, for one loaded model.

    adapter_codes: detected code -> code to decode with, for the adapter's languages
    ({"hi": "hi", "ur": "hi"}); None: no routing (the adapter, if any, decodes everything).
    forced: a code every clip is decoded in (--language); no detection then, and the adapter
    is used when it is one of its languages (with routing) or always (without).
    english_only: an English-only base: no language token, nothing to detect.
    has_adapter: an adapter is attached (PEFT model).
    primary, arbitrate: see `settle_doubts` (used by `transcribe_routed`).
    detect_seconds / detected: time spent identifying languages (stage one), clips identified;
    settle_seconds / settled: the same for settling doubts (stage two, both decodings);
    doubts: each settled clip's identified code and both confidences, for reports.
    """

    adapter_codes: dict[str, str] | None = None
    forced: str | None = None
    english_only: bool = False
    has_adapter: bool = False
    primary: str | None = None  # the adapter's own language (code), where doubts are tried
    arbitrate: bool = True      # settle doubtful clips by confidence (settle_doubts)
    detect_seconds: float = 0.0
    detected: int = 0
    settle_seconds: float = 0.0
    settled: int = 0
    codes: list[str] = field(default_factory=list)  # every detected code, in order
    doubts: list[dict] = field(default_factory=list)  # each settled clip: {"code", "base", "adapter"}

    @property
    def routing(self) -> bool:
        """True when clips are routed by their spoken language."""
        return self.adapter_codes is not None and self.has_adapter

    @property
    def settles(self) -> bool:
        """True when doubtful clips are settled by confidence (`settle_doubts`): routing,
        with the adapter's own language known, and no language given for every clip."""
        return self.routing and self.arbitrate and bool(self.primary) and not self.forced

    def routes(self, model, processor, audios: list[np.ndarray]) -> list[Route]:
        """One Route per 16 kHz array (see the class docstring for the rules)."""
        if self.english_only:
            return [Route("en", self.has_adapter)] * len(audios)
        if self.forced:
            adapter = self.has_adapter and (not self.routing or
                                            self.forced in self.adapter_codes.values())
            return [Route(self.forced, adapter)] * len(audios)
        started = time.perf_counter()
        with adapter_off(model) if self.routing else nullcontext():
            codes = detect_languages(model, processor, audios)
        self.detect_seconds += time.perf_counter() - started
        self.detected += len(codes)
        self.codes += codes
        if not self.routing:
            return [Route(code, self.has_adapter) for code in codes]
        return [Route(self.adapter_codes[code], True) if code in self.adapter_codes
                else Route(code, False) for code in codes]


def code_of(language: str) -> str:
    """Whisper's code of a language name or code: "hindi", "Hindi", "hi" -> "hi"."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    from helpers.model.load import canonical_language

    return TO_LANGUAGE_CODE[canonical_language(language)]


def adapter_codes(languages: list[str]) -> dict[str, str]:
    """{detected code: code to decode with} for an adapter trained on `languages` (Whisper
    names or codes): each language's own code, plus what the base hears it as (HEARD_AS)."""
    routed: dict[str, str] = {}
    for language in languages:
        code = code_of(language)
        for heard in HEARD_AS.get(code, (code,)):
            routed.setdefault(heard, code)
    return routed


def router_for(model, processor, adapter_dir=None, routing: bool = True,
               language: str | None = None) -> Router:
    """The Router of a loaded model: routing when `routing`, the base is multilingual and the
    adapter in `adapter_dir` records its language(s) (`helpers.model.adapters.adapter_languages`).

    language: the --language the user gave (a name or code), or None to detect per clip.
    """
    from helpers.model.adapters import adapter_languages
    from helpers.model.load import is_multilingual

    has_adapter = hasattr(model, "disable_adapter") and adapter_dir is not None
    if not is_multilingual(processor):
        return Router(english_only=True, has_adapter=has_adapter)
    forced = code_of(language) if language else None
    languages = adapter_languages(adapter_dir) if has_adapter and routing else []
    if not languages:
        return Router(None, forced, has_adapter=has_adapter)
    return adapter_router(languages, forced)


def adapter_router(languages: list[str], forced: str | None = None) -> Router:
    """The Router of an attached adapter trained on `languages` (its own first)."""
    return Router(adapter_codes(languages), forced, has_adapter=True, primary=code_of(languages[0]))


def describe_rule(languages: list[str]) -> str:
    """How clips are routed for an adapter trained on `languages`, in one sentence."""
    heard = ", ".join(sorted(adapter_codes(languages)))
    return (f"the base (adapter off) identifies each clip; a clip identified as {heard} goes "
            "to the adapter; any other is transcribed greedily by the base in that language "
            f"and by the adapter in {code_of(languages[0])}, and goes to the adapter only when "
            f"its confidence (mean log-probability per token + {LANGUAGE_WEIGHT} x that of the "
            f"language token) beats the base's by more than {SETTLE_MARGIN} (a loop or a "
            "transcript cut by the token cap loses)")


# ------------------------------------------------------------------ decoding
@contextmanager
def spoken_language(model, language: str | None):
    """Within the block, `generate` (helpers.transcribe) decodes `language` (a Whisper
    language name or code, "english"; None: the model detects it); the model's own language
    is restored afterwards. Works on a PEFT model too (same generation config object)."""
    gen = model.generation_config
    saved = gen.language
    gen.language = language
    try:
        yield model
    finally:
        gen.language = saved


def adapter_off(model):
    """A context in which the model's adapter is switched off (PEFT's disable_adapter); a
    model without one is left as it is."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()


@contextmanager
def decoding_as(model, route: Route, english_only: bool = False):
    """Within the block, generate decodes as `route` says: its language (not set on an
    English-only model) and the adapter on or off."""
    with (adapter_off(model) if not route.adapter else nullcontext()), \
            (nullcontext() if english_only else spoken_language(model, route.language)):
        yield model


def transcribe_routed(model, processor, audios: list[np.ndarray], router: Router,
                      known: dict | None = None, **decode_kwargs) -> list[tuple[str, Route]]:
    """Transcribe 16 kHz arrays, each as `router` routes it; returns (text, Route) per array.

    The base identifies each array (`Router.routes`); with routing, an array it names another
    language than the adapter's is settled by `settle_doubts`. The arrays of one route are
    decoded together (`helpers.transcribe.decode.transcribe_arrays`, decode_kwargs passed on:
    max_new_tokens, fallback), the groups one after the other. known: {Route: a transcript of
    every array} already made that way (the same model, language and decoding): arrays routed
    so take theirs instead of being decoded again.
    """
    from helpers.transcribe.decode import transcribe_arrays

    routes, texts = both_stages(model, processor, audios, router, decode_kwargs)
    known = known or {}
    for route in dict.fromkeys(routes):  # each distinct route once, in order of first use
        members = [i for i, r in enumerate(routes) if r == route and i not in texts]
        if route in known:
            texts.update((i, known[route][i]) for i in members)
        elif members:
            with decoding_as(model, route, router.english_only):
                texts.update(zip(members, transcribe_arrays(
                    model, processor, [audios[i] for i in members], **decode_kwargs)))
    return [(texts[i], route) for i, route in enumerate(routes)]


def both_stages(model, processor, audios: list[np.ndarray], router: Router,
                decode_kwargs: dict) -> tuple[list[Route], dict[int, str]]:
    """The Route of each 16 kHz array: identified by the base (`Router.routes`), and with
    routing, each doubt settled (`settle_doubts`, given decode_kwargs: max_new_tokens,
    fallback). Returns (routes, {index: greedy transcript of a settled doubt's winner}, made
    only when decode_kwargs says fallback=False)."""
    routes = router.routes(model, processor, audios)
    if not router.settles:
        return routes, {}
    return settle_doubts(model, processor, audios, routes, router, decode_kwargs)


def settle_doubts(model, processor, audios: list[np.ndarray], routes: list[Route],
                  router: Router, decode_kwargs: dict) -> tuple[list[Route], dict[int, str]]:
    """Stage two of routing: an array the base identified as another language than the
    adapter's is transcribed greedily both ways, by the base in that language and by the
    adapter in its own, and goes to the adapter only when its transcript is more confident
    by more than SETTLE_MARGIN (`confidences`), else to the base.

    Returns (routes, {index: transcript}): the routes settled, and the greedy transcripts
    of the winners when the caller decodes greedily too (fallback=False), so they are not
    decoded again. Adds the seconds spent to router.settle_seconds.
    """
    started = time.perf_counter()
    doubtful = [i for i, route in enumerate(routes) if not route.adapter]
    if not doubtful:
        return routes, {}
    own = Route(router.primary, True)
    cap = decode_kwargs.get("max_new_tokens")
    scored: dict[int, list[tuple[float, str, Route]]] = {i: [] for i in doubtful}
    for route in [own, *dict.fromkeys(routes[i] for i in doubtful)]:
        members = [i for i in doubtful if route == own or routes[i] == route]
        texts, scores = confidences(model, processor, [audios[i] for i in members], route,
                                    router.english_only, cap)
        for i, text, score in zip(members, texts, scores):
            scored[i].append((score, text, route))
    settled, winners = list(routes), {}
    for i in doubtful:
        (own_score, own_text, _), (base_score, base_text, _) = scored[i]
        adapter = own_score > base_score + SETTLE_MARGIN
        settled[i] = own if adapter else routes[i]
        router.doubts.append({"code": routes[i].language, "base": _finite(base_score),
                              "adapter": _finite(own_score), "to_adapter": adapter})
        if decode_kwargs.get("fallback", True) is False:
            winners[i] = own_text if adapter else base_text
    router.settle_seconds += time.perf_counter() - started
    router.settled += len(doubtful)
    return settled, winners


def _finite(score: float) -> float | None:
    """A confidence rounded for a record, None for a failed transcript (-inf)."""
    return None if math.isinf(score) else round(score, 3)


def confidences(model, processor, audios: list[np.ndarray], route: Route, english_only: bool,
                max_new_tokens: int | None = None) -> tuple[list[str], list[float]]:
    """Greedy transcripts of `audios` decoded as `route` says, and how confident the model is
    in each (`transcript_logprobs`): the mean log-probability per token of the transcript
    plus LANGUAGE_WEIGHT times that of its language token; or -inf for a transcript that
    failed the way Whisper's fallback calls failure: a repetition loop
    (`helpers.metrics.is_loop`), or no end before its clip's own token cap
    (`helpers.transcribe.decode.clip_token_caps`, at most `max_new_tokens`)."""
    from helpers.metrics import is_loop
    from helpers.transcribe.decode import clip_token_caps, generate_ids

    with decoding_as(model, route, english_only):  # each clip at most its token cap
        caps = clip_token_caps(model, audios, limit=max_new_tokens)
        rows, failed = ended_rows(generate_ids(model, processor, audios, max(caps), fallback=False),
                                  caps, processor.tokenizer.eos_token_id)
        scores = [text + LANGUAGE_WEIGHT * language for text, language in
                  transcript_logprobs(model, processor, audios, rows, route.language)]
    texts = [text.strip() for text in processor.tokenizer.batch_decode(rows, skip_special_tokens=True)]
    failed = [bad or is_loop(text) for bad, text in zip(failed, texts)]
    return texts, [-math.inf if bad else score for bad, score in zip(failed, scores)]


def ended_rows(ids: torch.Tensor, caps: list[int], eot: int) -> tuple[torch.Tensor, list[bool]]:
    """generate's new tokens (one row per clip; no end-of-text, shorter rows padded with it)
    cut to each clip's cap and closed by <|endoftext|>, padded with it; and, per row,
    whether the clip ran into its cap instead of ending before it. The longest row of a
    batch has no end-of-text of its own: it ended, unless it reached its cap."""
    from helpers.transcribe.decode import cut_at_caps

    cut = cut_at_caps(ids.tolist(), caps, {eot})
    width = max(len(tokens) for tokens, _ in cut) + 1
    return (torch.tensor([tokens + [eot] * (width - len(tokens)) for tokens, _ in cut]),
            [capped for _, capped in cut])


@contextmanager
def routed_window(model, processor, audio: np.ndarray, router: Router | None,
                  max_new_tokens: int | None = None):
    """For one long-form window: within the block, generate decodes it as `router` routes
    it (both stages, settling a doubt with greedy decodings of at most `max_new_tokens`);
    yields the route as {"language", "adapter"} ({} and the model as it stands without a
    router)."""
    if router is None:
        yield {}
        return
    (route,), _ = both_stages(model, processor, [audio], router, {"max_new_tokens": max_new_tokens})
    with decoding_as(model, route, router.english_only):
        yield {"language": route.language, "adapter": route.adapter}


def main_route(windows: list[dict]) -> dict:
    """{"language", "adapter"} of a recording: the route of the decoded windows that hold
    the most seconds of audio (windows overlap where the model moved by its timestamps;
    each counts for its whole length). {} for none."""
    seconds: dict[tuple, float] = {}
    for window in windows:
        key = (window["language"], window["adapter"])
        seconds[key] = seconds.get(key, 0.0) + window["end"] - window["start"]
    if not seconds:
        return {}
    language, adapter = max(seconds, key=seconds.get)
    return {"language": language, "adapter": adapter}


def transcribe_paths_routed(model, processor, paths: list[Path], router: Router,
                            batch_size: int = 8, progress: bool = True, fallback: bool = True
                            ) -> Iterator[tuple[Path, str | None, Route | None, str | None]]:
    """Yield (path, text, route, error) per path, in order: clips of up to 30 s decoded in
    batches of `batch_size` by `transcribe_routed`; unreadable audio yields an error (and no
    text or route)."""
    from tqdm.auto import tqdm

    from helpers.transcribe.decode import read_batch

    for start in tqdm(range(0, len(paths), batch_size), desc="transcribing",
                      disable=not progress, unit="batch"):
        batch = paths[start:start + batch_size]
        audios, readable, failed = read_batch(batch)
        done = dict(zip(readable, transcribe_routed(model, processor, audios, router,
                                                    fallback=fallback))) if audios else {}
        for path in batch:
            text, route = done.get(path, (None, None))
            yield path, text, route, failed.get(path)


def routes_of(model, processor, paths: list[Path], router: Router, batch_size: int = 8) -> list[Route]:
    """The Route of each clip (up to 30 s), both stages (`both_stages`), in batches of
    `batch_size`; raises AudioError naming the first file that cannot be read."""
    from helpers.audio import AudioError
    from helpers.transcribe.decode import read_batch

    routes: list[Route] = []
    for start in range(0, len(paths), batch_size):
        audios, _, failed = read_batch(paths[start:start + batch_size])
        if failed:
            raise AudioError(next(iter(failed.values())))
        routes += both_stages(model, processor, audios, router, {})[0]
    return routes


def load_routed(model_source: str | None, adapter: str | None, language: str | None,
                precision: str, routing: bool = True):
    """(model, processor, Router): `helpers.model.adapters.load_for_transcription` and the
    Router of what it loaded (`router_for`; routing=False: the adapter decodes everything).
    The adapter may be a folder or a Hub id; it is resolved once."""
    from helpers.model.adapters import load_for_transcription, resolve_adapter

    adapter_dir = resolve_adapter(adapter) if adapter else None
    model, processor = load_for_transcription(model_source, adapter_dir and str(adapter_dir),
                                              language, precision)
    return model, processor, router_for(model, processor, adapter_dir, routing, language)


def routing_line(router: Router) -> str | None:
    """One line for stderr saying how clips are routed, or None when nothing is routed."""
    if not router.routing:
        return None
    languages = "/".join(sorted(set(router.adapter_codes.values())))
    heard = ", ".join(sorted(router.adapter_codes))
    return (f"routing: the adapter decodes the speech the base (adapter off) identifies as "
            f"{heard}, in {languages}; a clip identified as another language goes to whichever "
            "of the two transcribes it more confidently (--no-routing: the adapter decodes "
            "everything)")


# ------------------------------------------------------------------ language identification
def whisper_of(model):
    """The WhisperForConditionalGeneration inside a PEFT model (LoRA layers in place), or
    the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


# Stage one pads each clip with silence audio (the transformers extractor's way), not with
# zeros in log-mel as decoding does: on cv-mini's dev clips the 8-bit base identified 5 of
# 40 Hindi clips as Hindi and 60 of 60 English as English padded with silence, 3 and 59
# padded with zeros (`python scripts/language_id_padding.py`, AMD EPYC, 2 cores, docs/routing.md).
IDENTIFICATION_PADDING = "silence"


def decoding_features(processor, audios: list[np.ndarray], padding: str | None = None) -> torch.Tensor:
    """(batch, n_mels, 3000) features of 16 kHz arrays as decoding reads them
    (helpers.data.features.inference_features), or padded the `padding` way."""
    from helpers.data.features import inference_features

    return torch.from_numpy(inference_features(audios, processor.feature_extractor, padding))


def detect_languages(model, processor, audios: list[np.ndarray],
                     padding: str = IDENTIFICATION_PADDING) -> list[str]:
    """Whisper's language identification of 16 kHz arrays, no language forced: the language
    token it gives the highest score right after <|startoftranscript|>
    (`WhisperForConditionalGeneration.detect_language`), as codes: ["en", "hi", ...], on
    features padded the `padding` way (IDENTIFICATION_PADDING).
    Uses the adapter if the model has one and it is enabled; 8-bit layers on a CPU compute
    as in decoding (`helpers.model.load.dequantized_8bit_on_cpu`)."""
    from helpers.model.load import dequantized_8bit_on_cpu

    if not audios:
        return []
    whisper = whisper_of(model)
    features = decoding_features(processor, audios, padding).to(whisper.device, dtype=whisper.get_encoder().conv1.weight.dtype)
    with torch.inference_mode(), dequantized_8bit_on_cpu(whisper):
        ids = whisper.detect_language(input_features=features)
    names = {token_id: token for token, token_id in whisper.generation_config.lang_to_id.items()}
    return [names[int(token_id)].strip("<|>") for token_id in ids]


def transcript_logprobs(model, processor, audios: list[np.ndarray], ids: torch.Tensor,
                        language: str) -> list[tuple[float, float]]:
    """How likely the model finds its own transcripts: `ids` (generate's new tokens, one row
    per array, padded after <|endoftext|>) scored by one teacher-forced pass behind the
    prompt <|startoftranscript|><|language|><|transcribe|><|notimestamps|>. Returns, per
    array, (mean log-probability per transcript token, <|endoftext|> included; the
    log-probability of the language token after <|startoftranscript|>). Whisper's
    temperature fallback calls a transcript whose mean is under -1 a failure."""
    from helpers.model.load import dequantized_8bit_on_cpu

    whisper, tokenizer = whisper_of(model), processor.tokenizer
    prompt = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", f"<|{language}|>",
                                              "<|transcribe|>", "<|notimestamps|>"])
    eot = tokenizer.eos_token_id
    rows = [_until_eot(row.tolist(), eot) for row in ids]
    width = max(len(row) for row in rows)
    inputs = torch.tensor([prompt + row + [eot] * (width - len(row)) for row in rows])
    features = decoding_features(processor, audios)
    features = features.to(whisper.device, dtype=whisper.get_encoder().conv1.weight.dtype)
    with torch.inference_mode(), dequantized_8bit_on_cpu(whisper):
        logits = whisper(input_features=features, decoder_input_ids=inputs.to(whisper.device)).logits
    logprobs = logits.float().log_softmax(-1)
    chosen = logprobs[:, len(prompt) - 1:-1].gather(
        -1, inputs[:, len(prompt):, None].to(logprobs.device))[..., 0]
    return [(float(chosen[i, :len(row)].mean()), float(logprobs[i, 0, prompt[1]]))
            for i, row in enumerate(rows)]


def _until_eot(tokens: list[int], eot: int) -> list[int]:
    """The tokens up to and including the first <|endoftext|> (all, and one added, if none)."""
    return tokens[:tokens.index(eot) + 1] if eot in tokens else tokens + [eot]
