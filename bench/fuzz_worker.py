"""Hostile clients against one worker, then a real one: does the worker stay available?

    python bench/fuzz_worker.py --messages 10000 --connections 8 --json bench/results/fuzz-worker.json
    python bench/fuzz_worker.py --ray --json bench/results/fuzz-ray-edge.json   # the same against `serve --ray local`

The experiment is rt_dtgan.transport.fuzz (its docstring says what is sent and checked); this
script gives its arguments, prints and writes its figures. Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_json  # noqa: E402

from rt_dtgan.transport.fuzz import FuzzFailure, failures, fuzz_worker  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="hostile messages in all")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ray", action="store_true", help="fuzz the Ray edge (two replicas on a local Ray cluster)")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = fuzz_worker(args.messages, args.connections, args.seed, on_ray=args.ray)
    except FuzzFailure as error:
        print("FAILED:", error, file=sys.stderr)
        return 1
    real = result["real_client"]
    print(
        f"{result['messages']} hostile messages on {result['connections']} connections in {result['fuzz_s']:.1f} s; "
        f"replies {result['replies']}; then a real client served after {real['served_after_s'] * 1000:.0f} ms, "
        f"{real['frames_answered']}/{real['frames_sent']} frames answered; worker memory "
        f"{result['worker_rss_mib_before']:.0f} -> {result['worker_rss_mib_after']:.0f} MiB"
    )
    problems = failures(result)
    write_json(args.json, {"benchmark": "worker fuzz", "environment": environment(), **result, "failures": problems})
    for problem in problems:
        print("FAILED:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
