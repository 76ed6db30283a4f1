"""Language identification of the embedded multilingual base (8-bit, as routing runs it)
on cv-mini's dev clips, features padded with silence audio vs zeros in log-mel: how many of
each language's clips it identifies as Hindi (hi or ur) and as English. The measurement
behind helpers.transcribe.routing.IDENTIFICATION_PADDING.

    python scripts/language_id_padding.py    # about 2.5 minutes on 2 CPU cores
"""
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def identified(model, processor, paths: list[str], padding: str) -> dict:
    """Counts of the codes the base identifies for `paths`, features padded the `padding`
    way: {"clips", "hi_or_ur", "en", "top" (6 commonest codes), "seconds"}."""
    from helpers.audio import load_audio
    from helpers.transcribe.routing import detect_languages

    codes, started = [], time.perf_counter()
    for start in range(0, len(paths), 8):
        audios = [load_audio(path) for path in paths[start:start + 8]]
        codes += detect_languages(model, processor, audios, padding)
    counts = collections.Counter(codes)
    return {"clips": len(codes), "hi_or_ur": counts["hi"] + counts["ur"], "en": counts["en"],
            "top": counts.most_common(6), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    """Print one line per (language, padding) and the whole result as JSON."""
    from helpers.data.corpora import load_corpus
    from helpers.model.load import load_model

    model, processor = load_model("embedded-base", precision="8bit", language="hindi", device="cpu")
    found = {}
    for language in ("hi", "en"):
        paths = [row["audio"] for row in load_corpus(str(ROOT / "data/cv-mini" / language), split="dev")]
        for padding in ("silence", "zeros"):
            found[f"{language}/{padding}"] = identified(model, processor, paths, padding)
            print(language, padding, found[f"{language}/{padding}"], flush=True)
    print(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
