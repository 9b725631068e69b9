"""Live face tracking: MediaPipe in video mode, One-Euro smoothing of the eyes, aligned crops."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face.align import SimilarityTransform, align
from rt_dtgan.face.geometry import eye_units
from rt_dtgan.face.images import check_rgb_image
from rt_dtgan.face.landmarks import FaceLandmarks, FaceMeshDetector
from rt_dtgan.face.pose import HeadPose, frontal_mesh, head_pose
from rt_dtgan.face.smoothing import OneEuroConfig, OneEuroFilter

NO_FACE = "no face detected"
FACE_TOO_SMALL = "face too small"


@dataclass(frozen=True)
class TrackerConfig:
    """``max_faces`` faces are tracked and the largest is used (1, the default, tracks the
    first face found: with more, MediaPipe re-runs its detector on every frame that shows
    fewer faces); ``refine_landmarks`` runs FaceMesh's attention model, which adds the iris
    points and, what matters here, follows lids and lips far better (measured on a real
    clip: a blink closes the lids to 0.07 of the eye width with it, 0.35 without; the cost,
    0.2 ms a frame, is within the noise);
    ``detection_max_side`` caps
    the frame side given to MediaPipe (larger frames are downscaled for detection only);
    faces with eyes closer than ``min_eye_distance`` pixels are reported as too small;
    after ``reset_after_gap`` seconds without a face the smoother starts afresh.
    ``settle_passes``: when a track (re)starts, FaceMesh's first result (from its detector's
    box) sits about 0.05 eye distances off where tracking settles, which would read as a
    standing expression against a y0 taken then; the frame is tracked this many more times
    over itself and the last result kept."""

    max_faces: int = 1
    refine_landmarks: bool = True
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    detection_max_side: int = 1280
    min_eye_distance: float = 8.0
    reset_after_gap: float = 0.25
    settle_passes: int = 3
    smoothing: OneEuroConfig = field(default_factory=OneEuroConfig)

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces}")
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.detection_max_side < 64:
            raise ValueError(f"detection_max_side must be at least 64, got {self.detection_max_side}")
        if not (self.min_eye_distance > 0 and self.reset_after_gap > 0):
            raise ValueError("min_eye_distance and reset_after_gap must be positive")
        if self.settle_passes < 0:
            raise ValueError(f"settle_passes must be at least 0, got {self.settle_passes}")


@dataclass(frozen=True, eq=False)
class TrackResult:
    """One frame's outcome. When ``found``: ``crop`` (S, S, 3) uint8 aligned face,
    ``transform`` frame -> crop pixels, ``eyes`` (2, 2) the smoothed eye centres used for
    it, ``landmarks`` the raw landmarks in frame pixels, ``pose`` the head's HeadPose
    (face/pose.py), ``mesh`` (MESH_POINTS, 2) float32 the frontal mesh (the pose taken out,
    eye units: what a geometry-reading encoder sees) and ``crop_mesh`` (MESH_POINTS, 2)
    float32 the landmarks in eye units of the crop (face/geometry.py). Otherwise those are
    None and ``reason`` says why (NO_FACE or FACE_TOO_SMALL)."""

    timestamp: float
    found: bool
    crop: np.ndarray | None = None
    transform: SimilarityTransform | None = None
    eyes: np.ndarray | None = None
    landmarks: FaceLandmarks | None = None
    reason: str | None = None
    mesh: np.ndarray | None = None
    crop_mesh: np.ndarray | None = None
    pose: HeadPose | None = None


class FaceTracker:
    """Frames of one video in, aligned face crops out. Use as a context manager or call close().

    ``track(frame, timestamp)`` expects frames in order with strictly increasing timestamps
    in seconds. Eye centres are smoothed by a One-Euro filter in units of the inter-ocular
    distance seen when the track (re)started.
    """

    def __init__(self, config: PreprocessConfig | None = None, options: TrackerConfig | None = None) -> None:
        self.config = config or PreprocessConfig()
        self.options = options or TrackerConfig()
        self._detector = FaceMeshDetector(
            video_mode=True,
            max_faces=self.options.max_faces,
            refine_landmarks=self.options.refine_landmarks,
            min_detection_confidence=self.options.min_detection_confidence,
            min_tracking_confidence=self.options.min_tracking_confidence,
            max_side=self.options.detection_max_side,
        )
        self._smoother = OneEuroFilter(self.options.smoothing)
        self._eye_distance_unit = 1.0
        self._last_timestamp = -math.inf
        self._tracking = False

    def track(self, frame: np.ndarray, timestamp: float) -> TrackResult:
        """frame (H, W, 3) uint8 RGB, timestamp in seconds -> TrackResult."""
        located = self.locate(frame, timestamp)
        return self.align(frame, located) if located.found else located

    def align(self, frame: np.ndarray, located: TrackResult) -> TrackResult:
        """The aligned crop for a face ``locate`` found in ``frame``."""
        crop, transform = align(frame, located.eyes, self.config)
        points = located.landmarks.points
        pose = head_pose(points)
        crop_mesh = eye_units(points, transform, self.config)
        return dataclasses.replace(
            located, crop=crop, transform=transform, mesh=frontal_mesh(points, pose), crop_mesh=crop_mesh, pose=pose
        )

    def locate(self, frame: np.ndarray, timestamp: float) -> TrackResult:
        """As ``track``, without the crop: finds the face and smooths its eyes (``crop`` and
        ``transform`` stay None; ``align`` makes them)."""
        check_rgb_image(frame, "frame")
        if not (math.isfinite(timestamp) and timestamp > self._last_timestamp):
            raise ValueError(f"timestamps must increase: {timestamp} after {self._last_timestamp}")
        self._last_timestamp = timestamp
        landmarks = self._detector.detect(frame)
        if landmarks is not None and not self._tracking:
            for _ in range(self.options.settle_passes):
                landmarks = self._detector.detect(frame) or landmarks
        self._tracking = landmarks is not None
        if landmarks is None:
            return TrackResult(timestamp, found=False, reason=NO_FACE)
        eyes = landmarks.eyes
        eye_distance = float(np.linalg.norm(eyes[1] - eyes[0]))
        if eye_distance < self.options.min_eye_distance:
            return TrackResult(timestamp, found=False, landmarks=landmarks, reason=FACE_TOO_SMALL)
        smoothed = self._smooth(eyes, eye_distance, timestamp)
        return TrackResult(timestamp, True, eyes=smoothed, landmarks=landmarks)

    def _smooth(self, eyes: np.ndarray, eye_distance: float, timestamp: float) -> np.ndarray:
        previous = self._smoother.last_timestamp
        if previous is not None and timestamp - previous > self.options.reset_after_gap:
            self._smoother.reset()
        if self._smoother.last_timestamp is None:
            self._eye_distance_unit = eye_distance
        unit = self._eye_distance_unit
        return self._smoother.filter(eyes / unit, timestamp) * unit

    def reset(self) -> None:
        """Forget the smoothing history (for example after a cut in the source video)."""
        self._smoother.reset()

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
