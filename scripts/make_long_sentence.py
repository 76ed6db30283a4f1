"""Speak one long Hindi sentence into data/long-sentence/hi/ (the decode-length check).

The recipe capped every transcript at 128 new tokens; Whisper's multilingual tokenizer
needs about 5 tokens per Hindi word, so a sentence of 25 words was already cut (issue 22).
This writes a 77-word sentence (385 tokens of text, 390 as a label with its prompt and
end-of-text) spoken by espeak-ng's Hindi voice in under 30 s, as a folder corpus that
`helpers.data.corpora.load_corpus` reads (split "test"):

- `long_sentence_hi.mp3`: 48 kHz mono MP3, with the same lead and tail silence, resampling
  and MP3 settings as data/cv-mini (scripts/make_cv_mini.py)
- `metadata.csv`: file_name, sentence, split

    python scripts/make_long_sentence.py               # writes data/long-sentence/hi/
    python scripts/make_long_sentence.py --out /tmp/ls

Needs the `espeak-ng` program (`apt-get install espeak-ng`); the result is committed, so
nobody needs espeak-ng to use it. The same espeak-ng build gives the same file.
"""
import argparse
import csv
from pathlib import Path

import make_cv_mini as cv  # this folder is on sys.path when the script runs

OUT = cv.REPO / "data" / "long-sentence" / "hi"
FILE_NAME = "long_sentence_hi.mp3"
# Holidays in the hills, evenings in the village market, grandmother's stories at night.
SENTENCE = ("पिछले साल गर्मियों की छुट्टियों में हम पूरे परिवार के साथ पहाड़ों पर घूमने गए थे, "
            "जहाँ सुबह की ठंडी हवा, हरे भरे पेड़ों और बहती नदियों ने हमारा मन मोह लिया, और शाम को "
            "हम सब गाँव के छोटे से बाज़ार में गरम चाय पीते हुए स्थानीय लोगों से उनकी ज़िंदगी, खेती "
            "और त्योहारों के बारे में बातें करते थे, फिर रात को आसमान में चमकते तारों को देखते हुए "
            "दादी हमें पुरानी कहानियाँ सुनाती थीं।")
VOICE, SPEED, PITCH = "hi", 175, 45  # espeak-ng -v, -s (words per minute), -p
LEAD, TAIL = 0.5, 0.5                # seconds of silence before and after the speech


def write_long_sentence(out: Path) -> float:
    """Speak SENTENCE into out/FILE_NAME and write out/metadata.csv; returns the seconds."""
    out.mkdir(parents=True, exist_ok=True)
    clip = {"sentence": SENTENCE, "voice": cv.Voice(VOICE, "male", "", "", (SPEED, SPEED), (PITCH, PITCH)),
            "speed": SPEED, "pitch": PITCH, "lead": LEAD, "tail": TAIL, "path": FILE_NAME}
    seconds = cv.write_clip(clip, out)
    with open(out / "metadata.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "sentence", "split"])
        writer.writerow([FILE_NAME, SENTENCE, "test"])
    return seconds


def main() -> None:
    """Parse --out and write the corpus."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    seconds = write_long_sentence(args.out)
    print(f"{args.out / FILE_NAME}: {seconds:.1f} s, {len(SENTENCE.split())} words")


if __name__ == "__main__":
    main()
