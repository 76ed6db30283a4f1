"""Static checks on the committed notebooks: built from sources, clean, well-formed."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SETUP = (ROOT / "notebooks" / "src" / "_setup.py").read_text().strip("\n")


def code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_six_numbered_notebooks_in_order():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


def test_notebooks_match_their_sources():
    result = subprocess.run([sys.executable, "scripts/build_notebooks.py", "--check"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_well_formed(path):
    cells = code_cells(path)
    assert all(not c["outputs"] and c["execution_count"] is None for c in cells), "outputs committed"
    assert "".join(cells[0]["source"]) == SETUP, "first code cell must be the shared setup cell"
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for cell in cells:
        tree = ast.parse("".join(cell["source"]))
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defined, "logic belongs in helpers/, not in notebook cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_are_upper_case_and_commented(path):
    cell = next(c for c in code_cells(path) if "parameters" in c["metadata"].get("tags", []))
    for line in "".join(cell["source"]).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name = line.split("=")[0].strip()
            assert name.isupper() and "#" in line, f"{path.name}: {line!r}"


def parameter_values(path) -> dict:
    """The values a notebook's parameters cell assigns (the cell holds literals only)."""
    cell = next(c for c in code_cells(path) if "parameters" in c["metadata"].get("tags", []))
    values = {}
    exec("".join(cell["source"]), {}, values)  # noqa: S102 - our own committed literals
    return values


def test_runs_are_named_by_the_preset_and_later_notebooks_take_the_runs_preset():
    first = parameter_values(NOTEBOOKS[0])
    assert (first["RUN_NAME"], first["PRESET"], first["SKIP_IF_DONE"]) == (None, "embedded", False)
    for path in NOTEBOOKS[1:]:
        values = parameter_values(path)
        assert (values["RUN_NAME"], values["PRESET"]) == (None, None), path.name
    assert parameter_values(NOTEBOOKS[3])["RESUME"] == "auto"  # 04 continues by default
    assert parameter_values(NOTEBOOKS[1])["SKIP_IF_DONE"] is False


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_ends_with_its_completion_marker(path):
    last = "".join(code_cells(path)[-1]["source"])
    assert f'finish_stage(run, "{path.name[:2]}", config.run_id' in last
