"""What the commands share: the usage error, model and backend arguments, target and source specs."""

from __future__ import annotations

import argparse

import numpy as np

SYNTHETIC_SOURCE_SIZE = 256
SYNTHETIC_SOURCE_FPS = 30.0


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


def open_engine(args: argparse.Namespace):
    """-> (StreamEngine, checkpoint path) for the model arguments; says on stderr which backend runs."""
    import sys

    from rt_dtgan.checkpoint import resolve_checkpoint
    from rt_dtgan.runtime.backends import open_backend
    from rt_dtgan.runtime.engine import StreamEngine

    checkpoint = resolve_checkpoint(args.checkpoint)
    backend, why = open_backend(args.backend, checkpoint, args.engines, args.threads, args.cuda_graphs)
    print(f"engine: {backend.describe()} ({why})", file=sys.stderr)
    return StreamEngine(backend), checkpoint


def load_target_spec(spec: str, config, name: str = "target", max_side: int | None = None):
    """'synthetic:SEED' or an image path -> a prepared face.Target aligned for ``config``, its
    longer side brought down to ``max_side`` when larger (None: kept)."""
    from rt_dtgan.face import load_target, prepare_target

    if spec.startswith("synthetic:"):
        from rt_dtgan.synth.dataset import parse_synthetic_spec, synthetic_target

        try:
            seed = parse_synthetic_spec(spec)
        except ValueError as error:
            raise UsageError(str(error)) from error
        image = synthetic_target(seed, SYNTHETIC_SOURCE_SIZE)
        return prepare_target(image, config, name=f"{name} {spec}", max_side=max_side)
    return load_target(spec, config, max_side=max_side)


def synthetic_source_factory(frames: int | None):
    """The media hook for 'synthetic:SEED' sources: a free-form synthetic face (talking,
    blinks, expressions, head motion), endless or ``frames`` long, 256 px at 30 fps."""

    def factory(argument: str, options):
        from rt_dtgan.media import GeneratedSource
        from rt_dtgan.synth.dataset import parse_synthetic_spec
        from rt_dtgan.synth.sequences import freeform_sequence

        seed = parse_synthetic_spec(f"synthetic:{argument}")
        rendered = freeform_sequence(seed, frames or 10**9, SYNTHETIC_SOURCE_SIZE)

        def render(index: int) -> np.ndarray:
            return next(rendered).image

        return GeneratedSource(
            render, options.fps or SYNTHETIC_SOURCE_FPS, frame_count=frames, pace=options.pace, description=f"synthetic:{argument}"
        )

    return factory
