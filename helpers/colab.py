"""Google Colab: Drive, the secret store, and an install that cannot half-happen.

Colab gives every notebook opened from its badge its own runtime (its own VM), so files one
notebook writes under /content are gone for the next. Google Drive is what they share:
on Colab the run directory (`RUNS_ROOT = None`) and downloaded corpora live in
`/content/drive/MyDrive/whisper-lora-8bit/`, and Drive is mounted before anything reads it.

Nothing here imports torch or transformers: the setup cell calls `install_requirements`
before those are imported. `$WHISPER_LORA_DRIVE_MOUNT` moves the mount point (tests only;
on Colab it is /content/drive).
"""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

DRIVE_MOUNT_ENV = "WHISPER_LORA_DRIVE_MOUNT"
COLAB_DRIVE_MOUNT = "/content/drive"  # where Colab mounts Google Drive
PROJECT_FOLDER = "whisper-lora-8bit"  # our folder in MyDrive: runs/ and corpora/


def in_colab() -> bool:
    """True inside a Google Colab runtime (its kernel imports google.colab at start)."""
    return "google.colab" in sys.modules


def drive_mount() -> Path:
    """The Drive mount point: /content/drive (or $WHISPER_LORA_DRIVE_MOUNT in tests)."""
    return Path(os.environ.get(DRIVE_MOUNT_ENV) or COLAB_DRIVE_MOUNT)


def drive_home() -> Path:
    """Our folder on Drive: <mount>/MyDrive/whisper-lora-8bit (holds runs/ and corpora/)."""
    return drive_mount() / "MyDrive" / PROJECT_FOLDER


def on_drive(path) -> bool:
    """True when `path` lies under the Drive mount point."""
    path, mount = Path(path).expanduser(), drive_mount()
    return path == mount or mount in path.parents


def mount_drive() -> Path:
    """Mount Google Drive at the mount point unless it is mounted already; returns MyDrive.

    Colab asks once per runtime for permission to access Drive. Raises RuntimeError off Colab.
    """
    mount = drive_mount()
    if (mount / "MyDrive").is_dir():
        return mount / "MyDrive"
    if not in_colab():
        raise RuntimeError(f"{mount} is Google Drive's folder on Colab, and this is not Colab: "
                           "give a local folder instead (RUNS_ROOT, CORPUS).")
    from google.colab import drive  # type: ignore[import-not-found]

    drive.mount(str(mount))
    return mount / "MyDrive"


def ensure_drive(*paths) -> bool:
    """Mount Drive if any of `paths` (None entries ignored) lies on it; True if it did or was."""
    if any(path is not None and on_drive(path) for path in paths):
        mount_drive()
        return True
    return False


def load_colab_secret(name: str) -> bool:
    """Copy the Colab secret `name` (key icon, notebook access on) into os.environ[name].

    The value goes into this process's environment only: never into a cell, a log or a file.
    Returns True when the variable is set afterwards (it may have been set already).
    """
    if os.environ.get(name):
        return True
    if not in_colab():
        return False
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
        value = userdata.get(name)
    except Exception:  # the secret is absent, or notebook access to it was not granted
        return False
    if not value:
        return False
    os.environ[name] = value
    return True


# ------------------------------------------------------------------ requirements


def requirement_lines(path) -> list[str]:
    """The requirement strings of a requirements file (comments, blanks and options dropped)."""
    lines = []
    for line in Path(path).read_text().splitlines():
        line = line.split(" #")[0].split("\t#")[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def unmet_requirements(path) -> list[str]:
    """The lines of requirements file `path` that the installed packages do not satisfy.

    Checked against installed versions (importlib.metadata), never inferred from a folder:
    a line is unmet when its package is missing or its version is outside the specifier.
    """
    from packaging.requirements import Requirement

    importlib.invalidate_caches()  # see what pip has just installed
    unmet = []
    for line in requirement_lines(path):
        requirement = Requirement(line)
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append(line)
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(line)
    return unmet


def install_requirements(path, tail_lines: int = 30) -> list[str]:
    """pip-install the unmet lines of requirements file `path`; returns the lines installed.

    pip's own output (warnings, errors) is printed in the cell. If pip fails, or the
    packages are still unmet afterwards, RuntimeError says so with the end of pip's output,
    so the notebook stops here instead of running on the runtime's stock libraries.
    """
    unmet = unmet_requirements(path)
    if not unmet:
        print(f"requirements: all of {Path(path).name} satisfied")
        return []
    print(f"installing {len(unmet)} package(s): {', '.join(unmet)} (a minute or two) ...", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *unmet],
                          capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    if output:
        print(output)
    still = unmet_requirements(path) if done.returncode == 0 else unmet
    if done.returncode or still:
        tail = "\n".join(output.splitlines()[-tail_lines:]) or "(pip printed nothing)"
        raise RuntimeError(f"pip could not install {', '.join(still)} (exit status "
                           f"{done.returncode}). pip's output ends with:\n{tail}\n"
                           "Fix the cause (network, disk, a version conflict), then run this "
                           "cell again: it installs whatever is still missing.")
    from packaging.requirements import Requirement

    names = [Requirement(line).name for line in unmet]
    print("installed:", ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names))
    return unmet
