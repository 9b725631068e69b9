"""`render(identity, expression, pose, size, noise_seed)`: one synthetic face frame.

Pipeline: cached identity layers -> expression features drawn into a copy of the head ->
front hair and glasses -> head pose as an inverse warp with depth parallax -> composited
over the background, under the torso -> seeded sensor noise -> uint8 RGB.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from rt_dtgan.synth.canvas import check_size, pixel_grid
from rt_dtgan.synth.expression import Expression, Pose
from rt_dtgan.synth.features import draw_expression
from rt_dtgan.synth.identity import Identity
from rt_dtgan.synth.layers import IdentityLayers, identity_layers

_NOISE_BANK_SEED = 0x5E750


def render(
    identity: Identity,
    expression: Expression,
    pose: Pose | None = None,
    size: int = 128,
    noise_seed: int | None = None,
) -> np.ndarray:
    """Render a face: (size, size, 3) uint8 RGB, a pure deterministic function of its arguments.

    size is 64, 128 or 256; pose None means frontal; noise_seed None means no sensor noise.
    """
    check_size(size)
    layers = identity_layers(identity, size)
    head = render_head(layers, expression)
    if pose is not None and not pose.is_identity():
        head = _warp_head(head, layers, pose)
    image = _composite(head, layers)
    if noise_seed is not None:
        image += identity.noise_sigma * _noise(size, noise_seed)
    return _to_uint8(image)


def render_head(layers: IdentityLayers, expression: Expression) -> np.ndarray:
    """The head in the canonical frame: (4, S, S) float32 premultiplied RGBA with all features."""
    canvas = layers.head.copy()
    draw_expression(canvas, layers, expression)
    rows = layers.over_rows
    canvas[:, rows] *= 1.0 - layers.over[3, rows]
    canvas[:, rows] += layers.over[:, rows]
    return canvas


def _composite(head: np.ndarray, layers: IdentityLayers) -> np.ndarray:
    """(3, S, S) float32: background, then the head, then the torso (premultiplied 'over')."""
    image = layers.background * (1.0 - head[3])
    image += head[:3]
    rows = layers.torso_rows
    image[:, rows] *= 1.0 - layers.torso[3, rows]
    image[:, rows] += layers.torso[:3, rows]
    return image


def _warp_head(head: np.ndarray, layers: IdentityLayers, pose: Pose) -> np.ndarray:
    """Resample the head for a pose: inverse similarity (shift, scale, roll) then yaw/pitch parallax.

    A canonical point at height z (layers.depth) moves by z * sin(angle) when the head turns.
    """
    size, g = layers.size, layers.geometry
    x, y = pixel_grid(size)
    pivot_x, pivot_y = g.cx, g.eye_y + 0.12
    roll = math.radians(pose.roll)
    cos_r, sin_r = math.cos(roll) / pose.scale, math.sin(roll) / pose.scale
    px = x - (pose.shift_x + pivot_x)
    py = y - (pose.shift_y + pivot_y)
    pivot = (2.0 * pivot_x - 1.0, 2.0 * pivot_y - 1.0)  # in grid units, where the frame spans [-1, 1]
    grid = np.empty((1, size, size, 2), np.float32)
    grid[0, :, :, 0] = (2.0 * cos_r) * px + (2.0 * sin_r) * py + pivot[0]
    grid[0, :, :, 1] = (2.0 * cos_r) * py - (2.0 * sin_r) * px + pivot[1]
    depth = _grid_sample(layers.depth[None], grid)[0]
    for axis, angle in ((0, math.radians(pose.yaw)), (1, math.radians(pose.pitch))):
        coordinate = grid[0, :, :, axis]
        coordinate -= (2.0 * math.sin(angle)) * depth + pivot[axis]
        coordinate *= 1.0 / math.cos(angle)
        coordinate += pivot[axis]
    return _grid_sample(head, grid)


def _grid_sample(image: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a (C, S, S) float32 image at grid (1, S, S, 2) in [-1, 1] (frame 0..1); edges clamped."""
    sampled = torch.nn.functional.grid_sample(
        torch.from_numpy(image)[None], torch.from_numpy(grid), mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled[0].numpy()


@lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    """(3, 2S, 2S) float32 standard normal noise, fixed; frames take seeded windows of it."""
    bank = np.random.default_rng(_NOISE_BANK_SEED).standard_normal((3, 2 * size, 2 * size), dtype=np.float32)
    bank.setflags(write=False)
    return bank


def _noise(size: int, noise_seed: int) -> np.ndarray:
    """(3, S, S) float32 unit-variance noise chosen by noise_seed (a window of the bank, maybe flipped)."""
    if noise_seed < 0:
        raise ValueError(f"noise_seed must be a non-negative integer or None, got {noise_seed!r}")
    mixed = (int(noise_seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 64)
    row, col = mixed % size, (mixed >> 16) % size
    window = _noise_bank(size)[:, row : row + size, col : col + size]
    return -window if (mixed >> 40) & 1 else window


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Planar (3, S, S) float in [0, 1] -> interleaved (S, S, 3) uint8, rounded and clipped."""
    image *= 255.0
    image += 0.5
    np.clip(image, 0.0, 255.0, out=image)
    planes = image.astype(np.uint8)
    out = np.empty(planes.shape[1:] + (3,), np.uint8)
    for channel in range(3):
        out[:, :, channel] = planes[channel]
    return out
