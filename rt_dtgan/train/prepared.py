"""Training batches from a prepared dataset of real face videos (`rt-dtgan data prepare`).

The sequences were cropped and aligned by the live path's face tracker, so the networks
train on what they will see live. A batch is a pure function of (data seed, step, rank),
as for synthetic data. Each sequence in a batch is a window of at most ``MAX_SPAN`` frames
(the whole of an onset from CK+, Oulu-CASIA or MUG, which start neutral), ``length`` frames
picked evenly from it; its first frame is the target x and the anchor y0. Real data has no
expression controls: they are NaN, and the encoder objective leaves them out. Its
self-supervised target instead is the motion of the MediaPipe landmarks that `data prepare`
stored (MOTION_POINTS) from the window's first frame, in inter-ocular distances. Frame labels
follow the sequence's expression from ``LABEL_INTENSITY`` of the way on (the position
stands in for the unknown intensity); unlabelled sequences teach A through their landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from rt_dtgan.config import EXPRESSION_CLASSES, SUPPORTED_SIZES
from rt_dtgan.face.landmarks import MOTION_POINTS
from rt_dtgan.synth.expression import NUM_CONTROLS
from rt_dtgan.train.data import LABEL_INTENSITY, SequenceBatch, augment_appearance, to_video_tensor

# The longest stretch of a video one training sequence spans (2 s at 30 fps).
MAX_SPAN = 60
DECODED_SEQUENCES_KEPT = 64


@dataclass(frozen=True)
class PreparedDataConfig:
    """``batch_size`` windows of one length in [min_length, max_length] per batch, from the
    prepared dataset at ``root``; ``encoder_targets_only`` keeps the sequences that give A a
    target: an expression label or landmarks (encoder pretraining)."""

    root: str
    batch_size: int = 8
    min_length: int = 8
    max_length: int = 16
    seed: int = 0
    augment: bool = True
    encoder_targets_only: bool = False
    size: int = field(init=False)

    def __post_init__(self) -> None:
        if not 2 <= self.min_length <= self.max_length <= MAX_SPAN:
            raise ValueError(f"need 2 <= min_length <= max_length <= {MAX_SPAN}, got {self.min_length}, {self.max_length}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be positive")
        manifest = _manifest(self.root)
        if manifest["size"] not in SUPPORTED_SIZES:
            raise ValueError(f"{self.root}: crops of {manifest['size']} px; supported sizes are {SUPPORTED_SIZES}")
        object.__setattr__(self, "size", manifest["size"])
        if not self.sequences():
            wanted = "sequences with an expression label or landmarks" if self.encoder_targets_only else "sequences"
            raise ValueError(f"{self.root}: no {wanted} with at least 2 frames (prepare a dataset with rt-dtgan data prepare)")

    def sequences(self) -> list[dict]:
        """The manifest entries this config draws from."""
        entries = [entry for entry in _manifest(self.root)["sequences"] if entry["kept"] >= 2]
        if not self.encoder_targets_only:
            return entries
        return [entry for entry in entries if entry["label"] is not None or "landmarks" in entry]

    def batch(self, step: int, rank: int = 0) -> SequenceBatch:
        return prepared_batch(self, step, rank)


def prepared_batch(config: PreparedDataConfig, step: int, rank: int = 0) -> SequenceBatch:
    """The batch for ``step`` on process ``rank``: video (B, T, 3, S, S) in [-1, 1], frame
    labels (B, T) (-100 where unknown), controls (B, T, 12) NaN, sequence indices (B,),
    landmark motion (B, T, K, 2) (NaN for sequences prepared without landmarks)."""
    rng = np.random.default_rng([config.seed, step, rank, 0x5EA1])
    entries = config.sequences()
    length = int(rng.integers(config.min_length, config.max_length + 1))
    eye_distance = _eye_distance(config.root)
    videos, labels, indices, motions = [], [], [], []
    for _ in range(config.batch_size):
        index = int(rng.integers(len(entries)))
        entry = entries[index]
        picks = _window(entry["kept"], length, rng)
        videos.append(_decoded(config.root, entry["video"], entry["kept"])[picks])
        labels.append(_frame_labels(entry["label"], length))
        indices.append(index)
        motions.append(_landmark_motion(config.root, entry, picks, eye_distance))
    video = to_video_tensor(np.stack(videos))
    if config.augment:
        video = augment_appearance(video, torch.Generator().manual_seed(int(rng.integers(2**62))))
    controls = torch.full((config.batch_size, length, NUM_CONTROLS), float("nan"))
    motion = torch.from_numpy(np.stack(motions))
    return SequenceBatch(video, torch.from_numpy(np.stack(labels)), controls, torch.tensor(indices), motion)


def _window(count: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``length`` frames picked evenly from a window of at most MAX_SPAN of
    ``count`` frames, starting at a random frame (at 0 for sequences no longer than the window)."""
    span = min(count, MAX_SPAN)
    start = int(rng.integers(count - span + 1))
    return start + np.round(np.linspace(0, span - 1, length)).astype(int)


def _landmark_motion(root: str, entry: dict, picks: np.ndarray, eye_distance: float) -> np.ndarray:
    """(T, K, 2) float32: MOTION_POINTS at ``picks`` minus at the first pick, in inter-ocular
    distances; NaN when the entry was prepared without landmarks."""
    if "landmarks" not in entry:
        return np.full((len(picks), len(MOTION_POINTS), 2), np.nan, dtype=np.float32)
    points = _landmarks(root, entry["landmarks"], entry["kept"])[picks]
    return (points - points[:1]) / eye_distance


def _eye_distance(root: str) -> float:
    """The distance between the eye centres in the prepared crops, as a fraction of the crop."""
    preprocess = _manifest(root)["preprocess"]
    return float(preprocess["right_eye"][0] - preprocess["left_eye"][0])


def _frame_labels(label: str | None, length: int) -> np.ndarray:
    """(length,) int64: neutral before LABEL_INTENSITY of the way, the label after; -100
    (ignored by the loss) throughout when the sequence has no label."""
    if label is None:
        return np.full(length, -100, dtype=np.int64)
    position = np.linspace(0.0, 1.0, length)
    return np.where(position >= LABEL_INTENSITY, EXPRESSION_CLASSES.index(label), 0).astype(np.int64)


@lru_cache(maxsize=8)
def _manifest(root: str) -> dict:
    from rt_dtgan.prepare import read_manifest

    return read_manifest(Path(root))


@lru_cache(maxsize=DECODED_SEQUENCES_KEPT)
def _landmarks(root: str, landmarks: str, kept: int) -> np.ndarray:
    from rt_dtgan.prepare import read_landmarks

    return read_landmarks(Path(root), {"landmarks": landmarks, "kept": kept})


@lru_cache(maxsize=DECODED_SEQUENCES_KEPT)
def _decoded(root: str, video: str, kept: int) -> np.ndarray:
    from rt_dtgan.prepare import read_sequence

    return read_sequence(Path(root), {"video": video, "kept": kept})
