"""Build the embedded speech corpora data/cv-mini/<locale>/ in Common Voice 13 layout.

Speaks hand-written sentences with espeak-ng in several voices, resamples espeak's
22,050 Hz output to 48 kHz with soxr, writes 48 kHz mono MP3 clips with soundfile, and
writes the six Common Voice TSV files. Two languages (LANGUAGES below):
- `en`: scripts/cv_mini_sentences.txt in 8 English voices -> data/cv-mini/en/
- `hi`: scripts/cv_mini_sentences_hi.txt (Devanagari) in 8 variants of espeak-ng's Hindi
  voice -> data/cv-mini/hi/

    python scripts/make_cv_mini.py                   # rebuild data/cv-mini/en/
    python scripts/make_cv_mini.py --language hi     # rebuild data/cv-mini/hi/
    python scripts/make_cv_mini.py --out /tmp/cv --seed 1

Needs the `espeak-ng` program (Debian/Ubuntu: `apt-get install espeak-ng`). The corpus is
committed to the repository, so nobody needs espeak-ng just to use it. The same seed and
the same espeak-ng build give byte-identical files.

Splits: train / dev / test share no sentence; every voice speaks in every split, so the
test split measures unseen sentences from seen voices. Some train sentences are spoken by
two voices. invalidated.tsv and other.tsv hold two rows each (their clips exist too).
"""
import argparse
import hashlib
import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parent.parent
SENTENCES = Path(__file__).resolve().parent / "cv_mini_sentences.txt"
OUT = REPO / "data" / "cv-mini" / "en"

# Common Voice 13 column order, exactly as its TSV headers write it.
COLUMNS = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender",
           "accents", "variant", "locale", "segment")
TSV_NAMES = ("train", "dev", "test", "validated", "invalidated", "other")

SAMPLE_RATE = 48_000        # Common Voice clips are 48 kHz mono MP3
MP3_BITRATE_MODE = "VARIABLE"  # VBR: about 40 kbps on espeak speech, exact length in header
MP3_COMPRESSION = 0.95      # libsndfile 0..1 (1 = smallest); keeps the corpus near 10 MB
LEAD_SILENCE = (0.35, 0.9)  # seconds of silence before speech (like a recorder start)
TAIL_SILENCE = (0.3, 0.7)   # seconds of silence after speech
MIN_SECONDS = 1.5           # short clips get extra tail silence up to this length
MAX_SECONDS = 30.0          # hard limit (Whisper's window); the build fails beyond it
SPARE_ROWS = 2              # rows each in invalidated.tsv and other.tsv
FIRST_CLIP_NUMBER = 38_000_000  # clip numbers are drawn from [this, this + 2,000,000)


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice variant, standing in for one Common Voice contributor."""
    espeak: str     # espeak-ng -v argument
    gender: str     # Common Voice 13 gender value
    age: str        # Common Voice 13 age bucket (CV spells "fourties")
    accents: str    # Common Voice 13 free-text accent
    speed: tuple    # (low, high) words per minute, espeak -s
    pitch: tuple    # (low, high) espeak -p, 0..99

    @property
    def client_id(self) -> str:
        """Stable 128-hex-digit id, shaped like Common Voice's (a SHA-512 digest)."""
        return hashlib.sha512(f"cv-mini/{self.espeak}".encode()).hexdigest()


VOICES = (
    Voice("en-us", "male", "thirties", "United States English", (150, 175), (40, 55)),
    Voice("en-us+f3", "female", "twenties", "United States English", (155, 180), (55, 70)),
    Voice("en-gb-x-rp+m3", "male", "fourties", "England English", (140, 165), (30, 45)),
    Voice("en-gb-scotland+f2", "female", "fifties", "Scottish English", (140, 160), (50, 65)),
    Voice("en-029+m7", "male", "twenties",
          "West Indies and Bermuda (Bahamas, Bermuda, Jamaica, Trinidad)", (150, 170), (35, 50)),
    Voice("en-us-nyc+f4", "female", "thirties", "United States English", (160, 180), (45, 60)),
    Voice("en-gb-x-gbclan+f5", "female", "sixties", "England English", (140, 155), (50, 65)),
    Voice("en+m2", "male", "teens", "England English", (160, 180), (45, 60)),
)


@dataclass(frozen=True)
class Language:
    """One corpus: its locale, sentence file, voices, output folder and split sizes."""
    locale: str           # Common Voice locale: the TSVs' locale column and clip names
    sentences: Path       # hand-written sentences, one a line
    out: Path             # default output folder
    voices: tuple         # Voice objects; every voice speaks in every split
    test_sentences: int   # one clip each
    dev_sentences: int    # one clip each
    train_clips: int      # train sentences, some spoken twice, add up to this


ENGLISH = Language("en", SENTENCES, OUT, VOICES, test_sentences=80, dev_sentences=60,
                   train_clips=340)

# espeak-ng has one Hindi voice (`hi`); its variants (+m3, +f2, ...) change the timbre and
# formants, and speed and pitch ranges vary it further. Accents are left empty, as most
# Common Voice Hindi contributors leave them.
HINDI_VOICES = (
    Voice("hi", "male", "thirties", "", (150, 175), (40, 55)),
    Voice("hi+f3", "female", "twenties", "", (150, 175), (55, 70)),
    Voice("hi+m3", "male", "fourties", "", (135, 160), (30, 45)),
    Voice("hi+f2", "female", "fifties", "", (140, 160), (50, 65)),
    Voice("hi+m7", "male", "twenties", "", (155, 180), (35, 50)),
    Voice("hi+f4", "female", "thirties", "", (160, 185), (45, 60)),
    Voice("hi+f5", "female", "sixties", "", (130, 150), (50, 65)),
    Voice("hi+m2", "male", "teens", "", (160, 185), (45, 60)),
)
HINDI = Language("hi", Path(__file__).resolve().parent / "cv_mini_sentences_hi.txt",
                 REPO / "data" / "cv-mini" / "hi", HINDI_VOICES, test_sentences=60,
                 dev_sentences=40, train_clips=320)
LANGUAGES = {language.locale: language for language in (ENGLISH, HINDI)}


def read_sentences(path: Path) -> list:
    """Read one sentence per line from `path`, skipping blanks and # comments.

    Returns the sentences in file order. Raises ValueError naming the line for a
    duplicate, a tab, or a digit (Common Voice writes numbers as words).
    """
    sentences, seen = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{number}"
        if "\t" in text:
            raise ValueError(f"{where}: sentence has a tab, which would break the TSV; remove it")
        if any(ch.isdigit() for ch in text):
            raise ValueError(f"{where}: write numbers as words, as Common Voice does: {text!r}")
        if text in seen:
            raise ValueError(f"{where}: duplicate of line {seen[text]}: {text!r}; remove one")
        seen[text] = number
        sentences.append(text)
    return sentences


def split_sentences(sentences: list, rng: np.random.Generator,
                    language: Language = ENGLISH) -> dict:
    """Shuffle sentences and cut them into disjoint groups of `language`'s sizes.

    Returns {"test", "dev", "train", "invalidated", "other"} -> list of sentences; the
    train group is whatever is left. Raises ValueError if there are too few sentences.
    """
    spare = 2 * SPARE_ROWS
    needed = (language.test_sentences + language.dev_sentences + spare
              + language.train_clips // 2)
    if len(sentences) < needed:
        raise ValueError(f"{len(sentences)} sentences in {language.sentences.name}; need at "
                         f"least {needed} (add sentences or lower train_clips)")
    order = [sentences[i] for i in rng.permutation(len(sentences))]
    cuts = np.cumsum([language.test_sentences, language.dev_sentences, SPARE_ROWS, SPARE_ROWS])
    test, dev, invalid, other, train = np.split(np.array(order, dtype=object), cuts)
    if len(train) > language.train_clips:
        raise ValueError(f"{len(train)} train sentences exceed train_clips="
                         f"{language.train_clips}; raise it or the test/dev sizes")
    return {"test": list(test), "dev": list(dev), "train": list(train),
            "invalidated": list(invalid), "other": list(other)}


def assign_voices(count: int, rng: np.random.Generator, voices: tuple = VOICES) -> list:
    """Return `count` of `voices`: every voice in turn (so each appears), in shuffled order."""
    picks = [voices[i % len(voices)] for i in range(count)]
    return [picks[i] for i in rng.permutation(count)]


def plan_split(name: str, sentences: list, rng: np.random.Generator,
               language: Language = ENGLISH) -> list:
    """Plan the clips of one split: list of dicts with split, sentence, voice, speed, pitch.

    Train repeats its first sentences with a second, different voice until it holds
    `language.train_clips` clips; the other splits have one clip per sentence.
    """
    voices = assign_voices(len(sentences), rng, language.voices)
    pairs = list(zip(sentences, voices))
    if name == "train":
        for sentence, first in pairs[: language.train_clips - len(sentences)]:
            others = [v for v in language.voices if v != first]
            pairs.append((sentence, others[rng.integers(len(others))]))
    plan = []
    for sentence, voice in pairs:
        plan.append({"split": name, "sentence": sentence, "voice": voice,
                     "speed": int(rng.integers(voice.speed[0], voice.speed[1] + 1)),
                     "pitch": int(rng.integers(voice.pitch[0], voice.pitch[1] + 1)),
                     "lead": float(rng.uniform(*LEAD_SILENCE)),
                     "tail": float(rng.uniform(*TAIL_SILENCE))})
    return plan


def plan_corpus(sentences: list, seed: int, language: Language = ENGLISH) -> list:
    """Plan every clip of `language`'s corpus from the sentences and a seed.

    Returns a list of dicts (split, sentence, voice, speed, pitch, lead, tail, locale,
    path), in TSV row order. The same inputs always give the same plan.
    """
    rng = np.random.default_rng(seed)
    groups = split_sentences(sentences, rng, language)
    plan = []
    for name in ("train", "dev", "test", "invalidated", "other"):
        plan.extend(plan_split(name, groups[name], rng, language))
    numbers = FIRST_CLIP_NUMBER + rng.choice(2_000_000, size=len(plan), replace=False)
    for clip, number in zip(plan, numbers):
        clip["locale"] = language.locale
        clip["path"] = f"common_voice_{language.locale}_{int(number)}.mp3"
    return plan


def espeak(text: str, voice: str, speed: int, pitch: int) -> tuple:
    """Speak `text` with espeak-ng. Returns (float32 mono samples, sample rate)."""
    command = ["espeak-ng", "-b", "1", "-v", voice, "-s", str(speed), "-p", str(pitch),
               "--stdout"]
    try:
        done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True,
                              check=True)
    except FileNotFoundError:
        sys.exit("espeak-ng not found: install it (apt-get install espeak-ng) and rerun")
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r} on {text!r}: "
                           f"{error.stderr.decode(errors='replace')}") from error
    audio, rate = sf.read(io.BytesIO(done.stdout), dtype="float32")
    return audio, rate


def render_clip(clip: dict) -> np.ndarray:
    """Speak one planned clip and return it as 48 kHz float32 mono with silence padding."""
    audio, rate = espeak(clip["sentence"], clip["voice"].espeak, clip["speed"], clip["pitch"])
    audio = soxr.resample(audio, rate, SAMPLE_RATE)
    lead = int(clip["lead"] * SAMPLE_RATE)
    tail = int(clip["tail"] * SAMPLE_RATE)
    tail = max(tail, int(MIN_SECONDS * SAMPLE_RATE) - lead - len(audio))
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(tail, np.float32)])
    if len(audio) / SAMPLE_RATE > MAX_SECONDS:
        raise ValueError(f"{clip['path']} ({clip['sentence']!r}) is longer than "
                         f"{MAX_SECONDS} s; shorten the sentence in the sentence file")
    return np.clip(audio, -1.0, 1.0)


def write_clip(clip: dict, clips_dir: Path) -> float:
    """Render one clip to clips_dir/<path> as MP3. Returns its duration in seconds."""
    audio = render_clip(clip)
    sf.write(clips_dir / clip["path"], audio, SAMPLE_RATE, format="MP3",
             subtype="MPEG_LAYER_III", bitrate_mode=MP3_BITRATE_MODE,
             compression_level=MP3_COMPRESSION)
    return len(audio) / SAMPLE_RATE


def tsv_row(clip: dict) -> list:
    """Return one clip's Common Voice 13 TSV fields, in COLUMNS order."""
    votes = {"invalidated": ("0", "2"), "other": ("0", "0")}.get(clip["split"], ("2", "0"))
    voice = clip["voice"]
    return [voice.client_id, clip["path"], clip["sentence"], *votes, voice.age,
            voice.gender, voice.accents, "", clip["locale"], ""]


def write_tsvs(plan: list, out: Path) -> dict:
    """Write the six Common Voice TSVs into `out` the way CV does (tab join, no quoting).

    validated.tsv is train + dev + test. Returns {tsv name: row count}.
    """
    tables = {name: [c for c in plan if c["split"] == name] for name in TSV_NAMES}
    tables["validated"] = [c for c in plan if c["split"] in ("train", "dev", "test")]
    for name, clips in tables.items():
        lines = ["\t".join(COLUMNS)] + ["\t".join(tsv_row(c)) for c in clips]
        (out / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {name: len(clips) for name, clips in tables.items()}


def clear_old_clips(clips_dir: Path, locale: str = "en") -> int:
    """Delete earlier common_voice_<locale>_*.mp3 clips in clips_dir. Returns how many."""
    old = sorted(clips_dir.glob(f"common_voice_{locale}_*.mp3"))
    for path in old:
        path.unlink()
    return len(old)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options: --language, --out, --seed, --sentences, --workers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", choices=sorted(LANGUAGES), default="en",
                        help="which corpus to build (default en)")
    parser.add_argument("--out", type=Path, help="locale folder to write "
                        "(default data/cv-mini/<language>)")
    parser.add_argument("--seed", type=int, default=13, help="seed for splits and voices")
    parser.add_argument("--sentences", type=Path,
                        help="sentence file (default: the language's, in scripts/)")
    parser.add_argument("--workers", type=int, default=2, help="espeak-ng processes at once")
    args = parser.parse_args(argv)
    language = LANGUAGES[args.language]
    args.out = args.out or language.out
    args.sentences = args.sentences or language.sentences
    return args


def main(argv=None) -> None:
    """Build the corpus: read sentences, plan clips, speak them, write TSVs, summarize."""
    args = parse_args(argv)
    language = LANGUAGES[args.language]
    # 1. Sentences and a deterministic plan of every clip.
    plan = plan_corpus(read_sentences(args.sentences), args.seed, language)
    # 2. Fresh clips folder (only our own clip names are removed).
    clips_dir = args.out / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    removed = clear_old_clips(clips_dir, language.locale)
    # 3. Speak and encode every clip.
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        durations = list(pool.map(lambda c: write_clip(c, clips_dir), plan))
    # 4. The six TSV files.
    counts = write_tsvs(plan, args.out)
    # 5. Summary.
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 1e6
    print(f"wrote {len(plan)} clips to {clips_dir} (removed {removed} old ones)")
    print("rows: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    print(f"durations: min {min(durations):.2f} s, mean {np.mean(durations):.2f} s, "
          f"max {max(durations):.2f} s, total {sum(durations) / 60:.1f} min")
    print(f"size: {size:.2f} MB; voices: {', '.join(v.espeak for v in language.voices)}")


if __name__ == "__main__":
    main()
