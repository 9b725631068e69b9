"""The `rt-dtgan` command. Arguments are parsed only inside ``main``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rt_dtgan import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rt-dtgan",
        description="Real-time Dynamics Transfer GAN: a face video drives the expressions of one portrait.",
    )
    parser.add_argument("--version", action="version", version=f"rt-dtgan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    doctor = commands.add_parser(
        "doctor",
        help="check the installation: packages, backends, and streaming-vs-offline dynamics",
        description="Report what is installed and which backends can run, then stream a random "
        "sequence through the dynamics encoder and compare with the offline computation.",
    )
    doctor.add_argument("--checkpoint", help="checkpoint to check (default: fresh random weights)")
    doctor.add_argument("--size", type=int, default=128, choices=(64, 128, 256), help="crop size for fresh weights")
    doctor.add_argument("--frames", type=int, default=300, help="length of the random test sequence")
    doctor.set_defaults(handler=run_doctor)

    export = commands.add_parser(
        "export",
        help="build inference engines from a checkpoint",
        description="Export the stream graphs (target, calibrate, step) of a checkpoint, with a "
        "meta.json tying them to it. ONNX graphs run in ONNX Runtime; TensorRT plans need an NVIDIA GPU.",
    )
    export.add_argument("--checkpoint", required=True, help="the .safetensors checkpoint to export")
    export.add_argument("--backend", choices=("onnx", "tensorrt"), default="onnx")
    export.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    export.add_argument("--size", type=int, choices=(64, 128, 256), help="crop size; must match the checkpoint")
    export.add_argument("--max-batch", type=int, default=32, help="most streams batched into one engine call")
    export.add_argument("--out", required=True, help="directory for the engines and meta.json")
    export.set_defaults(handler=run_export)

    info = commands.add_parser("info", help="print a checkpoint's config and parameter counts")
    info.add_argument("checkpoint", help="path to a .safetensors checkpoint")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(handler=run_info)
    return parser


def run_doctor(args: argparse.Namespace) -> int:
    from rt_dtgan.checkpoint import load_checkpoint
    from rt_dtgan.config import ModelConfig
    from rt_dtgan.doctor import environment_report, streaming_check
    from rt_dtgan.models import DynamicsTransferGAN

    if args.frames < 1:
        raise UsageError("--frames must be at least 1")
    for name, finding in environment_report():
        print(f"{name:>24}  {finding}")
    if args.checkpoint:
        model, origin = load_checkpoint(args.checkpoint), args.checkpoint
    else:
        model, origin = DynamicsTransferGAN(ModelConfig.for_size(args.size)), f"fresh random weights, {args.size} px"
    check = streaming_check(model, args.frames)
    verdict = "ok" if check.passed else "FAILED"
    print(
        f"{'streaming dynamics':>24}  {verdict}: {check.frames} frames ({origin}), max |streamed - offline| "
        f"= {check.max_abs_error:.2e} (|z_d| up to {check.dynamics_scale:.2e}), "
        f"encoder step {check.step_ms_median:.2f} ms median"
    )
    return 0 if check.passed else 1


def run_export(args: argparse.Namespace) -> int:
    from rt_dtgan.checkpoint import load_checkpoint
    from rt_dtgan.runtime.export import export_onnx
    from rt_dtgan.runtime.tensorrt_backend import export_tensorrt

    if args.backend == "onnx" and args.precision == "fp16":
        raise UsageError("ONNX graphs are exported in fp32; fp16 is a TensorRT build option (--backend tensorrt)")
    if args.max_batch < 1:
        raise UsageError("--max-batch must be at least 1")
    model = load_checkpoint(args.checkpoint)
    if args.size is not None and args.size != model.config.image_size:
        raise UsageError(f"--size {args.size} does not match the checkpoint's {model.config.image_size} px crops")
    print(f"exporting {args.checkpoint} ({model.config.image_size} px) to {args.out} ...", flush=True)
    if args.backend == "tensorrt":
        meta = export_tensorrt(model, args.out, args.checkpoint, precision=args.precision, max_batch=args.max_batch)
    else:
        meta = export_onnx(model, args.out, args.checkpoint, max_batch=args.max_batch)
    for name, graph in meta["graphs"].items():
        built = graph.get("plan", graph["onnx"])
        print(f"  {name:<10} {built}")
    print(f"  meta.json: {meta['backend']}, {meta['precision']}, batch up to {meta['max_batch']}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from rt_dtgan.checkpoint import load_checkpoint, read_config

    config, parts = read_config(args.checkpoint)
    model = load_checkpoint(args.checkpoint, required_parts=())
    counts = {part: sum(p.numel() for p in getattr(model, part).parameters()) for part in parts}
    if args.json:
        print(json.dumps({"config": config.to_dict(), "parts": parts, "parameters": counts}, indent=2))
        return 0
    print(f"checkpoint {args.checkpoint}: {config.image_size} px crops")
    for part, count in counts.items():
        print(f"  {part:<24} {count:>10,} parameters")
    return 0


class UsageError(ValueError):
    """A command-line value is invalid; printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    from rt_dtgan.checkpoint import CheckpointError
    from rt_dtgan.config import ConfigError
    from rt_dtgan.optional import MissingExtraError
    from rt_dtgan.runtime.export import EngineError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"rt-dtgan {args.command}: {error}", file=sys.stderr)
        return 2
    except (CheckpointError, ConfigError, EngineError, MissingExtraError) as error:
        print(f"rt-dtgan {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
