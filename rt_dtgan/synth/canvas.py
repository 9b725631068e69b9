"""Small numpy drawing helpers: pixel grids, anti-aliased coverage, alpha blending.

Images are planar float32 arrays (C, H, W) in [0, 1] (planar keeps every numpy loop long
and contiguous); coordinates are fractions of the frame side.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rt_dtgan.synth.geometry import Box

SUPPORTED_SIZES = (64, 128, 256)


def check_size(size: int) -> int:
    if size not in SUPPORTED_SIZES:
        raise ValueError(f"size must be one of {SUPPORTED_SIZES}, got {size!r}")
    return size


@lru_cache(maxsize=8)
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y): two (size, size) float32 arrays of pixel-centre coordinates in (0, 1). Read-only."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = np.meshgrid(c, c)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def box_slices(box: Box, size: int) -> tuple[slice, slice]:
    """(rows, cols) slices of the pixels covering a box, clipped to the frame."""
    x0, y0, x1, y1 = box
    c0 = max(int(np.floor(x0 * size)), 0)
    c1 = min(int(np.ceil(x1 * size)), size)
    r0 = max(int(np.floor(y0 * size)), 0)
    r1 = min(int(np.ceil(y1 * size)), size)
    return slice(r0, max(r1, r0)), slice(c0, max(c1, c0))


def edge(distance_px: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] from a signed distance in pixels (negative inside)."""
    return np.minimum(np.maximum(0.5 - distance_px, 0.0), 1.0)


def unit_clip(x: np.ndarray) -> np.ndarray:
    """x clipped to [0, 1] (cheaper than np.clip on small arrays)."""
    return np.minimum(np.maximum(x, 0.0), 1.0)


def colour(rgb) -> np.ndarray:
    """(3, 1, 1) float32 colour that broadcasts over a planar (3, H, W) image."""
    return np.asarray(rgb, dtype=np.float32).reshape(3, 1, 1)


def implicit_coverage(field: np.ndarray) -> np.ndarray:
    """Coverage of {field < 0} for a smooth implicit field sampled on the pixel grid.

    The field is turned into a distance in pixels by dividing by its gradient magnitude.
    """
    gy, gx = np.gradient(field)
    return edge(field / (np.sqrt(gx * gx + gy * gy) + 1e-6))


def blend(dst: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> None:
    """In place: dst (3, H, W) <- dst + (color - dst) * alpha; color (3, 1, 1) or (3, H, W), alpha (H, W)."""
    dst += (color - dst) * alpha


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = unit_clip((x - edge0) / (edge1 - edge0))
    return t * t * (3.0 - 2.0 * t)


def gaussian(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Unnormalised 2D gaussian bump of radii (rx, ry)."""
    return np.exp(-(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2))


def lambert(height: np.ndarray, size: int, light: np.ndarray) -> np.ndarray:
    """Diffuse factor in [0, 1] of a height field (frame units) lit from the unit vector light (3,)."""
    gy, gx = np.gradient(height)
    sx = gx * size
    sy = gy * size
    norm = np.sqrt(sx * sx + sy * sy + 1.0)
    return np.clip((-sx * light[0] - sy * light[1] + light[2]) / norm, 0.0, 1.0)
