"""The test setup itself: under `make test`'s `-n 2 --dist loadgroup` the tests of one file
(and those sharing a session run) stay on one worker, so a module or session fixture is made
once. pytest 9.2 stores node ids where pytest-xdist 3.8 cannot add the group to them: each
test then went to any worker and the smoke run was made on both (requirements-dev.txt pins
pytest 9.1.1); this test fails if a version change breaks the grouping again."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parent


def test_loadgroup_keeps_each_file_on_one_worker(tmp_path):
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    for name in ("alpha", "beta"):
        body = "".join(f"def test_{i}():\n    pass\n\n" for i in range(6))
        (tmp_path / f"test_{name}.py").write_text(
            f"import pytest\n\npytestmark = pytest.mark.unit\n\n{body}")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v",
                           "-n", "2", "--dist", "loadgroup", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    ran = re.findall(r"\[(gw\d)\].*PASSED \S*?(test_\w+)\.py", done.stdout)
    assert len(ran) == 12, done.stdout[-2000:]
    workers = {name: {worker for worker, file in ran if file == name} for _, name in ran}
    assert all(len(on) == 1 for on in workers.values()), workers
