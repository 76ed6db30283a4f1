"""The benchmark section of docs/benchmarks.md, generated from benchmarks/results/*.json
(never typed).

    python benchmarks/report.py [--results DIR]   # writes DIR/benchmarks_section.md and prints it
    python benchmarks/report.py --write-pages     # ... and puts it into docs/benchmarks.md and README.md

docs/benchmarks.md holds the same text between `<!-- benchmarks:start -->` and
`<!-- benchmarks:end -->`, and the README the packing lines (`readme_section`) between
`<!-- packing:start -->` and `<!-- packing:end -->`; tests/test_benchmarks.py checks that they
agree. Every ratio
names the result file and keys it was computed from. The charts are linked relative to
that page (FIGURES).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS  # noqa: E402
import bench_packing  # noqa: E402
from bench_long_form import rows_in_order  # noqa: E402
from report_deploy import inference_section, padding_not_measured, padding_section  # noqa: E402

START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"  # shows the section
README = PAGE.parent.parent / "README.md"  # shows readme_section between its own markers
README_START, README_END = "<!-- packing:start -->", "<!-- packing:end -->"
FIGURES = "../benchmarks/results"  # the charts (*.png), relative to PAGE
SECTION_FILE = "benchmarks_section.md"  # the rendered section, beside the JSON files
FILES = ("training_methods", "data_preparation", "inference", "memory_curve")
ON_REQUEST_FILES = ("forgetting", "long_form", "padding", "packing")  # python benchmarks/run.py --only NAME
METHOD_NAMES = {"full_fp32": "full fine-tuning, fp32", "lora_fp32": "LoRA, fp32 base",
                "lora_8bit": "LoRA, 8-bit base (the recipe)", "lora_4bit": "LoRA, 4-bit (NF4) base"}


def load(results_dir: Path) -> dict[str, dict]:
    """{name: parsed JSON} for each benchmark file present in results_dir."""
    return {name: json.loads((results_dir / f"{name}.json").read_text())
            for name in FILES + ON_REQUEST_FILES if (results_dir / f"{name}.json").is_file()}


def mib(n: int) -> str:
    """Bytes as MiB (or GiB above 1 GiB), one decimal."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def ratio(a: float, b: float, source: str) -> str:
    """'a/b = N.Nx (source)'."""
    return f"**{a / b:.1f}x** ({source})"


def env_line(data: dict) -> str:
    """Machine and load average of one result file."""
    env = data["environment"]
    device = env.get("gpu") or f"{env['cpu_count']} CPU cores"
    return (f"{device}, torch {env['torch']}, load average {env['loadavg_before'][0]} before / "
            f"{env['loadavg'][0]} after (1 min), {data['wall_seconds']:.0f} s")


def reset_note(results: dict) -> str:
    """Whether every worker could reset its RSS high-water mark before training."""
    flags = [m.get("rss_peak_reset_before_training") for m in results.values() if "method" in m]
    return "done in every worker" if flags and all(flags) else "not possible here: peak includes loading"


def training_section(data: dict) -> list[str]:
    """Table and ratios of training_methods.json."""
    s, r = data["settings"], data["results"]
    base = r.get("base_fp32_untrained", {}).get("wer", {}).get("eval_wer")
    untrained = f"untrained: {100 * base:.1f}%" if base is not None else "untrained: not measured"
    lines = ["### Training methods (`training_methods.json`)", "",
             f"tiny.en on cv-mini, batch {s['batch_size']}, {s['steps']} steps (seconds per step: "
             f"median after the first), learning rate {s['learning_rates']['full_fp32']:g} for full "
             f"fine-tuning and {s['learning_rates']['lora_8bit']:g} for LoRA with the recipe's "
             f"{s['warmup_steps']}-step warmup (so these are the first steps of its schedule), "
             f"WER on {s['wer_clips']} test clips decoded greedily on an "
             f"fp32 base ({untrained}). Peak RSS: the worker process's high-water mark "
             f"while training, reset after loading the model and data ({reset_note(r)}). "
             f"{env_line(data)}.", "",
             "| method | s/step | peak RSS | trainable params | checkpoint on disk | WER after training |",
             "|---|---|---|---|---|---|"]
    for key, name in METHOD_NAMES.items():
        m = r[key]
        share = 100 * m["trainable_params"] / m["total_params"]
        lines.append(f"| {name} | {m['seconds_per_step']:.2f} | {mib(m['peak_rss_bytes'])} | "
                     f"{m['trainable_params']:,} ({share:.2f}%) | {mib(m['checkpoint_bytes'])} | "
                     f"{100 * m['wer']['eval_wer']:.1f}% |")
    full, lora8 = r["full_fp32"], r["lora_8bit"]
    src = "training_methods.json results.{}.{} / results.{}.{}"
    lines += ["", "- Checkpoint, full fine-tuning vs LoRA 8-bit: " + ratio(
        full["checkpoint_bytes"], lora8["checkpoint_bytes"],
        src.format("full_fp32", "checkpoint_bytes", "lora_8bit", "checkpoint_bytes")),
        "- Peak memory, full fine-tuning vs LoRA 8-bit: " + ratio(
        full["peak_rss_bytes"], lora8["peak_rss_bytes"],
        src.format("full_fp32", "peak_rss_bytes", "lora_8bit", "peak_rss_bytes")),
        "- Step time, LoRA 8-bit vs LoRA fp32 (above 1: the 8-bit base is slower): "
        + ratio(lora8["seconds_per_step"], r["lora_fp32"]["seconds_per_step"],
                src.format("lora_8bit", "seconds_per_step", "lora_fp32", "seconds_per_step")),
        "", f"![training methods]({FIGURES}/training_methods.png)", ""]
    return lines


def dataprep_section(data: dict) -> list[str]:
    """Table and ratio of data_preparation.json."""
    s, r = data["settings"], data["results"]
    eq, res = r["equality"], r["resamplers"]
    lines = ["### Data preparation (`data_preparation.json`)", "",
             f"{s['clips']} Common Voice-layout MP3 clips (48 kHz) to a training-ready dataset "
             f"on disk. Recipe: {s['recipe']}. Ours: {s['ours']}. {env_line(data)}.", "",
             "| way | clips/s | seconds | bytes on disk |", "|---|---|---|---|"]
    for way in ("recipe", "ours"):
        w = r[way]
        lines.append(f"| {way} | {w['clips_per_second']:.2f} | {w['seconds']['total']:.1f} | "
                     f"{mib(w['bytes_on_disk'])} |")
    lines += ["", "- Ours vs the recipe's way, clips per second: " + ratio(
        r["ours"]["clips_per_second"], r["recipe"]["clips_per_second"],
        "data_preparation.json results.ours.clips_per_second / results.recipe.clips_per_second"),
        "- Bytes on disk, the recipe's vs ours (ours stores only the frames that see audio): "
        + ratio(r["recipe"]["bytes_on_disk"], r["ours"]["bytes_on_disk"],
                "data_preparation.json results.recipe.bytes_on_disk / results.ours.bytes_on_disk"),
        f"- Same model inputs: max |feature difference| {eq['max_abs_feature_difference']:.2g} "
        f"(tolerance {eq['tolerance']:g}), labels equal: {eq['labels_equal']} "
        "(data_preparation.json results.equality)",
        f"- Resamplers: librosa {res['librosa_version']}'s default `res_type` is "
        f"`{res['librosa_default_res_type']}`, the same algorithm as ours ({res['ours']}); "
        f"max difference on {res['clips']} clips: audio {res['max_abs_audio_difference']:.2g}, "
        f"features {res['max_abs_feature_difference']:.2g} (data_preparation.json results.resamplers)",
        ""]
    return lines


CURVE_METHODS = ("full_fp32", "lora_8bit")


def curve_section(data: dict) -> list[str]:
    """Tables and ratios of memory_curve.json (tiny.en, then the larger architecture)."""
    r = data["results"]
    batches = [row["batch_size"] for row in r["full_fp32"]]
    lines = ["### Memory versus batch size on CPU (`memory_curve.json`)", "",
             f"Peak RSS of a fresh process while training (high-water mark reset after loading; "
             f"{data['settings']['steps']} step(s), or the training_methods run where the batch "
             f"matches), gradient checkpointing on. {env_line(data)}.", "",
             "| batch | " + " | ".join(METHOD_NAMES[m] for m in CURVE_METHODS) + " |",
             "|---|" + "---|" * len(CURVE_METHODS)]
    for i, batch in enumerate(batches):
        lines.append(f"| {batch} | " + " | ".join(mib(r[m][i]["peak_rss_bytes"])
                                                  for m in CURVE_METHODS) + " |")
    last = len(batches) - 1
    lines += ["", f"- tiny.en at batch {batches[last]}, full fine-tuning vs LoRA 8-bit: " + ratio(
        r["full_fp32"][last]["peak_rss_bytes"], r["lora_8bit"][last]["peak_rss_bytes"],
        f"memory_curve.json results.full_fp32[{last}] / results.lora_8bit[{last}], peak_rss_bytes")]
    if "larger_model" in r:
        lines += larger_model_lines(r["larger_model"])
    lines += ["", f"![memory curve]({FIGURES}/memory_curve.png)", ""]
    return lines


def larger_model_lines(larger: dict) -> list[str]:
    """Table and ratios of memory_curve.json results.larger_model, with the estimator's figures."""
    name, key = larger["model"], "memory_curve.json results.larger_model"
    lines = ["", f"tiny.en's weights are small next to its activations, so it understates the "
             f"saving. The same two methods on {name} ({larger['weights']}; {larger['inputs']}, "
             f"{larger['label_length']} label tokens; {larger['steps']} step per fresh process, "
             f"{larger['checkpointing']} checkpointing). \"Mapped files\": resident pages of "
             "mapped files at the end of the step: the libraries (the quantized model's "
             "checkpoint is no longer mapped: helpers.model.load.release_checkpoint_mapping). "
             "\"Predicted\": helpers.footprint.estimate's CPU RSS figure, whose allocator "
             "constants were fitted on tiny.en only.", "",
             "| method | batch | peak RSS | of which mapped files | predicted | s/step |",
             "|---|---|---|---|---|---|"]
    for method in CURVE_METHODS:
        for row in larger[method]:
            lines.append(f"| {METHOD_NAMES[method]} | {row['batch_size']} | "
                         f"{mib(row['peak_rss_bytes'])} | {mib(row['rss_file_bytes_after_step'])} | "
                         f"{mib(row['predicted_peak_rss_bytes'])} ({100 * row['error']:+.0f}%) | "
                         f"{row['step_seconds']:.1f} |")
    last = len(larger["full_fp32"]) - 1
    full, lora8 = larger["full_fp32"][last], larger["lora_8bit"][last]
    src = f"{key}.full_fp32[{last}] / .lora_8bit[{last}]"
    lines += ["", f"- {name} at batch {full['batch_size']}, full fine-tuning vs LoRA 8-bit, peak "
              "RSS: " + ratio(full["peak_rss_bytes"], lora8["peak_rss_bytes"],
                              f"{src}, peak_rss_bytes")]
    return lines


FORGET_COMMAND = "python benchmarks/run.py --only forgetting"
FORGET_ROWS = {"base_fp32": "base, untouched (fp32)", "lora_8bit": "LoRA, 8-bit base (the recipe)",
               "lora_8bit_adapter_off": "the same, adapter switched off",
               "lora_8bit_routed": "the same, routed by spoken language",
               "lora_8bit_replay_10": "LoRA 8-bit, replay 0.1 (English)",
               "lora_8bit_replay_25": "LoRA 8-bit, replay 0.25 (English)",
               "lora_8bit_lr_1e-4": "LoRA 8-bit, learning rate 1e-4",
               "lora_fp32": "LoRA, fp32 base", "full_fp32": "full fine-tuning, fp32"}
# Routing keeps each language when English WER is within this many points of the adapter
# switched off and Hindi CER within this many of the adapter always on (issue 23), and it
# sends at least ROUTED_RIGHT of each language's clips the right way.
ROUTING_POINTS, ROUTED_RIGHT = 1.0, 0.95
# English WER may rise this many points and still count as kept: on 24 clips (about 200
# words) one sentence misheard entirely moves WER by about 4 points.
FORGETTING_POINTS = 5.0


def markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table as lines: the header row, the rule, one line per row of cells."""
    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(row) + " |" for row in rows])


def pct(value) -> str:
    """A fraction as a percentage with one decimal ("-" for None)."""
    return "-" if value is None else f"{100 * value:.1f}%"


def forgetting_verdict(r: dict) -> str:
    """One line: did "LoRA overcomes catastrophic forgetting" hold, with the figures it rests on.

    Forgetting = English WER after training minus the untouched base's, in points; LoRA kept
    English when its rise is at most FORGETTING_POINTS. When full fine-tuning kept it too,
    the run cannot tell the methods apart, and says so.
    """
    base = r["base_fp32"]["english"]["wer"]
    lora = 100 * (r["lora_8bit"]["english"]["wer"] - base)
    full = 100 * (r["full_fp32"]["english"]["wer"] - base)
    if lora <= FORGETTING_POINTS and full <= FORGETTING_POINTS:
        verdict = ("was not put to the test: neither LoRA nor full fine-tuning lost English "
                   f"(both within {FORGETTING_POINTS:g} points)")
    elif lora <= FORGETTING_POINTS:
        verdict = "held"
    elif lora < full:
        verdict = "held only in part: LoRA lost English, less than full fine-tuning did"
    else:
        verdict = "did not hold: LoRA lost as much English as full fine-tuning, or more"
    return (f"The blog's claim \"LoRA overcomes catastrophic forgetting\" {verdict} here: "
            f"English WER {lora:+.1f} points with the 8-bit LoRA adapter on, {full:+.1f} after "
            f"full fine-tuning, from the untouched base's {pct(base)}; with the adapter off, "
            f"{pct(r['lora_8bit_adapter_off']['english']['wer'])} (the 8-bit base) "
            "(forgetting.json results.*.english.wer)")


def forgetting_section(data: dict) -> list[str]:
    """Table, verdict and chart of forgetting.json."""
    s, r = data["settings"], data["results"]
    rates = s["learning_rates"]
    lines = ["### Forgetting: does a model trained on Hindi keep its English? (`forgetting.json`)", "",
             f"`{FORGET_COMMAND}`: {s['model']} trained on {s['train_corpus']} ({s['steps']} steps "
             f"of batch {s['batch_size']}, the same clips in the same order for each method; "
             f"learning rate {rates['lora_8bit']:g} for LoRA"
             + (f" ({rates['lora_8bit_lr_1e-4']:g} in its own row)" if "lora_8bit_lr_1e-4" in rates else "")
             + f", {rates['full_fp32']:g} for full "
             f"fine-tuning; {s['warmup_steps']} warmup steps, then constant). Scored on "
             f"{s['hindi_clips']} clips of {s['hindi_test']} (language=\"hindi\") and "
             f"{s['english_clips']} clips of {s['english_test']} (language=\"english\"); "
             f"{s['decoding']}. Identified: {s['language_id']}."
             + (f" Replay: {s['replay_corpus']}, as a share of the samples. Routed: "
                f"{s['routing']}." if "routing" in s else "") + f" {env_line(data)}.", ""]
    headers = ["model", "Hindi WER", "Hindi CER", "Hindi script share", "English WER",
               "English CER", "English clips identified as English",
               "Hindi clips identified as Hindi", "routed right: Hindi / English",
               "routing's seconds per clip: identify + settle doubts"]
    rows = [[name, pct(r[key]["hindi"]["wer"]), pct(r[key]["hindi"]["cer"]),
             pct(r[key]["hindi"]["script_share"]), pct(r[key]["english"]["wer"]),
             pct(r[key]["english"]["cer"]), pct(r[key]["english_detected_as_english"]),
             pct(r[key]["hindi_detected_as_hindi"]), *routing_cells(r[key])]
            for key, name in FORGET_ROWS.items() if key in r]
    lines += markdown_table(headers, rows)
    extra = [routing_verdict(r)] if "lora_8bit_routed" in r else []
    return lines + ["", "- " + forgetting_verdict(r), *["- " + line for line in extra], "",
                    f"![forgetting]({FIGURES}/forgetting.png)", "",
                    *([f"![Hindi CER against English WER]({FIGURES}/forgetting_tradeoff.png)", ""]
                      if "lora_8bit_routed" in r else [])]


def routing_cells(row: dict) -> list[str]:
    """The routed row's share of Hindi / English clips routed the right way, and its seconds
    per clip of language identification (stage one) + settling doubts (stage two's greedy
    decodings); "-" for the other rows."""
    routing = row.get("routing")
    if not routing:
        return ["-", "-"]
    clips = row["hindi"]["n"] + row["english"]["n"]
    identify, settle = (sum(routing[lang][key] for lang in ("hindi", "english")) / clips
                        for key in ("identify_seconds", "settle_seconds"))
    return [f"{pct(routing['hindi']['right_share'])} / {pct(routing['english']['right_share'])}",
            f"{identify:.2f} + {settle:.2f} s"]


def routing_verdict(r: dict) -> str:
    """One line: did routing keep English as the base has it and Hindi as the adapter has it
    (within ROUTING_POINTS), and send at least ROUTED_RIGHT of each language the right way."""
    routed, on, off = r["lora_8bit_routed"], r["lora_8bit"], r["lora_8bit_adapter_off"]
    english = 100 * (routed["english"]["wer"] - off["english"]["wer"])
    hindi = 100 * (routed["hindi"]["cer"] - on["hindi"]["cer"])
    right = {lang: routed["routing"][lang]["right_share"] for lang in ("hindi", "english")}
    kept = english <= ROUTING_POINTS and hindi <= ROUTING_POINTS and min(right.values()) >= ROUTED_RIGHT
    return (f"Routing by spoken language {'kept both languages' if kept else 'fell short'} here: "
            f"English WER {pct(routed['english']['wer'])} routed vs {pct(off['english']['wer'])} with "
            f"the adapter off ({english:+.1f} points), Hindi CER {pct(routed['hindi']['cer'])} routed vs "
            f"{pct(on['hindi']['cer'])} with the adapter on ({hindi:+.1f} points); "
            f"{pct(right['hindi'])} of the Hindi clips went to the adapter and {pct(right['english'])} "
            f"of the English ones to the base (the aim: within {ROUTING_POINTS:g} point, and at "
            f"least {ROUTED_RIGHT:.0%} each; forgetting.json results.lora_8bit_routed)"
            + routing_cost(routed, on))


def routing_cost(routed: dict, on: dict) -> str:
    """What routing costs beside decoding: its seconds per clip (identify + settle) against
    the seconds per clip the adapter-on model took to decode the same clips ("" when the
    run did not record them)."""
    decode = on.get("decode_seconds")
    if not decode:
        return ""
    clips = routed["hindi"]["n"] + routed["english"]["n"]
    spent = sum(routed["routing"][lang]["detect_seconds"] for lang in ("hindi", "english")) / clips
    decoded = sum(decode.values()) / clips
    return (f". Routing spent {spent:.2f} s a clip (identifying, and settling doubts with two "
            f"greedy decodings) where decoding a clip took {decoded:.2f} s")


def forgetting_not_measured() -> list[str]:
    """The forgetting section before its first run."""
    return ["### Forgetting: does a model trained on Hindi keep its English? (`forgetting.json`)", "",
            f"**Not measured yet.** `{FORGET_COMMAND}` (estimated at about 45 minutes on 2 CPU "
            "cores; `--quick`: 1 step and 1 clip, the code paths only) trains the multilingual base "
            "(`embedded-base`) on data/cv-mini/hi three ways with the same 30 steps of batch 8: "
            "LoRA on an 8-bit base (the recipe), LoRA on an fp32 base and full fine-tuning "
            "(fp32, learning rate 1e-5). For each, the untouched base and the LoRA model with its "
            "adapter switched off it measures Hindi WER/CER on 24 Hindi test clips, English "
            "WER/CER on 24 English test clips (language=\"english\"), and how many of those clips "
            "Whisper's language identification calls English with no language forced; then says "
            "whether the blog's claim \"LoRA overcomes catastrophic forgetting\" held. It writes "
            "`benchmarks/results/forgetting.json` and `forgetting.png`, which this section then shows.", ""]


LONG_FORM_COMMAND = "python benchmarks/run.py --only long_form"


def seconds(value) -> str:
    """Seconds with two decimals ("-" for None)."""
    return "-" if value is None else f"{value:.2f} s"


def long_form_kept(r: dict) -> str:
    """One line: did the recipe's text-only labels (share 0) cost the model its timestamps?"""
    base, zero = (r[key]["long_form"]["timestamp_window_share"] for key in ("base", "share_0"))
    if zero is not None and base is not None and zero >= base - 0.05:
        verdict = ("did not make the model stop predicting timestamps here: it closed segments "
                   f"with timestamps in {pct(zero)} of the windows (base {pct(base)})")
    else:
        verdict = f"lowered the windows with timestamps from the base's {pct(base)} to {pct(zero)}"
    return (f"Text-only labels (the recipe, share 0) {verdict} "
            "(long_form.json results.base/share_0.long_form.timestamp_window_share)")


def long_form_recommendation(r: dict) -> str:
    """One line: the recommended TIMESTAMP_SHARE, the rule that chose it and its figures."""
    pick, zero = r["recommended"], r["share_0"]["long_form"]
    row = r[pick["row"]]["long_form"]
    return (f"Recommended `TIMESTAMP_SHARE = {pick['share']:g}` ({pick['rule']}): long-form WER "
            f"{pct(row['wer'])} vs {pct(zero['wer'])} with share 0, windows with timestamps "
            f"{pct(row['timestamp_window_share'])} vs {pct(zero['timestamp_window_share'])}, "
            f"sentence start/end error {seconds(row['start_mae'])} / {seconds(row['end_mae'])} vs "
            f"{seconds(zero['start_mae'])} / {seconds(zero['end_mae'])} "
            "(long_form.json results.recommended, results.*.long_form)")


def long_form_section(data: dict) -> list[str]:
    """Table, recommendation and chart of long_form.json."""
    s, r = data["settings"], data["results"]
    lf = s["long_form_set"]
    lines = ["### Timestamps through fine-tuning: long-form transcription by TIMESTAMP_SHARE "
             "(`long_form.json`)", "",
             f"`{LONG_FORM_COMMAND}`: `{s['model']}` ({s['precision']} base) with the recipe's LoRA "
             f"trained on {s['train_corpus']} once per `TIMESTAMP_SHARE` ({s['steps']} steps of "
             f"batch {s['batch_size']}, seed {s['seed']}, the `{s['preset']}` preset's schedule), "
             f"then the base and each adapter (on the {s['eval_precision']} base) transcribe {lf['recordings']} long-form recordings "
             f"({', '.join(f'{x:.0f}' for x in lf['seconds'])} s; {lf['sentences']} sentences) "
             f"made from {lf['corpus']} by `helpers.data.long_form.build_long_form_set`, and "
             f"{s['short_clips']} short test clips. Decoding: {s['decoding']}. Boundary error: "
             f"{s['matching']}. {env_line(data)}.", "",
             "Training losses are not comparable across shares: timestamped labels hold other "
             "tokens.", ""]
    headers = ["model", "long-form WER", "windows with timestamps", "sentence start error",
               "sentence end error", "segments", "short-clip WER", "final training loss"]
    rows = []
    for key in rows_in_order(r):
        row, lf_row = r[key], r[key]["long_form"]
        name = "base (no adapter)" if key == "base" else f"TIMESTAMP_SHARE = {row['timestamp_share']:g}"
        rows.append([name, pct(lf_row["wer"]),
                     f"{pct(lf_row['timestamp_window_share'])} ({lf_row['windows']})",
                     seconds(lf_row["start_mae"]), seconds(lf_row["end_mae"]),
                     str(lf_row["segments"]), pct(row["short_clips"]["wer"]),
                     "-" if key == "base" else f"{row['final_loss']:.3f}"])
    lines += markdown_table(headers, rows)
    return lines + ["", "- " + long_form_kept(r), "- " + long_form_recommendation(r), "",
                    f"![long-form]({FIGURES}/long_form.png)", ""]


def long_form_not_measured() -> list[str]:
    """The long-form section before its first run."""
    return ["### Timestamps through fine-tuning: long-form transcription by TIMESTAMP_SHARE "
            "(`long_form.json`)", "",
            f"**Not measured yet.** `{LONG_FORM_COMMAND}` (estimated at about 15 minutes on 2 CPU "
            "cores; `--quick`: 1 step and 1 recording, the code paths only) trains tiny.en (8-bit "
            "base, the recipe's LoRA, the `embedded` preset's 30 steps of batch 8 on "
            "data/cv-mini/en train) with `TIMESTAMP_SHARE` 0, 0.3 and 0.5, then measures the base "
            "and each adapter on three 1-3 minute recordings joined from cv-mini test clips: long-form "
            "WER, the share of 30 s windows where the model emitted timestamps, and the mean error "
            "of sentence start and end times; and says which share it recommends. It writes "
            "`benchmarks/results/long_form.json` and `long_form.png`, which this section then shows.", ""]


# ---------------------------------------------------------------- packing.json (bench_packing.py)

PACKING_COMMAND = "python benchmarks/run.py --only packing"
PACKING_ARMS = {"unpacked": "one clip a sample (before packing)",
                "packed": "packed into 30 s windows", "base": "base, no adapter"}
PACKING_METRICS = bench_packing.METRICS


def packing_row(arm: str, row: dict, metric: str) -> list[str]:
    """One table row: training figures (not for the base) and scores."""
    scores = [pct(row[f"test_{metric}"]), str(row["test_loops"]), pct(row["long_form_wer"]),
              pct(row["timestamp_window_share"])]
    if arm == "base":
        return [PACKING_ARMS[arm], "-", "-", "-", "-", "-", *scores]
    return [PACKING_ARMS[arm], str(row["batch_size"]),
            f"{row['train_steps']} in {row['train_seconds']:.0f} s",
            f"{row['clips_seen']} ({row['epochs']:g} epochs)", f"**{row['clips_per_second']:.2f}**",
            f"{row['timestamp_share']:g}", *scores]


def packing_verdict(rows: dict, language: str) -> str:
    """The issue's three conditions on one language, with their sources."""
    c, where = rows["checks"], ("" if language == "english" else f"{language}.")
    holds = {True: "holds", False: "does not hold"}
    metric = c["test_metric"].split("_")[1].upper()
    return (f"{language.capitalize()}: packed vs unpacked, clips per second **{c['speedup']:.1f}x** "
            f"(at least {bench_packing.MIN_SPEEDUP:g}x: {holds[c['speedup_holds']]}); test {metric} "
            f"{100 * c['test_difference']:+.1f} points (at most "
            f"+{100 * bench_packing.MAX_TEST_LOSS:g}: {holds[c['test_holds']]}); long-form WER "
            f"{100 * c['long_form_difference']:+.1f} points "
            f"(no worse: {holds[c['long_form_holds']]}) (packing.json {where}checks, from "
            f"{where}packed / {where}unpacked clips_per_second, test_{metric.lower()}, long_form_wer)")


def packing_section(doc: dict) -> list[str]:
    """The docs/benchmarks.md section of packing.json: a table per language, the verdicts."""
    m, env = doc["machine"], doc["environment"]
    lines = ["### Packing clips into 30 s windows (`packing.json`)", "",
             f"`{PACKING_COMMAND}`: for each language, the preset trained one clip a sample "
             "(batch 8, `TIMESTAMP_SHARE = 0`, 30 steps, as before packing), then with `PACK = True` (its "
             "batch of windows and `TIMESTAMP_SHARE`) for the same seconds, one right after the "
             "other in one process; then each adapter on the 8-bit base: the test clips one a "
             "sample (normalized), and long-form recordings made as notebook 05 makes its one "
             "(test clips joined with pauses, 60-70 s). Clips per second: training clips the "
             f"Trainer processed per second of training. {m['cpu']}, {m['cores']} cores, "
             f"{m['memory_gb']:g} GB, no GPU, shared with other jobs (load average "
             f"{env['loadavg_before'][0]} before / {env['loadavg'][0]} after), "
             f"{doc['wall_seconds'] / 60:.0f} min.", ""]
    for language, rows in bench_packing.sections(doc).items():
        s, metric = rows["settings"], PACKING_METRICS[language]
        lines += [f"{language.capitalize()}: `{s['preset']}` ({s['model']}, {s['precision']} base, "
                  f"{s['corpus']}), {s['test_clips']} test clips, "
                  f"{len(s['long_form_seconds'])} long recordings "
                  f"({', '.join(f'{x:.0f}' for x in s['long_form_seconds'])} s).", ""]
        headers = ["training", "batch", "steps", "clips seen", "clips/s", "TIMESTAMP_SHARE",
                   f"test {metric.upper()}", "looping clips", "long-form WER",
                   "windows with timestamps"]
        lines += markdown_table(headers, [packing_row(arm, rows[arm], metric)
                                          for arm in ("base", "unpacked", "packed") if arm in rows])
        lines += ["", "- " + packing_verdict(rows, language), ""]
    return lines + [f"![packing]({FIGURES}/packing.png)", ""]


def packing_not_measured() -> list[str]:
    """The section before the first run."""
    return ["### Packing clips into 30 s windows (`packing.json`)", "",
            f"**Not measured yet.** `{PACKING_COMMAND}` (about 60 minutes on 2 CPU cores) trains "
            "tiny.en on data/cv-mini/en and the multilingual base on data/cv-mini/hi one clip a sample, "
            "then packed into 30 s windows for the same seconds, and compares clips per second, "
            "test WER (CER for Hindi), long-form WER and windows with timestamps. It writes "
            "`benchmarks/results/packing.json` and `packing.png`, which this section then shows.", ""]


def packing_readme_lines(doc: dict | None) -> list[str]:
    """The README's lines on packing (between README_START and README_END), from packing.json."""
    if doc is None:
        return [f"Packing clips into 30 s windows: not measured yet (`{PACKING_COMMAND}`)."]
    parts = []
    for language, rows in bench_packing.sections(doc).items():
        metric, (unpacked, packed) = PACKING_METRICS[language], (rows["unpacked"], rows["packed"])
        parts.append(f"{language.capitalize()} ({rows['settings']['model']}): "
                     f"**{rows['checks']['speedup']:.1f}x** the training clips per second, test "
                     f"{metric.upper()} {pct(unpacked[f'test_{metric}'])} → "
                     f"{pct(packed[f'test_{metric}'])}, long-form WER {pct(unpacked['long_form_wer'])} "
                     f"→ {pct(packed['long_form_wer'])}")
    return ["**Packing** (`PACK = True`): training clips joined into 30 s windows instead of one "
            "clip padded to 30 s, trained for the seconds one clip a sample took; "
            + "; ".join(parts) + f". `{PACKING_COMMAND}`, {doc['machine']['cpu']}, "
            f"{doc['machine']['cores']} cores shared with other jobs; details in "
            "[docs/benchmarks.md](docs/benchmarks.md#packing-clips-into-30-s-windows-packingjson)."]


def readme_section(results_dir: Path = RESULTS) -> str:
    """The README's generated lines (between README_START and README_END)."""
    path = Path(results_dir) / "packing.json"
    doc = json.loads(path.read_text()) if path.is_file() else None
    return "\n".join(packing_readme_lines(doc)) + "\n"


GPU_METHODS = {"full_fp16": "full fine-tuning (fp16 autocast, AdamW)",
               "lora_fp16": "LoRA, fp16 base", "lora_8bit": "LoRA, 8-bit base (the recipe)",
               "lora_4bit": "LoRA, 4-bit (NF4) base"}
GPU_COMMAND = "python benchmarks/gpu_check.py"


def gb(n) -> str:
    """Bytes as GB (1e9, as the blog and nvidia-smi's marketing write them), two decimals."""
    return "-" if n is None else f"{n / 1e9:.2f} GB"


def gpu_not_measured() -> list[str]:
    """The GPU section before any GPU run: what the command measures, and that it has not run."""
    return ["### On a GPU (`gpu_check.json`)", "",
            f"**Not measured yet: needs a GPU.** `{GPU_COMMAND}` (or `make gpu-check`) on one CUDA "
            "GPU runs, within 8 minutes: the CUDA tests (`pytest -m gpu`: fp16 training on 8-bit and "
            "4-bit bases, gradient accumulation, WER by generate under fp16 autocast, resume, "
            "adapter reload, merged export, transcription); notebooks 01-06 on CUDA (8-bit, LoRA, "
            "fp16) on a tiny random Whisper; and the blog's memory claims on whisper-large-v2 with "
            "random weights: full fine-tuning and LoRA on fp16, 8-bit and 4-bit bases, batch sizes "
            "doubling under a 15 GB cap (a T4), peak allocated, reserved and device-level memory "
            "(what nvidia-smi shows), seconds per step and the estimator's prediction for each. "
            "It writes `benchmarks/results/gpu_check.json`, which this section then shows.", ""]


def gpu_point(row: dict) -> str:
    """The measured memory cells of one point, or what stopped it."""
    if row.get("oom"):
        return f"out of memory ({row.get('oom_while', 'training')}) | | | | |"
    if "failed" in row:
        return f"failed: {row['failed'][:80]} | | | | |"
    if "skipped" in row:
        return f"skipped: {row['skipped']} | | | | |"
    predicted = row.get("predicted_peak_allocated_bytes", row.get("predicted_peak_rss_bytes"))
    error = f" ({100 * row['error']:+.0f}%)" if "error" in row else ""
    measured = row.get("peak_allocated_bytes", row.get("peak_rss_bytes"))
    return (f"{gb(row.get('device_peak_bytes'))} | {gb(row.get('peak_reserved_bytes'))} | "
            f"{gb(measured)} | {gb(predicted)}{error} | {row.get('step_seconds', 0):.2f} |")


def gpu_claim_lines(claims: dict, cap) -> list[str]:
    """The blog's three memory claims against the measured points."""
    at8, full8 = claims.get("lora_8bit_batch_8"), claims.get("full_fp16_batch_8_uncapped")
    maxes = claims.get("max_batch_under_cap", {})
    lines = []
    if at8:
        verdict = {True: "holds", False: "does not hold", None: "not decided"}[
            claims.get("lora_8bit_batch_8_under_8gb")]
        lines.append(f"- \"< 8 GB\" (large-v2, LoRA on 8 bits, batch 8, reentrant checkpointing): "
                     f"{gb(at8.get('device_peak_bytes'))} on the device, "
                     f"{gb(at8.get('peak_allocated_bytes'))} allocated by tensors: the claim "
                     f"{verdict} (gpu_check.json claims.lora_8bit_batch_8)")
    else:
        lines.append("- \"< 8 GB\": not measured (no point at batch 8 for LoRA 8-bit)")
    lora, full = maxes.get("lora_8bit/reentrant"), maxes.get("full_fp16/reentrant")
    if lora and full:
        ratio = claims.get("batch_ratio_lora_8bit_vs_full")
        said = (f"**{ratio:.1f}x**" if ratio else "full fine-tuning fits no batch, so no ratio")
        lines.append(f"- \"about 5x the batch\": largest batch under {gb(cap)}: LoRA 8-bit "
                     f"{_bound(lora)}, full fine-tuning {_bound(full)}: {said} "
                     "(gpu_check.json claims.max_batch_under_cap)")
    if full8:
        lines.append(f"- \"about 24 GB\" (full fine-tuning, batch {full8['batch_size']}, no cap): "
                     f"{gb(full8.get('device_peak_bytes'))} on the device, "
                     f"{gb(full8.get('peak_allocated_bytes'))} allocated "
                     "(gpu_check.json claims.full_fp16_batch_8_uncapped)")
    return lines


def _bound(entry: dict) -> str:
    """'16' when an out-of-memory bounded it, else 'at least 16'."""
    return str(entry["max_batch_size"]) if entry["exact"] else f"at least {entry['max_batch_size']}"


def gpu_section(doc: dict) -> list[str]:
    """The GPU section from gpu_check.json: machine, tests, pipeline, memory points, claims."""
    env, parts = doc["environment"], doc["parts"]
    libs = env.get("libraries", {})
    version = lambda name: libs.get(name, "?").split(" ")[0]  # noqa: E731
    if doc.get("smoke"):
        machine = (f"a smoke run on the CPU ({env['cpu_count']} cores): the code paths only, "
                   "tiny sizes, not GPU figures")
    else:
        machine = (f"one {env.get('gpu')} ({env.get('gpu_total_bytes', 0) / 2**30:.0f} GiB; not a "
                   "T4: step times are this card's, memory figures carry over, and the 15 GB cap "
                   "makes the allocator behave as on a T4)")
    lines = ["### On a GPU (`gpu_check.json`)", "",
             f"Measured by `{GPU_COMMAND}` on {machine}; Python {env['python']}, torch "
             f"{version('torch')} (CUDA {env.get('torch_cuda')}), transformers "
             f"{version('transformers')}, peft {version('peft')}, bitsandbytes "
             f"{version('bitsandbytes')}; {doc.get('wall_seconds', 0):.0f} s in all.", ""]
    tests = parts.get("tests")
    if tests:
        failed = [t["test"] for t in tests.get("tests", []) if t["outcome"] in ("failed", "error")]
        lines.append(f"- CUDA tests (`pytest -m gpu`): {tests['status']}: {tests.get('passed', 0)} "
                     f"passed, {tests.get('failed', 0) + tests.get('error', 0)} failed, "
                     f"{tests.get('skipped', 0)} skipped in {tests['seconds']:.0f} s"
                     + (f"; failed: {', '.join(failed)}" if failed else ""))
    pipeline = parts.get("pipeline")
    if pipeline:
        metrics = pipeline.get("metrics", {})
        lines.append(f"- Notebooks 01-06 on a tiny random Whisper (8-bit base, LoRA, fp16 on the GPU): "
                     f"{pipeline['status']}, {len(pipeline.get('notebooks', {}))} of 6 notebooks ran "
                     f"in {pipeline['seconds']:.0f} s; training memory kind "
                     f"{metrics.get('peak_memory_kind')}" + (
                         f"; problems: {'; '.join(pipeline['problems'])}" if pipeline.get("problems")
                         else "") + (f"; failed in {pipeline['failed_notebook']}"
                                     if pipeline.get("failed_notebook") else ""))
    memory = parts.get("memory")
    if memory and memory.get("series"):
        precision = ("fp16 autocast + GradScaler" if memory.get("device") == "cuda" else
                     "no autocast on the CPU, where \"allocated\" is the worker's peak RSS")
        lines += ["", f"Memory of one training step, {memory['model']} with random weights (memory "
                  "does not depend on their values), synthetic 30 s inputs, "
                  f"{memory['label_length']} label tokens, {precision}, "
                  f"{memory['steps']} steps per fresh process (the first a warm-up), under a cap of "
                  f"{gb(memory.get('cap_bytes'))} for context + reserved memory unless marked "
                  "\"no cap\". Device: what nvidia-smi shows for the process at its peak (reserved "
                  "+ CUDA context). Predicted: helpers.footprint.estimate's allocated figure.", "",
                  "| method | checkpointing | batch | device | reserved | allocated | predicted | s/step |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, rows in memory["series"].items():
            method, checkpointing, *uncapped = key.split("/")
            name = GPU_METHODS.get(method, method) + (" (no cap)" if uncapped else "")
            for row in rows:
                lines.append(f"| {name} | {checkpointing} | {row['batch_size']} | {gpu_point(row)}")
        if memory.get("claims"):
            lines += [""] + gpu_claim_lines(memory["claims"], memory.get("cap_bytes"))
    elif memory:
        lines.append(f"- Memory: {memory.get('status')}: {memory.get('error', '')[:300]}")
    return lines + [""]


def render(results_dir: Path = RESULTS) -> str:
    """The benchmark section (markdown, without the markers) from the JSON files."""
    data = load(results_dir)
    total = sum(data[name]["wall_seconds"] for name in FILES if name in data)
    lines = ["## Benchmarks", "",
             "Measured by `python benchmarks/run.py` "
             f"(the four benchmarks took {total / 60:.0f} min) on this project's CPU machine, where other "
             "jobs may run too: each file records the load average before and after, so read "
             "small differences as noise. "
             "Files: `benchmarks/results/*.json`; this text is generated by "
             "`python benchmarks/report.py`.", ""]
    sections = {"training_methods": training_section, "data_preparation": dataprep_section,
                "inference": inference_section, "memory_curve": curve_section}
    for name, section in sections.items():
        if name in data:
            lines += section(data[name])
    lines += forgetting_section(data["forgetting"]) if "forgetting" in data else forgetting_not_measured()
    lines += long_form_section(data["long_form"]) if "long_form" in data else long_form_not_measured()
    lines += padding_section(data["padding"]) if "padding" in data else padding_not_measured()
    lines += packing_section(data["packing"]) if "packing" in data else packing_not_measured()
    gpu = Path(results_dir) / "gpu_check.json"
    lines += gpu_section(json.loads(gpu.read_text())) if gpu.is_file() else gpu_not_measured()
    return "\n".join(lines).rstrip() + "\n"


def write_section(results_dir: Path = RESULTS) -> Path:
    """Write results_dir/benchmarks_section.md; returns its path."""
    path = Path(results_dir) / SECTION_FILE
    path.write_text(render(Path(results_dir)))
    return path


def page_section(page: Path = PAGE, start: str = START, end: str = END) -> str | None:
    """The text between the markers in a page (None when the markers are absent)."""
    text = Path(page).read_text()
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def write_pages(results_dir: Path = RESULTS) -> None:
    """Put the generated text between the markers of docs/benchmarks.md and the README."""
    for page, start, end, text in ((PAGE, START, END, render(results_dir)),
                                   (README, README_START, README_END, readme_section(results_dir))):
        if page_section(page, start, end) is None:
            raise ValueError(f"{page} lacks the markers {start} ... {end}")
        before, rest = page.read_text().split(start, 1)
        page.write_text(before + start + "\n" + text + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the benchmark section of docs/benchmarks.md.")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--write-pages", action="store_true",
                        help="also put the text between the markers of docs/benchmarks.md and README.md")
    arguments = parser.parse_args()
    print(write_section(arguments.results).read_text())
    if arguments.write_pages:
        write_pages(arguments.results)
