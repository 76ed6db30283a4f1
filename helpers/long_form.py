"""`python -m helpers.long_form build OUT_DIR [--corpus DIR] [--split test] [--count N]
[--min-seconds S] [--max-seconds S] [--seed N]`: write a long-form test set
(`helpers.data.long_form`) and print its manifest, one JSON line per recording.
"""
from __future__ import annotations

import argparse
import json
import sys

from helpers.data.long_form import build_long_form_set


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """`python -m helpers.long_form build OUT_DIR ...`: write a long-form set, print it."""
    from helpers.files import EMBEDDED_CORPUS

    parser = argparse.ArgumentParser(prog="python -m helpers.long_form",
                                     description="Build a long-form test set from a corpus split.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="join a split's clips into long recordings")
    build.add_argument("out_dir")
    build.add_argument("--corpus", default=str(EMBEDDED_CORPUS))
    build.add_argument("--split", default="test")
    build.add_argument("--count", type=int, default=3)
    build.add_argument("--min-seconds", type=float, default=60)
    build.add_argument("--max-seconds", type=float, default=180)
    build.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    recordings = build_long_form_set(args.corpus, args.split, args.out_dir, args.count,
                                     args.min_seconds, args.max_seconds, args.seed)
    for recording in recordings:
        print(json.dumps({k: recording[k] for k in ("path", "duration", "text")}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
