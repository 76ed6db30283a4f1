"""This process's resident memory (RSS): its peak, resetting the peak, and what it is made of.

Why not `resource.getrusage(...).ru_maxrss`: Linux carries a parent's resident size at fork
into the child's ru_maxrss and keeps it across exec, so a worker started by a process
holding 2 GB reports a peak of at least 2 GB whatever it does itself (measured here:
tests/test_process_memory.py). `VmHWM` in /proc/self/status is the high-water mark of this
process's own memory, and writing "5" to /proc/self/clear_refs resets it. Where /proc is
missing (macOS), ru_maxrss is the fallback (bytes there, KiB on Linux).
"""
from __future__ import annotations

import sys
from pathlib import Path

STATUS = Path("/proc/self/status")
_KIB_FIELDS = {"VmHWM:": "peak_rss_bytes", "RssAnon:": "rss_anon_bytes",
               "RssFile:": "rss_file_bytes"}


def _status() -> dict[str, int]:
    """The memory fields of /proc/self/status in bytes ({} where there is no /proc)."""
    try:
        lines = STATUS.read_text().splitlines()
    except OSError:
        return {}
    return {_KIB_FIELDS[parts[0]]: int(parts[1]) * 1024
            for parts in map(str.split, lines) if parts and parts[0] in _KIB_FIELDS}


def peak_rss_bytes() -> int:
    """This process's own peak resident memory, in bytes (since start or the last reset)."""
    status = _status()
    if "peak_rss_bytes" in status:
        return status["peak_rss_bytes"]
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss() -> bool:
    """Set the peak to the current RSS (Linux clear_refs); False where the system refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_parts() -> dict[str, int]:
    """Resident memory now: "rss_anon_bytes" (heap, tensors) and "rss_file_bytes" (mapped
    files: the libraries, and a checkpoint that from_pretrained memory-maps, whose pages stay
    mapped while any tensor loaded from it lives; the kernel can drop them under memory
    pressure). {} where /proc is missing."""
    status = _status()
    return {key: status[key] for key in ("rss_anon_bytes", "rss_file_bytes") if key in status}
