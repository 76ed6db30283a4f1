"""The deployment parts of the benchmark section (benchmarks/report.py renders the page):
inference every way (`inference.json`) and the padding conventions (`padding.json`)."""
from __future__ import annotations

FIGURES = "../benchmarks/results"  # as report.FIGURES: the charts, relative to docs/benchmarks.md
WAY_NAMES = {"8bit_adapter": "8-bit base + adapter (PEFT), ours",
             "merged_fp32": "merged, fp32 (transformers), ours",
             "ct2_int8": "CTranslate2 export, int8 compute", "ct2_float32": "CTranslate2 export, float32 compute",
             "faster_whisper_float32": "faster-whisper, float32",
             "faster_whisper_int8": "faster-whisper, int8",
             "faster_whisper_int8_vad": "faster-whisper, int8, VAD (long: batched pipeline)",
             "whisper_cpp_f16": "whisper.cpp, f16", "whisper_cpp_q8_0": "whisper.cpp, q8_0"}
PADDING_WAYS = {"ours_silence": "ours, audio padded with silence",
                "ours_zeros": "ours, log-mel padded with zeros",
                "faster_whisper": "faster-whisper (zeros)", "whisper_cpp": "whisper.cpp (silence)"}


def mib(n: int) -> str:
    """Bytes as MiB, no decimals."""
    return f"{n / 2**20:.0f} MiB"


def fastest_line(results: dict, key: str, label: str) -> str:
    """'Fastest on a CPU, <label>: <way>, N.Nx as fast as our 8-bit path, M.Mx as our fp32 path'."""
    def rtf(way: str):
        row = results[way] if key == "clips" else results[way].get("long_form")
        return row["real_time_factor"] if row and results[way].get("device") == "cpu" else None

    timed = {way: rtf(way) for way in results if rtf(way) is not None}
    if not timed:
        return f"- {label.capitalize()}: not measured in this file."
    best = min(timed, key=timed.get)
    field = "real_time_factor" if key == "clips" else "long_form.real_time_factor"
    ours = [f"**{timed[way] / timed[best]:.1f}x** (inference.json results.{way}.{field} / "
            f"results.{best}.{field}) as fast as {WAY_NAMES.get(way, way)}"
            for way in ("8bit_adapter", "merged_fp32") if way in timed and way != best]
    return f"- Fastest on a CPU, {label}: **{WAY_NAMES.get(best, best)}**, " + "; ".join(ours)


def inference_section(data: dict) -> list[str]:
    """Table (clips and the long recording, WER, peak memory) and the fastest way."""
    s, r = data["settings"], data["results"]
    env = data["environment"]
    lines = ["### Inference (`inference.json`)", "",
             f"{s['clips']} test clips (batch {s['batch_size']} where the way batches) and one "
             f"{s.get('long_form_seconds', 0):.0f} s recording of test clips; {s['decoding']}; "
             f"timed: {s['timed']}. Each way in its own process, one after the other. Real-time "
             "factor = processing seconds / audio seconds. "
             f"{env['cpu_count']} CPU cores, torch {env['torch']}, load average "
             f"{env['loadavg_before'][0]} before / {env['loadavg'][0]} after (1 min).", "",
             "| way | device | clips: real-time factor | clips/s | clips: WER | long: real-time factor | long: WER | peak memory |",
             "|---|---|---|---|---|---|---|---|"]
    for key, way in r.items():
        long = way.get("long_form")
        lines.append(
            f"| {WAY_NAMES.get(key, key)} | {way.get('device', 'cpu')} | {way['real_time_factor']:.3f} | "
            f"{way['clips_per_second']:.2f} | {100 * way['wer']['wer']:.1f}% | "
            + (f"{long['real_time_factor']:.3f} | {100 * long['wer']:.1f}% | " if long else "- | - | ")
            + (f"{mib(way['peak_rss_bytes'])} |" if "peak_rss_bytes" in way else "- |"))
    lines += ["", fastest_line(r, "clips", "short clips"),
              fastest_line(r, "long", "the long recording"),
              "", f"![inference]({FIGURES}/inference.png)", ""]
    return lines


def padding_section(data: dict) -> list[str]:
    """WER of each model (rows) in each way (columns), clips and the long recording."""
    s, r = data["settings"], data["results"]
    lines = ["### Padding to 30 s: silence or zeros (`padding.json`)", "",
             f"tiny.en trained {s['train_steps']} steps of batch {s['train_batch']} once per "
             f"`zero_padding_share` ({', '.join(f'{x:g}' for x in s['zero_padding_shares'])}: "
             "the share of training examples whose log-mel is padded with zeros, the rest "
             f"padded with silence audio), then WER on {s['clips']} cv-mini test clips / on a "
             f"{s['long_form_seconds']:.0f} s recording of them. Ours: {s['ours']}. "
             f"faster-whisper: {s['faster_whisper']}. whisper.cpp: {s['whisper_cpp']}. "
             "Command: `python benchmarks/run.py --only padding`.", "",
             "| model | " + " | ".join(PADDING_WAYS.values()) + " |",
             "|---|" + "---|" * len(PADDING_WAYS)]
    for name, row in r.items():
        label = "base (no adapter)" if name == "base" else f"zero_padding_share {row['zero_padding_share']:g}"
        cells = [f"{100 * row[way]['clips']['wer']:.1f}% / {100 * row[way]['long_form']['wer']:.1f}%"
                 for way in PADDING_WAYS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + ["", "Each cell: clips / long recording (padding.json results.<model>.<way>)."
                    " The defaults chosen from it are in helpers/data/features.py "
                    "(TRAIN_ZERO_SHARE, INFERENCE_PADDING).", ""]


def padding_not_measured() -> list[str]:
    """What the padding section says before padding.json exists."""
    return ["### Padding to 30 s: silence or zeros (`padding.json`)", "",
            "Not measured yet: `python benchmarks/run.py --only padding` (three trainings; "
            "needs requirements-engines.txt) writes `benchmarks/results/padding.json`, which this "
            "section then shows.", ""]
