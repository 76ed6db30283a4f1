"""Common Voice fetched by name from the Mozilla Data Collective; the corpus name prefixes.

    CORPUS = "mdc:<dataset id or slug>"   a Common Voice release + locale (one id each)
    CORPUS = "fleurs:<config>"            google/fleurs, e.g. "fleurs:hi_in" (no sign-in;
                                          read by helpers.data.corpora.load_fleurs)

`mdc:` downloads the archive once with Mozilla's client (`datacollective`, progress shown),
unpacks it into a hidden staging folder and renames that into place, so a killed download
or unpack leaves nothing a later run trusts; the locale folder inside is then read by the
Common Voice loader (helpers.data.corpora.load_common_voice). The API key comes from
Colab's secret store (MDC_API_KEY, read again at every download) or $MDC_API_KEY, and is
never printed or written.

Where: the archive in `helpers.files.archives_root()/mdc-<id>/`, the unpacked release in
`helpers.files.corpora_root()/mdc-<id>/`. On Colab the archive stays on Google Drive
(MyDrive/whisper-lora-8bit/corpora/downloads: one file, where a release unpacked would be
over 10,000 small ones), and each runtime that needs the clips unpacks it onto its own disk
(/content/whisper-lora-work/corpora), at the same path every time, so the clip paths that
notebook 01 records hold in every runtime. Elsewhere both lie in ~/.cache/whisper-lora/corpora
and the archive is deleted once unpacked ($WHISPER_LORA_CORPORA overrides both).
"""
from __future__ import annotations

import contextlib
import re
import tarfile
import zlib
from pathlib import Path

from helpers.files import corpora_root, remove_leftovers, staging_dir

MDC_PREFIX = "mdc:"
FLEURS_PREFIX = "fleurs:"
MDC_KEY = "MDC_API_KEY"  # the environment variable (and Colab secret) the client reads
MDC_SITE = "https://mozilladatacollective.com"


class CorpusAccessError(RuntimeError):
    """A named corpus could not be fetched; the message says what is missing and how to fix it."""


def is_mdc(source) -> bool:
    """True for "mdc:<dataset id or slug>"."""
    return isinstance(source, str) and source.startswith(MDC_PREFIX)


def is_fleurs(source) -> bool:
    """True for "fleurs:<config>"."""
    return isinstance(source, str) and source.startswith(FLEURS_PREFIX)


def source_name(source: str, prefix: str) -> str:
    """The part after the prefix; ValueError when it is empty."""
    name = source[len(prefix):].strip()
    if not name:
        example = "mdc:<dataset id>" if prefix == MDC_PREFIX else "fleurs:hi_in"
        raise ValueError(f"CORPUS = {source!r} names no dataset; write it as {example!r}.")
    return name


# ------------------------------------------------------------ Mozilla Data Collective


def fetch_mdc(source: str, root=None) -> Path:
    """The Common Voice locale folder of "mdc:<id>", downloaded and unpacked on first use.

    Returns <root>/mdc-<id>/.../<locale>/ (the folder with clips/ and train.tsv). A folder
    unpacked before is used as it is; an archive downloaded before (on Colab: on Drive, by
    an earlier runtime) is unpacked again with no key and no network.
    """
    from helpers.colab import in_colab
    from helpers.files import archives_root

    dataset_id = source_name(source, MDC_PREFIX)
    safe_id = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_id)
    target = Path(root or corpora_root()) / f"mdc-{safe_id}"
    if not target.is_dir():
        folder = (Path(root) / "downloads" if root else archives_root()) / f"mdc-{safe_id}"
        archive = kept_archive(folder) or download_mdc_archive(dataset_id, folder)
        unpack_atomic(archive, target)
        if not in_colab():  # unpacked on the same disk: the archive is a copy
            archive.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # its folder, once empty
                archive.parent.rmdir()
    return find_locale(target, source)


def kept_archive(folder) -> Path | None:
    """The complete archive a download left in `folder` (never a `.part` file), or None."""
    found = sorted(Path(folder).glob("*.tar.gz")) if Path(folder).is_dir() else []
    return found[-1] if found else None


def mdc_api_key() -> None:
    """Make sure $MDC_API_KEY is set (from Colab's secret store if need be), for the client.

    CorpusAccessError, saying how to create and store a key, when there is none.
    """
    from helpers.colab import load_colab_secret

    if not load_colab_secret(MDC_KEY):
        raise CorpusAccessError(
            f"No Mozilla Data Collective API key. Sign in at {MDC_SITE} and create an API key "
            f"in your dashboard (see {MDC_SITE}/api-reference); then on Colab open the key icon "
            "(Secrets) in the "
            f"left bar, add a secret named {MDC_KEY} with the key as its value and switch on "
            f"'Notebook access' (elsewhere: export {MDC_KEY}=...). Run this cell again.")


def _client():
    """The `datacollective` module, or CorpusAccessError saying how to install it."""
    try:
        import datacollective
    except ImportError as error:
        raise CorpusAccessError("CORPUS = 'mdc:...' needs Mozilla's client: pip install "
                                "datacollective (colab/requirements-colab.txt pins it; the "
                                "Colab setup cell installs it).") from error
    return datacollective


def download_mdc_archive(dataset_id: str, folder) -> Path:
    """Download the dataset's archive into `folder` with the `datacollective` client.

    The client shows a progress bar, writes to a `.part` file and renames it when complete
    (resuming an interrupted download). Errors become CorpusAccessError naming the cause:
    a refused key, an unknown id, or terms not accepted. Returns the archive's path.
    """
    mdc_api_key()
    client = _client()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    page = f"{MDC_SITE}/datasets/{dataset_id}"
    print(f"downloading {dataset_id} from the Mozilla Data Collective into {folder} ...", flush=True)
    try:
        return Path(client.download_dataset(dataset_id, download_directory=str(folder),
                                            show_progress=True))
    except PermissionError as error:  # 403: terms not accepted, or another organization's
        raise CorpusAccessError(
            f"The Data Collective refused access to {dataset_id!r} ({error}). Open {page} "
            "signed in with the account that made the key, read and accept the dataset's "
            "terms, then run this cell again.") from None
    except FileNotFoundError as error:  # 404 (or 410: withdrawn)
        raise CorpusAccessError(
            f"The Data Collective has no dataset {dataset_id!r} ({error}). Copy the id from "
            f"the end of the dataset page's address ({MDC_SITE}/datasets/<id>) and set "
            "CORPUS = 'mdc:<id>'.") from None
    except Exception as error:
        if type(error).__name__ == "AuthenticationError":  # 401
            raise CorpusAccessError(
                f"The Data Collective refused the API key in {MDC_KEY} (invalid, expired or "
                f"revoked). Create a new key at {MDC_SITE} and replace the {MDC_KEY} secret."
            ) from None
        raise


def unpack_atomic(archive, target) -> Path:
    """Unpack a .tar.gz into `target`, all or nothing; returns `target`.

    Members go into a hidden sibling `.<name>-XXXX` (leftovers of a killed run are removed
    first), which is renamed to `target` only once every member is out. Unsafe
    members (absolute paths, links out of the folder) are refused (tarfile's "data"
    filter). A damaged archive is deleted, so the next run downloads it again.
    """
    from tqdm.auto import tqdm

    archive, target = Path(archive), Path(target)
    remove_leftovers(target)
    try:
        with staging_dir(target) as staging, archive.open("rb") as raw, \
                tarfile.open(fileobj=raw, mode="r|*") as tar, \
                tqdm(total=archive.stat().st_size, unit="B", unit_scale=True,
                     desc=f"unpacking {archive.name}") as bar:
            for member in tar:
                tar.extract(member, staging, filter="data")
                bar.update(raw.tell() - bar.n)
    except (tarfile.ReadError, EOFError, zlib.error) as error:
        archive.unlink(missing_ok=True)
        raise CorpusAccessError(f"{archive} is damaged ({error}); it was deleted. Run this "
                                "cell again to download it afresh.") from None
    return target


def find_locale(folder, source: str = "") -> Path:
    """The one Common Voice locale folder (holding train.tsv) inside an unpacked release."""
    folder = Path(folder)
    found = sorted({tsv.parent for depth in ("*/", "*/*/", "*/*/*/", "")
                    for tsv in folder.glob(f"{depth}train.tsv")})
    if len(found) == 1:
        return found[0]
    if not found:
        raise CorpusAccessError(f"{folder} ({source}) holds no Common Voice locale folder (no "
                                "train.tsv); is this a Common Voice dataset? Delete the folder "
                                "to download it again.")
    listing = ", ".join(str(path.relative_to(folder)) for path in found)
    raise CorpusAccessError(f"{folder} ({source}) holds several locales ({listing}); set CORPUS "
                            "to the one you want as a folder path.")
