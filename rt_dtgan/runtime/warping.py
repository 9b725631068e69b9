"""What a warping G's stream gives per frame, made from F's keypoint offsets.

The step graph gives the offsets; the spline through the moved keypoints is solved here,
outside the exported graphs (a small linear system per frame, which ONNX cannot express),
the same way for every backend; the ``refine`` graph then gives the blend mask and
colours on the warped crop. ``KeypointMotion`` carries all of it to the renderer, which
warps the full-resolution portrait (rt_dtgan.face.render).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rt_dtgan.config import ModelConfig
from rt_dtgan.models.warp import KeypointWarp
from rt_dtgan.runtime.backends import run_in_chunks
from rt_dtgan.runtime.pixels import to_images

# The refiner paints an opening mouth of at least this many pixels of a 128 px crop (scaled
# with the crop's area): a sliver between lips that barely part shows nothing new, and
# skipping it spares the refiner and the painting on most frames of a closed mouth.
MIN_MOUTH_AREA = 8.0


@dataclass(frozen=True, eq=False)
class KeypointMotion:
    """One output frame of a warping G. ``offsets`` (K, 2) float32: how far each of the
    target's keypoints (MOVING_POINTS) moves, in eye units, the stream's expression
    strength applied. Unless ``still`` (no offset at all: the target as it is):
    ``grid`` (G, G, 2) float32, where the centres of a G x G grid over the output crop
    sample the target crop, in crop pixels; ``mask`` (S, S) uint8 (255 = all colour) and
    ``colour`` (S, S, 3) uint8 RGB, what the refiner blends over the warp (8 bits each, as
    they travel from a remote worker, so that every path renders the same frame)."""

    offsets: np.ndarray
    grid: np.ndarray | None = None
    mask: np.ndarray | None = None
    colour: np.ndarray | None = None

    @property
    def still(self) -> bool:
        return self.grid is None


class WarpStage:
    """Offsets of several streams -> their KeypointMotion, in one batch."""

    def __init__(self, config: ModelConfig, backend) -> None:
        self.warp = KeypointWarp(config.preprocess, config.generator.flow_grid)
        self.backend = backend

    def motions(self, offsets: Tensor, portraits: Tensor, meshes: Tensor) -> list[KeypointMotion]:
        """offsets (B, K, 2), portraits (B, 3, S, S) in [-1, 1], meshes (B, MESH_POINTS, 2) -> B
        motions. The refiner runs only for streams whose mouth is open (MIN_MOUTH_AREA):
        elsewhere its mask is 0 by construction or nothing new would show."""
        offsets = offsets.float()
        motions = [KeypointMotion(row.numpy()) for row in offsets]
        moving = [i for i in range(len(offsets)) if offsets[i].any()]
        if not moving:
            return motions
        with torch.no_grad():
            grid, mouth = self.warp.grid_and_mouth(meshes[moving], offsets[moving])
        size = portraits.shape[-1]
        masks = np.zeros((len(moving), size, size), np.uint8)
        colours = np.zeros((len(moving), size, size, 3), np.uint8)
        open_mouths = [j for j in range(len(moving)) if float(mouth[j].sum()) >= MIN_MOUTH_AREA * (size / 128) ** 2]
        if open_mouths:
            masks[open_mouths], colours[open_mouths] = self._refine(
                portraits[[moving[j] for j in open_mouths]], grid[open_mouths], mouth[open_mouths]
            )
        for j, i in enumerate(moving):
            motions[i] = KeypointMotion(motions[i].offsets, grid[j].numpy(), masks[j], colours[j])
        return motions

    def _refine(self, portraits: Tensor, grid: Tensor, mouth: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """-> the refiner's mask (N, S, S) and colour (N, S, S, 3), 8 bits each."""
        with torch.no_grad():
            warped, displacement = self.warp.warp_crop(portraits, grid)
        refined = run_in_chunks(self.backend, "refine", {"warped": warped, "displacement": displacement.float(), "mouth": mouth})
        masks = refined["mask"][:, 0].mul(255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return masks, to_images(refined["colour"])
