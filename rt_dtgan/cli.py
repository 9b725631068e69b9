"""The `rt-dtgan` command. Arguments are parsed only inside ``main``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

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

    _add_train_parser(commands)

    evaluate = commands.add_parser(
        "eval",
        help="score a checkpoint on held-out synthetic identities (PSNR, SSIM, expression, ablation)",
        description="Each test pair: identity A's onset drives identity B; B rendered with A's "
        "expressions is the ground truth. Identities are never seen in training.",
    )
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--synthetic", action="store_true", required=True, help="evaluate on synthetic identities")
    evaluate.add_argument("--identities", type=int, default=60, help="number of test pairs (two identities each)")
    evaluate.add_argument("--length", type=int, default=16, help="frames per test sequence")
    evaluate.add_argument("--judge", help="expression recogniser trained apart from A (an encoder checkpoint)")
    evaluate.add_argument("--ablation", help="the same GAN trained with z_d = H (train gan --no-suppression)")
    evaluate.add_argument("--json", help="write the figures here")
    evaluate.set_defaults(handler=run_eval)

    info = commands.add_parser("info", help="print a checkpoint's config and parameter counts")
    info.add_argument("checkpoint", help="path to a .safetensors checkpoint")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(handler=run_info)
    return parser


def _add_train_parser(commands) -> None:
    train = commands.add_parser(
        "train",
        help="pretrain the encoder A, or train the GAN on the frozen A (synthetic data on the fly)",
        description="Training runs resume from --run-dir when it holds a run of the same config. "
        "Several processes: torchrun --nproc_per_node N -m rt_dtgan train ...",
    )
    phases = train.add_subparsers(dest="phase", required=True, metavar="PHASE")
    for phase, help_text in (("encoder", "pretrain A as an expression recogniser"), ("gan", "train F, G, Ds and Dd")):
        parser = phases.add_parser(phase, help=help_text)
        parser.add_argument("--run-dir", required=True, help="where the run's state, logs and checkpoint go")
        parser.add_argument("--size", type=int, default=128, choices=(64, 128, 256))
        parser.add_argument("--steps", type=int, default=2000)
        parser.add_argument("--batch-size", type=int, default=8, help="sequences per step and process")
        parser.add_argument("--min-length", type=int, default=8, help="shortest sequence (frames)")
        parser.add_argument("--max-length", type=int, default=16, help="longest sequence (frames)")
        parser.add_argument("--identities", type=int, default=5000, help="synthetic training identities")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--workers", type=int, default=1, help="data-rendering processes")
        parser.add_argument("--checkpoint-every", type=int, default=100)
        parser.add_argument("--image-every", type=int, default=250, help="TensorBoard pictures every N steps")
        parser.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs (extra: train)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        if phase == "encoder":
            parser.add_argument("--lr", type=float, default=1e-3)
            parser.add_argument("--control-weight", type=float, default=4.0)
        else:
            parser.add_argument("--encoder", required=True, help="encoder checkpoint from `train encoder`")
            parser.add_argument("--lr", type=float, default=2e-4, help="generator learning rate")
            parser.add_argument("--d-lr", type=float, default=2e-4, help="discriminator learning rate")
            parser.add_argument("--lambda-adversarial", type=float, default=1.0)
            parser.add_argument("--lambda-spatial", type=float, default=100.0)
            parser.add_argument("--lambda-dynamics", type=float, default=10.0)
            parser.add_argument("--no-suppression", action="store_true", help="drive G with H (the paper's ablation)")
        parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from rt_dtgan.train.config import EncoderTrainingConfig, GanTrainingConfig, RunConfig
    from rt_dtgan.train.data import SyntheticDataConfig
    from rt_dtgan.train.run import train_encoder, train_gan

    try:
        data = SyntheticDataConfig(
            size=args.size, batch_size=args.batch_size, min_length=args.min_length, max_length=args.max_length,
            identities=args.identities, seed=args.seed,
        )
        run = RunConfig(
            steps=args.steps, checkpoint_every=args.checkpoint_every, image_every=args.image_every, seed=args.seed,
            loader_workers=args.workers, data=data,
        )
        if args.phase == "encoder":
            config = EncoderTrainingConfig(run=run, learning_rate=args.lr, control_weight=args.control_weight)
        else:
            config = GanTrainingConfig(
                run=run, generator_learning_rate=args.lr, discriminator_learning_rate=args.d_lr,
                lambda_adversarial=args.lambda_adversarial, lambda_spatial=args.lambda_spatial,
                lambda_dynamics=args.lambda_dynamics, appearance_suppression=not args.no_suppression,
            )
    except ValueError as error:
        raise UsageError(str(error)) from error
    progress, tensorboard = not args.no_progress, args.tensorboard
    if args.phase == "encoder":
        checkpoint = train_encoder(config, args.run_dir, progress, tensorboard)
    else:
        checkpoint = train_gan(config, args.run_dir, args.encoder, progress, tensorboard)
    print(f"checkpoint: {checkpoint}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from rt_dtgan.checkpoint import load_checkpoint
    from rt_dtgan.train.evaluate import EvalConfig, evaluate

    try:
        config = EvalConfig(pairs=args.identities, length=args.length)
    except ValueError as error:
        raise UsageError(str(error)) from error
    model = load_checkpoint(args.checkpoint)
    judge = load_checkpoint(args.judge, required_parts=["encoder"]) if args.judge else None
    ablation = load_checkpoint(args.ablation) if args.ablation else None
    if ablation is not None and ablation.config.appearance_suppression:
        raise UsageError(f"{args.ablation} uses z_d = H - H_st; the ablation is a model trained with --no-suppression")
    figures = evaluate(model, config, judge, ablation) | {"checkpoint": args.checkpoint}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0


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
