"""What one training step does: pretraining the encoder A, or the GAN phases (section 3.3).

An objective (the ``Objective`` protocol, which the training loop drives) owns its
trainable networks (wrapped for DistributedDataParallel when more than one process
trains), their optimisers, the step, and the inference checkpoint it exports. Each network
that DDP wraps is called through its forward exactly once per backward pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from rt_dtgan.face.landmarks import MOTION_POINTS
from rt_dtgan.models import INFERENCE_PARTS, DynamicsTransferGAN, FrameFold
from rt_dtgan.models.checkpoint import save_checkpoint
from rt_dtgan.models.dynamics import hidden_and_static, sequence_dynamics
from rt_dtgan.train.config import EncoderTrainingConfig, GanTrainingConfig
from rt_dtgan.train.data import SequenceBatch
from rt_dtgan.train.losses import (
    discriminator_loss,
    dynamics_l1,
    frame_l1,
    frame_label_loss,
    generator_adversarial_loss,
    moving_l1,
)


class Objective(Protocol):
    """What the training loop (train/loop.py) drives. ``name`` labels the progress bar;
    ``optimizers`` by name, saved in the training state and restored on resume."""

    name: str
    optimizers: dict[str, torch.optim.Optimizer]

    def modules(self) -> dict[str, nn.Module]:
        """The networks the training state saves and resume restores, by name (not DDP-wrapped)."""

    def step(self, batch: SequenceBatch) -> dict[str, float]:
        """One training step on ``batch`` (on the training device) -> the figures to log by
        name, the first four shown in the progress bar."""

    def preview(self, batch: SequenceBatch) -> dict[str, Tensor]:
        """Videos to show for ``batch``: name -> (B, T, 3, S, S) in [-1, 1]."""

    def export(self, path: Path) -> Path:
        """Write the inference checkpoint to ``path`` -> the file written."""


def distribute(module: nn.Module, world_size: int) -> nn.Module:
    """Wrap for DDP when several processes train (gloo on the CPU, NCCL on GPUs)."""
    return DistributedDataParallel(module) if world_size > 1 else module


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


class EncoderPretraining(nn.Module):
    """video (B, T, 3, S, S) -> (expression logits on H (B, T, K), controls read from z_d
    (B, T, C), landmark motion read from z_d (B, T, P, 2)). The landmark read-out is linear
    without bias, like the controls', and lives in the trainer only: the runtime never reads it."""

    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.landmark_readout = nn.Linear(model.config.encoder.hidden_dim, 2 * len(MOTION_POINTS), bias=False)

    def forward(self, video: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        hidden, static = hidden_and_static(self.encoder, video)
        z_d = hidden - static
        motion = self.landmark_readout(z_d).unflatten(-1, (len(MOTION_POINTS), 2))
        return self.encoder.classify(hidden), self.encoder.regress_controls(z_d), motion


class EncoderObjective:
    """Pretrains A as an expression recogniser robust to intensity (the paper's ref. [12])."""

    name = "encoder"

    def __init__(self, model: DynamicsTransferGAN, config: EncoderTrainingConfig, world_size: int) -> None:
        self.model, self.config = model, config
        pretraining = EncoderPretraining(model).to(next(model.parameters()).device)
        self.network = distribute(pretraining, world_size)
        self.optimizers = {"encoder": torch.optim.Adam(pretraining.parameters(), lr=config.learning_rate)}

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.model.encoder, "landmark_readout": unwrap(self.network).landmark_readout}

    def step(self, batch: SequenceBatch) -> dict[str, float]:
        self.network.train()
        logits, controls, motion = self.network(batch.video)
        label_loss = frame_label_loss(logits, batch.frame_labels)
        control_loss = known_mse(controls, batch.expressions)
        landmark_loss = known_mse(motion, batch.landmark_motion)
        loss = label_loss + self.config.control_weight * control_loss + self.config.landmark_weight * landmark_loss
        optimizer = self.optimizers["encoder"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        predictions = logits.argmax(dim=-1)
        return {
            "loss": loss.item(),
            "label_ce": label_loss.item(),
            "control_mse": control_loss.item(),
            "landmark_mse": landmark_loss.item(),
            "frame_accuracy": (predictions == batch.frame_labels).float().mean().item(),
            "sequence_accuracy": (predictions[:, -1] == batch.sequence_labels).float().mean().item(),
        }

    def preview(self, batch: SequenceBatch) -> dict[str, Tensor]:
        return {"source": batch.video[:4]}

    def export(self, path: Path) -> Path:
        return save_checkpoint(path, self.model, parts=["encoder"])


def known_mse(predicted: Tensor, truth: Tensor) -> Tensor:
    """Mean squared error over the entries of ``truth`` that are known (NaN where not: real
    data has no controls, synthetic data no MediaPipe landmarks); 0 without any. NaN never
    enters the graph, and every prediction gets a gradient (zero where unknown), as
    DistributedDataParallel wants."""
    known = truth.isfinite()
    squared = (predicted - truth.nan_to_num()).pow(2)
    return torch.where(known, squared, squared.new_zeros(())).sum() / known.sum().clamp(min=1)


class DynamicsToFrames(nn.Module):
    """F and G together: (target (N, 3, S, S), dynamics (N, hidden)) -> frames (N, 3, S, S)."""

    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.embedder, self.generator = model.embedder, model.generator

    def forward(self, target: Tensor, dynamics: Tensor) -> Tensor:
        return self.generator(target, self.embedder(dynamics))


class GanObjective:
    """Alternates, per step, the discriminator phase (Ds and Dd, eq. 3) and the generator
    phase (F and G, eq. 7) with A frozen; the target x is each sequence's neutral first frame.
    Ds judges every frame; Dd judges z_d(T) of real and generated video (generated static
    sequence [g0, g0, ...])."""

    name = "gan"

    def __init__(self, model: DynamicsTransferGAN, config: GanTrainingConfig, world_size: int) -> None:
        self.model, self.config = model, config
        model.freeze_encoder()
        self.generator = distribute(DynamicsToFrames(model), world_size)
        self.spatial = distribute(model.spatial_discriminator, world_size)
        self.dynamics = distribute(model.dynamics_discriminator, world_size)
        adam = dict(betas=config.betas)
        self.optimizers = {
            "generator": torch.optim.Adam(unwrap(self.generator).parameters(), lr=config.generator_learning_rate, **adam),
            "discriminators": torch.optim.Adam(
                list(model.spatial_discriminator.parameters()) + list(model.dynamics_discriminator.parameters()),
                lr=config.discriminator_learning_rate,
                **adam,
            ),
        }

    def modules(self) -> dict[str, nn.Module]:
        return {part: getattr(self.model, part) for part in ("embedder", "generator", "spatial_discriminator", "dynamics_discriminator")}

    def _dynamics(self, video: Tensor) -> Tensor:
        return sequence_dynamics(self.model.encoder, video, self.config.appearance_suppression)

    def _generate(self, network: nn.Module, target: Tensor, dynamics: Tensor) -> Tensor:
        fold = FrameFold.of(dynamics)
        return fold.unfold(network(fold.held(target), fold.frames(dynamics)))

    @property
    def adversarial(self) -> bool:
        return self.config.lambda_adversarial > 0

    def step(self, batch: SequenceBatch) -> dict[str, float]:
        """One generator pass; the discriminators step on its detached output first, then
        F and G step on eq. 7 with the updated discriminators."""
        self.model.train()
        video = batch.video
        with torch.no_grad():
            real_dynamics = self._dynamics(video)
        fake_video = self._generate(self.generator, video[:, 0], real_dynamics)
        fake_dynamics = self._dynamics(fake_video) if self.adversarial or self.config.lambda_dynamics > 0 else None
        losses = {}
        if self.adversarial:
            losses = self._discriminator_phase(video, fake_video.detach(), real_dynamics, fake_dynamics.detach())
        losses |= self._generator_phase(video, fake_video, real_dynamics, fake_dynamics)
        return losses

    def _discriminator_phase(self, video: Tensor, fake_video: Tensor, real_dynamics: Tensor, fake_dynamics: Tensor) -> dict[str, float]:
        frames, batch = video.shape[0] * video.shape[1], video.shape[0]
        spatial_logits = self.spatial(torch.cat([video.flatten(0, 1), fake_video.flatten(0, 1)]))
        dynamics_logits = self.dynamics(torch.cat([real_dynamics[:, -1], fake_dynamics[:, -1]]))
        spatial = discriminator_loss(spatial_logits[:frames], spatial_logits[frames:])
        dynamics = discriminator_loss(dynamics_logits[:batch], dynamics_logits[batch:])
        optimizer = self.optimizers["discriminators"]
        optimizer.zero_grad(set_to_none=True)
        (spatial + dynamics).backward()
        optimizer.step()
        return {"d_spatial": spatial.item(), "d_dynamics": dynamics.item()}

    def _generator_phase(
        self, video: Tensor, fake_video: Tensor, real_dynamics: Tensor, fake_dynamics: Tensor | None
    ) -> dict[str, float]:
        """Eq. 7 plus the moving-pixel term; the terms of weight 0 are neither computed nor logged."""
        config = self.config
        terms = {"g_frame_l1": (config.lambda_spatial, frame_l1(video, fake_video))}
        if config.lambda_motion > 0:
            terms["g_moving_l1"] = (config.lambda_motion, moving_l1(video, fake_video))
        if self.adversarial:
            terms["g_adversarial"] = (config.lambda_adversarial, self._fooling_loss(fake_video, fake_dynamics))
        if config.lambda_dynamics > 0:
            terms["g_dynamics_l1"] = (config.lambda_dynamics, dynamics_l1(real_dynamics, fake_dynamics))
        loss = sum(weight * term for weight, term in terms.values())
        optimizer = self.optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"g_total": loss.item()} | {name: term.item() for name, (_, term) in terms.items()}

    def _fooling_loss(self, fake_video: Tensor, fake_dynamics: Tensor) -> Tensor:
        """Eq. 4 on both discriminators, whose weights take no gradient here."""
        critics = (self.model.spatial_discriminator, self.model.dynamics_discriminator)
        for critic in critics:
            critic.requires_grad_(False)
        adversarial = generator_adversarial_loss(critics[0](fake_video.flatten(0, 1)))
        adversarial = adversarial + generator_adversarial_loss(critics[1](fake_dynamics[:, -1]))
        for critic in critics:
            critic.requires_grad_(True)
        return adversarial

    def preview(self, batch: SequenceBatch) -> dict[str, Tensor]:
        video = batch.video[:4]
        self.model.eval()
        with torch.no_grad():
            fake = self._generate(unwrap(self.generator), video[:, 0], self._dynamics(video))
        return {"source": video, "generated": fake}

    def export(self, path: Path) -> Path:
        return save_checkpoint(path, self.model, parts=INFERENCE_PARTS)
