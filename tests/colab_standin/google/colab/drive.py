"""Stand-in for google.colab.drive: MyDrive becomes a link to $COLAB_STANDIN_DRIVE."""
import os
from pathlib import Path

_MOUNTED = []  # mount points mounted by this process (Colab's drive has one at a time)


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    """Make <mountpoint>/MyDrive point at the shared "cloud" folder $COLAB_STANDIN_DRIVE."""
    store = os.environ.get("COLAB_STANDIN_DRIVE")
    if not store:
        raise RuntimeError("stand-in google.colab: set COLAB_STANDIN_DRIVE to the Drive folder")
    mountpoint = Path(mountpoint)
    if str(mountpoint) == "/content/drive":
        raise RuntimeError("stand-in google.colab: refusing the real /content/drive; tests "
                           "set WHISPER_LORA_DRIVE_MOUNT to a temporary folder")
    mountpoint.mkdir(parents=True, exist_ok=True)
    link = mountpoint / "MyDrive"
    if not link.exists():
        link.symlink_to(Path(store).resolve(), target_is_directory=True)
    _MOUNTED.append(mountpoint)
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms=24 * 60 * 60 * 1000):
    """Unmount: remove the MyDrive link (the stand-in writes straight to the "cloud", so there
    is nothing to flush); each call is logged to $COLAB_STANDIN_LOG when set."""
    if not _MOUNTED:
        print("Drive not mounted, so nothing to flush and unmount.")
        return
    while _MOUNTED:
        link = _MOUNTED.pop() / "MyDrive"
        if link.is_symlink():
            link.unlink()
    if os.environ.get("COLAB_STANDIN_LOG"):
        with open(os.environ["COLAB_STANDIN_LOG"], "a") as log:
            log.write("flush_and_unmount\n")
