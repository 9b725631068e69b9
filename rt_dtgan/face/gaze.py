"""The portrait's eyes look where the driver's look, relative to the driver's anchor.

FaceMesh's attention model (``refine_landmarks``) adds an iris to each eye. ``iris_places``
reads each iris's place in its eye's own frame (along the corners' axis, from the image-left
corner to the image-right one, and across it, over the corners' distance), so that a head
that moves or turns does not read as a look. ``GazeFollower`` turns the driver's places
into the shift of the look relative to the anchor: both eyes' mean (they move together;
FaceMesh's errors on the two are partly opposed, and the mean halves them), held through a
blink (a closing lid hides the iris and FaceMesh guesses), One-Euro smoothed, through a soft
dead band (a still driver leaves the eyes exactly still) and bent smoothly toward a limit.
``GazeRig`` holds the portrait's eyes: per eye, a box of its pixels and a weight, 1 over the
middle of the eye and falling smoothly to 0 at its corners and past its lids; per frame the
eye's pixels sample from where the shift says, weighted, so that the iris and the white
around it slide between corners that stay (``GazeShift``, added to the expression's field by
the renderer, rt_dtgan.face.render).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rt_dtgan.face.align import pixel_centres
from rt_dtgan.face.smoothing import OneEuroConfig, OneEuroFilter

# Each iris's centre (FaceMesh's refined points) and its eye's corners, image-left first, and
# the upper and lower lid points at the middle of the eye.
IRIS_EYES = ((468, (33, 133), (159, 145)), (473, (362, 263), (386, 374)))
REFINED_POINTS = 478
# A lid gap under this share of the anchor's is a blink: the look is held.
BLINK_SHARE = 0.5
# Along and across the eye, in corner distances: the soft dead band, and the limits the
# shift bends toward (the iris stays well inside the eye).
DEAD_BAND = np.array([0.015, 0.015])
LIMITS = np.array([0.16, 0.08])
STILL_BELOW = 0.1
GAZE_SMOOTHING = OneEuroConfig(min_cutoff=2.0, beta=4.0, d_cutoff=2.0)
# The weight's half-extent along the eye (a share of the corners' distance from the eye's
# middle: 0 at the corners) and across it (past the lids).
HALF_ALONG = 0.5
HALF_ACROSS = 0.4


def iris_places(points: np.ndarray) -> np.ndarray | None:
    """(N, 2 or 3) FaceMesh points in pixels -> (2, 3) per eye (image-left first): the iris's
    place along and across the eye from the corners' midpoint, and the lid gap, all over the
    corners' distance; None without irises (N < REFINED_POINTS)."""
    if len(points) < REFINED_POINTS:
        return None
    places = []
    for iris, (left, right), (upper, lower) in IRIS_EYES:
        axis = points[right, :2] - points[left, :2]
        span = float(axis @ axis)
        across = np.array([-axis[1], axis[0]])
        offset = points[iris, :2] - (points[left, :2] + points[right, :2]) / 2
        gap = (points[lower, :2] - points[upper, :2]) @ across
        places.append([offset @ axis / span, offset @ across / span, gap / span])
    return np.array(places)


def soft_limit(values: np.ndarray) -> np.ndarray:
    """(2,) shift -> the same, bent smoothly toward +-LIMITS (about itself while small)."""
    return LIMITS * np.tanh(values / LIMITS)


class GazeFollower:
    """The driver's iris places in, the shift of the portrait's look out (None: it stays).

    The first places after ``anchor()`` are the anchor. ``strength`` scales the shift."""

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = strength
        self._anchor: np.ndarray | None = None
        self._held = np.zeros(2)
        self._smoother = OneEuroFilter(GAZE_SMOOTHING)

    def anchor(self, places: np.ndarray | None = None) -> None:
        """Make ``places`` (``iris_places``) the anchor now, or, without them, the next ones."""
        self._anchor = places
        self._held = np.zeros(2)
        self._smoother.reset()

    def follow(self, places: np.ndarray | None, timestamp: float) -> np.ndarray | None:
        """The driver's ``iris_places`` (None: no irises) at ``timestamp`` (seconds, increasing)
        -> (2,) the look's shift along and across the eye, in corner distances, or None."""
        if places is None or self.strength == 0.0:
            return None
        if self._anchor is None:
            self._anchor = places
        if places[:, 2].mean() >= BLINK_SHARE * self._anchor[:, 2].mean():
            self._held = (places[:, :2] - self._anchor[:, :2]).mean(axis=0)
        smoothed = self._smoother.filter(self._held, timestamp) * self.strength
        banded = smoothed * -np.expm1(-((smoothed / DEAD_BAND) ** 2))
        if np.all(np.abs(banded) < STILL_BELOW * DEAD_BAND):
            return None
        return soft_limit(banded)


@dataclass(frozen=True, eq=False)
class EyeWeights:
    """One of the portrait's eyes: the box of its pixels (``rows`` x ``columns``, slices),
    ``weight`` (h, w) float32 in [0, 1], and its ``axis`` and ``across`` (2,) float32, the
    corners' vector and its perpendicular, in image pixels."""

    rows: slice
    columns: slice
    weight: np.ndarray
    axis: np.ndarray
    across: np.ndarray


@dataclass(frozen=True, eq=False)
class GazeShift:
    """Per eye, where its pixels sample from, relative to themselves: ``eyes`` (EyeWeights)
    and ``moves`` (h, w, 2) float32 image pixels each."""

    eyes: tuple[EyeWeights, ...]
    moves: tuple[np.ndarray, ...]


class GazeRig:
    """The portrait's eyes, built once; ``shift(look)`` -> the GazeShift for a look."""

    def __init__(self, eyes: tuple[EyeWeights, ...]) -> None:
        self.eyes = eyes

    @classmethod
    def build(cls, points: np.ndarray, image_size: tuple[int, int]) -> GazeRig:
        """points (N, 2 or 3) the portrait's FaceMesh in pixels (without irises, its eyes
        still move as the corners and lids frame them), image_size (width, height)."""
        return cls(tuple(eye_weights(points, left, right, image_size) for _, (left, right), _ in IRIS_EYES))

    def shift(self, look: np.ndarray) -> GazeShift:
        """(2,) the look's shift along and across the eye, in corner distances -> a GazeShift:
        each eye's pixels sample from ``-weight * shift`` (the iris appears moved by it)."""
        moves = []
        for eye in self.eyes:
            moved_by = look[0] * eye.axis + look[1] * eye.across
            moves.append((-eye.weight[..., None] * moved_by).astype(np.float32))
        return GazeShift(self.eyes, tuple(moves))


def eye_weights(points: np.ndarray, left: int, right: int, image_size: tuple[int, int]) -> EyeWeights:
    """The eye between corners ``left`` and ``right`` (FaceMesh indices) -> its EyeWeights: a
    separable (1 - t^2)^2 falloff over HALF_ALONG and HALF_ACROSS of the corners' distance
    around their midpoint, in the eye's own frame (a tilted eye's tilt kept)."""
    start, end = points[left, :2].astype(np.float64), points[right, :2].astype(np.float64)
    axis = end - start
    across = np.array([-axis[1], axis[0]])
    middle = (start + end) / 2
    span = float(np.hypot(*axis))
    reach = span * max(HALF_ALONG, HALF_ACROSS)
    width, height = image_size
    left_x, top = (max(int(np.floor(value - reach)), 0) for value in middle)
    right_x, bottom = min(int(np.ceil(middle[0] + reach)) + 1, width), min(int(np.ceil(middle[1] + reach)) + 1, height)
    offsets = pixel_centres(max(bottom - top, 0), max(right_x - left_x, 0)) + np.array([left_x, top]) - middle
    along = (offsets @ axis) / (span * span * HALF_ALONG)
    sideways = (offsets @ across) / (span * span * HALF_ACROSS)
    weight = np.clip(1.0 - along**2, 0.0, None) ** 2 * np.clip(1.0 - sideways**2, 0.0, None) ** 2
    vectors = axis.astype(np.float32), across.astype(np.float32)
    return EyeWeights(slice(top, bottom), slice(left_x, right_x), weight.astype(np.float32), *vectors)
