"""The target portrait: found, aligned and prepared once for per-frame paste-back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face.align import SimilarityTransform, align
from rt_dtgan.face.errors import FaceNotFoundError
from rt_dtgan.face.geometry import eye_units
from rt_dtgan.face.images import check_rgb_image, load_image
from rt_dtgan.face.landmarks import FaceLandmarks, FaceMeshDetector
from rt_dtgan.face.paste import PasteConfig, PastePlan

PORTRAIT_MAX_FACES = 4  # the largest of these is the target


@dataclass(frozen=True, eq=False)
class Target:
    """A prepared portrait. ``image`` (H, W, 3) uint8 full resolution (read-only view),
    ``crop`` (S, S, 3) uint8 aligned face, ``transform`` image -> crop pixels, ``landmarks``
    in image pixels, ``mesh`` (MESH_POINTS, 2) float32 in eye units, ``paste_plan`` the
    precomputed paste-back, ``name`` for messages."""

    name: str
    image: np.ndarray
    crop: np.ndarray
    transform: SimilarityTransform
    landmarks: FaceLandmarks
    config: PreprocessConfig
    paste_plan: PastePlan
    mesh: np.ndarray


def prepare_target(
    image_rgb: np.ndarray,
    config: PreprocessConfig | None = None,
    name: str = "target image",
    paste: PasteConfig | None = None,
) -> Target:
    """image_rgb (H, W, 3) uint8 -> Target. Detects in still-image mode (largest face);
    large images are downscaled for detection only. Raises FaceNotFoundError naming ``name``.
    The caller must not modify ``image_rgb`` afterwards (the target keeps a view of it)."""
    config = config or PreprocessConfig()
    check_rgb_image(image_rgb, name)
    with FaceMeshDetector(video_mode=False, max_faces=PORTRAIT_MAX_FACES) as detector:
        landmarks = detector.detect(image_rgb)
    if landmarks is None:
        raise FaceNotFoundError(f"no face found in {name} ({image_rgb.shape[1]}x{image_rgb.shape[0]} pixels)")
    crop, transform = align(image_rgb, landmarks.eyes, config)
    image = image_rgb.view()
    image.flags.writeable = False
    plan = PastePlan.build(image, transform, config.size, paste or PasteConfig())
    return Target(name, image, crop, transform, landmarks, config, plan, eye_units(landmarks.points, transform, config))


def load_target(path: str | Path, config: PreprocessConfig | None = None, paste: PasteConfig | None = None) -> Target:
    """Load the image file at ``path`` (see load_image) and prepare it as a Target."""
    return prepare_target(load_image(path), config, name=str(path), paste=paste)


def paste_back(target: Target, generated_crop: np.ndarray) -> np.ndarray:
    """generated_crop (S, S, 3) uint8 -> (H, W, 3) uint8: the whole portrait with the face
    region replaced by the crop, warped back and blended through a feathered ellipse."""
    return target.paste_plan.paste(target.image, generated_crop)
