"""`python -m helpers.evaluate`: transcribe a corpus split and score it.

Usage:
    python -m helpers.evaluate [--corpus PATH] [--split test] [--model SOURCE]
                               [--adapter DIR_OR_HUB_ID] [--precision P] [--max-clips N]
                               [--no-fallback] [--no-routing]

Prints one JSON object: {"n": clips, "wer", "cer" (normalized), "raw_wer", "raw_cer",
"loops", "insertions", "routing"}. An adapter trained on a multilingual base for one
language decodes only the clips the base identifies as that language, the others are
decoded by the base in their own (`helpers.transcribe.routing`); "routing" says what
happened: {"adapter_share", "languages": {code: clips}, "detect_seconds",
"settle_seconds"}, or null when nothing was routed (--no-routing, no adapter, an adapter
with no recorded language, an English-only model).
"""
from __future__ import annotations

import argparse
import json
import sys

from helpers.evaluate.scoring import load_test_clips, predict_routed, routing_summary, score
from helpers.files import EMBEDDED_CORPUS
from helpers.quiet import quiet_libraries
from helpers.transcribe.routing import load_routed


def main(argv: list[str] | None = None) -> int:
    """Evaluate a model (optionally with an adapter) on a corpus split; print JSON."""
    parser = argparse.ArgumentParser(prog="python -m helpers.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=str(EMBEDDED_CORPUS))
    parser.add_argument("--split", default="test")
    parser.add_argument("--model")
    parser.add_argument("--adapter", help="a LoRA adapter folder, or a Hub id USER/NAME[@REVISION]")
    parser.add_argument("--language")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--max-clips", type=int)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-fallback", action="store_true",
                        help="greedy decoding only (no temperature fallback against loops)")
    parser.add_argument("--no-routing", action="store_true",
                        help="apply the adapter to every clip (default: only to the clips the "
                             "base identifies as the adapter's language)")
    args = parser.parse_args(argv)
    quiet_libraries()
    try:
        model, processor, router = load_routed(args.model, args.adapter, args.language,
                                               args.precision, routing=not args.no_routing)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    clips, _ = load_test_clips(args.corpus, args.split, processor.tokenizer, args.max_clips)
    predictions, routes = predict_routed(model, processor, clips, router, args.batch_size,
                                         fallback=not args.no_fallback)
    routing = routing_summary(routes, router) if router.routing else None
    print(json.dumps({**score(clips, predictions), "routing": routing}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
