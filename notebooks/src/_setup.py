# Setup: the same first cell in every notebook (source: notebooks/src/_setup.py).
# It makes this repository's `helpers` package importable and prints versions and device.
import sys
from pathlib import Path

ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "helpers" / "__init__.py").is_file()), None)
if ROOT is None:
    raise RuntimeError("Open this notebook from inside the whisper-lora repository (helpers/ not found).")
sys.path.insert(0, str(ROOT))
from helpers.notebook import setup  # noqa: E402

setup();
