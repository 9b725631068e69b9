"""MediaPipe FaceMesh (468 points, plus 10 iris points when refined) on uint8 RGB images.

Landmarks are returned in continuous pixel coordinates of the image passed in (x, y), with
MediaPipe's relative depth z scaled like x. Eye centres are the means of each eye's two
corners, which do not move when the gaze does (the iris centres do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rt_dtgan.face.images import check_rgb_image, resize_area

# FaceMesh indices: the eye seen on the image left (the subject's right eye), then the other.
IMAGE_LEFT_EYE_CORNERS = (33, 133)
IMAGE_RIGHT_EYE_CORNERS = (362, 263)
# Inner lips (upper, lower) and the eyelids (upper, lower) of each eye, in the eye order above.
INNER_LIPS = (13, 14)
EYELIDS = ((159, 145), (386, 374))
# The points whose motion from a sequence's first frame is A's self-supervised target on
# unlabelled real video: inner lips, mouth corners, outer lips, eyelids, brows, chin.
MOTION_POINTS = (13, 14, 61, 291, 0, 17, 159, 145, 386, 374, 105, 334, 152)


@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    """``points`` (N, 3) float64 (x, y, z) in image pixels, N = 478 refined or 468."""

    points: np.ndarray

    def __post_init__(self) -> None:
        if self.points.ndim != 2 or self.points.shape[1] != 3 or self.points.shape[0] < 468:
            raise ValueError(f"expected (478 or 468, 3) landmark points, got {self.points.shape}")

    @property
    def eyes(self) -> np.ndarray:
        """(2, 2) float64 eye centres (x, y): image-left eye first."""
        xy = self.points[:, :2]
        return np.stack([xy[list(IMAGE_LEFT_EYE_CORNERS)].mean(0), xy[list(IMAGE_RIGHT_EYE_CORNERS)].mean(0)])

    @property
    def mouth_opening(self) -> float:
        """Gap between the inner lips over the distance between the eye centres (0 when closed)."""
        xy = self.points[:, :2]
        eyes = self.eyes
        return float(np.linalg.norm(xy[INNER_LIPS[0]] - xy[INNER_LIPS[1]]) / np.linalg.norm(eyes[1] - eyes[0]))

    @property
    def eye_opening(self) -> float:
        """Eyelid gap over eye width, both eyes averaged (about 0.3 open, near 0 closed)."""
        xy = self.points[:, :2]
        ratios = [
            np.linalg.norm(xy[upper] - xy[lower]) / np.linalg.norm(xy[outer] - xy[inner])
            for (upper, lower), (outer, inner) in zip(EYELIDS, (IMAGE_LEFT_EYE_CORNERS, IMAGE_RIGHT_EYE_CORNERS))
        ]
        return float(np.mean(ratios))

    @property
    def bounding_box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of all points, in pixels."""
        left, top = self.points[:, :2].min(0)
        right, bottom = self.points[:, :2].max(0)
        return float(left), float(top), float(right), float(bottom)

    @property
    def area(self) -> float:
        left, top, right, bottom = self.bounding_box
        return (right - left) * (bottom - top)


class FaceMeshDetector:
    """MediaPipe FaceMesh returning the largest face. Use as a context manager or call close().

    ``video_mode=True`` tracks landmarks from frame to frame and re-runs the face detector
    only when tracking is lost (frames must then come from one video, in order);
    ``video_mode=False`` detects afresh in every image (stills). Images larger than
    ``max_side`` on their longer side are area-downscaled before detection.
    """

    def __init__(
        self,
        video_mode: bool,
        max_faces: int = 1,
        refine_landmarks: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        max_side: int = 1280,
    ) -> None:
        if max_faces < 1 or max_side < 64:
            raise ValueError(f"max_faces must be >= 1 and max_side >= 64, got {max_faces} and {max_side}")
        # Imported here: mediapipe takes over a second to import, and alignment or paste-back need none of it.
        from mediapipe.python.solutions.face_mesh import FaceMesh

        self.max_side = max_side
        self._mesh = FaceMesh(
            static_image_mode=not video_mode,
            max_num_faces=max_faces,
            refine_landmarks=refine_landmarks,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, image: np.ndarray) -> FaceLandmarks | None:
        """image (H, W, 3) uint8 RGB -> landmarks of the largest face in its pixels, or None."""
        check_rgb_image(image, "image for face detection")
        height, width = image.shape[:2]
        factor = min(1.0, self.max_side / max(height, width))
        if factor < 1.0:
            image = resize_area(image, max(1, round(width * factor)), max(1, round(height * factor)))
        faces = self._mesh.process(np.ascontiguousarray(image)).multi_face_landmarks
        if not faces:
            return None
        # Normalised coordinates span the whole image, so they scale to the full resolution directly.
        scale = np.array([width, height, width], dtype=np.float64)
        candidates = [
            FaceLandmarks(np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64) * scale)
            for face in faces
        ]
        return max(candidates, key=lambda landmarks: landmarks.area)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceMeshDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
