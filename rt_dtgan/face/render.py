"""Moving the portrait's own pixels at full resolution, by a warping G's output.

The runtime gives, on a coarse grid over the aligned crop, where each output point samples
the portrait (the thin-plate spline of rt_dtgan.models.warp), and at crop size a blend
mask and colours (the refiner's). ``WarpPlan`` carries these back into the portrait:
everything that depends only on the target (the box of portrait pixels under the crop,
where each of them falls on the grid and on the crop) is computed once; per frame it
upsamples the grid's displacements to the box, samples the portrait there once (bicubic),
and blends the refiner's colours in where its mask asks. The face keeps the portrait's own
sharpness whatever the model's crop size. Pixels outside the box are never touched.

When the whole head moves (rt_dtgan.face.head), its sampling over a larger box comes first:
an output pixel there samples the expression's field at the position the head's motion
names, so that the portrait is still sampled once, the face's expression carried along with
the head and the refiner's colours taken from where the moved face shows them. The eyes'
look (rt_dtgan.face.gaze) is part of the expression's field: each eye's pixels sample from
where the look's shift says, before the head's motion, so it is carried along too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from rt_dtgan.face.align import pixel_centres
from rt_dtgan.face.errors import FaceError
from rt_dtgan.face.gaze import GazeShift
from rt_dtgan.face.head import COARSE, HeadSampling, upsampled
from rt_dtgan.face.target import Target

# Where the refiner's mask shows on a moved head is looked for on every PAINT_STRIDE-th of the
# head's coarse pixels (the map is smooth on that scale), then widened by as many.
PAINT_STRIDE = 4


@dataclass(frozen=True, eq=False)
class WarpPlan:
    """Precomputed warping of one portrait. ``rows`` x ``columns`` (slices): the box of
    portrait pixels under the crop; ``grid_x``, ``grid_y`` and ``crop_x``, ``crop_y`` (h, w)
    float32: each box pixel's position in grid cells and in crop pixels (cv2.remap indices);
    ``to_image`` (2, 2) float32: crop-pixel vectors -> image-pixel vectors; ``box_indices``
    (h, w, 2) float32: the box pixels' own image indices (x, y); ``crop_matrix`` (2, 2) and
    ``crop_offset`` (2,) float32: continuous image coordinates -> crop indices (cv2.remap's)."""

    target: Target
    grid_side: int
    rows: slice
    columns: slice
    grid_x: np.ndarray
    grid_y: np.ndarray
    crop_x: np.ndarray
    crop_y: np.ndarray
    to_image: np.ndarray
    box_indices: np.ndarray
    crop_matrix: np.ndarray
    crop_offset: np.ndarray

    @classmethod
    def build(cls, target: Target, grid_side: int) -> WarpPlan:
        size = target.config.size
        height, width = target.image.shape[:2]
        corners = target.transform.inverse().apply(np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64))
        left, top = np.maximum(np.floor(corners.min(axis=0)).astype(int), 0)
        right = min(int(np.ceil(corners[:, 0].max())), width)
        bottom = min(int(np.ceil(corners[:, 1].max())), height)
        if right <= left or bottom <= top:
            raise FaceError("the face region lies outside the portrait")
        in_crop = target.transform.apply(pixel_centres(bottom - top, right - left) + np.array([left, top], dtype=np.float64))
        in_grid = in_crop * (grid_side / size) - 0.5
        rows, columns = np.mgrid[top:bottom, left:right].astype(np.float32)
        return cls(
            target,
            grid_side,
            slice(top, bottom),
            slice(left, right),
            *(np.ascontiguousarray(values, dtype=np.float32) for values in (in_grid[..., 0], in_grid[..., 1])),
            *(np.ascontiguousarray(values - 0.5, dtype=np.float32) for values in (in_crop[..., 0], in_crop[..., 1])),
            target.transform.inverse().matrix.astype(np.float32),
            np.ascontiguousarray(np.stack([columns, rows], axis=-1)),
            target.transform.matrix.astype(np.float32),
            (target.transform.offset - 0.5).astype(np.float32),
        )

    def render(
        self,
        grid: np.ndarray | None,
        mask: np.ndarray | None,
        colour: np.ndarray | None,
        head: HeadSampling | None = None,
        gaze: GazeShift | None = None,
    ) -> np.ndarray:
        """grid (G, G, 2) float32 crop-pixel sampling positions of the grid's centres, mask
        (S, S) uint8 (255 = all colour), colour (S, S, 3) uint8 RGB (all None: the face's
        expression does not move), ``head``, the whole head's motion, and ``gaze``, the eyes'
        look (None: they stay) -> a new (H, W, 3) uint8 portrait."""
        field = None if grid is None else self._expression_field(grid)
        if gaze is not None:
            field = self._looking(field, gaze)
        output = self.target.image.copy()
        if field is not None and not (head is not None and self._inside(head)):
            output[self.rows, self.columns] = self._sample(field + self.box_indices, self.crop_x, self.crop_y, mask, colour)
        if head is not None and head.moved_by.size:
            output[head.rows, head.columns] = self._render_head(head, field, mask, colour)
        return output

    def _render_head(
        self, head: HeadSampling, field: np.ndarray | None, mask: np.ndarray | None, colour: np.ndarray | None
    ) -> np.ndarray:
        """The part of the portrait the head moves (h, w, 3) uint8: the head's sampling, the
        expression's ``field`` (or None) where it points, the refiner's colours painted there."""
        # Composed on the head's coarse pixels, then upsampled part by part: both maps are smooth
        # on that scale (the field bilinear over cells of the crop's grid, the head's over 48 cells).
        moved_by = head.moved_by
        if field is not None:
            in_box = head.centres + moved_by - np.array([self.columns.start + 0.5, self.rows.start + 0.5], dtype=np.float32)
            moved_by = moved_by + cv2.remap(field, in_box, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        height, width = head.rows.stop - head.rows.start, head.columns.stop - head.columns.start
        own = self._image_indices[head.rows, head.columns]
        # Bilinear around the face's box (hair, ears, neck: about 5 times cheaper than bicubic
        # here), bicubic over it, as _sample, where the detail is. Beyond the image's edge its
        # edge repeats (mirrored, the hair above came back as a blob).
        warped = np.empty((height, width, 3), np.uint8)
        face = _within(self.rows, self.columns, head.rows, head.columns)
        parts = [(part, cv2.INTER_LINEAR) for part in _around(face, height, width)] + [(face, cv2.INTER_CUBIC)]
        for part, interpolation in parts:
            if part[0].stop > part[0].start and part[1].stop > part[1].start:
                indices = upsampled(moved_by, *part) + own[part]
                warped[part] = cv2.remap(self.target.image, indices, None, interpolation, borderMode=cv2.BORDER_REPLICATE)
        if mask is not None:
            self._paint_head(warped, head, mask, colour)
        return warped

    def _paint_head(self, warped: np.ndarray, head: HeadSampling, mask: np.ndarray, colour: np.ndarray) -> None:
        """Blend the refiner's colours into the head's part ``warped`` (h, w, 3), in place, where
        the moved face shows its mask: over the pixels whose head position falls near the mask
        (found on every PAINT_STRIDE-th coarse pixel, then widened by as many)."""
        extent = _mask_extent(mask)
        if extent is None:
            return
        (left, top), (right, bottom) = extent
        corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]], dtype=np.float64)
        in_image = (corners - self.crop_offset) @ np.linalg.inv(self.crop_matrix).T
        low, high = in_image.min(axis=0), in_image.max(axis=0)
        sampled = (head.centres + head.moved_by)[::PAINT_STRIDE, ::PAINT_STRIDE]
        near = ((sampled >= low) & (sampled <= high)).all(axis=-1)
        near_rows, near_columns = np.nonzero(near.any(axis=1))[0], np.nonzero(near.any(axis=0))[0]
        if not len(near_rows):
            return
        height, width = warped.shape[:2]
        reach = PAINT_STRIDE * COARSE
        rows = slice(max((near_rows[0] - 1) * reach, 0), min((near_rows[-1] + 2) * reach, height))
        columns = slice(max((near_columns[0] - 1) * reach, 0), min((near_columns[-1] + 2) * reach, width))
        at = upsampled(head.moved_by, rows, columns) + self._image_indices[head.rows, head.columns][rows, columns] + 0.5
        crop = cv2.transform(np.ascontiguousarray(at), np.hstack([self.crop_matrix, self.crop_offset[:, None]]))
        self._paint(warped[rows, columns], np.ascontiguousarray(crop[..., 0]), np.ascontiguousarray(crop[..., 1]), mask, colour)

    @cached_property
    def _image_indices(self) -> np.ndarray:
        """(H, W, 2) float32 every portrait pixel's own cv2.remap indices (x, y), made once."""
        height, width = self.target.image.shape[:2]
        return (pixel_centres(height, width) - 0.5).astype(np.float32)

    def _looking(self, field: np.ndarray | None, gaze: GazeShift) -> np.ndarray:
        """The expression's ``field`` (h, w, 2) over the face's box (None: still) with each
        eye's sampling shift added where the eye lies inside the box."""
        if field is None:
            field = np.zeros((*self.box_indices.shape[:2], 2), np.float32)
        for eye, moves in zip(gaze.eyes, gaze.moves):
            in_box = _within(eye.rows, eye.columns, self.rows, self.columns)
            if in_box[0].stop > in_box[0].start and in_box[1].stop > in_box[1].start:
                field[in_box] += moves[_within(self.rows, self.columns, eye.rows, eye.columns)]
        return field

    def _inside(self, head: HeadSampling) -> bool:
        """Whether the face's box lies inside the part the head moves (drawn there anyway)."""
        return (head.rows.start <= self.rows.start and self.rows.stop <= head.rows.stop
                and head.columns.start <= self.columns.start and self.columns.stop <= head.columns.stop)  # fmt: skip

    def _expression_field(self, grid: np.ndarray) -> np.ndarray:
        """grid (G, G, 2) -> (h, w, 2) float32 displacement in image pixels over the box."""
        side = self.grid_side
        if grid.shape != (side, side, 2):
            raise FaceError(f"the plan is for a {side} x {side} grid, got {grid.shape}")
        steps = (np.arange(side, dtype=np.float32) + 0.5) * (self.target.config.size / side)
        # Into image units on the grid itself (bilinear upsampling commutes with a linear map).
        displacement = (grid - np.stack(np.meshgrid(steps, steps), axis=-1)) @ self.to_image.T
        return cv2.remap(displacement, self.grid_x, self.grid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def _sample(
        self, indices: np.ndarray, crop_x: np.ndarray, crop_y: np.ndarray, mask: np.ndarray | None, colour: np.ndarray | None
    ) -> np.ndarray:
        """The portrait sampled at ``indices`` (h, w, 2) (cv2.remap's pixel indices), the
        refiner's colours blended in where its mask asks, at crop indices ``crop_x``, ``crop_y`` (h, w)."""
        # Bicubic: the portrait keeps its detail (the landmark warp measured 0.4 to 0.6 of the
        # portrait's sharpness with bilinear sampling, 0.7 to 0.9 with bicubic).
        warped = cv2.remap(self.target.image, indices, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        if mask is not None:
            self._paint(warped, crop_x, crop_y, mask, colour)
        return warped

    @staticmethod
    def _paint(warped: np.ndarray, crop_x: np.ndarray, crop_y: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
        """Blend ``colour`` into the warped pixels (h, w, 3) uint8, in place, where ``mask`` is
        not 0 at their crop indices ``crop_x``, ``crop_y`` (h, w): only over the pixels
        around the mask's own extent."""
        extent = _mask_extent(mask)
        if extent is None:
            return
        low, high = extent
        inside = (crop_x >= low[0]) & (crop_x <= high[0]) & (crop_y >= low[1]) & (crop_y <= high[1])
        box_rows, box_columns = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
        if not len(box_rows):
            return
        area = slice(box_rows[0], box_rows[-1] + 1), slice(box_columns[0], box_columns[-1] + 1)
        crop_x, crop_y = np.ascontiguousarray(crop_x[area]), np.ascontiguousarray(crop_y[area])
        weight = cv2.remap(mask, crop_x, crop_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT).astype(np.float32) / 255.0
        paint = cv2.remap(colour, crop_x, crop_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        region = warped[area].astype(np.float32)
        warped[area] = np.clip(region + weight[..., None] * (paint - region) + 0.5, 0, 255).astype(np.uint8)


def _within(rows: slice, columns: slice, outer_rows: slice, outer_columns: slice) -> tuple[slice, slice]:
    """The part of ``rows`` x ``columns`` (image pixels) inside the box ``outer_rows`` x
    ``outer_columns``, in the box's own pixels (empty slices where they do not meet)."""
    height, width = outer_rows.stop - outer_rows.start, outer_columns.stop - outer_columns.start
    top, left = min(max(rows.start - outer_rows.start, 0), height), min(max(columns.start - outer_columns.start, 0), width)
    bottom = min(max(rows.stop - outer_rows.start, top), height)
    right = min(max(columns.stop - outer_columns.start, left), width)
    return slice(top, bottom), slice(left, right)


def _mask_extent(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """mask (S, S) uint8 -> (low, high) (2,) float32 crop indices (x, y) around its non-zero
    pixels, 1.5 pixels out (what bilinear sampling of it reaches), or None where it is all 0."""
    painted_rows, painted_columns = np.nonzero(mask)
    if not len(painted_rows):
        return None
    low = np.array([painted_columns.min() - 1.5, painted_rows.min() - 1.5], dtype=np.float32)
    high = np.array([painted_columns.max() + 1.5, painted_rows.max() + 1.5], dtype=np.float32)
    return low, high


def _around(inner: tuple[slice, slice], height: int, width: int) -> list[tuple[slice, slice]]:
    """The parts of a height x width box outside its part ``inner`` (relative slices): the rows
    above and below it, and beside it to its left and right."""
    rows, columns = inner
    return [
        (slice(0, rows.start), slice(0, width)),
        (slice(rows.stop, height), slice(0, width)),
        (rows, slice(0, columns.start)),
        (rows, slice(columns.stop, width)),
    ]
