"""Pasting a generated face crop back into the full-resolution portrait.

The crop is warped back by the inverse of the alignment transform and blended with a
feathered ellipse defined in crop coordinates. Everything that depends only on the target
(the box of portrait pixels around the ellipse, where each samples the crop, the blend
weights and the portrait's share of each pixel) is computed once in ``PastePlan.build``;
``PastePlan.paste`` per frame does one bilinear warp and one multiply-add over that box.
Pixels outside the ellipse keep their exact values: outside the box they are not touched,
inside it their weight is exactly 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rt_dtgan.face.align import SimilarityTransform, pixel_centres, warp_bilinear
from rt_dtgan.face.errors import FaceError
from rt_dtgan.face.images import check_rgb_image

ELLIPSE_OUTLINE_POINTS = 256


@dataclass(frozen=True)
class PasteConfig:
    """The blend mask: an ellipse in crop fractions (centre (x, y), semi-axes (x, y)); the
    weight is 1 inside (1 - feather) of the elliptic radius and falls smoothly to 0 at the
    ellipse. The defaults cover brows to chin and cheek to cheek for the standard eye points."""

    centre: tuple[float, float] = (0.5, 0.56)
    semi_axes: tuple[float, float] = (0.36, 0.45)
    feather: float = 0.2

    def __post_init__(self) -> None:
        if not all(0.0 < value <= 1.0 for value in self.semi_axes):
            raise ValueError(f"semi_axes must be in (0, 1], got {self.semi_axes}")
        if not all(0.0 <= value <= 1.0 for value in self.centre):
            raise ValueError(f"centre must lie in the crop, got {self.centre}")
        if not 0.0 < self.feather <= 1.0:
            raise ValueError(f"feather must be in (0, 1], got {self.feather}")

    def weight(self, crop_points: np.ndarray, size: int) -> np.ndarray:
        """Crop-pixel points (..., 2) -> (...) float32 blend weights in [0, 1]."""
        offset = crop_points / size - np.asarray(self.centre)
        radius = np.sqrt(((offset / np.asarray(self.semi_axes)) ** 2).sum(axis=-1))
        ramp = np.clip((1.0 - radius) / self.feather, 0.0, 1.0)
        return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)

    def outline(self, size: int) -> np.ndarray:
        """(ELLIPSE_OUTLINE_POINTS, 2) points on the ellipse, in crop pixels."""
        angles = np.linspace(0.0, 2.0 * math.pi, ELLIPSE_OUTLINE_POINTS, endpoint=False)
        unit = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        return (np.asarray(self.centre) + unit * np.asarray(self.semi_axes)) * size


@dataclass(frozen=True, eq=False)
class PastePlan:
    """Precomputed paste-back into one portrait of shape ``image_shape`` (H, W, 3), limited
    to the box ``rows`` x ``columns`` (slices) around the ellipse. ``box_to_crop`` maps box
    coordinates to the (S, S, 3) crop's, ``weight`` (h, w, 1) float32 blend weights in
    [0, 1], ``kept`` (h, w, 3) float32 portrait * (1 - weight) + 0.5 (the 0.5 rounds on the
    cast to uint8). Memory: about 16 bytes per box pixel."""

    image_shape: tuple[int, int, int]
    crop_size: int
    rows: slice
    columns: slice
    box_to_crop: SimilarityTransform
    weight: np.ndarray
    kept: np.ndarray

    @classmethod
    def build(
        cls, image: np.ndarray, transform: SimilarityTransform, crop_size: int, config: PasteConfig
    ) -> PastePlan:
        """image (H, W, 3) uint8 portrait; ``transform`` maps its pixels to crop pixels."""
        check_rgb_image(image, "portrait")
        height, width = image.shape[:2]
        outline = transform.inverse().apply(config.outline(crop_size))
        left, top = np.maximum(np.floor(outline.min(axis=0)).astype(int) - 1, 0)
        right = min(int(np.ceil(outline[:, 0].max())) + 1, width)
        bottom = min(int(np.ceil(outline[:, 1].max())) + 1, height)
        if right <= left or bottom <= top:
            raise FaceError("the face region lies outside the portrait")
        box_to_crop = SimilarityTransform(np.eye(2), np.array([left, top], dtype=np.float64)).then(transform)
        weight = config.weight(box_to_crop.apply(pixel_centres(bottom - top, right - left)), crop_size)[..., None]
        kept = (image[top:bottom, left:right] * (1.0 - weight) + 0.5).astype(np.float32)
        return cls(image.shape, crop_size, slice(top, bottom), slice(left, right), box_to_crop, weight, kept)

    def paste(self, image: np.ndarray, crop: np.ndarray) -> np.ndarray:
        """image: the portrait the plan was built for, crop (S, S, 3) uint8 -> a new (H, W, 3) uint8."""
        if image.shape != self.image_shape:
            raise FaceError(f"the plan is for a portrait of shape {self.image_shape}, got {image.shape}")
        if crop.shape != (self.crop_size, self.crop_size, 3) or crop.dtype != np.uint8:
            raise FaceError(
                f"generated crop must be ({self.crop_size}, {self.crop_size}, 3) uint8, got {crop.shape} {crop.dtype}"
            )
        height, width = self.kept.shape[:2]
        warped = warp_bilinear(crop, self.box_to_crop, width, height).astype(np.float32)
        np.multiply(warped, self.weight, out=warped)
        np.add(warped, self.kept, out=warped)
        np.clip(warped, 0.0, 255.0, out=warped)
        output = image.copy()
        output[self.rows, self.columns] = warped.astype(np.uint8)
        return output
