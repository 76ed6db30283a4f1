# Setup: the same first cell in every notebook (source: notebooks/src/_setup.py).
# On Colab it fetches this repository and installs only what the runtime lacks
# (colab/requirements-colab.txt); everywhere it makes `helpers` importable and prints
# library versions and the device.
import subprocess
import sys
from pathlib import Path

REPOSITORY = "whisper-lora/whisper-lora-8bit"  # the GitHub repository (owner/name) Colab clones
COLAB_CHECKOUT = Path("/content/whisper-lora-8bit")
if "google.colab" in sys.modules and not COLAB_CHECKOUT.exists():
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"https://github.com/{REPOSITORY}", str(COLAB_CHECKOUT)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(COLAB_CHECKOUT / "colab" / "requirements-colab.txt")], check=True)
ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents, COLAB_CHECKOUT] if (p / "helpers" / "__init__.py").is_file()), None)
if ROOT is None:
    raise RuntimeError("Open this notebook from inside the whisper-lora-8bit repository (helpers/ not found).")
sys.path.insert(0, str(ROOT))
from helpers.notebook import setup  # noqa: E402

setup();
