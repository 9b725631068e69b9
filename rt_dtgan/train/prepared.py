"""Training batches from a prepared dataset of real face videos (`rt-dtgan data prepare`).

The sequences were cropped and aligned by the live path's face tracker, so the networks
train on what they will see live. A batch is a pure function of (data seed, step, rank),
as for synthetic data. Each sequence in a batch is a window of at most ``MAX_SPAN`` frames
(the whole of an onset from CK+, Oulu-CASIA or MUG, which start neutral), ``length`` frames
picked evenly from it; its first frame is the target x and the anchor y0. Real data has no
expression controls: they are NaN, and the encoder objective leaves them out. Frame labels
follow the sequence's expression from ``LABEL_INTENSITY`` of the way on (the position
stands in for the unknown intensity); unlabelled sequences are for the GAN only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from rt_dtgan.config import EXPRESSION_CLASSES, SUPPORTED_SIZES
from rt_dtgan.synth.expression import NUM_CONTROLS
from rt_dtgan.train.data import LABEL_INTENSITY, SequenceBatch, augment_appearance, to_video_tensor

# The longest stretch of a video one training sequence spans (2 s at 30 fps).
MAX_SPAN = 60
DECODED_SEQUENCES_KEPT = 64


@dataclass(frozen=True)
class PreparedDataConfig:
    """``batch_size`` windows of one length in [min_length, max_length] per batch, from the
    prepared dataset at ``root``; ``labelled_only`` keeps the sequences with an expression
    label (encoder pretraining)."""

    root: str
    batch_size: int = 8
    min_length: int = 8
    max_length: int = 16
    seed: int = 0
    augment: bool = True
    labelled_only: bool = False
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
            wanted = "labelled sequences" if self.labelled_only else "sequences"
            raise ValueError(f"{self.root}: no {wanted} with at least 2 frames (prepare a dataset with rt-dtgan data prepare)")

    def sequences(self) -> list[dict]:
        """The manifest entries this config draws from."""
        entries = [entry for entry in _manifest(self.root)["sequences"] if entry["kept"] >= 2]
        return [entry for entry in entries if entry["label"] is not None] if self.labelled_only else entries

    def batch(self, step: int, rank: int = 0) -> SequenceBatch:
        return prepared_batch(self, step, rank)


def prepared_batch(config: PreparedDataConfig, step: int, rank: int = 0) -> SequenceBatch:
    """The batch for ``step`` on process ``rank``: video (B, T, 3, S, S) in [-1, 1], frame
    labels (B, T) (-100 where unknown), controls (B, T, 12) NaN, sequence indices (B,)."""
    rng = np.random.default_rng([config.seed, step, rank, 0x5EA1])
    entries = config.sequences()
    length = int(rng.integers(config.min_length, config.max_length + 1))
    videos, labels, indices = [], [], []
    for _ in range(config.batch_size):
        index = int(rng.integers(len(entries)))
        frames = _decoded(config.root, entries[index]["video"], entries[index]["kept"])
        videos.append(_window(frames, length, rng))
        labels.append(_frame_labels(entries[index]["label"], length))
        indices.append(index)
    video = to_video_tensor(np.stack(videos))
    if config.augment:
        video = augment_appearance(video, torch.Generator().manual_seed(int(rng.integers(2**62))))
    controls = torch.full((config.batch_size, length, NUM_CONTROLS), float("nan"))
    return SequenceBatch(video, torch.from_numpy(np.stack(labels)), controls, torch.tensor(indices))


def _window(frames: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` frames picked evenly from a window of at most MAX_SPAN frames of ``frames``
    (T, S, S, 3), starting at a random frame (at 0 for sequences no longer than the window)."""
    span = min(len(frames), MAX_SPAN)
    start = int(rng.integers(len(frames) - span + 1))
    picks = start + np.round(np.linspace(0, span - 1, length)).astype(int)
    return frames[picks]


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
def _decoded(root: str, video: str, kept: int) -> np.ndarray:
    from rt_dtgan.prepare import read_sequence

    return read_sequence(Path(root), {"video": video, "kept": kept})
