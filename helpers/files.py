"""Where the repository's files and the fetched corpora are, and how every file is written.

Every write goes to a hidden sibling first (`.<name>-XXXX`) and is renamed into place once
complete, so a process killed at any moment leaves the old file or folder, or none, never
half of one. `helpers.train.checkpoints.remove_partial_files` knows these names and clears
what a killed run left in its run directory.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_CORPUS = REPO_ROOT / "data" / "cv-mini" / "en"  # the embedded English corpus (espeak-ng)
EMBEDDED_HINDI_CORPUS = REPO_ROOT / "data" / "cv-mini" / "hi"  # its Hindi sibling
CORPORA_ENV = "WHISPER_LORA_CORPORA"


def corpora_root() -> Path:
    """Where fetched corpora are unpacked and their clips kept: $WHISPER_LORA_CORPORA, else on
    Colab the runtime's own disk (helpers.colab.local_root()/corpora: thousands of small
    files are slow on Drive, so each runtime that needs the clips unpacks them again from
    the archive kept on Drive, see archives_root), else ~/.cache/whisper-lora/corpora."""
    from helpers.colab import in_colab, local_root

    if os.environ.get(CORPORA_ENV):
        return Path(os.environ[CORPORA_ENV]).expanduser()
    if in_colab():
        return local_root() / "corpora"
    return Path.home() / ".cache" / "whisper-lora" / "corpora"


def archives_root() -> Path:
    """Where downloaded corpus archives are kept: on Colab Google Drive
    (MyDrive/whisper-lora-8bit/corpora/downloads, one file per corpus, read by every runtime
    that needs the clips), else corpora_root()/downloads."""
    from helpers.colab import drive_home, in_colab

    if in_colab() and not os.environ.get(CORPORA_ENV):
        return drive_home() / "corpora" / "downloads"
    return corpora_root() / "downloads"


def corpus_storage(source) -> Path:
    """The folder a corpus is read from (to mount Drive first): the path itself for a local
    corpus, archives_root() for "mdc:", "fleurs:" and Hub ids (their archives are kept there)."""
    text = str(source or "")  # "mdc:<id>", "fleurs:<config>" and Hub ids never start so
    if text.startswith(("/", "~", ".")):
        return Path(text).expanduser()
    return archives_root()


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator:
    """Open a temporary file beside `path` for writing ("w" text UTF-8, "wb" bytes); on a
    normal exit it is flushed, fsynced and renamed over `path`; on an error it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_file(path, "w") as stream:
        stream.write(text)
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_file(path, "wb") as stream:
        stream.write(data)
    return Path(path)


def write_json_atomic(path: str | Path, data) -> Path:
    """Write `data` as indented JSON (UTF-8, non-ASCII kept) to `path` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def replace_dir(staging: str | Path, target: str | Path) -> Path:
    """Move the complete folder `staging` to `target`, replacing an older one; returns target.

    The older folder is renamed to `.<name>-old` first and deleted last, so a kill between
    the two renames leaves it there to be renamed back (remove_partial_files does that).
    """
    staging, target = Path(staging), Path(target)
    if not target.exists():
        staging.rename(target)
        return target
    old = target.with_name(f".{target.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old)
    return target


@contextmanager
def staging_dir(target: str | Path) -> Iterator[Path]:
    """A new empty hidden folder beside `target` to write into; on a normal exit it replaces
    `target` (replace_dir), on an error it is deleted and `target` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_leftovers(target: str | Path) -> list[str]:
    """Delete the staging folders and files (`.<name>-*`) a killed writer left beside
    `target`, except `.<name>-old` (the previous version, see replace_dir). Returns names."""
    target = Path(target)
    removed = []
    for path in sorted(target.parent.glob(f".{target.name}-*")):
        if path.name != f".{target.name}-old":
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed

