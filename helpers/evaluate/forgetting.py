"""Did fine-tuning on one language cost the model its English? (catastrophic forgetting)

A multilingual Whisper fine-tuned on Hindi may get worse at English. With LoRA the base
weights are untouched, so switching the adapter off gives the base model back exactly;
with the adapter on, English goes through the adapted weights too. Notebook 06 runs
`english_check` on a few English clips with the adapter on and off; the benchmark
`python benchmarks/run.py --only forgetting` compares LoRA with full fine-tuning
(benchmarks/bench_forgetting.py), using the pieces below.
"""
from __future__ import annotations

from helpers.files import EMBEDDED_CORPUS
# Whisper's language identification and the spoken-language switch live with routing
# (helpers.transcribe.routing); the benchmarks and tests reach them here too.
from helpers.transcribe.routing import detect_languages as detected_languages  # noqa: F401
from helpers.transcribe.routing import spoken_language, whisper_of  # noqa: F401


def detected_share(model, processor, clips: list[dict], code: str, batch_size: int = 8) -> float:
    """Share of `clips` ({"path", ...}) whose detected language is `code` ("en")."""
    from helpers.audio import load_audio

    codes = []
    for start in range(0, len(clips), batch_size):
        audios = [load_audio(clip["path"]) for clip in clips[start:start + batch_size]]
        codes += detected_languages(model, processor, audios)
    return sum(found == code for found in codes) / len(codes)


def english_check_skip_reason(config, n_clips: int | None) -> str | None:
    """Why the English check does not apply to this run (one line), or None when it does."""
    from helpers.model.load import canonical_language, is_multilingual, load_processor

    if not n_clips:
        return "ENGLISH_CLIPS is 0"
    if not is_multilingual(load_processor(config.model)):
        return (f"{config.model} is an English-only model: it knows no other language, so "
                "there is no English to forget")
    if canonical_language(config.language) == "english":
        return "this run is in English: the scores above are the English check"
    return None


def english_check(config, run, n_clips: int = 8, corpus=EMBEDDED_CORPUS) -> dict | None:
    """English WER/CER of a multilingual run's model, adapter off (base) and on (fine-tuned).

    config/run: the run's RunConfig and RunDir (its adapter from notebook 04). Transcribes
    the first `n_clips` filtered clips of `corpus`'s test split with language="english",
    the run's precision, batch size and decoding, writes them to english_check.jsonl in the
    run and prints one line. Returns the metrics.json keys english_base_wer,
    english_finetuned_wer, english_base_cer, english_finetuned_cer, english_clips; or None,
    printing why, for an English-only model, an English run or n_clips 0. With the run's
    `routing` on and an adapter that records its language, the clips are also transcribed
    routed (`english_routed`): the base identifies each, the adapter decodes only those
    it hears in the adapter's language; english_routed_wer/_cer and
    english_routed_adapter_share (clips sent to the adapter) join the keys.
    """
    from helpers.evaluate.scoring import load_test_clips, predict
    from helpers.metrics import error_rates
    from helpers.model.adapters import attach_adapter
    from helpers.model.load import load_model

    reason = english_check_skip_reason(config, n_clips)
    if reason:
        print(f"English check skipped: {reason}.")
        return None
    model, processor = load_model(config.model, precision=config.precision,
                                  language=config.language, task=config.task)
    adapter = run.require("adapter", "notebook 04 (training)")
    model = attach_adapter(model, adapter).eval()
    clips, _ = load_test_clips(str(corpus), "test", processor.tokenizer, n_clips)
    texts = {}
    with spoken_language(model, "english"):
        with model.disable_adapter():
            texts["base"] = predict(model, processor, clips, config.eval_batch_size,
                                    progress=False, fallback=config.decode_fallback)
        texts["finetuned"] = predict(model, processor, clips, config.eval_batch_size,
                                     progress=False, fallback=config.decode_fallback)
    routes = english_routed(model, processor, clips, adapter, config, texts)
    references = [clip["sentence"] for clip in clips]
    run.write_jsonl("english_check.jsonl", [
        {"path": clip["path"], "reference": ref, **{name: texts[name][i] for name in texts},
         **({"routed_language": routes[i].language, "routed_adapter": routes[i].adapter}
            if routes else {})}
        for i, (clip, ref) in enumerate(zip(clips, references))])
    result = {"english_clips": len(clips)}
    if routes:
        result["english_routed_adapter_share"] = round(sum(r.adapter for r in routes) / len(routes), 4)
    for name, predicted in texts.items():
        rates = error_rates(references, predicted)
        result.update({f"english_{name}_wer": round(rates["wer"], 4),
                       f"english_{name}_cer": round(rates["cer"], 4)})
    routed = (f", {result['english_routed_wer']:.1%} routed by spoken language (adapter on "
              f"{result['english_routed_adapter_share']:.0%} of the clips)" if routes else "")
    print(f"English ({len(clips)} test clips of {corpus}, language='english'): WER "
          f"{result['english_base_wer']:.1%} with the adapter off, "
          f"{result['english_finetuned_wer']:.1%} with it on{routed}.")
    return result


def english_routed(model, processor, clips: list[dict], adapter, config, texts: dict) -> list:
    """Routed transcripts of the English check's clips, added to `texts` as "routed"; returns
    their Routes, or [] (nothing added) when the run does not route (`config.routing` off,
    or no language recorded with the adapter). A clip routed to the base in English takes
    the adapter-off transcript already made (`texts["base"]`, the same decoding)."""
    from helpers.evaluate.scoring import predict_routed
    from helpers.transcribe.routing import Route, router_for

    router = router_for(model, processor, adapter, routing=config.routing)
    if not router.routing:
        return []
    texts["routed"], routes = predict_routed(
        model, processor, clips, router, config.eval_batch_size, progress=False,
        fallback=config.decode_fallback, known={Route("en", False): texts["base"]})
    return routes
