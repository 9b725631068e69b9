"""G of kind "warp": the portrait's own pixels, moved by a thin-plate spline through its
keypoints displaced by F's offsets, then refined where the warp cannot show what is new
(the inside of an opening mouth, teeth, shading) by a small U-Net that gives a blend mask
and the colours to blend in.

Coordinates: *eye units* put the crop's eye midpoint at (0, 0) and the image-right eye
at (0.5, 0); one unit is the distance between the eyes. Crops are aligned on the eyes, so
an offset in eye units means the same motion on every face, whatever its size and roll
in the original image. ``EyeFrame`` converts to crop pixels.

The spline is fitted per frame from the moved keypoints (output positions) back to the
portrait's keypoints (where to sample), so a mouth that opens samples its lips' own pixels
across the gap (no interior is invented here). Points of the upper head outline and the
crop border are held still; with all offsets zero the map is the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional

from rt_dtgan.config import GeneratorConfig, ModelConfig, PreprocessConfig
from rt_dtgan.models.embedder import KeypointEmbedder
from rt_dtgan.models.generator import down_stage, through_unet, up_stage

LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
EYE_IMAGE_LEFT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
EYE_IMAGE_RIGHT = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
BROWS = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
JAW = (58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288)
CHEEKS_AND_NOSE = (205, 425, 50, 280, 1, 98, 327)
# The FaceMesh points F moves (its offsets come in this order).
MOVING_POINTS = LIPS_OUTER + LIPS_INNER + EYE_IMAGE_LEFT + EYE_IMAGE_RIGHT + BROWS + JAW + CHEEKS_AND_NOSE
EYES = EYE_IMAGE_LEFT + EYE_IMAGE_RIGHT
EYE_KEYPOINTS = [MOVING_POINTS.index(point) for point in EYES]  # their places among F's offsets
# Facing points (upper, lower) of the inner lips and of the eyelids: a moved upper point never
# goes further below its lower one than in the portrait (a driver's blink or closing mouth
# can move further than the portrait's own gap); where it would, both meet halfway.
FACING_POINTS = (
    (13, 14), (82, 87), (81, 178), (80, 88), (191, 95), (312, 317), (311, 402), (310, 318), (415, 324),
    (159, 145), (158, 153), (157, 154), (160, 144), (161, 163),
    (386, 374), (385, 380), (384, 381), (387, 373), (388, 390),
)
# Each eye's lower brow points over the upper lid points under them, and the upper brow
# points above them: a brow pulled down (a frown, a blink) comes down at most BROW_KEEP of its
# height over the lid in the portrait; where it would come lower, the brow (both rows) stops
# there, so that it never melts into a closing eye.
BROW_OVER_LID = (
    (46, 246, 70), (53, 161, 63), (52, 159, 105), (65, 158, 66), (55, 173, 107),
    (276, 466, 300), (283, 388, 293), (282, 386, 334), (295, 385, 296), (285, 398, 336),
)
BROW_KEEP = 0.5
# Lid motion is scaled by the portrait's lid gap over the driver's, within these bounds: a
# driver's blink closes a narrower eye without pushing its lids past each other.
LID_GAIN_LIMITS = (0.3, 3.0)
# The upper head outline, held still with the crop border.
HELD_POINTS = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 109, 67, 103, 54, 21, 162, 127, 234, 93)
BORDER_POINTS_PER_SIDE = 5
# Ridge on the spline's kernel (in crop sides squared): keeps coincident keypoints (closed lips) solvable.
SPLINE_RIDGE = 1e-6


class EyeFrame:
    """Eye units <-> crop pixels for crops made by ``PreprocessConfig``."""

    def __init__(self, preprocess: PreprocessConfig) -> None:
        (lx, ly), (rx, ry) = preprocess.left_eye, preprocess.right_eye
        size = preprocess.size
        self.origin = ((lx + rx) * size / 2, (ly + ry) * size / 2)
        axis = complex(rx - lx, ry - ly) * size  # one eye unit, as a crop-pixel vector
        self.axis = (axis.real, axis.imag)

    def to_pixels(self, units: Tensor) -> Tensor:
        """(..., 2) eye units -> (..., 2) crop pixels."""
        (ax, ay), (ox, oy) = self.axis, self.origin
        x, y = units[..., 0], units[..., 1]
        return torch.stack([ax * x - ay * y + ox, ay * x + ax * y + oy], dim=-1)

    def vectors_to_pixels(self, units: Tensor) -> Tensor:
        """(..., 2) displacements in eye units -> (..., 2) in crop pixels."""
        (ax, ay) = self.axis
        x, y = units[..., 0], units[..., 1]
        return torch.stack([ax * x - ay * y, ay * x + ax * y], dim=-1)


def border_points(size: int) -> Tensor:
    """(4 * BORDER_POINTS_PER_SIDE, 2) points along the crop's edge, in crop pixels."""
    steps = torch.linspace(0.0, float(size), BORDER_POINTS_PER_SIDE + 1, dtype=torch.float64)[:-1]
    top = torch.stack([steps, torch.zeros_like(steps)], dim=-1)
    right = torch.stack([torch.full_like(steps, float(size)), steps], dim=-1)
    bottom = torch.stack([size - steps, torch.full_like(steps, float(size))], dim=-1)
    left = torch.stack([torch.zeros_like(steps), size - steps], dim=-1)
    return torch.cat([top, right, bottom, left])


def _spline_kernel(points: Tensor, anchors: Tensor) -> Tensor:
    """points (B, P, 2), anchors (B, M, 2) -> (B, P, M): the thin plate's U(r) = r^2 log r^2
    (0 at r = 0) of their distances, the squares by one matrix product (faster than
    torch.cdist here). The stiffer r^3 kernel was tried: twice as fast, but it overshot
    between the lids and the brows, and eye r on real pairs fell from 0.80 to 0.34 on one."""
    squared = (points * points).sum(-1, keepdim=True) + (anchors * anchors).sum(-1).unsqueeze(1) - 2 * points @ anchors.transpose(1, 2)
    squared = squared.clamp_min(1e-30)
    return squared * torch.log(squared)


def fit_spline(anchors: Tensor, values: Tensor) -> Tensor:
    """A spline through ``anchors`` (B, M, 2) taking ``values`` (B, M, C) there
    -> its coefficients (B, M + 3, C): M kernel weights, then the affine part (1, x, y).
    Coordinates should be of order 1 (crop sides)."""
    batch, count = anchors.shape[:2]
    kernel = _spline_kernel(anchors, anchors) + SPLINE_RIDGE * torch.eye(count, dtype=anchors.dtype, device=anchors.device)
    affine = torch.cat([anchors.new_ones(batch, count, 1), anchors], dim=-1)
    system = torch.cat(
        [torch.cat([kernel, affine], dim=-1), torch.cat([affine.transpose(1, 2), anchors.new_zeros(batch, 3, 3)], dim=-1)],
        dim=1,
    )
    right_side = torch.cat([values, values.new_zeros(batch, 3, values.shape[-1])], dim=1)
    # One system at a time: MKL's batched solve on several threads fails for systems of 151
    # rows and more (pytorch/pytorch#142815); ours have M + 3, about 156. (A batched solve on
    # the GPU, where this bug is not, belongs to the work on scale, issue 26.)
    return torch.stack([torch.linalg.solve(one_system, one_side) for one_system, one_side in zip(system, right_side)])


# Where a warp's map would fold or crush an area below these shares of itself, it is smoothed
# (unfold), at most UNFOLD_STEPS times: the expression's spline (an opening mouth legitimately
# stretches the lips' line across the opening, which the refiner paints) and the head's turn.
EXPRESSION_LEAST_JACOBIAN = 0.05
# The head's map is checked on its 48-cell grid and interpolated twice after (to 2 x 2 pixel
# blocks, then to pixels), which can take a little more from a cell: at 0.2 one frame of
# lp_d11 > av_einstein came out at -0.001 between pixels; 0.25 leaves a margin.
HEAD_LEAST_JACOBIAN = 0.25
UNFOLD_STEPS = 40

# Points per block when evaluating a spline: a block's kernel stays in the CPU's cache
# (measured: 4096 points at once took 30 times as long as 1024).
EVALUATION_BLOCK = 1024


def evaluate_spline(anchors: Tensor, coefficients: Tensor, points: Tensor) -> Tensor:
    """The spline of ``fit_spline`` at ``points`` (B, P, 2) -> (B, P, C)."""
    count = anchors.shape[1]
    values = []
    for block in points.split(EVALUATION_BLOCK, dim=1):
        kernel = _spline_kernel(block, anchors)
        affine = torch.cat([block.new_ones(*block.shape[:2], 1), block], dim=-1)
        values.append(kernel @ coefficients[:, :count] + affine @ coefficients[:, count:])
    return torch.cat(values, dim=1)


def cell_determinant(moved_by: Tensor, step: tuple[float, float]) -> Tensor:
    """(B, G, G, 2) how far each point of a grid of cells ``step`` (x, y) apart samples from
    itself -> (B, G - 1, G - 1) the Jacobian determinant of the sampling map per cell, over the
    cell's own area (1: the area kept; toward 0: stretched; 0 or less: folded)."""
    (step_x, step_y) = step
    corners = []
    for rows, columns in ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))):
        # At a cell's top-left corner, its top and left edges; at the bottom-right, its bottom
        # and right ones: a cell folds where either of its two triangles turns over.
        across = moved_by[:, rows, 1:] - moved_by[:, rows, :-1]
        down = moved_by[:, 1:, columns] - moved_by[:, :-1, columns]
        corners.append((step_x + across[..., 0]) * (step_y + down[..., 1]) - across[..., 1] * down[..., 0])
    return torch.minimum(*corners) / (step_x * step_y)


def _blurred(values: Tensor) -> Tensor:
    """(B, C, H, W) -> the same under a 5 x 5 Gaussian (sigma 1.1), edges repeated."""
    taps = torch.exp(-((torch.arange(5, dtype=values.dtype, device=values.device) - 2.0) ** 2) / (2 * 1.1**2))
    kernel = torch.outer(taps, taps) / taps.sum() ** 2
    channels = values.shape[1]
    padded = functional.pad(values, (2, 2, 2, 2), mode="replicate")
    return functional.conv2d(padded, kernel.expand(channels, 1, 5, 5), groups=channels)


def unfold(moved_by: Tensor, step: tuple[float, float], least: float) -> Tensor:
    """(B, G, G, 2) how far each point of a grid samples from itself -> the same, smoothed
    (feathered, the more the further under) around every cell whose determinant
    (cell_determinant) is under ``least``, at most UNFOLD_STEPS times: what a warp would fold over itself (the map showing a part twice,
    mirrored: lids that close past a brow's pull, a far cheek a turn would hide) is squeezed
    instead. Where nothing is under ``least`` the grid comes back as it is."""
    for _ in range(UNFOLD_STEPS):
        determinant = cell_determinant(moved_by, step)
        if not (determinant < least).any():
            break
        # How far under ``least`` (1 at a fold): a cell just under it is barely smoothed, so
        # that the map changes continuously with the motion (two backends agree).
        folded = ((least - determinant) / least).clamp(0.0, 1.0)
        around = functional.max_pool2d(folded.unsqueeze(1), 2, stride=1, padding=1)
        share = _blurred(functional.max_pool2d(around, 3, stride=1, padding=1))
        field = moved_by.permute(0, 3, 1, 2)
        moved_by = (field + share * (_blurred(field) - field)).permute(0, 2, 3, 1)
    return moved_by


def grid_centres(side: int, size: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """(side * side, 2) centres (x, y) of a side x side grid over a crop of ``size`` pixels, row-major."""
    steps = (torch.arange(side, dtype=dtype) + 0.5) * (size / side)
    ys, xs = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


class KeypointWarp(nn.Module):
    """Backward sampling maps from keypoint offsets. No learned parameters.

    ``sampling_grid(portrait_points, offsets)``: where each output pixel of the crop takes
    its colour from in the portrait crop, on a ``grid_side`` square grid; ``forward`` warps
    the portrait crop itself (training, evaluation, the crop-sized preview)."""

    def __init__(self, preprocess: PreprocessConfig, grid_side: int) -> None:
        super().__init__()
        self.frame = EyeFrame(preprocess)
        self.size = preprocess.size
        self.grid_side = grid_side
        self.register_buffer("moving_index", torch.tensor(MOVING_POINTS), persistent=False)
        self.register_buffer("held_index", torch.tensor(HELD_POINTS), persistent=False)
        self.register_buffer("lips_index", torch.tensor([MOVING_POINTS.index(point) for point in LIPS_INNER]), persistent=False)
        facing = [(MOVING_POINTS.index(upper), MOVING_POINTS.index(lower)) for upper, lower in FACING_POINTS]
        self.register_buffer("facing_index", torch.tensor(facing), persistent=False)
        brows = [[MOVING_POINTS.index(point) for point in triple] for triple in BROW_OVER_LID]
        self.register_buffer("brow_index", torch.tensor(brows), persistent=False)

    @property
    def keypoints(self) -> int:
        return len(MOVING_POINTS)

    def grid_and_mouth(self, portrait_mesh: Tensor, offsets: Tensor) -> tuple[Tensor, Tensor]:
        """``sampling_grid`` and the mouth's opening (``_mouth``) of the same keypoint motion, the
        moved keypoints computed once (the per-frame path)."""
        moved = self.moved_keypoints(portrait_mesh, offsets)
        return self._grid(portrait_mesh, moved), self._mouth(moved)

    def sampling_grid(self, portrait_mesh: Tensor, offsets: Tensor) -> Tensor:
        """portrait_mesh (B, 468, 2) in eye units, offsets (B, K, 2) in eye units ->
        (B, G, G, 2) float32 crop-pixel positions (x, y) to sample the portrait crop at, for
        the centres of a G x G grid over the output crop."""
        return self._grid(portrait_mesh, self.moved_keypoints(portrait_mesh, offsets))

    def _grid(self, portrait_mesh: Tensor, moved: Tensor) -> Tensor:
        """As ``sampling_grid``, from the ``moved_keypoints``."""
        batch = portrait_mesh.shape[0]
        mesh = self.frame.to_pixels(portrait_mesh.double())
        moving = mesh[:, self.moving_index]
        held = torch.cat([mesh[:, self.held_index], border_points(self.size).expand(batch, -1, -1)], dim=1)
        scale = 1.0 / self.size  # fit in crop sides: a well-conditioned system
        anchors = torch.cat([moved, held], dim=1) * scale
        sources = torch.cat([moving, held], dim=1) * scale
        coefficients = fit_spline(anchors, sources - anchors)
        centres = grid_centres(self.grid_side, self.size).expand(batch, -1, -1) * scale
        moved_by = (evaluate_spline(anchors, coefficients, centres) / scale).unflatten(1, (self.grid_side, self.grid_side))
        step = self.size / self.grid_side
        moved_by = unfold(moved_by, (step, step), EXPRESSION_LEAST_JACOBIAN)
        return (centres / scale).unflatten(1, (self.grid_side, self.grid_side)).add(moved_by).float()

    def moved_keypoints(self, portrait_mesh: Tensor, offsets: Tensor) -> Tensor:
        """portrait_mesh (B, 468, 2), offsets (B, K, 2) in eye units -> where the keypoints
        go, (B, K, 2) float64 crop pixels (lids and lips never passing their partners)."""
        moving = self.frame.to_pixels(portrait_mesh.double())[:, self.moving_index]
        return self.uncross(moving + self.frame.vectors_to_pixels(offsets.double()), moving)

    def _mouth(self, moved: Tensor) -> Tensor:
        """The ``moved_keypoints`` -> (B, 1, S, S) float32 in [0, 1]: the inside of the moved
        inner lips, edges softened over a pixel; where the mouth shows what the portrait does not have."""
        lips = moved[:, self.lips_index].float()
        centres = grid_centres(self.size, self.size, torch.float32)
        inside = polygon_inside(lips, centres).view(-1, 1, self.size, self.size)
        return functional.avg_pool2d(inside, 3, stride=1, padding=1)

    def uncross(self, moved: Tensor, original: Tensor) -> Tensor:
        """moved keypoints (B, K, 2) in crop pixels, and where they were -> the same, where an
        upper lip or lid point went further below its lower one than it was (or below it at
        all) is moved with it to their midpoint (along the crop's y), and a brow that came
        down closer to its lid than BROW_KEEP of their height is held there (BROW_OVER_LID)."""
        upper, lower = self.facing_index[:, 0], self.facing_index[:, 1]
        upper_y, lower_y = moved[:, upper, 1], moved[:, lower, 1]
        middle = (upper_y + lower_y) / 2
        allowed = (original[:, upper, 1] - original[:, lower, 1]).clamp_min(0.0)
        crossed = upper_y - lower_y > allowed
        moved = moved.clone()
        moved[:, upper, 1] = torch.where(crossed, middle, upper_y)
        moved[:, lower, 1] = torch.where(crossed, middle, lower_y)
        brow, lid, above = self.brow_index[:, 0], self.brow_index[:, 1], self.brow_index[:, 2]
        lowest = original[:, lid, 1] - BROW_KEEP * (original[:, lid, 1] - original[:, brow, 1]).clamp_min(0.0)
        lowest = torch.maximum(lowest, original[:, brow, 1])  # never lower than it was: no motion, no push
        push = (moved[:, brow, 1] - lowest).clamp_min(0.0)
        moved[:, brow, 1] -= push
        moved[:, above, 1] -= push
        return moved

    def warp_crop(self, portrait: Tensor, grid: Tensor) -> tuple[Tensor, Tensor]:
        """portrait (B, 3, S, S), a ``sampling_grid`` (B, G, G, 2) -> (the warped crop
        (B, 3, S, S), its displacement (B, 2, S, S) in crop sides)."""
        full = functional.interpolate(grid.permute(0, 3, 1, 2), size=(self.size, self.size), mode="bilinear", align_corners=False)
        normalised = (full.permute(0, 2, 3, 1) / self.size) * 2.0 - 1.0
        warped = functional.grid_sample(portrait, normalised, mode="bilinear", padding_mode="border", align_corners=False)
        centres = grid_centres(self.size, self.size, full.dtype).T.reshape(1, 2, self.size, self.size)
        return warped, (full - centres) / self.size

    def forward(self, portrait: Tensor, portrait_mesh: Tensor, offsets: Tensor) -> Tensor:
        """portrait (B, 3, S, S) in [-1, 1], portrait_mesh (B, 468, 2) and offsets (B, K, 2) in
        eye units -> the warped crop (B, 3, S, S); exactly the portrait where offsets are all 0."""
        warped, _ = self.warp_crop(portrait, self.sampling_grid(portrait_mesh, offsets))
        return torch.where(still_items(offsets), portrait, warped)


def lid_gain(portrait_mesh: Tensor, anchor_mesh: Tensor) -> Tensor:
    """portrait_mesh, the driver's anchor mesh (B, 468, 2) in eye units -> (B, K, 2) factors
    for F's offsets: 1, but on the y of each eye's points, that eye's lid gap in the portrait
    over the driver's (mean over its facing lid points), within LID_GAIN_LIMITS."""
    gain = portrait_mesh.new_ones(portrait_mesh.shape[0], len(MOVING_POINTS), 2)
    for eye, pairs in ((EYE_IMAGE_LEFT, FACING_POINTS[9:14]), (EYE_IMAGE_RIGHT, FACING_POINTS[14:])):
        upper, lower = [p for p, _ in pairs], [q for _, q in pairs]
        gaps = [(mesh[:, lower, 1] - mesh[:, upper, 1]).mean(dim=1) for mesh in (portrait_mesh, anchor_mesh)]
        ratio = (gaps[0] / gaps[1].clamp_min(1e-3)).clamp(*LID_GAIN_LIMITS)
        gain[:, [MOVING_POINTS.index(point) for point in eye], 1] = ratio.unsqueeze(1)
    return gain


def with_measured_eyes(offsets: Tensor, mesh: Tensor, anchor: Tensor) -> Tensor:
    """F's offsets (B, K, 2), the driver's frontal mesh and its anchor's (B, MESH_POINTS, 2), eye
    units -> the offsets with the eyes' points (EYES) moved as the driver's moved since the
    anchor. A blink lasts a few frames; F, through its LSTM, gave about half of it (eye r 0.87
    on the real pairs against the training-free warp's 0.94), the mesh all of it (0.91, the
    worst pair 0.51 against 0.31); half of each gave 0.91 and 0.38."""
    measured = offsets.clone()
    measured[:, EYE_KEYPOINTS] = (mesh - anchor)[:, list(EYES)].to(offsets.dtype)
    return measured


def polygon_inside(polygon: Tensor, points: Tensor) -> Tensor:
    """polygon (B, V, 2) vertices in order, points (P, 2) -> (B, P) float32, 1 inside (even-odd rule)."""
    start, end = polygon, polygon.roll(-1, dims=1)
    x, y = points[:, 0].view(1, 1, -1), points[:, 1].view(1, 1, -1)
    x0, y0, x1, y1 = (values.unsqueeze(-1) for values in (start[..., 0], start[..., 1], end[..., 0], end[..., 1]))
    spans = (y0 > y) != (y1 > y)
    crossing_x = x0 + (x1 - x0) * (y - y0) / torch.where(y1 == y0, torch.ones_like(y1), y1 - y0)
    crossings = (spans & (x < crossing_x)).sum(dim=1)
    return (crossings % 2).float()


def still_items(offsets: Tensor) -> Tensor:
    """offsets (B, K, 2) -> (B, 1, 1, 1) bool: True where nothing moves."""
    return (offsets == 0).flatten(1).all(dim=1).view(-1, 1, 1, 1)


class WarpRefiner(nn.Module):
    """(warped crop (B, 3, S, S) in [-1, 1], displacement (B, 2, S, S), mouth opening
    (B, 1, S, S) in [0, 1]) -> (mask (B, 1, S, S) in [0, 1], colour (B, 3, S, S) in [-1, 1]):
    where and what to paint over the warp. A U-Net of ``channels`` per level; its mask is
    confined to the mouth opening (the rest of the face is the portrait's own pixels), its
    colour is the warp plus a change that starts near zero."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        widths = config.channels
        depth = len(widths)
        self.stem = nn.Sequential(nn.Conv2d(6, widths[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.ModuleList(down_stage(widths[i - 1], widths[i]) for i in range(1, depth))
        self.up = nn.ModuleList(
            up_stage(widths[i] if i == depth - 1 else 2 * widths[i], widths[i - 1], 0.0) for i in range(1, depth)
        )
        self.head = nn.ConvTranspose2d(2 * widths[0] if depth > 1 else widths[0], 4, 4, stride=2, padding=1)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()

    def forward(self, warped: Tensor, displacement: Tensor, mouth: Tensor) -> tuple[Tensor, Tensor]:
        features = through_unet(self.stem(torch.cat([warped, displacement, mouth], dim=1)), self.down, self.up)
        out = self.head(features)
        return torch.sigmoid(out[:, :1]) * mouth, (warped + out[:, 1:]).clamp(-1.0, 1.0)


class WarpGenerator(nn.Module):
    """G of kind "warp": ``warp`` (KeypointWarp, no parameters) and ``refiner`` (WarpRefiner)."""

    def __init__(self, config: GeneratorConfig, preprocess: PreprocessConfig) -> None:
        super().__init__()
        self.warp = KeypointWarp(preprocess, config.flow_grid)
        self.refiner = WarpRefiner(config)

    @property
    def keypoints(self) -> int:
        return self.warp.keypoints

    def forward(self, portrait: Tensor, portrait_mesh: Tensor, offsets: Tensor) -> Tensor:
        """portrait (B, 3, S, S) in [-1, 1], portrait_mesh (B, 468, 2) and offsets (B, K, 2) in
        eye units -> the output crop (B, 3, S, S): the warp, refined; exactly the portrait
        where offsets are all 0."""
        _, refined, _ = self.draw(portrait, portrait_mesh, offsets)
        return torch.where(still_items(offsets), portrait, refined)

    def draw(self, portrait: Tensor, portrait_mesh: Tensor, offsets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """As ``forward`` -> (the warp alone, the warp refined, both (B, 3, S, S); the mouth
        opening (B, 1, S, S)), without the exact return of the portrait where nothing moves."""
        grid, mouth = self.warp.grid_and_mouth(portrait_mesh, offsets)
        warped, displacement = self.warp.warp_crop(portrait, grid)
        mask, colour = self.refiner(warped, displacement.to(warped.dtype), mouth)
        return warped, warped + mask * (colour - warped), mouth


def embedder_and_generator(config: ModelConfig) -> tuple[KeypointEmbedder, WarpGenerator]:
    """F and G of kind "warp": the offsets of G's keypoints from z_d, and the warp that moves them."""
    generator = WarpGenerator(config.generator, config.preprocess)
    return KeypointEmbedder(config.embedder, config.encoder.hidden_dim, generator.keypoints), generator
