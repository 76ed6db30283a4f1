"""The README's benchmark section, generated from benchmarks/results/*.json (never typed).

    python benchmarks/report.py [--results DIR]   # writes DIR/README_section.md and prints it

README.md holds the same text between `<!-- benchmarks:start -->` and
`<!-- benchmarks:end -->`; tests/test_benchmarks.py checks that they agree. Every ratio
names the result file and keys it was computed from.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS  # noqa: E402

START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
FILES = ("training_methods", "data_preparation", "inference", "memory_curve")
METHOD_NAMES = {"full_fp32": "full fine-tuning, fp32", "lora_fp32": "LoRA, fp32 base",
                "lora_8bit": "LoRA, 8-bit base (the recipe)", "lora_4bit": "LoRA, 4-bit (NF4) base"}
WAY_NAMES = {"8bit_adapter": "8-bit base + adapter (PEFT)", "merged_fp32": "merged, fp32 (transformers)",
             "ct2_int8": "CTranslate2 export, int8 compute", "ct2_float32": "CTranslate2 export, float32 compute"}


def load(results_dir: Path) -> dict[str, dict]:
    """{name: parsed JSON} for each benchmark file present in results_dir."""
    return {name: json.loads((results_dir / f"{name}.json").read_text())
            for name in FILES if (results_dir / f"{name}.json").is_file()}


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
        "", "![training methods](benchmarks/results/training_methods.png)", ""]
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


def inference_section(data: dict) -> list[str]:
    """Table and ratios of inference.json."""
    s, r = data["settings"], data["results"]
    lines = ["### Inference (`inference.json`)", "",
             f"{s['clips']} test clips, batch {s['batch_size']}, {s['decoding']}; timed: "
             f"{s['timed']}. Real-time factor = processing seconds / audio seconds. "
             f"{env_line(data)}.", "",
             "| way | real-time factor | clips/s | WER |", "|---|---|---|---|"]
    for key, name in WAY_NAMES.items():
        w = r[key]
        lines.append(f"| {name} | {w['real_time_factor']:.3f} | {w['clips_per_second']:.2f} | "
                     f"{100 * w['wer']['wer']:.1f}% |")
    src = "inference.json results.{}.clips_per_second / results.{}.clips_per_second"
    lines += ["", "- CTranslate2 int8 vs 8-bit base + adapter: " + ratio(
        r["ct2_int8"]["clips_per_second"], r["8bit_adapter"]["clips_per_second"],
        src.format("ct2_int8", "8bit_adapter")),
        "- Merged fp32 vs 8-bit base + adapter: " + ratio(
        r["merged_fp32"]["clips_per_second"], r["8bit_adapter"]["clips_per_second"],
        src.format("merged_fp32", "8bit_adapter")),
        "", "![inference](benchmarks/results/inference.png)", ""]
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
    lines += ["", "![memory curve](benchmarks/results/memory_curve.png)", ""]
    return lines


def larger_model_lines(larger: dict) -> list[str]:
    """Table and ratios of memory_curve.json results.larger_model, with the estimator's figures."""
    name, key = larger["model"], "memory_curve.json results.larger_model"
    lines = ["", f"tiny.en's weights are small next to its activations, so it understates the "
             f"saving. The same two methods on {name} ({larger['weights']}; {larger['inputs']}, "
             f"{larger['label_length']} label tokens; {larger['steps']} step per fresh process, "
             f"{larger['checkpointing']} checkpointing). \"Mapped files\": resident pages of "
             "mapped files at the end of the step: the libraries (the quantized model's "
             "checkpoint is no longer mapped: helpers.models.release_checkpoint_mapping). "
             "\"Predicted\": helpers.memory_estimate's CPU RSS figure, whose allocator "
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


def render(results_dir: Path = RESULTS) -> str:
    """The README section (markdown, without the markers) from the JSON files."""
    data = load(results_dir)
    total = sum(d["wall_seconds"] for d in data.values())
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
    return "\n".join(lines).rstrip() + "\n"


def write_section(results_dir: Path = RESULTS) -> Path:
    """Write results_dir/README_section.md; returns its path."""
    path = Path(results_dir) / "README_section.md"
    path.write_text(render(Path(results_dir)))
    return path


def readme_section(readme: Path) -> str | None:
    """The text between the benchmark markers in a README (None when the markers are absent)."""
    text = readme.read_text()
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the README benchmark section.")
    parser.add_argument("--results", type=Path, default=RESULTS)
    print(write_section(parser.parse_args().results).read_text())
