"""The two pixel conversions every path shares: uint8 RGB images to the networks' float range
and back."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def to_unit_range(pixels: Tensor) -> Tensor:
    """uint8 (B, S, S, 3) -> float32 (B, 3, S, S) in [-1, 1], on the same device."""
    return pixels.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


def to_images(frames: Tensor) -> np.ndarray:
    """float (B, 3, S, S) in [-1, 1], on any device -> uint8 (B, S, S, 3) RGB, in one copy."""
    pixels = frames.float().add(1.0).mul_(127.5).round_().clamp_(0, 255)
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
