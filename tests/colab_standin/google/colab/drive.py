"""Stand-in for google.colab.drive: MyDrive becomes a link to $COLAB_STANDIN_DRIVE."""
import os
from pathlib import Path


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
    print(f"Mounted at {mountpoint}")
