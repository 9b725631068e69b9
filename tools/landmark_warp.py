"""Training-free baseline: a driver video moves a portrait's FaceMesh landmarks, and a
thin-plate spline through them warps the portrait. No learning, no mouth interior.

    python tools/landmark_warp.py --source DRIVER.mp4 --target PORTRAIT.jpg --out OUT.mp4 [--frames N] [--smooth]

Per driver frame (FaceMesh, video mode): the 468 points are similarity-aligned on the eye
centres (mean of each eye's two corners; image-left eye at (-0.5, 0), the other at (0.5, 0)),
so positions are in eye-distance units without head translation, in-plane roll or scale;
minus the same for the first tracked frame (tracked a few more times over itself, as FaceMesh's
first result sits off its tracked ones), they are the driver's motion (with --smooth, One-Euro
filtered: rt_dtgan.face.smoothing, its defaults). That motion, scaled and rotated by the
portrait's own eye distance and roll, moves the portrait's landmarks (detected once, still
mode); the lids' vertical motion is scaled by the portrait's lid gap
over the driver's, and no lid or inner lip crosses its partner. A thin-plate spline fitted
from the moved points back to the portrait's points (96 moving: lips, eyelids, brows, jaw,
nose, cheeks; 47 still: the upper head outline and the face box's edge) gives, for each
output pixel, where to sample the portrait. It is computed on a coarse grid over the face box,
faded to no motion at the box's edge, upsampled and applied with cv2.remap (bicubic) to the
full-resolution portrait; outside the face box the portrait is untouched. The output has the
portrait's size and the driver's frame rate, written like `rt-dtgan transfer` writes
(open_sink); a driver frame without a face repeats the last output. A 1200 px portrait takes
about 30 ms a frame for the warp, 40-50 ms with detection and encoding, on two busy cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from rt_dtgan.face.images import load_image
from rt_dtgan.face.landmarks import FaceLandmarks, FaceMeshDetector
from rt_dtgan.face.smoothing import OneEuroFilter
from rt_dtgan.media import open_sink, open_source

# FaceMesh indices of the points that move (image-left features first where it matters).
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
INNER_LIPS = (78, 81, 13, 311, 308, 402, 14, 178)
EYELID_POINTS = (33, 160, 159, 158, 133, 153, 145, 144, 362, 385, 386, 387, 263, 373, 374, 380)
BROWS = (70, 63, 105, 66, 107, 300, 293, 334, 296, 336)
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
NOSE = (1, 4, 5, 195, 6, 168, 98, 327, 2)
CHEEKS = (50, 280, 205, 425, 187, 411, 147, 376, 123, 352, 36, 266)
MOVED_POINTS = OUTER_LIPS + INNER_LIPS + EYELID_POINTS + BROWS + JAW + NOSE + CHEEKS
# (upper, lower) point pairs that must not cross: each eye's lids, then the inner lips.
IMAGE_LEFT_LIDS = ((160, 144), (159, 145), (158, 153))
IMAGE_RIGHT_LIDS = ((385, 380), (386, 374), (387, 373))
INNER_LIP_PAIRS = ((81, 178), (13, 14), (311, 402))
# The upper head outline, from temple to temple over the forehead: held still.
HELD_POINTS = (127, 162, 21, 54, 103, 67, 109, 10, 338, 297, 332, 284, 251, 389, 356)

BOX_MARGINS = (0.25, 0.25, 0.25, 0.35)  # left, top, right, bottom, in face-box widths/heights
EDGE_POINTS_PER_SIDE = 8  # still points on each side of the face box
FADE = 0.1  # the outer fraction of the face box where the motion fades to zero
SMOOTHING = 3e-3  # TPS regularisation, in (face-box size)^2 units: below it the splines fold
EYELID_SMOOTHING = 1e-4  # the same for the lids (not the eye corners): a blink is a few pixels
EYE_GAIN_LIMITS = (0.3, 3.0)  # bounds of the lid-motion gain, portrait lid gap / driver lid gap
SETTLE_PASSES = 3  # extra tracking passes over the first tracked frame before it is the reference
GRID_NODES = 80  # coarse grid nodes on the longer side of the face box


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="driver video (any file open_source reads, or an image folder)")
    parser.add_argument("--target", required=True, help="portrait image")
    parser.add_argument("--out", required=True, help="output video (.mp4, .mkv, .mov, .y4m)")
    parser.add_argument("--frames", type=int, help="stop after this many driver frames")
    parser.add_argument("--smooth", action="store_true", help="One-Euro filter the driver's landmarks (less jitter, some lag)")
    return parser.parse_args()


def aligned_points(landmarks: FaceLandmarks) -> np.ndarray:
    """(468,) complex: the points in eye-distance units, eye centres at -0.5 and 0.5 on the real axis."""
    points = landmarks.points[:468, 0] + 1j * landmarks.points[:468, 1]
    left, right = (complex(*eye) for eye in landmarks.eyes)
    return (points - (left + right) / 2) / (right - left)


def tps_kernel(distances_sq: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r from squared distances (any shape), 0 at r = 0."""
    return 0.5 * distances_sq * np.log(np.maximum(distances_sq, np.finfo(distances_sq.dtype).tiny))


def fit_tps(centres: np.ndarray, values: np.ndarray, smoothing: float | np.ndarray) -> np.ndarray:
    """Thin-plate spline through (n, 2) ``centres`` taking (n, 2) ``values``, with ``smoothing``
    for all points or (n,) per point -> (n + 3, 2) coefficients: n kernel weights, then the
    affine part (1, x, y)."""
    count = len(centres)
    kernel = tps_kernel(((centres[:, None] - centres[None]) ** 2).sum(-1)) + np.diag(np.broadcast_to(smoothing, (count,)))
    affine = np.hstack([np.ones((count, 1)), centres])
    system = np.zeros((count + 3, count + 3))
    system[:count, :count], system[:count, count:], system[count:, :count] = kernel, affine, affine.T
    right = np.vstack([values, np.zeros((3, 2))])
    return np.linalg.solve(system, right)


def eval_tps(centres: np.ndarray, coefficients: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The spline of fit_tps at (m, 2) ``points`` -> (m, 2) float32 (the kernel in float32,
    squared distances by one matrix product: the per-frame cost of the warp)."""
    points32, centres32 = points.astype(np.float32), centres.astype(np.float32)
    distances_sq = (points32**2).sum(1)[:, None] + (centres32**2).sum(1)[None] - 2 * points32 @ centres32.T
    kernel = tps_kernel(np.maximum(distances_sq, 0))
    affine = np.hstack([np.ones((len(points), 1), np.float32), points32])
    return kernel @ coefficients[:-3].astype(np.float32) + affine @ coefficients[-3:].astype(np.float32)


def face_box(landmarks: FaceLandmarks, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) integer pixels: the landmarks' box with BOX_MARGINS, inside the image."""
    left, top, right, bottom = landmarks.bounding_box
    box_width, box_height = right - left, bottom - top
    margin_left, margin_top, margin_right, margin_bottom = BOX_MARGINS
    return (
        max(0, int(np.floor(left - margin_left * box_width))),
        max(0, int(np.floor(top - margin_top * box_height))),
        min(width, int(np.ceil(right + margin_right * box_width))),
        min(height, int(np.ceil(bottom + margin_bottom * box_height))),
    )


def edge_points(box: tuple[int, int, int, int], per_side: int) -> np.ndarray:
    """(4 * per_side, 2) points evenly spaced around the box's edge, corners included."""
    left, top, right, bottom = box
    steps = np.linspace(0.0, 1.0, per_side, endpoint=False)
    xs, ys = left + steps * (right - left), top + steps * (bottom - top)
    return np.concatenate([
        np.stack([xs, np.full(per_side, top)], 1),
        np.stack([np.full(per_side, right), ys], 1),
        np.stack([xs[::-1] + (right - left) / per_side, np.full(per_side, bottom)], 1),
        np.stack([np.full(per_side, left), ys[::-1] + (bottom - top) / per_side], 1),
    ])


def lid_gap(points: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> float:
    """Mean vertical gap (lower - upper) of (upper, lower) index pairs of (468,) complex aligned points."""
    return float(np.mean([(points[lower] - points[upper]).imag for upper, lower in pairs]))


def fade_window(count: int) -> np.ndarray:
    """(count,) weights in [0, 1]: 0 at both ends, 1 inside, a smoothstep over FADE of the length."""
    position = np.linspace(0.0, 1.0, count)
    ramp = np.clip(np.minimum(position, 1.0 - position) / FADE, 0.0, 1.0)
    return ramp * ramp * (3.0 - 2.0 * ramp)


class PortraitWarp:
    """The portrait, its landmarks and face box, prepared once; ``render(current, reference)`` warps it."""

    def __init__(self, image: np.ndarray, landmarks: FaceLandmarks) -> None:
        """image (H, W, 3) uint8 RGB, landmarks of its face (still-mode FaceMesh)."""
        self.image = image
        height, width = image.shape[:2]
        self.box = face_box(landmarks, width, height)
        left, top, right, bottom = self.box
        self.scale = float(max(right - left, bottom - top))
        self.origin = np.array([left, top], dtype=np.float64)
        points = landmarks.points[:468, :2]
        eyes = landmarks.eyes
        self.centre, self.eye_vector = complex(*eyes.mean(0)), complex(*(eyes[1] - eyes[0]))
        self.canonical = aligned_points(landmarks)
        self.moved = points[list(MOVED_POINTS)]
        eyelids = set(np.ravel(IMAGE_LEFT_LIDS + IMAGE_RIGHT_LIDS))
        point_smoothing = [EYELID_SMOOTHING if index in eyelids else SMOOTHING for index in MOVED_POINTS]
        self.still = np.concatenate([points[list(HELD_POINTS)], edge_points(self.box, EDGE_POINTS_PER_SIDE)])
        self.smoothing = np.array(point_smoothing + [SMOOTHING] * len(self.still))
        self.grid, self.grid_shape = self._coarse_grid()
        self.window = np.outer(fade_window(self.grid_shape[0]), fade_window(self.grid_shape[1]))[..., None]
        ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32)
        self.identity = (xs, ys)

    def _coarse_grid(self) -> tuple[np.ndarray, tuple[int, int]]:
        """(rows * columns, 2) grid nodes over the face box, box-normalised, and (rows, columns)."""
        left, top, right, bottom = self.box
        step = self.scale / (GRID_NODES - 1)
        columns, rows = int(np.ceil((right - left) / step)) + 1, int(np.ceil((bottom - top) / step)) + 1
        xs = np.linspace(left + 0.5, right - 0.5, columns)
        ys = np.linspace(top + 0.5, bottom - 0.5, rows)
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        return self._normalise(grid), (rows, columns)

    def _normalise(self, points: np.ndarray) -> np.ndarray:
        return (points - self.origin) / self.scale

    def moved_points(self, current: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Driver points now and in the reference frame, (468,) complex from aligned_points
        -> (len(MOVED_POINTS), 2) where the portrait's MOVED_POINTS go, in its pixels.

        The motion is added in eye-distance units; the lids' vertical motion is first scaled by
        the portrait's lid gap over the driver's (so a wide-eyed driver's blink closes a
        narrow-eyed portrait's eye instead of turning it inside out), and no upper lid or
        upper inner lip ends below its lower partner (both go to their middle)."""
        moved = self.canonical + (current - reference)
        for pairs in (IMAGE_LEFT_LIDS, IMAGE_RIGHT_LIDS):
            gain = np.clip(lid_gap(self.canonical, pairs) / max(lid_gap(reference, pairs), 1e-3), *EYE_GAIN_LIMITS)
            lids = list(np.ravel(pairs))
            moved[lids] = moved[lids].real + 1j * (self.canonical[lids].imag + gain * (current[lids] - reference[lids]).imag)
        for upper, lower in IMAGE_LEFT_LIDS + IMAGE_RIGHT_LIDS + INNER_LIP_PAIRS:
            if moved[lower].imag < moved[upper].imag:
                middle = (moved[lower].imag + moved[upper].imag) / 2
                moved[upper], moved[lower] = moved[upper].real + 1j * middle, moved[lower].real + 1j * middle
        pixels = self.centre + moved[list(MOVED_POINTS)] * self.eye_vector
        return np.stack([pixels.real, pixels.imag], 1)

    def render(self, current: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Driver points now and in the reference frame, (468,) complex from aligned_points
        -> (H, W, 3) uint8 warped portrait."""
        destination = self._normalise(np.concatenate([self.moved_points(current, reference), self.still]))
        source = self._normalise(np.concatenate([self.moved, self.still]))
        coefficients = fit_tps(destination, source, self.smoothing)
        shift = (eval_tps(destination, coefficients, self.grid) - self.grid) * self.scale
        shift = (shift.reshape(*self.grid_shape, 2) * self.window).astype(np.float32)
        left, top, right, bottom = self.box
        shift = cv2.resize(shift, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
        map_x, map_y = self.identity[0] + shift[..., 0], self.identity[1] + shift[..., 1]
        warped = cv2.remap(self.image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        output = self.image.copy()
        output[top:bottom, left:right] = warped
        return output


def detect_portrait(image: np.ndarray, name: str) -> FaceLandmarks:
    """Still-mode FaceMesh on the portrait (the largest of up to 4 faces); ValueError when none."""
    with FaceMeshDetector(video_mode=False, max_faces=4) as detector:
        landmarks = detector.detect(image)
    if landmarks is None:
        raise ValueError(f"no face found in {name}")
    return landmarks


def settled(detector: FaceMeshDetector, image: np.ndarray, landmarks: FaceLandmarks) -> FaceLandmarks:
    """The landmarks of ``image`` after SETTLE_PASSES more tracking passes over it: FaceMesh's
    first (detector-cropped) result sits off its tracked one by ~0.05 eye distances, which would
    otherwise read as motion in every later frame."""
    for _ in range(SETTLE_PASSES):
        landmarks = detector.detect(image) or landmarks
    return landmarks


def smoothed(smoother: OneEuroFilter | None, points: np.ndarray, timestamp: float) -> np.ndarray:
    """(468,) complex aligned points through the One-Euro filter (unchanged without one)."""
    if smoother is None:
        return points
    filtered = smoother.filter(np.stack([points.real, points.imag], 1), timestamp)
    return filtered[:, 0] + 1j * filtered[:, 1]


def warp_video(
    source_path: str | Path, portrait_path: str | Path, out_path: str | Path, frames: int | None = None, smooth: bool = False
) -> dict:
    """Drive the portrait with the source video into ``out_path`` (portrait size, source fps)
    -> {"frames", "found", "fps", "ms_per_frame"}; ValueError when the portrait has no face.
    ``smooth``: One-Euro filter the driver's aligned points (the project's filter and defaults):
    less of FaceMesh's jitter (~0.015 eye distances frame to frame on a still face), some lag."""
    portrait = load_image(portrait_path)
    warp = PortraitWarp(portrait, detect_portrait(portrait, str(portrait_path)))
    height, width = portrait.shape[:2]
    smoother = OneEuroFilter() if smooth else None
    reference, output, found, total = None, portrait, 0, 0
    started = time.perf_counter()
    with FaceMeshDetector(video_mode=True) as detector, open_source(str(source_path), pace=False) as source:
        with open_sink(str(out_path), width, height, source.fps) as sink:
            for frame in source:
                if frames is not None and total >= frames:
                    break
                landmarks = detector.detect(frame.image)
                if landmarks is not None:
                    if reference is None:
                        landmarks = settled(detector, frame.image, landmarks)
                        reference = aligned_points(landmarks)
                    points = smoothed(smoother, aligned_points(landmarks), frame.index / source.fps)
                    output = warp.render(points, reference)
                    found += 1
                sink.write(frame.with_image(output))
                total += 1
            fps = float(source.fps)
    elapsed = time.perf_counter() - started
    return {"frames": total, "found": found, "fps": fps, "ms_per_frame": 1000 * elapsed / max(total, 1)}


def main() -> None:
    args = parse_args()
    if args.frames is not None and args.frames < 1:
        sys.exit("--frames must be at least 1")
    try:
        result = warp_video(args.source, args.target, args.out, args.frames, smooth=args.smooth)
    except Exception as error:  # one sentence for the user, not a traceback
        sys.exit(f"landmark_warp: {error}")
    print(
        f"{result['frames']} frames to {args.out} at {result['fps']:g} fps; driver face found in {result['found']}; "
        f"{result['ms_per_frame']:.1f} ms a frame",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
