"""Speech corpora as `datasets.Dataset`s with one schema, from every source this project reads.

Every loader returns a dataset with an "audio" column (absolute path of the audio file, a
str) and a "sentence" column (the transcript), plus the source's other columns. Audio is
decoded later by `helpers.audio` (soundfile), never by `datasets` (torchcodec).

Sources (see `load_corpus`):
- "mdc:<id>" (Common Voice from the Mozilla Data Collective, fetched once by
  `helpers.data.fetch`) or "fleurs:<config>" (google/fleurs, `load_fleurs`: the Hub's
  Parquet conversion, revision refs/convert/parquet, no loading script; its audio bytes are
  written to files under `helpers.files.corpora_root()`);
- a Common Voice locale folder (`clips/` + `<split>.tsv`, any release since 13.0: extra
  columns and files such as clip_durations.tsv or README.md are ignored) or a release root
  plus locale;
- an audio folder with `metadata.csv` (or `<split>.csv`, `<split>/metadata.csv`), or a CSV;
- a Hugging Face Hub dataset id (only where the Hub can be reached, e.g. on Colab).
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
from pathlib import Path

from datasets import Audio, Dataset, Features, Value

from helpers.audio import AUDIO_EXTENSIONS
from helpers.data.fetch import FLEURS_PREFIX, source_name
from helpers.files import corpora_root, write_bytes_atomic

FLEURS_PARQUET = "hf://datasets/google/fleurs@refs/convert/parquet"  # the Hub's Parquet conversion
FLEURS_URL_ENV = "WHISPER_LORA_FLEURS_URL"  # another base holding <config>/<split>/*.parquet (tests)
FLEURS_SPLITS = {"train": "train", "dev": "validation", "validation": "validation", "test": "test"}
FLEURS_TEXT = "transcription"  # FLEURS' normalized transcript; "raw_transcription" keeps case and punctuation


# ------------------------------------------------------------------------- FLEURS


def fleurs_files(config: str, split: str) -> str:
    """The Parquet files of one FLEURS config and split (a glob under FLEURS_PARQUET)."""
    base = (os.environ.get(FLEURS_URL_ENV) or FLEURS_PARQUET).rstrip("/")
    return f"{base}/{config}/{split}/*.parquet"


def load_fleurs(source: str, split: str = "train", text_column: str | None = None,
                audio_dir=None):
    """One split of "fleurs:<config>" as a corpus Dataset ("audio" path + "sentence").

    Our split names map to FLEURS': train -> train, dev -> validation, test -> test.
    `text_column` picks the transcript: "transcription" (default) or "raw_transcription".
    Audio bytes are written once under corpora_root()/fleurs/<config>/<split>/.
    """

    config = source_name(source, FLEURS_PREFIX)
    if split not in FLEURS_SPLITS:
        raise ValueError(f"FLEURS has no split {split!r}; use one of {sorted(FLEURS_SPLITS)}.")
    remote = FLEURS_SPLITS[split]
    files = fleurs_files(config, remote)
    try:
        return load_hub_dataset("parquet", split=remote, data_files={remote: files},
                                text_column=text_column or FLEURS_TEXT,
                                audio_dir=Path(audio_dir or corpora_root() / "fleurs" / config / remote))
    except (FileNotFoundError, ValueError) as error:  # remote: not found; local: no file matched
        if isinstance(error, ValueError) and "data file" not in str(error):
            raise
        raise FileNotFoundError(
            f"No FLEURS Parquet files at {files} ({error}). FLEURS configs are a language and "
            "region code such as hi_in, mr_in, en_us (https://huggingface.co/datasets/google/fleurs)."
        ) from None


logger = logging.getLogger(__name__)


# order (a clip is decoded only once its header passed: a corrupt or cut-short body is then
# unreadable_audio too). The summary CLI prints every reason, so new ones are appended.
CV_REQUIRED = ("path", "sentence")  # columns a Common Voice TSV must have
FILE_COLUMNS = ("file_name", "path", "audio", "file")  # audio-folder CSV: file column
TEXT_COLUMNS = ("sentence", "text", "transcription", "transcript", "normalized_text")
CV_SPLITS_HINT = "train, dev, test, validated, other, invalidated"
AUDIO_CACHE = Path(os.environ.get("WHISPER_LORA_AUDIO_CACHE",
                                  Path.home() / ".cache" / "whisper-lora-8bit" / "audio"))


def audio_cache() -> Path:
    """Where audio from Hub datasets is written: $WHISPER_LORA_AUDIO_CACHE, else on Colab
    corpora_root()/audio on the runtime's own disk (file names are content hashes, so a
    later runtime that loads the split again writes each clip at the same path), else
    ~/.cache/whisper-lora-8bit/audio."""
    from helpers.colab import in_colab

    if os.environ.get("WHISPER_LORA_AUDIO_CACHE") or not in_colab():
        return AUDIO_CACHE
    return corpora_root() / "audio"


# ----------------------------------------------------------------------------- tables
def _read_table(path: Path, **csv_options) -> tuple[list[str], list[list[str]]]:
    """Read a delimited text file into (header, rows); every row must match the header.

    Blank lines are skipped. A row with the wrong number of fields raises ValueError
    naming the file and the line number.
    """
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, **csv_options)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: the file is empty; it must start with a header line.")
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path}, line {reader.line_num}: {len(row)} fields where the header has "
                    f"{len(header)} ({', '.join(header)}). Fix or delete that line.")
            rows.append(row)
    return header, rows


def _columns(header: list[str], rows: list[list[str]]) -> dict[str, list[str]]:
    """Turn (header, rows) into a dict of column name -> list of str values."""
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def _string_dataset(columns: dict[str, list]) -> Dataset:
    """A Dataset whose columns are all strings (stays typed when it has no rows)."""
    return Dataset.from_dict(columns, features=Features({k: Value("string") for k in columns}))


# ----------------------------------------------------------------------- Common Voice
def _is_cv_locale(path: Path) -> bool:
    """True if `path` looks like a Common Voice locale folder (TSVs or clips/)."""
    return path.is_dir() and ((path / "clips").is_dir() or any(path.glob("*.tsv")))


def _cv_locale_dir(path, locale=None) -> Path:
    """Return the locale folder for `path` (a locale folder or a release root + locale)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder. Give a Common Voice locale folder "
                                "(the one holding clips/ and train.tsv).")
    if locale and path.name != locale:
        if not _is_cv_locale(path / locale):
            raise FileNotFoundError(f"{path / locale}: no Common Voice locale folder there; "
                                    f"locales found: {_cv_locales(path)}")
        return path / locale
    if _is_cv_locale(path):
        return path
    locales = _cv_locales(path)
    if len(locales) == 1:
        return path / locales[0]
    if not locales:
        raise FileNotFoundError(f"{path}: no *.tsv files and no clips/ folder; this is not "
                                "a Common Voice locale folder or release.")
    raise ValueError(f"{path} is a Common Voice release with several locales {locales}; "
                     "pass locale=... (or --locale).")


def _cv_locales(root: Path) -> list[str]:
    """Names of the Common Voice locale folders directly under `root`."""
    return sorted(p.name for p in root.iterdir() if _is_cv_locale(p))


def load_common_voice(path, split: str = "train", locale: str | None = None) -> Dataset:
    """Load one split of a Common Voice locale folder as a Dataset.

    `path` is `<release>/<locale>/` (with clips/ and `<split>.tsv`), or the release root
    with `locale`. The TSV is read the way Common Voice writes it: tab-separated, no quoting,
    so `"` inside sentences survive verbatim. Returns columns "audio" (absolute clip path),
    then every TSV column as str ("path", "sentence", "client_id", ...).
    """
    root = _cv_locale_dir(path, locale)
    tsv = root / f"{split}.tsv"
    if not tsv.is_file():
        found = sorted(p.name for p in root.glob("*.tsv"))
        raise FileNotFoundError(f"{tsv}: no such split. TSV files in {root}: {found or 'none'}"
                                f"; pick one with split=... (Common Voice has {CV_SPLITS_HINT}).")
    header, rows = _read_table(tsv, delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [name for name in CV_REQUIRED if name not in header]
    if missing:
        raise ValueError(f"{tsv}: missing column(s) {missing}; the header has {header}. A "
                         "Common Voice TSV needs at least 'path' and 'sentence'.")
    columns = _columns(header, rows)
    clips = (root / "clips").resolve()
    columns.pop("audio", None)
    audio = [os.path.normpath(clips / name) for name in columns["path"]]
    return _string_dataset({"audio": audio, **columns})


# ----------------------------------------------------------------------- audio folders
def _metadata_csv(path, split: str | None) -> tuple[Path, str]:
    """Find the CSV for `path`; returns (csv path, kind) with kind "given" (path is the
    CSV), "split" (a file specific to `split`) or "shared" (metadata.csv for all splits)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise ValueError(f"{path}: expected a .csv file (columns file_name + sentence).")
        return path, "given"
    options = [path / split / "metadata.csv", path / f"{split}.csv"] if split else []
    for candidate in options:
        if candidate.is_file():
            return candidate, "split"
    if (path / "metadata.csv").is_file():
        return path / "metadata.csv", "shared"
    looked = [str(c) for c in options + [path / "metadata.csv"]]
    raise FileNotFoundError(f"{path}: no metadata CSV; looked for {looked}. Write one with "
                            f"columns file_name and sentence.")


def _pick_column(header: list[str], choices: tuple[str, ...], csv_path: Path, what: str) -> str:
    """Return the first of `choices` present in `header`, or raise naming the CSV."""
    for name in choices:
        if name in header:
            return name
    raise ValueError(f"{csv_path}: no {what} column; expected one of {list(choices)}, "
                     f"the header has {header}.")


def _select_split(columns: dict, split: str | None, csv_path: Path, kind: str) -> dict:
    """Keep the rows of `split` when the CSV has a "split" column; log when a shared
    metadata.csv has none (every row is then used for `split`)."""
    if not split or kind == "split":
        return columns
    if "split" not in columns:
        if kind == "shared":
            logger.warning("%s has no 'split' column: using all %d rows for split %r.",
                           csv_path, len(next(iter(columns.values()), [])), split)
        return columns
    keep = [i for i, value in enumerate(columns["split"]) if value == split]
    if not keep:
        raise ValueError(f"{csv_path}: no rows with split == {split!r}; splits found: "
                         f"{sorted(set(columns['split']))}")
    return {name: [values[i] for i in keep] for name, values in columns.items()}


def load_audio_folder(path, split: str | None = None) -> Dataset:
    """Load a folder of audio files described by a CSV (or the CSV itself) as a Dataset.

    The CSV (`metadata.csv`, `<split>.csv`, `<split>/metadata.csv`, or `path` itself) has a
    file column (file_name/path/audio/file) and a text column (sentence/text/transcription/
    ...); file paths are relative to the CSV's folder. Returns "audio" (absolute path),
    "sentence" and the CSV's other columns as str.
    """
    csv_path, kind = _metadata_csv(path, split)
    header, rows = _read_table(csv_path)
    file_column = _pick_column(header, FILE_COLUMNS, csv_path, "audio file")
    text_column = _pick_column(header, TEXT_COLUMNS, csv_path, "transcript")
    columns = _select_split(_columns(header, rows), split, csv_path, kind)
    base = csv_path.parent.resolve()
    audio = [os.path.normpath(base / name) for name in columns.pop(file_column)]
    sentence = columns.pop(text_column)
    columns.pop("audio", None), columns.pop("sentence", None)
    return _string_dataset({"audio": audio, "sentence": sentence, **columns})


# ------------------------------------------------------------------------------- Hub
def _audio_file(example: dict, audio_column: str, audio_dir: Path) -> dict:
    """datasets.map function: turn an undecoded Audio value into a local file path."""
    value = example[audio_column]
    data, name = value.get("bytes"), value.get("path")
    if data:
        suffix = Path(name or "").suffix.lower()
        suffix = suffix if suffix in AUDIO_EXTENSIONS else ".audio"
        target = audio_dir / (hashlib.sha1(data).hexdigest()[:20] + suffix)
        if not target.is_file():
            write_bytes_atomic(target, data)  # a killed write leaves no truncated clip
        return {"audio_file": str(target)}
    if name and Path(name).is_file():
        return {"audio_file": str(Path(name).resolve())}
    raise ValueError(f"audio value {name!r} has no bytes and is not a local file; this Hub "
                     "dataset cannot be converted (try another config or download it).")



def hub_to_corpus(dataset: Dataset, text_column: str | None = None,
                  audio_column: str = "audio", audio_dir=None) -> Dataset:
    """Convert a Hub-style audio dataset ({"audio": {"bytes", "path"}, text}) to our schema.

    Audio bytes are written once to `audio_dir` (content-addressed, so reruns reuse them) and
    "audio" becomes their path; the text column is renamed to "sentence". Decoding stays ours
    (the Audio feature is cast with decode=False, so torchcodec is never used).
    """
    names = dataset.column_names
    if audio_column not in names:
        raise ValueError(f"no audio column {audio_column!r}; columns are {names}. "
                         "Pass audio_column=...")
    text_column = text_column or _pick_column(names, TEXT_COLUMNS, Path("dataset"), "text")
    audio_dir = Path(audio_dir or audio_cache())
    audio_dir.mkdir(parents=True, exist_ok=True)
    dataset = dataset.cast_column(audio_column, Audio(decode=False))
    dataset = dataset.map(_audio_file, fn_kwargs={"audio_column": audio_column,
                                                  "audio_dir": audio_dir},
                          remove_columns=[audio_column], desc="writing audio files")
    dataset = dataset.rename_column("audio_file", "audio")  # a plain str column, no Audio type
    if text_column != "sentence":
        dataset = dataset.remove_columns([c for c in ["sentence"] if c in dataset.column_names])
        dataset = dataset.rename_column(text_column, "sentence")
    others = [c for c in dataset.column_names if c not in ("audio", "sentence")]
    return dataset.select_columns(["audio", "sentence", *others])


def load_hub_dataset(name: str, config: str | None = None, split: str = "train",
                     text_column: str | None = None, audio_column: str = "audio",
                     audio_dir=None, **load_kwargs) -> Dataset:
    """Load `split` of a Hub (or packaged, e.g. "parquet") dataset and convert it with
    `hub_to_corpus`. `load_kwargs` go to `datasets.load_dataset` (e.g. data_files, token).
    Never trusts remote code."""
    import datasets

    if load_kwargs.pop("trust_remote_code", False):
        raise ValueError("trust_remote_code is refused: this project never runs a dataset's "
                         "own code. Use a dataset published as files (parquet, audio folder).")
    from helpers.colab import load_colab_secret

    load_colab_secret("HF_TOKEN")  # Colab's secret store first: a replaced token works at once
    dataset = datasets.load_dataset(name, config, split=split, **load_kwargs)
    default_dir = audio_cache() / "_".join(str(p).replace("/", "--") for p in (name, config, split))
    return hub_to_corpus(dataset, text_column, audio_column, audio_dir or default_dir)


# --------------------------------------------------------------------------- dispatch
def _looks_like_local_path(source: str) -> bool:
    """True for strings that cannot be a Hub id ("owner/name" or "name")."""
    return (source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1
            or source.lower().endswith((".csv", ".tsv")))


def corpus_kind(source) -> str:
    """Classify `source`: "mdc", "fleurs", "common_voice", "audio_folder" or "hub"
    (see `load_corpus`)."""
    from helpers.data.fetch import is_fleurs, is_mdc

    if is_mdc(source) or is_fleurs(source):
        return "mdc" if is_mdc(source) else "fleurs"
    path = Path(source).expanduser()
    if path.is_file():
        return "audio_folder"
    if path.is_dir():
        if _is_cv_locale(path):
            return "common_voice"
        if any(path.glob("*.csv")) or any(path.glob("*/metadata.csv")):
            return "audio_folder"
        if _cv_locales(path):
            return "common_voice"
        raise ValueError(f"{path}: not a corpus folder. Expected a Common Voice locale "
                         "(clips/ + train.tsv), a release root, or audio files + metadata.csv.")
    if _looks_like_local_path(str(source)):
        raise FileNotFoundError(f"{source}: no such file or folder.")
    return "hub"


def load_corpus(source, split: str = "train", *, locale: str | None = None,
                config: str | None = None, text_column: str | None = None,
                **hub_kwargs) -> Dataset:
    """Load `split` of `source` with our schema ("audio" path + "sentence").

    `source` is "mdc:<id>" (Common Voice from the Mozilla Data Collective, downloaded once),
    "fleurs:<config>" (google/fleurs' Parquet files; `text_column` may pick
    raw_transcription), a Common Voice locale folder (or release root + `locale`), an audio
    folder with metadata.csv / a CSV file, or else a Hub dataset id (`config`,
    `text_column` and `hub_kwargs` are for that case). See helpers.data.fetch.
    """
    kind = corpus_kind(source)
    if kind == "mdc":
        from helpers.data.fetch import fetch_mdc

        return load_common_voice(fetch_mdc(source), split)
    if kind == "fleurs":

        return load_fleurs(source, split, text_column)
    if kind == "common_voice":
        return load_common_voice(source, split, locale)
    if kind == "audio_folder":
        return load_audio_folder(source, split)
    return load_hub_dataset(str(source), config, split, text_column, **hub_kwargs)
