"""The loss terms of the paper's eq. 3 to 7 and of the encoder's pretraining."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Eq. 3 for one discriminator: -log D(real) - log(1 - D(fake)), averaged."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_adversarial_loss(fake_logits: Tensor) -> Tensor:
    """Eq. 4 for one discriminator, in the non-saturating form: -log D(G(...))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def frame_l1(real_video: Tensor, fake_video: Tensor) -> Tensor:
    """Eq. 5: mean |Y - G(x, F(Z_d))| over frames and pixels."""
    return (real_video - fake_video).abs().mean()


# A pixel "moves" where a channel differs from the neutral frame by more than this ([-1, 1] scale).
MOVING_THRESHOLD = 0.1


def moving_mask(video: Tensor, neutral: Tensor) -> Tensor:
    """video (..., 3, S, S) and neutral broadcastable to it, in [-1, 1] -> bool (..., 1, S, S):
    the pixels where some channel of ``video`` is more than MOVING_THRESHOLD from ``neutral``."""
    return (video - neutral).abs().amax(dim=-3, keepdim=True) > MOVING_THRESHOLD


def moving_l1(real_video: Tensor, fake_video: Tensor) -> Tensor:
    """Eq. 5 restricted to where the expression moves: mean |Y - G(x, F(Z_d))| over the pixels
    of every frame that move away from its sequence's neutral first frame (B, T, 3, S, S);
    0 where nothing moves. Expressions change a few percent of the pixels, so the plain
    eq. 5 is met almost fully by copying the target; this term weighs the moving ones."""
    moving = moving_mask(real_video, real_video[:, :1]).expand_as(real_video)
    return (real_video - fake_video).abs()[moving].sum() / moving.sum().clamp(min=1)


def dynamics_l1(real_dynamics: Tensor, fake_dynamics: Tensor) -> Tensor:
    """Eq. 6: mean |Z_d - Z_d(generated)|."""
    return (real_dynamics - fake_dynamics).abs().mean()


def frame_label_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """logits (B, T, K), labels (B, T) (-100 where unknown) -> cross-entropy over the frames
    with a label; 0 when none has one (unlabelled real video), not NaN."""
    losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    return losses.sum() / (labels != -100).sum().clamp(min=1)
