"""`rt-dtgan visualize`: the paper's experiment 4, what the dynamics alone make G draw."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from rt_dtgan.commands.common import UsageError, checkpoint, integer, output, source


def add_parsers(commands) -> None:
    visualize = commands.add_parser(
        "visualize",
        help="draw the source's dynamics alone: G driven by z_d with a target of all zeros (experiment 4)",
        description="Writes a video of the aligned source face (left) beside G(0, F(z_d)) (right).",
    )
    visualize.add_argument("--source", required=True, type=source, help="video file, image folder or glob, or synthetic:SEED")
    visualize.add_argument("--out", required=True, type=output, help="output video (.mp4, .mkv, .mov, .y4m)")
    visualize.add_argument(
        "--checkpoint", type=checkpoint, default="paper", help="a model whose G draws the crop (default: the shipped paper model)"
    )
    visualize.add_argument("--frames", type=integer(1), help="stop after this many source frames")
    visualize.set_defaults(handler=run_visualize)


def run_visualize(args: argparse.Namespace) -> int:
    import torch

    from rt_dtgan.face import FaceTracker
    from rt_dtgan.media import open_sink, open_source
    from rt_dtgan.models.checkpoint import load_checkpoint, resolve_checkpoint
    from rt_dtgan.models.dynamics import start_dynamics, step_dynamics
    from rt_dtgan.pipeline import synthetic_source_factory
    from rt_dtgan.runtime.engine import to_image, to_tensor

    model = load_checkpoint(resolve_checkpoint(args.checkpoint))
    if model.config.warps or model.config.reads_mesh:
        raise UsageError(f"{args.checkpoint} reads the face mesh or warps the portrait; experiment 4 needs a G that draws crops")
    size = model.config.image_size
    blank = torch.zeros(1, 3, size, size)
    state, pair = None, np.zeros((size, 2 * size, 3), np.uint8)
    source = open_source(args.source, pace=False, synthetic_factory=synthetic_source_factory(args.frames))
    with source, FaceTracker(model.config.preprocess) as tracker, open_sink(args.out, 2 * size, size, source.fps) as sink:
        for count, frame in enumerate(source, start=1):
            tracked = tracker.track(frame.image, frame.pts_s)
            if tracked.found:
                crop = to_tensor(tracked.crop, size)
                with torch.inference_mode():
                    z_d, state = start_dynamics(model.encoder, crop) if state is None else step_dynamics(model.encoder, crop, state)
                    drawn = to_image(model.generate(blank, z_d))
                pair = np.concatenate([tracked.crop, drawn], axis=1)
            sink.write(frame.with_image(pair))
            if args.frames is not None and count >= args.frames:
                break
    print(f"wrote {args.out}: source face | G(0, F(z_d))", file=sys.stderr)
    return 0
