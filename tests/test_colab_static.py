"""Static checks on what Colab users open: valid notebooks, parseable code, badges, no secrets."""
import ast
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import build_notebooks  # noqa: E402

pytestmark = pytest.mark.unit

ALL_NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "colab").glob("*.ipynb"))
BADGE_URL = re.compile(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/([^)\s]+)")
TOKEN = re.compile(r"hf_[A-Za-z0-9]{20,}|(?i:token\s*=\s*['\"][^'\"]{8,})")


def strip_magics(source: str) -> str:
    """Drop IPython-only lines (%magic, !shell) so the rest must parse as Python."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_valid_clean_and_parseable(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
            ast.parse(strip_magics(cell.source))
    assert not TOKEN.search(path.read_text()), "a token-like string is committed"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_badge_points_at_this_file_of_this_repository(path):
    links = BADGE_URL.findall(path.read_text())
    assert links, "no Open in Colab badge"
    for repository, relative in links:
        assert repository == build_notebooks.repository()
        assert relative == str(path.relative_to(ROOT))


def test_readme_badges_point_at_existing_notebooks():
    links = BADGE_URL.findall((ROOT / "README.md").read_text())
    assert len(links) >= 7
    for repository, relative in links:
        assert repository == build_notebooks.repository() and (ROOT / relative).is_file(), relative


def test_end_to_end_notebook_is_in_sync_with_the_stages():
    built = build_notebooks.serialize(build_notebooks.build_end_to_end(
        sorted(build_notebooks.SOURCES.glob("[0-9][0-9]_*.py"))))
    assert (ROOT / "colab" / "whisper_lora_t4.ipynb").read_text() == built
    cells = json.loads(built)["cells"]
    parameters = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(parameters) == 1 and 'PRESET = "blog"' in "".join(parameters[0]["source"])
    stage_code = "".join("".join(c["source"]) for c in cells)
    for source in build_notebooks.SOURCES.glob("0*.py"):
        body = [c for c in build_notebooks.parse_cells(source.read_text())
                if c[0] == "code" and "parameters" not in c[2]]
        assert all(cell[1] in stage_code for cell in body), source.name


def test_colab_installs_only_what_the_runtime_lacks():
    lines = [line.split("#")[0].strip() for line in
             (ROOT / "colab" / "requirements-colab.txt").read_text().splitlines()]
    names = {re.split(r"[<>=]", line)[0] for line in lines if line}
    assert {"bitsandbytes", "jiwer"} <= names and "torch" not in names


def test_end_to_end_notebook_skips_prepared_stages_resumes_and_flushes_drive_once():
    """After a disconnect, Run all again: 01 and 02 skip what is on Drive for the same settings,
    04 resumes; Drive stays mounted between stages and is flushed once, at the end of 06."""
    cells = json.loads((ROOT / "colab" / "whisper_lora_t4.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    parameters = {}
    exec(code[1], {}, parameters)  # noqa: S102 - the committed parameters cell (literals)
    assert (parameters["PRESET"], parameters["RUN_NAME"]) == ("blog", None)
    assert parameters["SKIP_IF_DONE"] is True and parameters["RESUME"] == "auto"
    assert "keep_drive_mounted()" in code[2]
    stages = [cell for cell in code if "finish_stage(run, " in cell]
    assert [cell.split('finish_stage(run, "')[1][:2] for cell in stages] == ["01", "02", "03", "04", "05", "06"]
