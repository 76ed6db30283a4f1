"""helpers.footprint.process_memory: a worker's peak RSS is its own, resettable, and split anon/file."""
import pytest
import subprocess
import sys
from pathlib import Path

from helpers.footprint.process_memory import peak_rss_bytes, reset_peak_rss, rss_parts

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
MIB = 2**20
CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from helpers.footprint.process_memory import peak_rss_bytes; print(peak_rss_bytes())")


def test_a_child_of_a_big_process_reports_its_own_peak():
    """ru_maxrss would report at least the parent's 400 MiB here (Linux copies it at fork)."""
    held = bytearray(400 * MIB)   # bytearray() writes zeros: every page is resident
    child = subprocess.run([sys.executable, "-c", CHILD, str(REPO)], capture_output=True,
                           text=True, check=True)
    assert len(held) == 400 * MIB
    assert int(child.stdout) < 150 * MIB, child.stdout


def test_reset_forgets_a_freed_allocation():
    block = bytearray(300 * MIB)   # large: malloc maps it apart and gives it back on free
    with_block = peak_rss_bytes()
    del block
    assert reset_peak_rss()
    assert peak_rss_bytes() < with_block - 250 * MIB


def test_parts_add_up_to_the_resident_size():
    parts = rss_parts()
    assert set(parts) == {"rss_anon_bytes", "rss_file_bytes"}
    assert parts["rss_anon_bytes"] > 0 and parts["rss_file_bytes"] > 0
    assert peak_rss_bytes() >= sum(parts.values()) - 16 * MIB   # RssShmem is the remainder
