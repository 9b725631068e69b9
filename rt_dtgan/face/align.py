"""Similarity alignment of a face by its eye centres, and bilinear warping.

Coordinates are continuous pixel coordinates (x, y): pixel (row r, column c) covers
[c, c + 1) x [r, r + 1), so its centre is (c + 0.5, r + 0.5) and a point at fraction f of
a crop of side S lies at f * S. MediaPipe's normalised landmarks times the image size are
in this convention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face.errors import FaceError
from rt_dtgan.face.images import box_downscale, check_rgb_image

ANTIALIAS_BELOW_SCALE = 0.5


@dataclass(frozen=True, eq=False)
class SimilarityTransform:
    """x' = matrix @ x + offset, with matrix = scale * rotation.

    ``matrix`` (2, 2) float64, ``offset`` (2,) float64. The aligner's transform maps image
    coordinates to crop coordinates; ``inverse()`` maps crop coordinates back.
    """

    matrix: np.ndarray
    offset: np.ndarray

    def __post_init__(self) -> None:
        matrix = np.asarray(self.matrix, dtype=np.float64)
        offset = np.asarray(self.offset, dtype=np.float64)
        if matrix.shape != (2, 2) or offset.shape != (2,):
            raise ValueError(f"expected a (2, 2) matrix and a (2,) offset, got {matrix.shape} and {offset.shape}")
        if not (np.isfinite(matrix).all() and np.isfinite(offset).all()) or abs(np.linalg.det(matrix)) < 1e-12:
            raise ValueError("a similarity transform must be finite and invertible")
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "offset", offset)

    @property
    def scale(self) -> float:
        """Output length per input length."""
        return math.sqrt(abs(np.linalg.det(self.matrix)))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) points -> (..., 2) float64 transformed points."""
        return np.asarray(points, dtype=np.float64) @ self.matrix.T + self.offset

    def inverse(self) -> SimilarityTransform:
        inverse_matrix = np.linalg.inv(self.matrix)
        return SimilarityTransform(inverse_matrix, -inverse_matrix @ self.offset)

    def then(self, other: SimilarityTransform) -> SimilarityTransform:
        """The transform applying ``self`` first, then ``other``."""
        return SimilarityTransform(other.matrix @ self.matrix, other.matrix @ self.offset + other.offset)


def crop_eye_points(config: PreprocessConfig) -> np.ndarray:
    """(2, 2) float64: where the image-left and image-right eye centres land in the crop, in pixels."""
    return np.array([config.left_eye, config.right_eye], dtype=np.float64) * config.size


def eyes_to_crop_transform(eyes: np.ndarray, config: PreprocessConfig) -> SimilarityTransform:
    """The similarity taking eye centres ``eyes`` (2, 2) (image-left eye first, pixels) to
    the config's crop points exactly."""
    eyes = np.asarray(eyes, dtype=np.float64)
    if eyes.shape != (2, 2) or not np.isfinite(eyes).all():
        raise FaceError(f"eyes must be a finite (2, 2) array of (x, y) points, got shape {eyes.shape}")
    source = complex(*eyes[1]) - complex(*eyes[0])
    if abs(source) < 1e-6:
        raise FaceError("the two eye centres coincide; cannot align")
    crop_points = crop_eye_points(config)
    rotation_scale = (complex(*crop_points[1]) - complex(*crop_points[0])) / source
    shift = complex(*crop_points[0]) - rotation_scale * complex(*eyes[0])
    matrix = np.array([[rotation_scale.real, -rotation_scale.imag], [rotation_scale.imag, rotation_scale.real]])
    return SimilarityTransform(matrix, np.array([shift.real, shift.imag]))


def align(image: np.ndarray, eyes: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, SimilarityTransform]:
    """image (H, W, 3) uint8 RGB, eye centres (2, 2) in image pixels (image-left eye first)
    -> (crop (S, S, 3) uint8 with S = config.size, transform image -> crop coordinates).

    Bilinear (OpenCV); where the crop shrinks the image by more than 2x, the part
    of the image under the crop is first box-averaged by an integer factor so it does not alias.
    Crop pixels outside the image repeat the nearest edge pixel.
    """
    check_rgb_image(image, "image to align")
    transform = eyes_to_crop_transform(eyes, config)
    crop = warp_to_crop(image, transform, config.size)
    return crop, transform


def warp_to_crop(image: np.ndarray, transform: SimilarityTransform, size: int) -> np.ndarray:
    """Sample ``image`` (H, W, 3) uint8 into a (size, size, 3) uint8 crop; ``transform`` maps
    image coordinates to crop coordinates."""
    source, crop_to_source = _source_region(image, transform, size)
    sampled = warp_bilinear(source, crop_to_source, size, size)
    return sampled if sampled.dtype == np.uint8 else to_uint8(sampled)


def _source_region(image: np.ndarray, transform: SimilarityTransform, size: int) -> tuple[np.ndarray, SimilarityTransform]:
    """The part of ``image`` under the crop (h, w, 3): uint8 as it is, or float32 box-averaged
    by an integer factor when the crop shrinks the image by more than 2x; and the transform
    from crop coordinates into that region's coordinates."""
    crop_to_image = transform.inverse()
    corners = crop_to_image.apply(np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64))
    height, width = image.shape[:2]
    left = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, width - 1))
    top = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, height - 1))
    right = int(np.clip(np.ceil(corners[:, 0].max()) + 2, left + 1, width))
    bottom = int(np.clip(np.ceil(corners[:, 1].max()) + 2, top + 1, height))
    region = image[top:bottom, left:right]
    factor = int(1.0 / transform.scale) if transform.scale < ANTIALIAS_BELOW_SCALE else 1
    factor = max(1, min(factor, region.shape[0], region.shape[1]))
    source = box_downscale(region, factor) if factor > 1 else region
    image_to_source = SimilarityTransform(np.eye(2) / factor, -np.array([left, top], dtype=np.float64) / factor)
    return source, crop_to_image.then(image_to_source)


def pixel_centres(height: int, width: int) -> np.ndarray:
    """(height, width, 2) float64 (x, y) centres of the pixels of a height x width grid."""
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    return np.stack([xs, ys], axis=-1)


def warp_bilinear(source: np.ndarray, output_to_source: SimilarityTransform, width: int, height: int) -> np.ndarray:
    """Sample ``source`` (h, w, 3) uint8 or float32 bilinearly at the pixel centres of a
    width x height output (same dtype); ``output_to_source`` maps output coordinates to
    source coordinates. Outside the source, its edge pixels repeat."""
    # OpenCV maps pixel indices (centres at integers): index -> centre (+0.5), then back (-0.5).
    matrix = output_to_source.matrix
    offset = matrix @ np.array([0.5, 0.5]) + output_to_source.offset - 0.5
    index_map = np.hstack([matrix, offset[:, None]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(np.ascontiguousarray(source), index_map, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """float32 values (any shape) -> uint8, rounded and clipped to [0, 255], in place.

    """
    np.add(values, 0.5, out=values)
    np.clip(values, 0.0, 255.0, out=values)
    return values.astype(np.uint8)
