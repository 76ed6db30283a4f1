"""`python -m helpers.data summary PATH [--split NAME]`: how many rows of a corpus split the
filter keeps. Prints one JSON object {"rows": N, "kept": N, "dropped": {reason: N}} on
stdout; progress and logs go to stderr.
"""

import argparse
import contextlib
import json
import logging
import sys

from helpers.data.corpora import load_corpus
from helpers.data.filter import filter_corpus


# -------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    """Command-line arguments of `python -m helpers.data`."""
    parser = argparse.ArgumentParser(prog="python -m helpers.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="count rows kept and dropped (JSON)")
    summary.add_argument("path", help="Common Voice locale folder, audio folder/CSV, Hub id")
    summary.add_argument("--split", default="train", help="split to read (default train)")
    summary.add_argument("--locale", default=None, help="locale, when PATH is a CV release root")
    summary.add_argument("--model", default="embedded", help="model source for the tokenizer")
    summary.add_argument("--language", default=None, help="language prefix (multilingual)")
    summary.add_argument("--max-seconds", type=float, default=30.0)
    summary.add_argument("--max-label-tokens", type=int, default=448)
    summary.add_argument("--verbose", action="store_true", help="list dropped rows on stderr")
    return parser


def summary(args: argparse.Namespace) -> dict:
    """Load the corpus, filter it and return {"rows", "kept", "dropped"}."""
    from helpers.model.load import load_processor

    dataset = load_corpus(args.path, args.split, locale=args.locale)
    tokenizer = load_processor(args.model, language=args.language).tokenizer
    _, report = filter_corpus(dataset, tokenizer, args.max_seconds, args.max_label_tokens,
                              name=f"{args.path} ({args.split})")
    for item in report["dropped_rows"] if args.verbose else []:
        print("row {row} dropped ({reason}): {detail}".format(**item), file=sys.stderr)
    return {key: report[key] for key in ("rows", "kept", "dropped")}


def main(argv=None) -> int:
    """Entry point: print the summary JSON on stdout (everything else on stderr)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = summary(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
