"""Publish a trained adapter on the Hugging Face Hub with a model card, and the command
`python -m helpers.publish`.

Usage:
    python -m helpers.publish --adapter DIR --repo USER/NAME [--private] [--license L]
    python -m helpers.publish --adapter DIR --repo USER/NAME --card OUT.md   # write the card only

DIR is an adapter folder, normally `runs/<RUN_NAME>/adapter`: the card is made from the run
around it (`config.json`, `metrics.json`, `corpus_report.json`) and from the adapter itself.
What is pushed: `adapter_config.json`, `adapter_model.safetensors`, the card as
`README.md` and `adapter_language.json` (the language it was trained on, which routing
reads) when the adapter has one, nothing else (an adapter without safetensors weights is refused). The token is
$HF_TOKEN, else Colab's secret HF_TOKEN, else the token `hf auth login` saved; it needs write
access, and it is never printed or written to a file. Loading the result by name:
`python -m helpers.transcribe --adapter USER/NAME CLIP` (see helpers.model.adapters.resolve_adapter).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from helpers.model.adapters import ADAPTER_CONFIG, ADAPTER_LANGUAGE, ADAPTER_WEIGHTS, split_hub_id
from helpers.publish.card import (
    DEFAULT_LICENSE,
    PROJECT,
    model_card,
    read_run,
    shareable_base,
)

TOKEN_ENV = "HF_TOKEN"
PUSHED_FILES = [ADAPTER_CONFIG, ADAPTER_WEIGHTS, "README.md", ADAPTER_LANGUAGE]  # all that goes to the Hub


# ------------------------------------------------------------------ pushing


def hub_token() -> str:
    """The Hub token: $HF_TOKEN, else Colab's secret HF_TOKEN (copied into the environment
    only, helpers.colab.load_colab_secret), else the one `hf auth login` saved.
    RuntimeError saying how to provide one when there is none. Never printed."""
    from huggingface_hub import get_token

    from helpers.colab import load_colab_secret

    load_colab_secret(TOKEN_ENV)
    token = os.environ.get(TOKEN_ENV) or get_token()
    if not token:
        raise RuntimeError(
            "no Hugging Face token: create one with write access at "
            "https://huggingface.co/settings/tokens, then `export HF_TOKEN=...` (or `hf auth "
            "login`); on Colab add it as the secret HF_TOKEN (key icon, notebook access on)")
    return token


def stage_folder(adapter_dir: str | Path, card, folder: str | Path) -> Path:
    """Copy the adapter's config, safetensors weights and recorded language into `folder` and write the card as
    README.md there (PEFT's placeholder README is not copied); returns `folder`.

    A base model recorded as a local folder is written as its name only (shareable_base)."""
    adapter_dir, folder = Path(adapter_dir), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(adapter_dir / ADAPTER_WEIGHTS, folder / ADAPTER_WEIGHTS)
    if (adapter_dir / ADAPTER_LANGUAGE).is_file():  # what routing reads (helpers.transcribe.routing)
        shutil.copy2(adapter_dir / ADAPTER_LANGUAGE, folder / ADAPTER_LANGUAGE)
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if base and shareable_base(base) != base:
        config["base_model_name_or_path"] = shareable_base(base)
        (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    else:
        shutil.copy2(adapter_dir / ADAPTER_CONFIG, folder / ADAPTER_CONFIG)
    card.save(folder / "README.md")
    return folder


def pushed_files(adapter_dir) -> list[str]:
    """The PUSHED_FILES an adapter folder sends: all but ADAPTER_LANGUAGE when it records no
    language (an English-only model's adapter)."""
    return [name for name in PUSHED_FILES
            if name != ADAPTER_LANGUAGE or (Path(adapter_dir) / ADAPTER_LANGUAGE).is_file()]


def publish(adapter_dir: str | Path, repo_id: str, private: bool = False,
            license: str = DEFAULT_LICENSE, api=None) -> str:
    """Push the adapter in `adapter_dir` to the Hub model repo `repo_id` with its model card.

    Creates the repo when it does not exist (private if asked; an existing repo keeps its
    visibility) and uploads adapter_config.json, adapter_model.safetensors and README.md in
    one commit. `api`: a huggingface_hub.HfApi (default: one holding hub_token()).
    Returns the repo's URL. Raises ValueError for a folder without safetensors weights.
    """
    import huggingface_hub

    if split_hub_id(repo_id) is None or "@" in repo_id:
        raise ValueError(f"--repo {repo_id!r}: give a Hub model id USER/NAME (letters, digits, "
                         "'-', '_', '.')")
    try:
        card = model_card(adapter_dir, repo_id, license)
    except ValueError as error:  # no safetensors weights (read_adapter_config says what it found)
        raise ValueError(f"{error} Nothing was pushed: only safetensors adapters are published.") from error
    api = api or huggingface_hub.HfApi(token=hub_token())
    run_name = read_run(adapter_dir)["run_name"]
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        folder = stage_folder(adapter_dir, card, Path(tmp) / "adapter")
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                          allow_patterns=pushed_files(adapter_dir),
                          commit_message=f"LoRA adapter{f' of run {run_name}' if run_name else ''} "
                                         f"and its model card ({PROJECT})")
    return f"https://huggingface.co/{repo_id}"


def _redacted(text: str) -> str:
    """`text` with the token (if one is set) replaced by "***": errors never show it."""
    token = os.environ.get(TOKEN_ENV)
    return text.replace(token, "***") if token else text


def main(argv: list[str] | None = None) -> int:
    """Push an adapter with its card (or write the card only); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m helpers.publish",
                                     description="Push a LoRA adapter to the Hugging Face Hub "
                                                 "with a generated model card.")
    parser.add_argument("--adapter", required=True, help="the adapter folder, e.g. runs/demo/adapter")
    parser.add_argument("--repo", required=True, help="the Hub model repo, USER/NAME")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--license", default=DEFAULT_LICENSE,
                        help=f"the card's license (default {DEFAULT_LICENSE}, as OpenAI's Whisper on the Hub)")
    parser.add_argument("--card", metavar="OUT.md", help="write the model card to OUT.md and push nothing")
    args = parser.parse_args(argv)
    from huggingface_hub.errors import HfHubHTTPError

    try:
        if args.card:
            model_card(args.adapter, args.repo, args.license).save(args.card)
            print(json.dumps({"card": args.card}))
            return 0
        url = publish(args.adapter, args.repo, args.private, args.license)
    except (ValueError, OSError, RuntimeError, HfHubHTTPError) as error:
        print(f"error: {_redacted(str(error))}", file=sys.stderr)
        return 2
    print(json.dumps({"repo": args.repo, "url": url, "private": args.private,
                      "files": pushed_files(args.adapter)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
