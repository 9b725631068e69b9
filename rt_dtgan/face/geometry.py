"""The eye-aligned face mesh: what a geometry-reading encoder sees of a face.

A face's FaceMesh points are mapped by the same similarity that makes its aligned crop,
then expressed in eye units (rt_dtgan.models.warp.EyeFrame): the eye midpoint at (0, 0),
the image-right eye at (0.5, 0). The result does not depend on the face's size, position
or roll in the image, only on its shape and expression.
"""

from __future__ import annotations

import numpy as np

from rt_dtgan.config import MESH_POINTS, PreprocessConfig
from rt_dtgan.face.align import SimilarityTransform
from rt_dtgan.models.warp import EyeFrame


def eye_units(points: np.ndarray, transform: SimilarityTransform, config: PreprocessConfig) -> np.ndarray:
    """points (N >= MESH_POINTS, 2 or 3) in image pixels, ``transform`` image -> crop pixels
    -> (MESH_POINTS, 2) float32 in eye units."""
    frame = EyeFrame(config)
    crop = transform.apply(np.asarray(points)[:MESH_POINTS, :2])
    relative = (crop[:, 0] - frame.origin[0]) + 1j * (crop[:, 1] - frame.origin[1])
    units = relative / complex(*frame.axis)
    return np.stack([units.real, units.imag], axis=-1).astype(np.float32)
