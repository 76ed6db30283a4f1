"""A screenshot of the web page after a transcription (docs/app.png, shown in the README),
taken by the browser test's headless Chromium (tests/browser/page.py).

    python scripts/app_screenshot.py [--adapter runs/demo/adapter] [--clip CLIP] [--out docs/app.png]

Needs what `make test-browser` needs: requirements-browser.txt and Debian's chromium and
chromium-driver. Serves `python -m helpers.app --adapter ADAPTER` on a free local port,
uploads the clip, presses Transcribe and saves the whole page once both transcripts are in.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from page import AppPage, chromium, serve_page  # noqa: E402

DEFAULT_CLIP = ROOT / "data" / "cv-mini" / "en" / "clips" / "common_voice_en_39721904.mp3"


def main(argv: list[str] | None = None) -> int:
    """Serve the page, transcribe the clip in it, save the screenshot; prints what it shows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default="runs/demo/adapter")
    parser.add_argument("--clip", default=str(DEFAULT_CLIP), help="a cv-mini test clip by default")
    parser.add_argument("--out", default=str(ROOT / "docs" / "app.png"))
    parser.add_argument("--width", type=int, default=1100, help="window width in pixels")
    args = parser.parse_args(argv)
    adapter = Path(args.adapter).resolve()
    if ROOT in adapter.parents:  # the page names it as `make app` would: runs/demo/adapter
        adapter = adapter.relative_to(ROOT)
    with serve_page(adapter) as url, chromium(width=args.width) as driver:
        page = AppPage(driver, url).open()
        page.upload(args.clip)
        page.wait_for_upload()
        shown = page.transcribe()
        if shown.message.startswith("⚠️"):
            print(f"error: the page says {shown.message!r}", file=sys.stderr)
            return 1
        print(shown)
        print("saved", page.screenshot(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
