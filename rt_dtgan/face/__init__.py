"""Face pipeline: image loading, MediaPipe landmarks, eye alignment, smoothing, tracking,
target preparation and paste-back. All images are (H, W, 3) uint8 RGB; see docs/face.md."""

from rt_dtgan.face.align import SimilarityTransform, align, eyes_to_crop_transform
from rt_dtgan.face.errors import FaceError, FaceNotFoundError
from rt_dtgan.face.images import load_image
from rt_dtgan.face.landmarks import FaceLandmarks, FaceMeshDetector
from rt_dtgan.face.neutral import NeutralPicker
from rt_dtgan.face.paste import PasteConfig, PastePlan
from rt_dtgan.face.smoothing import OneEuroConfig, OneEuroFilter
from rt_dtgan.face.target import Target, load_target, paste_back, prepare_target
from rt_dtgan.face.tracker import FACE_TOO_SMALL, NO_FACE, FaceTracker, TrackerConfig, TrackResult

__all__ = [
    "FACE_TOO_SMALL",
    "NO_FACE",
    "FaceError",
    "FaceLandmarks",
    "FaceMeshDetector",
    "FaceNotFoundError",
    "FaceTracker",
    "NeutralPicker",
    "OneEuroConfig",
    "OneEuroFilter",
    "PasteConfig",
    "PastePlan",
    "SimilarityTransform",
    "Target",
    "TrackResult",
    "TrackerConfig",
    "align",
    "eyes_to_crop_transform",
    "load_image",
    "load_target",
    "paste_back",
    "prepare_target",
]
