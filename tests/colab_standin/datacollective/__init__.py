"""Stand-in for Mozilla's `datacollective` client (tests only): serves local archives.

Only `download_dataset` is provided, with the real signature and the real client's error
classes, checked in the order the real one meets them: unknown id (404), missing key,
refused key (401), terms not accepted (403).
"""
import os
import shutil
from pathlib import Path

__version__ = "0.7.0"


class AuthenticationError(RuntimeError):
    """HTTP 401: the API key is invalid, expired or revoked."""


class ResourceRemovedError(FileNotFoundError):
    """HTTP 410: the dataset was removed."""


def download_dataset(dataset_id, download_directory=None, show_progress=True,
                     overwrite_existing=False, enable_logging=False, extract=False,
                     overwrite_extracted=False):
    """Copy the dataset's archive into download_directory (via a .part file); its path."""
    source = Path(os.environ["FAKE_MDC_ARCHIVES"]) / dataset_id
    archives = sorted(source.glob("*.tar.gz")) if source.is_dir() else []
    if not archives:
        raise FileNotFoundError(f"Resource not found: GET https://mozilladatacollective.com/api/datasets/{dataset_id}")
    key = os.environ.get("MDC_API_KEY")
    if not key:
        raise ValueError("Missing API key. Set env MDC_API_KEY to your MDC API token.")
    if key != os.environ.get("FAKE_MDC_KEY"):
        raise AuthenticationError("Authentication failed. The API key in `MDC_API_KEY` is invalid, expired or revoked.")
    if dataset_id in os.environ.get("FAKE_MDC_TERMS_REFUSED", "").split(","):
        raise PermissionError(f"Access denied: POST https://mozilladatacollective.com/api/datasets/{dataset_id}/download")
    folder = Path(download_directory or os.environ.get("MDC_DOWNLOAD_PATH", "."))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / archives[0].name
    if target.exists() and not overwrite_existing:
        return target
    part = target.with_name(target.name + ".part")
    shutil.copyfile(archives[0], part)
    part.replace(target)
    if show_progress:
        print(f"{target.name}: {target.stat().st_size} bytes [100%]")
    if os.environ.get("FAKE_MDC_LOG"):
        with open(os.environ["FAKE_MDC_LOG"], "a") as log:
            log.write(dataset_id + "\n")
    return target
