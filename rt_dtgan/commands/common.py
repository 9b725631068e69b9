"""What the commands share: the usage error, the model and backend arguments, checking specs."""

from __future__ import annotations

import argparse


class UsageError(ValueError):
    """A command-line value is invalid; printed as one line, exit status 2."""


def add_model_arguments(parser: argparse.ArgumentParser, threads: int | None = 1) -> None:
    """--checkpoint, --backend, --engines, --threads. The stream commands default to one
    engine thread: the face tracker needs the other cores, and CPU threads that wait on each
    other stall (measured: engine step 8 ms with one thread beside MediaPipe, 240 ms with two)."""
    from rt_dtgan.runtime.backends import BACKEND_CHOICES

    parser.add_argument(
        "--checkpoint",
        help="model checkpoint file, or a model shipped with rt-dtgan: geometry (the default: the face mesh drives a warp "
        "of the portrait) or paper (the paper's pixel model, trained on synthetic faces)",
    )
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help="engine backend (default: auto)")
    parser.add_argument("--engines", help="directory of engines made by `rt-dtgan export` for this checkpoint")
    parser.add_argument(
        "--threads", type=int, default=threads, help=f"CPU threads for the engine (default: {threads or 'all cores'})"
    )
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="torch backend on a CUDA GPU: replay recorded CUDA graphs"
    )


def engine_from_arguments(args: argparse.Namespace):
    """-> (StreamEngine, checkpoint path) for the model arguments; says on stderr which backend runs."""
    import sys

    from rt_dtgan.runtime.engine import open_engine

    engine, checkpoint, why = open_engine(args.checkpoint, args.backend, args.engines, args.threads, args.cuda_graphs)
    print(f"engine: {engine.backend.describe()} ({why})", file=sys.stderr)
    return engine, checkpoint


def check_synthetic_spec(spec: str) -> None:
    """A malformed 'synthetic:SEED' is a usage error (a path is checked when it is opened)."""
    from rt_dtgan.synth.dataset import SYNTHETIC_PREFIX, parse_synthetic_spec

    if spec.startswith(SYNTHETIC_PREFIX):
        try:
            parse_synthetic_spec(spec)
        except ValueError as error:
            raise UsageError(str(error)) from error
