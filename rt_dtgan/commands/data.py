"""`rt-dtgan data synth`: synthetic face-expression datasets on disk."""

from __future__ import annotations

import argparse
import sys

from rt_dtgan.commands.common import UsageError


def add_parsers(commands) -> None:
    data = commands.add_parser("data", help="make datasets (synthetic faces with ground-truth expressions)")
    tasks = data.add_subparsers(dest="task", required=True, metavar="TASK")
    synth = tasks.add_parser(
        "synth",
        help="render synthetic subjects: onsets of the six basic expressions, optional free-form clips",
        description="Writes DIR/manifest.json and DIR/<subject>/<sequence>.mp4 with per-frame labels "
        "in DIR/<subject>/<sequence>.json (docs/synth.md).",
    )
    synth.add_argument("--out", required=True, help="dataset directory (must be empty unless --overwrite)")
    synth.add_argument("--identities", type=int, required=True, help="number of subjects")
    synth.add_argument("--size", type=int, default=128, choices=(64, 128, 256))
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--sequences", type=int, default=6, help="onset sequences per subject")
    synth.add_argument("--freeform-length", type=int, default=0, help="frames of one free-form clip per subject (0: none)")
    synth.add_argument("--lossy", action="store_true", help="ordinary H.264 instead of exact lossless RGB")
    synth.add_argument("--overwrite", action="store_true", help="replace same-named files in a non-empty --out")
    synth.set_defaults(handler=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from rt_dtgan.synth.dataset import write_dataset

    try:
        root = write_dataset(
            args.out, args.identities, size=args.size, seed=args.seed, sequences_per_identity=args.sequences,
            freeform_length=args.freeform_length, overwrite=args.overwrite, lossless=not args.lossy,
        )
    except (ValueError, FileExistsError) as error:
        raise UsageError(str(error)) from error
    print(f"dataset written to {root}", file=sys.stderr)
    return 0
