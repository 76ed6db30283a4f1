"""Build notebooks/NN_*.ipynb from their sources in notebooks/src/ (percent format).

A source is a Python file whose cells start with `# %%` lines:
  `# %% [markdown]` -> a markdown cell (each line's leading "# " removed)
  `# %% parameters` -> the code cell tagged `parameters` (papermill injects after it)
  `# %%`            -> a code cell
The shared setup cell (notebooks/src/_setup.py) is inserted as the first code cell, so it
comes from one place. Outputs are always empty. `--check` exits 1 if a notebook is stale.

    python scripts/build_notebooks.py [--check]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = NOTEBOOKS / "src"
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


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


def build(source_path: Path) -> dict:
    """The notebook for one source file, setup cell first among code cells."""
    cells = parse_cells(source_path.read_text())
    setup = ("code", (SOURCES / "_setup.py").read_text().strip("\n"), [])
    first_code = next(i for i, cell in enumerate(cells) if cell[0] == "code")
    cells.insert(first_code, setup)
    return {"cells": [make_cell(*cell) for cell in cells],
            "metadata": {"kernelspec": KERNEL, "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


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
    for source in sorted(SOURCES.glob("[0-9][0-9]_*.py")):
        target = NOTEBOOKS / f"{source.stem}.ipynb"
        text = serialize(build(source))
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
