"""Typed training configs, saved as JSON in every run directory and training state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from rt_dtgan.train.data import SyntheticDataConfig
from rt_dtgan.train.prepared import PreparedDataConfig


@dataclass(frozen=True)
class RunConfig:
    """What every training run has: length, cadence of logs and checkpoints, seed, data."""

    steps: int = 2000
    log_every: int = 10
    image_every: int = 250
    checkpoint_every: int = 100
    seed: int = 0
    loader_workers: int = 1
    data: SyntheticDataConfig | PreparedDataConfig = field(default_factory=SyntheticDataConfig)

    def __post_init__(self) -> None:
        if min(self.steps, self.log_every, self.image_every, self.checkpoint_every) < 1:
            raise ValueError("steps and the log, image and checkpoint intervals must be positive")
        if self.loader_workers < 0:
            raise ValueError("loader_workers must be >= 0")

    @property
    def size(self) -> int:
        return self.data.size


@dataclass(frozen=True)
class EncoderTrainingConfig:
    """Pretraining A: per-frame expression recognition on H (cross-entropy; frames below
    35% of the apex are 'neutral', so recognition is robust to intensity) plus the
    expression controls read linearly from z_d (mean squared error, ``control_weight``), plus,
    on prepared real video, the motion of MediaPipe landmarks from the first frame read
    linearly from z_d (mean squared error in inter-ocular distances, ``landmark_weight``)."""

    run: RunConfig = field(default_factory=RunConfig)
    learning_rate: float = 1e-3
    control_weight: float = 4.0
    landmark_weight: float = 10.0

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.control_weight < 0 or self.landmark_weight < 0:
            raise ValueError("learning_rate must be positive, control_weight and landmark_weight non-negative")


@dataclass(frozen=True)
class GanTrainingConfig:
    """The GAN, section 3.3: Ds and Dd step on eq. 3, then F and G on eq. 7 =
    lambda_adversarial * eq. 4 + lambda_spatial * L1 on frames (eq. 5) + lambda_dynamics *
    L1 on z_d (eq. 6), plus lambda_motion * the L1 of eq. 5 over the moving pixels only
    (not in the paper; 0 gives eq. 7 exactly). Adam for all, as pix2pix.
    ``appearance_suppression`` False trains the paper's ablation (G driven by H).

    A term of weight 0 costs nothing: with lambda_adversarial 0 the discriminators neither
    run nor train, and with lambda_dynamics 0 too, A never sees the generated video (a
    reconstruction pretraining of F and G, three times faster per frame)."""

    run: RunConfig = field(default_factory=RunConfig)
    generator_learning_rate: float = 2e-4
    discriminator_learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_adversarial: float = 1.0
    lambda_spatial: float = 100.0
    lambda_dynamics: float = 10.0
    lambda_motion: float = 100.0
    appearance_suppression: bool = True

    def __post_init__(self) -> None:
        if min(self.generator_learning_rate, self.discriminator_learning_rate) <= 0:
            raise ValueError("learning rates must be positive")
        if min(self.lambda_adversarial, self.lambda_spatial, self.lambda_dynamics, self.lambda_motion) < 0:
            raise ValueError("loss weights must be non-negative")


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)

