"""Training batches of expression sequences, rendered on the fly from synthetic faces.

A batch is a pure function of (data seed, step, rank): resuming at a step or adding a
process gives the same data as an uninterrupted run would. Every sequence starts at the
neutral face (frame 0 is the target x and the anchor y0 during training) and ends at the
apex of one basic expression, subsampled from an onset of 10 to 60 frames.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset

from rt_dtgan.config import EXPRESSION_CLASSES, HEAD_POSES, SENSOR_NOISES, SEQUENCE_KINDS, SUPPORTED_SIZES
from rt_dtgan.face.landmarks import MOTION_POINTS
from rt_dtgan.synth import BASIC_EXPRESSIONS, Expression, Identity, Pose, render
from rt_dtgan.synth.geometry import FaceGeometry
from rt_dtgan.synth.sequences import FrameSpec, freeform_track, onset_track

# Held-out identities for evaluation start here; training draws seeds below it.
EVAL_IDENTITY_OFFSET = 1_000_000
# A frame is labelled with its sequence's expression once this share of the apex is reached.
LABEL_INTENSITY = 0.35
# A window starts up to this many frames (10 s) into its free-form track.
WINDOW_STARTS = 300


@dataclass(frozen=True)
class SequenceBatch:
    """video (B, T, 3, S, S) float in [-1, 1], frame 0 neutral; frame_labels (B, T) int64
    indices into EXPRESSION_CLASSES; expressions (B, T, C) float ground-truth controls in
    [0, 1]; identity_seeds (B,) int64; landmark_motion (B, T, K, 2) float, the motion of
    MOTION_POINTS from frame 0 in inter-ocular distances (NaN where unknown)."""

    video: Tensor
    frame_labels: Tensor
    expressions: Tensor
    identity_seeds: Tensor
    landmark_motion: Tensor

    @property
    def sequence_labels(self) -> Tensor:
        """(B,) the label of each sequence's last (apex) frame."""
        return self.frame_labels[:, -1]

    def to(self, device: torch.device) -> SequenceBatch:
        return SequenceBatch(*(getattr(self, field.name).to(device) for field in dataclasses.fields(self)))


@dataclass(frozen=True)
class SyntheticDataConfig:
    """What to render: ``batch_size`` sequences of one length drawn in [min_length,
    max_length] per batch, identities drawn from seeds [identity_offset, identity_offset + identities).

    ``head_pose`` "drift" keeps the onsets' slow head drift; "aligned" keeps only its yaw and
    pitch, as the live path's eye alignment leaves them. ``sensor_noise`` "per-sequence"
    draws one noise pattern per sequence, so that a frame differs from the neutral first
    frame only where the face moves (the L1 of eq. 5 then carries no noise gradient)."""

    size: int = 128
    batch_size: int = 8
    min_length: int = 8
    max_length: int = 16
    identities: int = 5000
    identity_offset: int = 0
    seed: int = 0
    augment: bool = True
    head_pose: str = "drift"
    sensor_noise: str = "per-frame"
    lower_face_stretch: float = 1.0
    sequences: str = "onset"

    def __post_init__(self) -> None:
        if self.head_pose not in HEAD_POSES or self.sensor_noise not in SENSOR_NOISES:
            raise ValueError(f"head_pose must be one of {HEAD_POSES} and sensor_noise one of {SENSOR_NOISES}")
        if self.sequences not in SEQUENCE_KINDS:
            raise ValueError(f"sequences must be one of {SEQUENCE_KINDS}, got {self.sequences!r}")
        if self.size not in SUPPORTED_SIZES:
            raise ValueError(f"size must be one of {SUPPORTED_SIZES}, got {self.size}")
        if not 2 <= self.min_length <= self.max_length <= 60:
            raise ValueError(f"need 2 <= min_length <= max_length <= 60, got {self.min_length}, {self.max_length}")
        if self.batch_size < 1 or self.identities < 1:
            raise ValueError("batch_size and identities must be positive")
        if not 1.0 <= self.lower_face_stretch <= 2.0:
            raise ValueError(f"lower_face_stretch must be in [1, 2], got {self.lower_face_stretch}")

    def batch(self, step: int, rank: int = 0) -> SequenceBatch:
        return synthetic_batch(self, step, rank)


def synthetic_batch(config: SyntheticDataConfig, step: int, rank: int = 0) -> SequenceBatch:
    """The batch for ``step`` on process ``rank``."""
    rng = np.random.default_rng([config.seed, step, rank])
    length = int(rng.integers(config.min_length, config.max_length + 1))
    windows = config.sequences == "window" or (config.sequences == "mixed" and step % 2 == 1)
    videos, labels, expressions, seeds = [], [], [], []
    for _ in range(config.batch_size):
        identity_seed = config.identity_offset + int(rng.integers(config.identities))
        if windows:
            video, frame_labels, vectors = render_window(identity_seed, length, rng, config)
        else:
            expression = BASIC_EXPRESSIONS[int(rng.integers(len(BASIC_EXPRESSIONS)))]
            video, frame_labels, vectors = render_onset(identity_seed, expression, length, rng, config)
        videos.append(video)
        labels.append(frame_labels)
        expressions.append(vectors)
        seeds.append(identity_seed)
    video = to_video_tensor(np.stack(videos))
    if config.lower_face_stretch > 1.0:
        factors = rng.uniform(1.0, config.lower_face_stretch, size=config.batch_size)
        eye_lines = [FaceGeometry.of(Identity.from_seed(int(seed))).eye_y for seed in seeds]
        video = stretch_lower_face(video, torch.tensor(factors, dtype=torch.float32), torch.tensor(eye_lines, dtype=torch.float32))
    if config.augment:
        video = augment_appearance(video, torch.Generator().manual_seed(int(rng.integers(2**62))))
    batch, length = video.shape[:2]
    unknown_motion = torch.full((batch, length, len(MOTION_POINTS), 2), float("nan"))
    return SequenceBatch(
        video, torch.from_numpy(np.stack(labels)), torch.from_numpy(np.stack(expressions)), torch.tensor(seeds), unknown_motion
    )


def render_onset(
    identity_seed: int, expression: str, length: int, rng: np.random.Generator, config: SyntheticDataConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One onset neutral -> apex of ``length`` frames, subsampled from a 10-60 frame onset:
    (video (T, S, S, 3) uint8, frame labels (T,) int64, controls (T, C) float32)."""
    onset_length = int(rng.integers(max(10, length), 61))
    track = onset_track(expression, onset_length, int(rng.integers(2**31)))
    picks = np.round(np.linspace(0, onset_length - 1, length)).astype(int)
    video, vectors = render_frames(identity_seed, [track[i] for i in picks], config)
    apex = np.linalg.norm(vectors[-1]) or 1.0
    intensity = np.linalg.norm(vectors, axis=1) / apex
    labels = np.where(intensity >= LABEL_INTENSITY, EXPRESSION_CLASSES.index(expression), 0).astype(np.int64)
    return video, labels, vectors


def render_window(
    identity_seed: int, length: int, rng: np.random.Generator, config: SyntheticDataConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the live path's windowed z_d sees: the neutral anchor y0, then ``length`` - 1
    consecutive frames of free-form motion (talking, blinks, mixed expressions) from a random
    point of a track, which may start mid-expression. Frame labels are the track's (the
    dominant expression, or neutral). Returns as ``render_onset``."""
    start = int(rng.integers(WINDOW_STARTS))
    track = list(itertools.islice(freeform_track(int(rng.integers(2**31)), start + length - 1), start, None))
    anchor = FrameSpec(Expression(), track[0].pose, "neutral", track[0].noise_seed)
    video, vectors = render_frames(identity_seed, [anchor, *track], config)
    labels = np.array([EXPRESSION_CLASSES.index(frame.label) for frame in (anchor, *track)], dtype=np.int64)
    return video, labels, vectors


def render_frames(identity_seed: int, frames: list[FrameSpec], config: SyntheticDataConfig) -> tuple[np.ndarray, np.ndarray]:
    """frames as the config's head pose and sensor noise have them -> (video (T, S, S, 3)
    uint8, controls (T, C) float32)."""
    if config.head_pose == "aligned":
        frames = [align_pose(frame) for frame in frames]
    if config.sensor_noise == "per-sequence":
        frames = [dataclasses.replace(frame, noise_seed=frames[0].noise_seed) for frame in frames]
    identity = Identity.from_seed(identity_seed)
    video = np.stack([render(identity, f.expression, f.pose, config.size, f.noise_seed) for f in frames])
    return video, np.stack([f.expression.to_vector() for f in frames]).astype(np.float32)


def align_pose(frame: FrameSpec) -> FrameSpec:
    """The frame as an eye-aligned crop shows it: yaw and pitch kept; roll, scale and shift removed."""
    return dataclasses.replace(frame, pose=Pose(yaw=frame.pose.yaw, pitch=frame.pose.pitch))


def to_video_tensor(frames: np.ndarray) -> Tensor:
    """uint8 (..., S, S, 3) RGB -> float32 (..., 3, S, S) in [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(127.5).sub_(1.0)
    return tensor.movedim(-1, -3).contiguous()


def stretch_lower_face(video: Tensor, factors: Tensor, eye_lines: Tensor) -> Tensor:
    """Stretch each sequence's face below its eye line vertically: video (B, T, 3, S, S),
    factors (B,) >= 1, eye_lines (B,) as fractions of the height -> same shape. The same
    warp on every frame of a sequence, so it adds no dynamics.

    Synthetic faces are short: measured by MediaPipe on eye-aligned faces, their mouth lies
    0.87 eye distances below the eye line (sd 0.06, 30 identities), a real face's 1.05 to
    1.28 (five real clips). Stretching by up to 1.5 covers the real proportions."""
    batch, length, _, side, _ = video.shape
    rows = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    eye = eye_lines.view(batch, 1)
    source_rows = torch.where(rows > eye, eye + (rows - eye) / factors.view(batch, 1), rows.expand(batch, -1))
    grid = torch.empty(batch, side, side, 2)
    grid[..., 0] = (2 * rows - 1).view(1, 1, side)
    grid[..., 1] = (2 * source_rows - 1).view(batch, side, 1)
    frames = video.flatten(0, 1)
    grid = grid.repeat_interleave(length, dim=0)
    warped = torch.nn.functional.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return warped.unflatten(0, (batch, length))


def augment_appearance(video: Tensor, generator: torch.Generator) -> Tensor:
    """Per-sequence photometric jitter, the same on every frame of a sequence so that it adds
    no dynamics: brightness, contrast, saturation, colour balance, gamma, and grey scale for
    one sequence in ten. video (B, T, 3, S, S) in [-1, 1] -> same shape and range."""
    batch = video.shape[0]

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand((batch, 1, *shape, 1, 1), generator=generator)

    image = (video + 1) / 2
    image = image * uniform(0.75, 1.25, 1) + uniform(-0.08, 0.08, 1)
    mean = image.mean(dim=(-3, -2, -1), keepdim=True)
    image = (image - mean) * uniform(0.75, 1.25, 1) + mean
    grey = image.mean(dim=-3, keepdim=True)
    saturation = uniform(0.6, 1.3, 1) * (torch.rand((batch, 1, 1, 1, 1), generator=generator) > 0.1)
    image = grey + (image - grey) * saturation
    image = image * uniform(0.9, 1.1, 3)
    image = image.clamp(0, 1) ** uniform(0.8, 1.25, 1)
    return image * 2 - 1


class StepBatches(IterableDataset):
    """Endless batches ``config.batch(step, rank)`` from ``start_step`` on, for a DataLoader
    with ``batch_size=None`` (one worker renders or decodes ahead while the model trains);
    ``config`` is a SyntheticDataConfig or a PreparedDataConfig."""

    def __init__(self, config, start_step: int = 0, rank: int = 0) -> None:
        super().__init__()
        self.config, self.start_step, self.rank = config, start_step, rank

    def __iter__(self) -> Iterator[SequenceBatch]:
        step = self.start_step
        while True:
            yield self.config.batch(step, self.rank)
            step += 1
