"""`rt-dtgan train encoder|gan|geometry` and `rt-dtgan eval`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rt_dtgan.commands.common import (
    UsageError,
    checkpoint,
    checkpoint_or_none,
    existing_folder,
    integer,
    names,
    number,
    output_file,
    output_folder,
)
from rt_dtgan.config import HEAD_POSES, SENSOR_NOISES, SEQUENCE_KINDS

MAX_LENGTH = 60  # frames of a training or test sequence (the data's and the evaluation's bound)
INIT_PARTS = ("embedder", "generator")


def add_parsers(commands) -> None:
    train = commands.add_parser(
        "train",
        help="pretrain the encoder A, or train the GAN on the frozen A (synthetic data on the fly)",
        description="Training runs resume from --run-dir when it holds a run of the same config. "
        "Several processes: torchrun --nproc_per_node N -m rt_dtgan train ...",
    )
    phases = train.add_subparsers(dest="phase", required=True, metavar="PHASE")
    for phase, help_text in (("encoder", "pretrain A as an expression recogniser"), ("gan", "train F, G, Ds and Dd")):
        parser = phases.add_parser(phase, help=help_text)
        parser.add_argument("--run-dir", required=True, type=output_folder, help="where the run's state, logs and checkpoint go")
        parser.add_argument("--size", type=int, default=128, choices=(64, 128, 256), help="synthetic crop size (--data has its own)")
        parser.add_argument("--steps", type=integer(1), default=2000)
        parser.add_argument("--batch-size", type=integer(1), default=8, help="sequences per step and process")
        parser.add_argument("--min-length", type=integer(2, MAX_LENGTH), default=8, help="shortest sequence (frames)")
        parser.add_argument("--max-length", type=integer(2, MAX_LENGTH), default=16, help="longest sequence (frames)")
        parser.add_argument("--identities", type=integer(1), default=5000, help="synthetic training identities")
        parser.add_argument(
            "--data",
            type=existing_folder,
            help="a dataset made by `rt-dtgan data prepare` instead of synthetic faces (encoder: its sequences with a label "
            "or landmarks)",
        )
        parser.add_argument("--seed", type=integer(0), default=0)
        parser.add_argument("--workers", type=integer(0), default=1, help="data-rendering processes (0: in the training process)")
        parser.add_argument("--checkpoint-every", type=integer(1), default=100)
        parser.add_argument("--image-every", type=integer(1), default=250, help="TensorBoard pictures every N steps")
        parser.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs (extra: train)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        aligned = phase == "gan"
        parser.add_argument(
            "--sequences", choices=SEQUENCE_KINDS, default="onset",
            help="synthetic data: onset: neutral to apex; window: a neutral anchor then free-form motion, as the live stream's "
            "window sees it; mixed: both, alternating by step",
        )
        parser.add_argument(
            "--head-pose", choices=HEAD_POSES, default="aligned" if aligned else "drift",
            help="aligned: only yaw and pitch of the head drift, as eye-aligned live crops (default for gan)",
        )
        parser.add_argument(
            "--sensor-noise", choices=SENSOR_NOISES, default="per-sequence" if aligned else "per-frame",
            help="per-sequence: one noise pattern per sequence (default for gan)",
        )
        if phase == "encoder":
            parser.add_argument("--lr", type=number(0, above=True), default=1e-3)
            parser.add_argument("--control-weight", type=number(0), default=4.0)
            parser.add_argument(
                "--landmark-weight", type=number(0), default=10.0,
                help="weight of the landmark-motion target on prepared real video",
            )
            parser.add_argument("--init", type=checkpoint, help="start A from this checkpoint's encoder (fine-tuning)")
            parser.add_argument(
                "--lower-face-stretch", type=number(1, 2), default=1.0,
                help="stretch each synthetic sequence's face below the eyes by up to this factor (real faces are longer)",
            )
        else:
            parser.add_argument("--encoder", required=True, type=checkpoint, help="encoder checkpoint from `train encoder`")
            parser.add_argument("--lr", type=number(0, above=True), default=2e-4, help="generator learning rate")
            parser.add_argument("--d-lr", type=number(0, above=True), default=2e-4, help="discriminator learning rate")
            parser.add_argument("--lambda-adversarial", type=number(0), default=1.0)
            parser.add_argument("--lambda-spatial", type=number(0), default=100.0)
            parser.add_argument("--lambda-dynamics", type=number(0), default=10.0)
            parser.add_argument(
                "--lambda-motion", type=number(0), default=100.0,
                help="L1 over the pixels that move (not in the paper; 0 gives its eq. 7 exactly)",
            )
            parser.add_argument("--no-suppression", action="store_true", help="drive G with H (the paper's ablation)")
            parser.add_argument("--init", type=checkpoint, help="start F and G from this model checkpoint (fine-tuning)")
            parser.add_argument(
                "--init-parts", type=names(INIT_PARTS), default=INIT_PARTS,
                help="which parts --init gives: embedder, generator or both, comma-separated (default: both)",
            )
        parser.set_defaults(handler=run_train)
    add_geometry_parser(phases)

    evaluate = commands.add_parser(
        "eval",
        help="score a checkpoint on held-out synthetic identities (PSNR, SSIM, expression, ablation)",
        description="Each test pair: identity A's onset drives identity B; B rendered with A's "
        "expressions is the ground truth. Identities are never seen in training.",
    )
    evaluate.add_argument(
        "--checkpoint", type=checkpoint,
        help="the model to score: a .safetensors file or a shipped name (default: the shipped default model)",
    )
    evaluate.add_argument("--synthetic", action="store_true", required=True, help="evaluate on synthetic identities")
    evaluate.add_argument("--identities", type=integer(1), default=60, help="number of test pairs (two identities each)")
    evaluate.add_argument("--length", type=integer(2, MAX_LENGTH), default=16, help="frames per test sequence")
    evaluate.add_argument(
        "--judge", type=checkpoint_or_none,
        help="expression recogniser trained apart from A (an encoder checkpoint; default: the shipped judge; none: skip)",
    )
    evaluate.add_argument(
        "--ablation",
        type=checkpoint_or_none,
        help="the same recipe trained with z_d = H (--no-suppression; default: the shipped model's shipped ablation; none: skip)",
    )
    evaluate.add_argument("--head-pose", choices=HEAD_POSES, default="aligned", help="aligned: as eye-aligned live crops")
    evaluate.add_argument("--json", type=output_file, help="write the figures here")
    evaluate.set_defaults(handler=run_eval)


def add_geometry_parser(phases) -> None:
    geometry = phases.add_parser(
        "geometry",
        help="train the geometry model (A on the face mesh, G warping the portrait) on prepared real video",
        description="Stage 1 trains A and F on keypoint motion, stage 2 the refiner of G, stage 3 the refiner against a "
        "mouth discriminator (docs/geometry.md). "
        "Resumes from --run-dir when it holds a run of the same config; the checkpoint is RUN_DIR/model.safetensors.",
    )
    geometry.add_argument("--run-dir", required=True, type=output_folder, help="where the run's state, figures and checkpoint go")
    geometry.add_argument(
        "--data", action="append", required=True, type=existing_folder, help="a dataset made by `rt-dtgan data prepare` (repeatable)"
    )
    geometry.add_argument(
        "--hold-out", type=names(), default=(), help="comma-separated sequence ids kept out of training, for validation"
    )
    geometry.add_argument("--size", type=int, default=128, choices=(64, 128, 256), help="crop size (the data's own)")
    geometry.add_argument("--steps", type=integer(1), default=2000, help="stage 1 steps (keypoints)")
    geometry.add_argument("--refine-steps", type=integer(0), default=600, help="stage 2 steps (refiner)")
    geometry.add_argument(
        "--adversarial-steps", type=integer(0), default=0, help="stage 3 steps (refiner against a mouth discriminator)"
    )
    geometry.add_argument(
        "--adversarial-weight", type=number(0), default=0.05, help="stage 3: the discriminator's term against the L1"
    )
    geometry.add_argument("--no-suppression", action="store_true", help="F reads H, not z_d = H - H_st (the paper's ablation)")
    geometry.add_argument("--seed", type=integer(0), default=0)
    geometry.add_argument("--checkpoint-every", type=integer(1), default=250)
    geometry.add_argument("--no-progress", action="store_true", help="no progress bar")
    geometry.set_defaults(handler=run_train_geometry)


def run_train_geometry(args: argparse.Namespace) -> int:
    from rt_dtgan.prepare import PrepareError
    from rt_dtgan.train.geometry import GeometryTrainingConfig, train_geometry

    try:
        config = GeometryTrainingConfig(
            data=tuple(args.data),
            hold_out=tuple(args.hold_out),
            size=args.size,
            steps=args.steps,
            refine_steps=args.refine_steps,
            adversarial_steps=args.adversarial_steps,
            adversarial_weight=args.adversarial_weight,
            appearance_suppression=not args.no_suppression,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
        )
        trained = train_geometry(config, args.run_dir, progress=not args.no_progress)
    except (ValueError, PrepareError) as error:
        raise UsageError(str(error)) from error
    print(f"checkpoint: {trained}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from rt_dtgan.train.config import EncoderTrainingConfig, GanTrainingConfig, RunConfig
    from rt_dtgan.train.data import SyntheticDataConfig
    from rt_dtgan.train.prepared import PreparedDataConfig
    from rt_dtgan.train.run import train_encoder, train_gan

    try:
        if args.data:
            data = PreparedDataConfig(
                root=args.data,
                batch_size=args.batch_size,
                min_length=args.min_length,
                max_length=args.max_length,
                seed=args.seed,
                encoder_targets_only=args.phase == "encoder",
            )
        else:
            data = SyntheticDataConfig(
                size=args.size,
                batch_size=args.batch_size,
                min_length=args.min_length,
                max_length=args.max_length,
                identities=args.identities,
                seed=args.seed,
                head_pose=args.head_pose,
                sensor_noise=args.sensor_noise,
                lower_face_stretch=getattr(args, "lower_face_stretch", 1.0),
                sequences=args.sequences,
            )
        run = RunConfig(
            steps=args.steps,
            checkpoint_every=args.checkpoint_every,
            image_every=args.image_every,
            seed=args.seed,
            loader_workers=args.workers,
            data=data,
        )
        if args.phase == "encoder":
            config = EncoderTrainingConfig(
                run=run, learning_rate=args.lr, control_weight=args.control_weight, landmark_weight=args.landmark_weight
            )
        else:
            config = GanTrainingConfig(
                run=run,
                generator_learning_rate=args.lr,
                discriminator_learning_rate=args.d_lr,
                lambda_adversarial=args.lambda_adversarial,
                lambda_spatial=args.lambda_spatial,
                lambda_dynamics=args.lambda_dynamics,
                lambda_motion=args.lambda_motion,
                appearance_suppression=not args.no_suppression,
            )
    except ValueError as error:
        raise UsageError(str(error)) from error
    progress, tensorboard = not args.no_progress, args.tensorboard
    if args.phase == "encoder":
        try:
            trained = train_encoder(config, args.run_dir, progress, tensorboard, args.init)
        except ValueError as error:
            raise UsageError(str(error)) from error
    else:
        try:
            trained = train_gan(config, args.run_dir, args.encoder, progress, tensorboard, args.init, args.init_parts)
        except ValueError as error:
            raise UsageError(str(error)) from error
    print(f"checkpoint: {trained}")
    return 0


def referee_paths(checkpoint: str | None, judge: str | None, ablation: str | None) -> tuple[str | None, str | None]:
    """The judge and the ablation `eval` uses: the ones given ("none" for neither), else the
    shipped judge and, for a shipped model, its shipped ablation (None where there is none)."""
    from rt_dtgan.models.checkpoint import SHIPPED_ABLATIONS, SHIPPED_JUDGE, SHIPPED_MODELS

    shipped_name = "geometry" if checkpoint is None else checkpoint if checkpoint in SHIPPED_MODELS else None
    return _chosen(judge, SHIPPED_JUDGE), _chosen(ablation, SHIPPED_ABLATIONS.get(shipped_name))


def _chosen(given: str | None, shipped: Path | None) -> str | None:
    """``given`` ("none": None), else ``shipped`` where this install has it."""
    if given is not None:
        return None if given == "none" else given
    return str(shipped) if shipped is not None and shipped.is_file() else None


def _named(path: str | None) -> str | None:
    """A referee as the figures name it: a shipped one by its file name, another by its path."""
    from rt_dtgan.models.checkpoint import ASSETS

    if path is None or Path(path).parent != ASSETS:
        return path
    return f"shipped {Path(path).name}"


def run_eval(args: argparse.Namespace) -> int:
    from rt_dtgan.models.checkpoint import load_checkpoint, resolve_checkpoint
    from rt_dtgan.train.evaluate import EvalConfig, check_referees, evaluate

    try:
        config = EvalConfig(pairs=args.identities, length=args.length, head_pose=args.head_pose)
    except ValueError as error:
        raise UsageError(str(error)) from error
    model = load_checkpoint(resolve_checkpoint(args.checkpoint))
    judge_path, ablation_path = referee_paths(args.checkpoint, args.judge, args.ablation)
    judge = load_checkpoint(judge_path, required_parts=["encoder"]) if judge_path else None
    ablation = load_checkpoint(ablation_path) if ablation_path else None
    try:
        check_referees(model, judge, ablation)
    except ValueError as error:
        raise UsageError(str(error)) from error
    figures = evaluate(model, config, judge, ablation)
    figures |= {"checkpoint": args.checkpoint or "default", "judge": _named(judge_path), "ablation": _named(ablation_path)}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0
