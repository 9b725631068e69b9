"""The portrait's whole head turned, nodded, tilted and moved as the driver's, relative to
the driver's anchor; the background and the shoulders stay.

``HeadFollower`` turns the driver's per-frame HeadPose (rt_dtgan.face.pose) into the pose
relative to its anchor, smoothed (One-Euro), with a soft dead band (a still driver leaves
the portrait exactly still), a strength and a smooth limit past 30 degrees of yaw and roll
and 20 of pitch. ``HeadRig`` holds what depends only on the portrait: its 3D face mesh, a
shell of points around it for hair and ears (the face oval pushed outwards and backwards),
a ring of held points for the background and a row under the chin for the shoulders, and
the box of portrait pixels between them. Per frame the rig moves its head points rigidly in
3D about a pivot behind the face, projects them, and fits a thin-plate spline from the moved
points back to the original ones (held points fixed), evaluated on a coarse grid over the
box: where each output pixel takes its colour from. The neck blends between the moving jaw
and the held shoulders; a rigid move keeps glasses rigid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import torch

from rt_dtgan.config import MESH_POINTS, POSE_MODES, POSE_STRENGTH_LIMITS
from rt_dtgan.face.align import pixel_centres
from rt_dtgan.face.pose import HeadPose, canonical_face, head_pose, rotation_angles, rotation_from_angles
from rt_dtgan.face.smoothing import OneEuroConfig, OneEuroFilter
from rt_dtgan.models.warp import HEAD_LEAST_JACOBIAN, evaluate_spline, fit_spline, unfold

# The head's pivot in the canonical face's eye units: between the ears, behind the face.
PIVOT = np.array([0.0, 0.6, 0.9])
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
# The head in the canonical face's eye units: its ellipse (centre and radii, covering face,
# hair and ears); the band beyond it over which the motion fades to nothing, in ellipse
# radii: FOLD_MARGIN times the largest motion on its outline (OUTLINE_WIDTH wide), within
# FADE_BAND; and the box the rig covers, out to the widest band.
HEAD_CENTRE = np.array([0.0, 0.35, 0.0])
HEAD_RADII = np.array([1.45, 2.0])
HEAD_RADIUS_BELOW = 1.75  # under the centre: the ellipse ends just past the chin, the neck fades
FADE_BAND = (0.35, 1.2)
FOLD_MARGIN = 1.5
OUTLINE_WIDTH = 0.08
BOX_RADII = np.array([*HEAD_RADII, 0.0]) * (1.0 + FADE_BAND[1])
# The face's relief (nose, brows, cheeks) over the smooth head is kept at RELIEF: most of the
# parallax that shows a turn, less of the nose sliding over the cheek that a 2D warp cannot hide.
RELIEF = 0.8
# Hair and ears for the depth: the oval pushed out from the face's centre by these factors,
# and back by SHELL_DEPTH per unit of push; every DEPTH_STRIDE-th mesh point.
SHELL_SCALES = (1.3, 1.6)
SHELL_DEPTH = 0.3
DEPTH_STRIDE = 4
HEAD_GRID = 48
# The head's map is made on blocks of COARSE x COARSE pixels and upsampled once, by the renderer,
# after the expression's field is added to it: a quarter of the per-pixel work.
COARSE = 2
INVERSION_STEPS = 4
MOVING_MARGIN = 3  # grid cells around those that move: the unfolding's blur reaches two
# Past the knee an angle (degrees: yaw, pitch, roll) bends smoothly toward the cap.
ANGLE_KNEES = np.array([30.0, 20.0, 30.0])
ANGLE_CAPS = np.array([40.0, 28.0, 40.0])
# Soft dead band widths: angles (degrees), shift (eye units), log scale.
DEAD_BAND = np.array([0.5, 0.5, 0.5, 0.012, 0.012, 0.008])
# All dead-banded parameters below this (in band units, reached by a parameter under about
# half its band): the head does not move at all; just above it moves by about 0.1 band.
STILL_BELOW = 0.1
POSE_SMOOTHING = OneEuroConfig(min_cutoff=1.5, beta=0.3, d_cutoff=2.0)


def check_pose_settings(mode: str, strength: float) -> None:
    """Raises ValueError for a mode not in POSE_MODES or a strength outside POSE_STRENGTH_LIMITS."""
    if mode not in POSE_MODES:
        raise ValueError(f"pose must be one of {', '.join(POSE_MODES)}, got {mode!r}")
    low, high = POSE_STRENGTH_LIMITS
    if not (math.isfinite(strength) and low <= strength <= high):
        raise ValueError(f"pose strength must be in [{low:g}, {high:g}], got {strength}")


@dataclass(frozen=True, eq=False)
class RelativePose:
    """The driver's head relative to its anchor: ``rotation`` (3, 3) in camera axes, ``shift``
    (3,) of the pivot in the anchor's eye units, ``scale`` its size over the anchor's."""

    rotation: np.ndarray
    shift: np.ndarray
    scale: float


def soft_limit(angles: np.ndarray) -> np.ndarray:
    """(3,) degrees -> the same up to ANGLE_KNEES, then bending smoothly toward ANGLE_CAPS."""
    over = np.abs(angles) - ANGLE_KNEES
    room = ANGLE_CAPS - ANGLE_KNEES
    bent = ANGLE_KNEES + room * np.tanh(np.maximum(over, 0.0) / room)
    return np.where(over > 0, np.sign(angles) * bent, angles)


def soft_dead_band(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """values * (1 - exp(-(values / widths)^2)): near 0 as the cube of the value, the value itself past a few widths."""
    return values * -np.expm1(-((values / widths) ** 2))


def pose_parameters(pose: HeadPose, anchor: HeadPose) -> np.ndarray:
    """-> (6,) yaw, pitch, roll (degrees) of ``pose`` relative to ``anchor`` (camera axes),
    the pivot's x and y shift in the anchor's eye units, and the log of the scale ratio."""
    angles = np.degrees(rotation_angles(pose.rotation @ anchor.rotation.T))
    shift = (pose.to_image(PIVOT) - anchor.to_image(PIVOT))[:2] / anchor.scale
    return np.concatenate([angles, shift, [math.log(pose.scale / anchor.scale)]])


class HeadFollower:
    """The driver's poses in, the portrait's head motion out (None: the head stays still).

    The first pose after ``anchor()`` (or the one given to it) is the anchor. ``strength``
    scales the motion (0 keeps the head still, 1 follows the driver); mode "lock" never moves it."""

    def __init__(self, mode: str = "follow", strength: float = 1.0) -> None:
        check_pose_settings(mode, strength)
        self.mode, self.strength = mode, strength
        self._anchor: HeadPose | None = None
        self._smoother = OneEuroFilter(POSE_SMOOTHING)

    def anchor(self, pose: HeadPose | None = None) -> None:
        """Make ``pose`` the anchor now, or, without one, the next pose ``follow`` sees."""
        self._anchor = pose
        self._smoother.reset()

    def follow(self, pose: HeadPose, timestamp: float) -> RelativePose | None:
        """The driver's pose at ``timestamp`` (seconds, increasing) -> the relative pose to apply."""
        if self.mode == "lock" or self.strength == 0.0:
            return None
        if self._anchor is None:
            self._anchor = pose
        raw = pose_parameters(pose, self._anchor)
        banded = soft_dead_band(self._smoother.filter(raw, timestamp) * self.strength, DEAD_BAND)
        if np.all(np.abs(banded) < STILL_BELOW * DEAD_BAND):
            return None
        angles = np.radians(soft_limit(banded[:3]))
        shift = np.array([banded[3], banded[4], 0.0])
        return RelativePose(rotation_from_angles(*angles), shift, math.exp(banded[5]))


@dataclass(frozen=True, eq=False)
class HeadRig:
    """One portrait's head, ready to move: on a G x G grid of cell centres over the box of
    portrait pixels it may change (``rows`` x ``columns``), each point's ``depth`` (G, G)
    in pixels (the face mesh's own depth, carried out over hair and ears by a shell of
    points around it, its relief flattened by RELIEF so that a turned nose never folds over
    the cheek) and ``radius`` (G, G), each point's distance from the head's centre relative
    to the head's ellipse (1 on its outline; what moves with the head fades out beyond it,
    down the neck and into the background, over a band as wide as the head's motion needs
    not to fold, 0 on the shoulders and the box's edge); ``pivot`` (3,) image pixels, ``unit``
    pixels per eye unit. Where the image's edge cuts the box, what moves in from beyond it is
    the image's edge repeated (the renderer's)."""

    rows: slice
    columns: slice
    points: np.ndarray
    depth: np.ndarray
    radius: np.ndarray
    pivot: np.ndarray
    unit: float

    @classmethod
    def build(cls, points: np.ndarray, image_size: tuple[int, int]) -> HeadRig:
        """points (N >= 468, 3): the portrait's FaceMesh points in pixels; image_size (width, height)."""
        pose = head_pose(points)
        width, height = image_size
        corners = pose.to_image(HEAD_CENTRE + np.array([[-1, -1, 0], [1, -1, 0], [-1, 1, 0], [1, 1, 0]]) * BOX_RADII)[:, :2]
        low = np.floor(corners.min(axis=0)).astype(int).clip(0, [width, height])
        high = np.ceil(corners.max(axis=0)).astype(int).clip(0, [width, height])
        if np.any(high - low < 2):
            raise ValueError("the portrait's head lies outside the image")
        steps = [low[axis] + (np.arange(HEAD_GRID) + 0.5) * (high[axis] - low[axis]) / HEAD_GRID for axis in (0, 1)]
        grid = np.stack(np.meshgrid(*steps), axis=-1)
        canonical = pose.frontal(np.concatenate([grid, np.zeros((*grid.shape[:2], 1))], axis=-1))
        depth = _depth(points, pose, grid)
        rows, columns = slice(low[1], high[1]), slice(low[0], high[0])
        offset = canonical[..., :2] - HEAD_CENTRE[:2]
        radii = np.where(offset[..., 1:] > 0, [HEAD_RADII[0], HEAD_RADIUS_BELOW], HEAD_RADII)
        radius = np.linalg.norm(offset / radii, axis=-1)
        return cls(rows, columns, grid, depth, radius, pose.to_image(PIVOT), pose.scale)

    def sampling(self, motion: RelativePose) -> HeadSampling:
        """-> where each pixel of the part of the box that moves takes its colour from, for the
        head moved by ``motion`` (pixels outside that part sample themselves)."""
        surface = np.concatenate([self.points, self.depth[..., None]], axis=-1)
        moved = self.pivot + motion.scale * (surface - self.pivot) @ motion.rotation.T + motion.shift * self.unit
        motion_of = moved[..., :2] - self.points
        weight = self._weight(motion_of)
        displacement = (weight[..., None] * motion_of).astype(np.float32)
        # Backward: the source point s whose forward move lands on each grid point x solves
        # s = x - displacement(s); a few fixed-point steps (it converges where nothing folds).
        origin = np.array([self.columns.start, self.rows.start], dtype=np.float64)
        size = np.array([self.columns.stop, self.rows.stop], dtype=np.float64) - origin
        sources = self.points.copy()
        for _ in range(INVERSION_STEPS):
            index = ((sources - origin) / size * HEAD_GRID - 0.5).astype(np.float32)
            moved_by = cv2.remap(displacement, index[..., 0], index[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            sources = self.points - moved_by
        step = tuple(size / HEAD_GRID)
        unfolded = unfold(torch.from_numpy(sources - self.points).unsqueeze(0), step, HEAD_LEAST_JACOBIAN)[0].numpy()
        rows, columns = self._moving_part(weight, size / HEAD_GRID)
        # On the coarse pixels of that part (COARSE x COARSE blocks), upsampled from the grid's
        # cell centres with maps made once; the displacement stays 0 out to the box's edge.
        coarse = slice(rows.start // COARSE, -(-rows.stop // COARSE)), slice(columns.start // COARSE, -(-columns.stop // COARSE))
        grid_x, grid_y, centres = self._coarse_maps
        moved_by = cv2.remap(
            unfolded.astype(np.float32), grid_x[coarse], grid_y[coarse], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return HeadSampling(
            slice(rows.start + self.rows.start, rows.stop + self.rows.start),
            slice(columns.start + self.columns.start, columns.stop + self.columns.start),
            centres[coarse],
            moved_by,
        )

    def _moving_part(self, weight: np.ndarray, cell: np.ndarray) -> tuple[slice, slice]:
        """(rows, columns) of the box (relative) that the head's motion reaches: the grid's
        cells of non-zero ``weight`` (G, G), widened by MOVING_MARGIN cells (what the unfolding
        spreads), in pixels of ``cell`` (x, y) each; it starts on a coarse block's corner."""
        reached_rows, reached_columns = np.nonzero(weight.any(axis=1))[0], np.nonzero(weight.any(axis=0))[0]
        height, width = self._size
        if not len(reached_rows):
            return slice(0, 0), slice(0, 0)
        first = np.maximum([reached_rows[0], reached_columns[0]] - np.array(MOVING_MARGIN), 0)
        last = np.minimum([reached_rows[-1], reached_columns[-1]] + np.array(MOVING_MARGIN) + 1, HEAD_GRID)
        top, left = (int(first[0] * cell[1]) // COARSE) * COARSE, (int(first[1] * cell[0]) // COARSE) * COARSE
        bottom, right = min(int(np.ceil(last[0] * cell[1])), height), min(int(np.ceil(last[1] * cell[0])), width)
        return slice(top, bottom), slice(left, right)

    @property
    def _size(self) -> tuple[int, int]:
        """(height, width) of the box in pixels."""
        return self.rows.stop - self.rows.start, self.columns.stop - self.columns.start

    @cached_property
    def _coarse_maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Made once over the box's coarse pixels (ceil(h / COARSE), ceil(w / COARSE)): their
        column and row on the grid (two float32 maps, cv2.remap's indices of the cells'
        centres) and their centres (.., 2) float32 in continuous image coordinates."""
        height, width = self._size
        centres = [np.arange(-(-side // COARSE)) * COARSE + COARSE / 2 for side in (width, height)]
        along = [(centre * HEAD_GRID / side - 0.5).astype(np.float32) for centre, side in zip(centres, (width, height))]
        columns, rows = np.meshgrid(*along)
        image = np.stack(np.meshgrid(centres[0] + self.columns.start, centres[1] + self.rows.start), axis=-1)
        return columns, rows, image.astype(np.float32)

    def _weight(self, motion_of: np.ndarray) -> np.ndarray:
        """(G, G, 2) each point's motion with the head -> (G, G) how much of it it takes: 1 inside
        the head's ellipse, fading to 0 beyond it over FOLD_MARGIN times the largest motion on the
        outline (within FADE_BAND, in ellipse radii), so that the fade never folds the map."""
        outline = np.abs(self.radius - 1.0) < OUTLINE_WIDTH
        largest = np.linalg.norm(motion_of[outline], axis=-1).max(initial=0.0) / self.unit
        band = np.clip(FOLD_MARGIN * largest / HEAD_RADII.min(), *FADE_BAND)
        return 1.0 - smoothstep((self.radius - 1.0) / band)


def smoothstep(values: np.ndarray) -> np.ndarray:
    """0 at or below 0, 1 at or above 1, smooth between (3t^2 - 2t^3)."""
    clipped = np.clip(values, 0.0, 1.0)
    return clipped * clipped * (3.0 - 2.0 * clipped)


def _depth(points: np.ndarray, pose: HeadPose, grid: np.ndarray) -> np.ndarray:
    """The portrait's depth (G, G) in pixels at ``grid`` (G, G, 2): a thin-plate spline through
    its face mesh and a shell of hair and ears around it (the oval pushed out and back)."""
    face = canonical_face()
    oval = face[list(FACE_OVAL)]
    centre = np.array([0.0, oval[:, 1].mean(), 0.0])
    shell = [
        centre + scale * (point - centre) * [1.0, 1.0, 0.0] + [0.0, 0.0, point[2] + (scale - 1.0) * SHELL_DEPTH]
        for scale in SHELL_SCALES
        for point in oval
    ]
    outline = np.concatenate([np.asarray(points)[list(FACE_OVAL)], pose.to_image(shell)])
    whole = _spline_surface(np.concatenate([np.asarray(points)[:MESH_POINTS:DEPTH_STRIDE], outline]), grid, pose.scale)
    smooth = _spline_surface(outline, grid, pose.scale)
    # Beyond its points a spline extrapolates; the head's depth stays within the points'.
    return np.clip(smooth + RELIEF * (whole - smooth), outline[:, 2].min(), outline[:, 2].max())


def _spline_surface(anchors: np.ndarray, grid: np.ndarray, unit: float) -> np.ndarray:
    """The thin-plate spline through ``anchors`` (M, 3) (x, y -> z, pixels) at ``grid`` (G, G, 2) -> (G, G)."""
    at = torch.from_numpy(anchors[:, :2] / unit).unsqueeze(0)
    coefficients = fit_spline(at, torch.from_numpy(anchors[:, 2:] / unit).unsqueeze(0))
    depth = evaluate_spline(at, coefficients, torch.from_numpy(grid.reshape(1, -1, 2) / unit))
    return depth[0, :, 0].numpy().reshape(grid.shape[:2]) * unit


@dataclass(frozen=True, eq=False)
class HeadSampling:
    """The head's motion over a box of the portrait, ``rows`` x ``columns`` (h x w pixels), on
    its coarse pixels (COARSE x COARSE blocks from the box's corner): their ``centres`` and how
    far each samples from its centre, ``moved_by``, (ceil(h / COARSE), ceil(w / COARSE), 2)
    float32, (x, y) in continuous image coordinates (a pixel's centre at +0.5) and pixels. The
    map is smooth (a 48-cell grid's, over the whole head), 0 at the box's edge: between coarse
    pixels, bilinear interpolation is exact to a small fraction of a pixel."""

    rows: slice
    columns: slice
    centres: np.ndarray
    moved_by: np.ndarray

    @property
    def positions(self) -> np.ndarray:
        """(h, w, 2) float32: where every pixel samples, the coarse motion upsampled."""
        height, width = self.rows.stop - self.rows.start, self.columns.stop - self.columns.start
        own = pixel_centres(height, width) + [self.columns.start, self.rows.start]
        return upsampled(self.moved_by, slice(0, height), slice(0, width)) + own.astype(np.float32)


def upsampled(coarse: np.ndarray, rows: slice, columns: slice) -> np.ndarray:
    """(ch, cw, C) float32 values at the centres of COARSE x COARSE blocks -> (len(rows),
    len(columns), C) at the centres of those pixels (counted from the blocks' corner; rows.stop
    <= COARSE * ch), bilinear, the map's edges repeated: the same values whatever part is asked."""
    # A block of the coarse map one coarse pixel wider than the part asked, where that is inside
    # the map: its own edges, which cv2.resize repeats, then never touch the part asked.
    top, left = max(rows.start // COARSE - 1, 0), max(columns.start // COARSE - 1, 0)
    bottom = min(-(-rows.stop // COARSE) + 1, coarse.shape[0])
    right = min(-(-columns.stop // COARSE) + 1, coarse.shape[1])
    block = np.ascontiguousarray(coarse[top:bottom, left:right])
    full = cv2.resize(block, ((right - left) * COARSE, (bottom - top) * COARSE), interpolation=cv2.INTER_LINEAR)
    return full[rows.start - top * COARSE : rows.stop - top * COARSE, columns.start - left * COARSE : columns.stop - left * COARSE]
