"""`rt-dtgan doctor` and `rt-dtgan info`."""

from __future__ import annotations

import argparse
import json

from rt_dtgan.commands.common import checkpoint, integer


def add_parsers(commands) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check the installation: packages, backends, and streaming-vs-offline dynamics",
        description="Report what is installed and which backends can run, then stream a random "
        "sequence through the dynamics encoder and compare with the offline computation.",
    )
    doctor.add_argument(
        "--checkpoint", type=checkpoint, help="checkpoint file or shipped model name to check (default: fresh random weights)"
    )
    doctor.add_argument("--size", type=int, default=128, choices=(64, 128, 256), help="crop size for fresh weights")
    doctor.add_argument("--frames", type=integer(1), default=300, help="length of the random test sequence")
    doctor.set_defaults(handler=run_doctor)

    info = commands.add_parser("info", help="print a checkpoint's config and parameter counts")
    info.add_argument("checkpoint", type=checkpoint, help="path to a .safetensors checkpoint, or a shipped model name (geometry, paper)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(handler=run_info)


def run_doctor(args: argparse.Namespace) -> int:
    from rt_dtgan.config import ModelConfig
    from rt_dtgan.models import DynamicsTransferGAN
    from rt_dtgan.models.checkpoint import load_checkpoint, resolve_checkpoint
    from rt_dtgan.runtime.doctor import environment_report, streaming_check

    for name, finding in environment_report():
        print(f"{name:>24}  {finding}")
    if args.checkpoint:
        model, origin = load_checkpoint(resolve_checkpoint(args.checkpoint)), args.checkpoint
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


def run_info(args: argparse.Namespace) -> int:
    from rt_dtgan.models.checkpoint import load_checkpoint, read_config, resolve_checkpoint

    path = resolve_checkpoint(args.checkpoint)
    config, parts = read_config(path)
    model = load_checkpoint(path, required_parts=())
    counts = {part: sum(p.numel() for p in getattr(model, part).parameters()) for part in parts}
    if args.json:
        print(json.dumps({"config": config.to_dict(), "parts": parts, "parameters": counts}, indent=2))
        return 0
    print(f"checkpoint {args.checkpoint}: {config.image_size} px crops")
    for part, count in counts.items():
        print(f"  {part:<24} {count:>10,} parameters")
    return 0
