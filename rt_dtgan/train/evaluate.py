"""Objective evaluation on synthetic identities never seen in training.

Each test pair takes two held-out identities A and B and one onset of a basic expression:
A's video drives B's neutral face, and B rendered with A's expression and pose track is
the ground truth of the transfer. Measured (means over pairs, frames 1..T-1):

- self_psnr, self_ssim: A's own video reconstructed from A's first frame;
- transfer_psnr, transfer_ssim: B driven by A, against B's ground truth;
- static_baseline_psnr, static_baseline_ssim: the do-nothing output (B's neutral face);
- dynamic_region_psnr, static_baseline_dynamic_region_psnr: PSNR over the pixels where
  the ground truth moves away from B's neutral face (a channel more than 0.1 from it
  on the [-1, 1] scale, ``losses.moving_mask``);
- temporal_error: mean |(out_t - out_{t-1}) - (gt_t - gt_{t-1})|, on [0, 1] pixels;
- expression_accuracy: the judge (an encoder trained apart from A) names the expression
  of the generated transfer's last frame; judge_accuracy_on_ground_truth beside it;
- ablation_win_rate: share of pairs where z_d = H - H_st gives a higher transfer SSIM than
  the ablation model driven by H (the paper's experiment 3);
- z_d_identity_gap, h_identity_gap: how far apart A's encodings of A's video and of B
  rendered with the same track are (mean |a - b| over frames 1..T-1), for z_d and for H,
  both over the mean |z_d| of A's video (the size of the motion itself): what appearance
  suppression removes of the driver's face.

A model whose A reads the face mesh gets the meshes MediaPipe reads on the renders (the
live tracker, video mode; a frame without a face repeats the last mesh), and a warping G
the target's own mesh.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from rt_dtgan.config import EXPRESSION_CLASSES, HEAD_POSES
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.models.dynamics import sequence_dynamics
from rt_dtgan.runtime.pixels import to_images
from rt_dtgan.synth import BASIC_EXPRESSIONS, Identity, render
from rt_dtgan.synth.sequences import onset_track
from rt_dtgan.train.data import EVAL_IDENTITY_OFFSET, align_pose, to_video_tensor
from rt_dtgan.train.losses import moving_mask
from rt_dtgan.train.metrics import psnr, ssim


@dataclass(frozen=True)
class EvalConfig:
    """``head_pose`` "aligned" scores what the live path feeds the model (eye-aligned crops:
    the onsets' yaw and pitch kept, roll, scale and shift removed); "drift" keeps all of it."""

    pairs: int = 60
    length: int = 16
    seed: int = 0
    head_pose: str = "aligned"

    def __post_init__(self) -> None:
        if self.pairs < 1 or not 2 <= self.length <= 60:
            raise ValueError(f"need at least one pair and 2 <= length <= 60, got {self.pairs}, {self.length}")
        if self.head_pose not in HEAD_POSES:
            raise ValueError(f"head_pose must be one of {HEAD_POSES}, got {self.head_pose!r}")


@dataclass(frozen=True)
class EvalPair:
    """source (1, T, 3, S, S) A's video; truth (1, T, 3, S, S) B with A's track; label index;
    for mesh-reading models, both videos' meshes (1, T, MESH_POINTS, 2) in eye units."""

    source: Tensor
    truth: Tensor
    label: int
    source_mesh: Tensor | None = None
    truth_mesh: Tensor | None = None


def face_meshes(video: Tensor, kind: str = "mesh") -> Tensor:
    """video (1, T, 3, S, S) in [-1, 1] -> (1, T, MESH_POINTS, 2): the live tracker's meshes
    of ``kind`` ("mesh", frontal, what A reads; "crop_mesh", in the crop, what G warps), a
    frame without a face repeating the last one (the first found, before any)."""
    from rt_dtgan.config import PreprocessConfig
    from rt_dtgan.face import FaceTracker

    images = to_images(video[0])
    with FaceTracker(PreprocessConfig(size=video.shape[-1])) as tracker:
        meshes = [getattr(tracker.track(image, index / 30.0), kind) for index, image in enumerate(images)]
    found = [mesh for mesh in meshes if mesh is not None]
    if not found:
        raise ValueError("MediaPipe found no face in a synthetic evaluation video")
    filled, last = [], found[0]
    for mesh in meshes:
        last = mesh if mesh is not None else last
        filled.append(last)
    return torch.from_numpy(np.stack(filled)).unsqueeze(0)


def target_mesh_of(video: Tensor, reads_mesh: bool) -> Tensor | None:
    """The mesh G warps of a video's first frame (1, MESH_POINTS, 2), for a mesh-reading model; else None."""
    return face_meshes(video[:, :1], "crop_mesh")[:, 0] if reads_mesh else None


def identity_gaps(model: DynamicsTransferGAN, pair: EvalPair) -> dict[str, float]:
    """The same expression track on two faces: how far apart A encodes them, for z_d and H."""
    source = pair.source if pair.source_mesh is None else pair.source_mesh
    truth = pair.truth if pair.truth_mesh is None else pair.truth_mesh
    motion = sequence_dynamics(model.encoder, source)[0, 1:].norm(dim=-1).mean().clamp_min(1e-9)
    gaps = {}
    for name, suppression in (("z_d", True), ("h", False)):
        a, b = (sequence_dynamics(model.encoder, video, suppression)[0, 1:] for video in (source, truth))
        gaps[f"{name}_identity_gap"] = float((a - b).norm(dim=-1).mean() / motion)
    return gaps


def evaluation_pairs(config: EvalConfig, size: int) -> Iterator[EvalPair]:
    """Deterministic test pairs on identities from EVAL_IDENTITY_OFFSET on (never trained on)."""
    for index in range(config.pairs):
        rng = np.random.default_rng([config.seed, index, 0xE7A1])
        expression = BASIC_EXPRESSIONS[index % len(BASIC_EXPRESSIONS)]
        onset_length = int(rng.integers(max(10, config.length), 61))
        track = onset_track(expression, onset_length, int(rng.integers(2**31)))
        frames = [track[i] for i in np.round(np.linspace(0, onset_length - 1, config.length)).astype(int)]
        if config.head_pose == "aligned":
            frames = [align_pose(frame) for frame in frames]
        source, truth = (
            _render_video(Identity.from_seed(EVAL_IDENTITY_OFFSET + 2 * index + offset), frames, size) for offset in (0, 1)
        )
        yield EvalPair(source, truth, EXPRESSION_CLASSES.index(expression))


def _render_video(identity: Identity, frames: list, size: int) -> Tensor:
    """identity rendered through frames (FrameSpec) -> (1, T, 3, S, S) in [-1, 1]."""
    images = np.stack([render(identity, f.expression, f.pose, size, f.noise_seed) for f in frames])
    return to_video_tensor(images).unsqueeze(0)


def evaluate(
    model: DynamicsTransferGAN,
    config: EvalConfig,
    judge: DynamicsTransferGAN | None = None,
    ablation: DynamicsTransferGAN | None = None,
    progress: bool = True,
) -> dict[str, float | int | None]:
    """The figures above as a dict (ablation_win_rate None without an ablation model,
    expression_accuracy None without a judge). Raises ValueError for a judge or an ablation
    that cannot score ``model``."""
    check_referees(model, judge, ablation)
    rows = []
    pairs = evaluation_pairs(config, model.config.image_size)
    for pair in tqdm(pairs, total=config.pairs, desc="eval", disable=not progress, unit="pair"):
        rows.append(_score_pair(model, pair, judge, ablation))
    summary = {key: float(np.nanmean([row[key] for row in rows])) for key in rows[0] if rows[0][key] is not None}
    summary.setdefault("expression_accuracy", None)
    summary.setdefault("judge_accuracy_on_ground_truth", None)
    summary["ablation_win_rate"] = summary.pop("ablation_win", None)
    summary |= {
        "pairs": config.pairs, "length": config.length, "head_pose": config.head_pose, "identity_offset": EVAL_IDENTITY_OFFSET
    }
    return summary


def check_referees(model: DynamicsTransferGAN, judge: DynamicsTransferGAN | None, ablation: DynamicsTransferGAN | None) -> None:
    """The judge must read crops of the model's size; the ablation must be the model's kind
    (what A reads, how G draws, the size) driven by H."""
    size = model.config.image_size
    if judge is not None and (judge.config.reads_mesh or judge.config.image_size != size):
        raise ValueError(f"the judge must read {size} px crops (an rgb encoder of that size)")
    if ablation is None:
        return
    if ablation.config.appearance_suppression:
        raise ValueError("the ablation uses z_d = H - H_st; it is a model trained with --no-suppression")
    ours, theirs = model.config, ablation.config
    if (theirs.reads_mesh, theirs.generator.kind, theirs.image_size) != (ours.reads_mesh, ours.generator.kind, size):
        raise ValueError(
            f"the ablation is another kind of model ({theirs.encoder.input} A, {theirs.generator.kind} G, {theirs.image_size} px) "
            f"than the one scored ({ours.encoder.input} A, {ours.generator.kind} G, {size} px)"
        )


@torch.no_grad()
def _score_pair(model, pair: EvalPair, judge, ablation) -> dict[str, float | None]:
    truth, source = pair.truth[0], pair.source[0]
    neutral = truth[:1].expand_as(truth)
    if model.config.reads_mesh:
        pair = EvalPair(pair.source, pair.truth, pair.label, face_meshes(pair.source), face_meshes(pair.truth))
    truth_target, source_target = (target_mesh_of(video, model.config.reads_mesh) for video in (pair.truth, pair.source))
    transfer = drive(model, pair.truth[:, 0], pair.source, pair.source_mesh, truth_target)[0]
    own = drive(model, pair.source[:, 0], pair.source, pair.source_mesh, source_target)[0]
    moving = moving_mask(truth, neutral)[1:]
    row = {
        "self_psnr": psnr(own[1:], source[1:]),
        "self_ssim": ssim(own[1:], source[1:]).mean().item(),
        "transfer_psnr": psnr(transfer[1:], truth[1:]),
        "transfer_ssim": ssim(transfer[1:], truth[1:]).mean().item(),
        "static_baseline_psnr": psnr(neutral[1:], truth[1:]),
        "static_baseline_ssim": ssim(neutral[1:], truth[1:]).mean().item(),
        "dynamic_region_psnr": psnr(transfer[1:], truth[1:], moving),
        "static_baseline_dynamic_region_psnr": psnr(neutral[1:], truth[1:], moving),
        "temporal_error": ((transfer.diff(dim=0) - truth.diff(dim=0)).abs() / 2).mean().item(),
        "expression_accuracy": None,
        "judge_accuracy_on_ground_truth": None,
        "ablation_win": None,
    } | identity_gaps(model, pair)
    if judge is not None:
        row["expression_accuracy"] = float(judge_label(judge, transfer.unsqueeze(0)) == pair.label)
        row["judge_accuracy_on_ground_truth"] = float(judge_label(judge, pair.truth) == pair.label)
    if ablation is not None:
        baseline = drive(ablation, pair.truth[:, 0], pair.source, pair.source_mesh, truth_target)[0]
        row["ablation_win"] = float(ssim(transfer[1:], truth[1:]).mean() > ssim(baseline[1:], truth[1:]).mean())
    return row


def drive(
    model: DynamicsTransferGAN,
    target: Tensor,
    source: Tensor,
    source_mesh: Tensor | None = None,
    target_mesh: Tensor | None = None,
) -> Tensor:
    """target (B, 3, S, S), source video (B, T, 3, S, S) -> generated video (B, T, 3, S, S),
    driven by z_d (or by H for an ablation model). A mesh-reading A reads ``source_mesh``
    (B, T, MESH_POINTS, 2); a warping G moves ``target_mesh`` (B, MESH_POINTS, 2)."""
    driving = source_mesh if model.config.reads_mesh else source
    dynamics = sequence_dynamics(model.encoder, driving, model.config.appearance_suppression)
    return model.generate_video(target, dynamics, target_mesh)


def judge_label(judge: DynamicsTransferGAN, video: Tensor) -> int:
    """The judge's expression label index for the last frame of video (1, T, 3, S, S)."""
    return int(judge.encoder.classify(judge.encoder(video))[0, -1].argmax())
