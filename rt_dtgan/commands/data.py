"""`rt-dtgan data synth`: synthetic face-expression datasets on disk; `rt-dtgan data prepare`:
real face videos cropped and aligned once into a cached dataset."""

from __future__ import annotations

import argparse
import sys

from rt_dtgan.commands.common import UsageError, existing_folder, integer, output_folder


def add_parsers(commands) -> None:
    data = commands.add_parser(
        "data", help="make datasets (synthetic faces with ground-truth expressions, or prepared real face videos)"
    )
    tasks = data.add_subparsers(dest="task", required=True, metavar="TASK")
    synth = tasks.add_parser(
        "synth",
        help="render synthetic subjects: onsets of the six basic expressions, optional free-form clips",
        description="Writes DIR/manifest.json and DIR/<subject>/<sequence>.mp4 with per-frame labels "
        "in DIR/<subject>/<sequence>.json (docs/synth.md).",
    )
    synth.add_argument("--out", required=True, type=output_folder, help="dataset directory (must be empty unless --overwrite)")
    synth.add_argument("--identities", type=integer(1), required=True, help="number of subjects")
    synth.add_argument("--size", type=int, default=128, choices=(64, 128, 256))
    synth.add_argument("--seed", type=integer(0), default=0)
    synth.add_argument("--sequences", type=integer(0), default=6, help="onset sequences per subject")
    synth.add_argument(
        "--freeform-length", type=integer(0), default=0, help="frames of one free-form clip per subject (0: none)"
    )
    synth.add_argument("--lossy", action="store_true", help="ordinary H.264 instead of exact lossless RGB")
    synth.add_argument("--overwrite", action="store_true", help="replace same-named files in a non-empty --out")
    synth.set_defaults(handler=run_synth)
    prepare = tasks.add_parser(
        "prepare",
        help="crop and align real face videos once (MediaPipe, as live) into a cached dataset for training",
        description="Writes OUT/manifest.json and OUT/sequences/<id>.mkv (lossless aligned crops of the frames "
        "with a face); a rerun redoes only new or changed sequences (docs/prepare.md).",
    )
    prepare.add_argument("--source", required=True, type=existing_folder, help="folder of face videos or image-sequence folders")
    prepare.add_argument("--out", required=True, type=output_folder, help="output folder (created; reused as a cache by later runs)")
    prepare.add_argument(
        "--layout", choices=("auto", "folder", "ckplus", "oulu", "mug"), default="auto",
        help="how --source is organised (default: auto, detected from its folders)",
    )
    prepare.add_argument("--size", type=int, default=128, choices=(64, 128, 256), help="crop side in pixels")
    prepare.add_argument("--workers", type=integer(1), default=1, help="sequences tracked side by side, one process each")
    prepare.set_defaults(handler=run_prepare)


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


def run_prepare(args: argparse.Namespace) -> int:
    from rt_dtgan.prepare import PrepareError, prepare_dataset, read_manifest

    try:
        manifest_path = prepare_dataset(args.source, args.out, layout=args.layout, size=args.size, workers=args.workers)
    except PrepareError as error:
        raise UsageError(str(error)) from error
    manifest = read_manifest(manifest_path.parent)
    print(f"prepared: {len(manifest['sequences'])}, skipped: {len(manifest['skipped'])} (see {manifest_path})", file=sys.stderr)
    return 0
