# Setup: the same first cell in every notebook (source: notebooks/src/_setup.py).
# On Colab it fetches this repository into /content (cloned beside, then renamed: an
# interrupted clone is never used), asks at once for Google Drive and the secrets (so that
# Colab's prompts come now, not minutes into "Run all"), and installs what the runtime
# lacks: every line of colab/requirements-colab.txt is checked against the installed
# versions, and if pip fails its error is shown and the notebook stops. Everywhere it makes
# `helpers` importable and prints library versions and the device.
import subprocess
import sys
from pathlib import Path

REPOSITORY = "whisper-lora/whisper-lora-8bit"  # the GitHub repository (owner/name) Colab clones
ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "helpers" / "__init__.py").is_file()), None)
if ROOT is None and "google.colab" in sys.modules:  # a Colab runtime: the checkout lives in /content
    ROOT = Path.cwd() / "whisper-lora-8bit"
    if not (ROOT / "helpers" / "__init__.py").is_file():
        staging = ROOT.with_name(ROOT.name + ".partial")
        subprocess.run(["rm", "-rf", str(staging), str(ROOT)], check=True)
        subprocess.run(["git", "clone", "-q", "--depth", "1", f"https://github.com/{REPOSITORY}", str(staging)], check=True)
        staging.rename(ROOT)
if ROOT is None:
    raise RuntimeError("Open this notebook from inside the whisper-lora-8bit repository (helpers/ not found).")
sys.path.insert(0, str(ROOT))
if "google.colab" in sys.modules:
    from helpers.colab import ask_colab_access, install_requirements

    ask_colab_access()  # Drive and the secrets: Colab's prompts come first
    install_requirements(ROOT / "colab" / "requirements-colab.txt")
from helpers.notebook.setup import setup

setup();
