"""What every notebook's first cell calls: versions, device, quiet logs."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import warnings

from helpers.colab import load_colab_secret

LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets",
             "jiwer", "soundfile", "soxr")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries this project depends on."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_description() -> str:
    """'cuda: <GPU name> (<GiB>)' or 'cpu (<n> threads)'."""
    import torch

    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        return f"cuda: {properties.name} ({properties.total_memory / 2**30:.1f} GiB)"
    return f"cpu ({torch.get_num_threads()} threads)"


def load_hub_token() -> bool:
    """On Colab, copy the secret HF_TOKEN (Colab's secret store, key icon) into this process.

    The token goes into os.environ only: never into a cell, a log or the run directory.
    Returns True if a token was found. Public models and data need none.
    """
    return load_colab_secret("HF_TOKEN")


def setup(quiet: bool = True) -> dict[str, str]:
    """Print library versions and the device; silence known-noisy warnings. Returns the versions."""
    if quiet:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from helpers.quiet import quiet_libraries
        quiet_libraries()
        warnings.filterwarnings("ignore", category=FutureWarning)
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
    if load_hub_token():
        print("Hugging Face token: loaded from Colab secrets")
    versions = library_versions()
    print(" | ".join(f"{name} {version}" for name, version in versions.items()))
    print("device:", device_description())
    return versions
