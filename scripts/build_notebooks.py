"""Build notebooks/NN_*.ipynb from their sources in notebooks/src/ (percent format).

A source is a Python file whose cells start with `# %%` lines:
  `# %% [markdown]` -> a markdown cell (each line's leading "# " removed)
  `# %% parameters` -> the code cell tagged `parameters` (papermill injects after it)
  `# %%`            -> a code cell
The shared setup cell (notebooks/src/_setup.py) is inserted as the first code cell, so it
comes from one place, and an "Open in Colab" badge is added under each title. The Colab
end-to-end notebook (colab/whisper_lora_t4.ipynb) is assembled from the numbered sources:
one setup cell, one parameters cell (the union, with PRESET = "blog" and SKIP_IF_DONE =
True), a cell that keeps Drive mounted from stage to stage, then every stage's cells in
order, so the two cannot drift. Outputs are always empty. `--check` exits 1 if a
notebook is stale.

    python scripts/build_notebooks.py [--check]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
END_TO_END = ROOT / "colab" / "whisper_lora_t4.ipynb"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
COLAB_NOTE = ("> **On Colab** each notebook opened from its badge runs in its own runtime; the six "
              "share one run through Google Drive (`RUNS_ROOT = None` keeps it in "
              "`MyDrive/whisper-lora-8bit/runs/`, and Colab asks once per runtime to mount Drive).")


def parse_cells(text: str) -> list[tuple[str, str, list[str]]]:
    """Split percent-format text into (kind, source, tags) tuples."""
    cells, kind, tags, lines = [], None, [], []
    for line in text.splitlines() + ["# %%"]:
        if line.startswith("# %%"):
            if kind is not None and "\n".join(lines).strip():
                cells.append((kind, "\n".join(lines).strip("\n"), tags))
            kind = "markdown" if "[markdown]" in line else "code"
            tags = ["parameters"] if "parameters" in line else []
            lines = []
        elif kind == "markdown":
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        elif kind is not None:
            lines.append(line)
    return cells


def make_cell(kind: str, source: str, tags: list[str]) -> dict:
    """One nbformat-4 cell with no outputs."""
    cell = {"cell_type": kind, "metadata": {"tags": tags} if tags else {},
            "source": source.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def repository() -> str:
    """The GitHub owner/name the setup cell clones (its REPOSITORY line)."""
    match = re.search(r'^REPOSITORY = "([^"]+)"', (SOURCES / "_setup.py").read_text(), re.M)
    return match.group(1)


def badge(relative_path: str) -> str:
    """Markdown for an "Open in Colab" badge pointing at a file of this repository."""
    url = f"https://colab.research.google.com/github/{repository()}/blob/main/{relative_path}"
    return f"[![Open In Colab]({BADGE})]({url})"


def setup_cell() -> tuple[str, str, list[str]]:
    """The shared first code cell."""
    return ("code", (SOURCES / "_setup.py").read_text().strip("\n"), [])


def with_badge(cells: list, relative_path: str, note: str = COLAB_NOTE) -> list:
    """Insert the Colab badge (and the note on Drive) under the first (title) markdown cell's title."""
    kind, text, tags = cells[0]
    title, _, rest = text.partition("\n")
    return [(kind, f"{title}\n\n{badge(relative_path)}\n\n{note}\n{rest}", tags), *cells[1:]]


def notebook(cells: list) -> dict:
    """An nbformat-4 notebook dict from (kind, source, tags) cells."""
    return {"cells": [make_cell(*cell) for cell in cells],
            "metadata": {"kernelspec": KERNEL, "language_info": {"name": "python"},
                         "accelerator": "GPU", "colab": {"provenance": []}},
            "nbformat": 4, "nbformat_minor": 5}


def build(source_path: Path) -> dict:
    """The notebook for one source file: badge under the title, setup cell first among code cells."""
    cells = with_badge(parse_cells(source_path.read_text()), f"notebooks/{source_path.stem}.ipynb")
    first_code = next(i for i, cell in enumerate(cells) if cell[0] == "code")
    cells.insert(first_code, setup_cell())
    return notebook(cells)


def merged_parameters(sources: list[Path]) -> str:
    """One parameters cell: every stage's parameter lines, first definition wins, blog preset."""
    seen, lines = set(), []
    for source in sources:
        cell = next(c for c in parse_cells(source.read_text()) if "parameters" in c[2])
        for line in cell[1].splitlines():
            name = line.split("=")[0].strip()
            if name in seen:
                continue
            seen.add(name)
            lines.append(line.replace('PRESET = "embedded" ', 'PRESET = "blog"     ', 1)
                         .replace("SKIP_IF_DONE = False", "SKIP_IF_DONE = True ", 1))
    return "\n".join(lines)


ONE_RUNTIME = ("code", "# All six stages run in this one runtime: Google Drive stays mounted from stage to stage\n"
               "# and is flushed and unmounted once, at the end of stage 06.\n"
               "from helpers.colab import keep_drive_mounted\n\nkeep_drive_mounted()", [])


def build_end_to_end(sources: list[Path]) -> dict:
    """The Colab T4 notebook: every stage in one runtime, assembled from the stage sources."""
    intro = ("markdown", "# Whisper large-v2 + LoRA on an 8-bit base, end to end on a Colab T4\n\n"
             f"{badge('colab/whisper_lora_t4.ipynb')}\n\n"
             "All six stages of `notebooks/01`-`06` in one runtime, generated from the same "
             "sources (`scripts/build_notebooks.py`), so the two cannot drift. Choose "
             "*Runtime → Change runtime type → T4 GPU* and run all cells. `PRESET = \"blog\"` "
             "downloads Common Voice Hindi from the Mozilla Data Collective (a free API key, "
             "stored as the Colab secret `MDC_API_KEY`); `PRESET = \"blog-fleurs\"` trains on "
             "FLEURS Hindi with no sign-in (see the README). The run directory is kept on "
             "Google Drive (`MyDrive/whisper-lora-8bit/runs/<RUN_NAME>/`). After a disconnect, "
             "open this notebook again and *Run all* with the same parameters: stages 01 and 02 "
             "are skipped when their outputs are on Drive for the same settings "
             "(`SKIP_IF_DONE = True`), and training continues from its last checkpoint "
             "(`RESUME = \"auto\"`), printing `resuming from checkpoint-N`.", [])
    cells = [intro, setup_cell(), ("code", merged_parameters(sources), ["parameters"]), ONE_RUNTIME]
    for source in sources:
        stage = [c for c in parse_cells(source.read_text()) if "parameters" not in c[2]]
        title = stage[0][1].splitlines()[0].replace("# ", "## ", 1)
        cells += [(stage[0][0], title + stage[0][1][len(stage[0][1].splitlines()[0]):], []), *stage[1:]]
    return notebook(cells)


def serialize(notebook: dict) -> str:
    """Stable JSON text for a notebook (cell ids derived from position)."""
    for index, cell in enumerate(notebook["cells"]):
        cell["id"] = f"cell-{index:02d}"
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    """Write (or with --check, compare) every notebook; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a notebook differs from its source")
    args = parser.parse_args(argv)
    stale = []
    sources = sorted(SOURCES.glob("[0-9][0-9]_*.py"))
    targets = [(NOTEBOOKS / f"{source.stem}.ipynb", build(source)) for source in sources]
    for target, built in [*targets, (END_TO_END, build_end_to_end(sources))]:
        text = serialize(built)
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
    if stale:
        print("stale notebooks (run python scripts/build_notebooks.py):", ", ".join(stale))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
