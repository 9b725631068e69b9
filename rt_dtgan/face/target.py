"""The target portrait: found, aligned and prepared once for per-frame paste-back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face.align import SimilarityTransform, align
from rt_dtgan.face.errors import FaceNotFoundError
from rt_dtgan.face.geometry import eye_units
from rt_dtgan.face.images import check_rgb_image, fit_image, load_image_and_size
from rt_dtgan.face.landmarks import FaceLandmarks, FaceMeshDetector
from rt_dtgan.face.paste import PasteConfig, PastePlan

PORTRAIT_MAX_FACES = 4  # the largest of these is the target


@dataclass(frozen=True, eq=False)
class Target:
    """A prepared portrait. ``image`` (H, W, 3) uint8 at its working size (read-only view),
    ``crop`` (S, S, 3) uint8 aligned face, ``transform`` image -> crop pixels, ``landmarks``
    in image pixels, ``mesh`` (MESH_POINTS, 2) float32 in eye units, ``paste_plan`` the
    precomputed paste-back, ``name`` for messages, ``original_size`` (width, height) of the
    portrait as given, before it was brought to its working size."""

    name: str
    image: np.ndarray
    crop: np.ndarray
    transform: SimilarityTransform
    landmarks: FaceLandmarks
    config: PreprocessConfig
    paste_plan: PastePlan
    mesh: np.ndarray
    original_size: tuple[int, int]


def prepare_target(
    image_rgb: np.ndarray,
    config: PreprocessConfig | None = None,
    name: str = "target image",
    paste: PasteConfig | None = None,
    max_side: int | None = None,
) -> Target:
    """image_rgb (H, W, 3) uint8 -> Target. With ``max_side``, a portrait whose longer side
    exceeds it is first area-downscaled to that longer side (its working size: everything
    after, the output included, is at that size). Detects in still-image mode (largest face);
    large images are downscaled for detection only. Raises FaceNotFoundError naming ``name``.
    The caller must not modify ``image_rgb`` afterwards (the target may keep a view of it)."""
    check_rgb_image(image_rgb, name)
    height, width = image_rgb.shape[:2]
    return _prepare(fit_image(image_rgb, max_side), (width, height), config, name, paste)


def load_target(
    path: str | Path,
    config: PreprocessConfig | None = None,
    paste: PasteConfig | None = None,
    max_side: int | None = None,
) -> Target:
    """Load the image file at ``path`` (see load_image; ``max_side`` is applied while decoding)
    and prepare it as a Target."""
    image, original_size = load_image_and_size(path, max_side)
    return _prepare(image, original_size, config, str(path), paste)


def _prepare(
    image_rgb: np.ndarray,
    original_size: tuple[int, int],
    config: PreprocessConfig | None,
    name: str,
    paste: PasteConfig | None,
) -> Target:
    """prepare_target for an image already at its working size."""
    config = config or PreprocessConfig()
    with FaceMeshDetector(video_mode=False, max_faces=PORTRAIT_MAX_FACES) as detector:
        landmarks = detector.detect(image_rgb)
    if landmarks is None:
        raise FaceNotFoundError(f"no face found in {name} ({image_rgb.shape[1]}x{image_rgb.shape[0]} pixels)")
    crop, transform = align(image_rgb, landmarks.eyes, config)
    image = image_rgb.view()
    image.flags.writeable = False
    plan = PastePlan.build(image, transform, config.size, paste or PasteConfig())
    mesh = eye_units(landmarks.points, transform, config)
    return Target(name, image, crop, transform, landmarks, config, plan, mesh, original_size)


def paste_back(target: Target, generated_crop: np.ndarray) -> np.ndarray:
    """generated_crop (S, S, 3) uint8 -> (H, W, 3) uint8: the whole portrait with the face
    region replaced by the crop, warped back and blended through a feathered ellipse."""
    return target.paste_plan.paste(target.image, generated_crop)
