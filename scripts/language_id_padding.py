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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers.audio import load_audio
from helpers.data.corpora import load_corpus
from helpers.model.load import load_model
from helpers.transcribe.routing import detect_languages

model, processor = load_model("embedded-base", precision="8bit", language="hindi", device="cpu")
out = {}
for lang in ("hi", "en"):
    rows = load_corpus(str(Path(__file__).resolve().parent.parent / "data/cv-mini" / lang), split="dev")
    paths = [r["audio"] for r in rows]
    for padding in ("silence", "zeros"):
        codes, t = [], time.perf_counter()
        for start in range(0, len(paths), 8):
            audios = [load_audio(path) for path in paths[start:start + 8]]
            codes += detect_languages(model, processor, audios, padding)
        c = collections.Counter(codes)
        out[f"{lang}/{padding}"] = {"clips": len(codes), "hi_or_ur": c["hi"] + c["ur"], "en": c["en"],
                                    "top": c.most_common(6), "seconds": round(time.perf_counter() - t, 1)}
        print(lang, padding, out[f"{lang}/{padding}"], flush=True)
print(json.dumps(out, indent=1))
