"""The mouth never closed past closed: a driver who starts mid-sentence.

F gives the motion of the keypoints from the anchor y0 (z_d = H - H_static). A driver who
starts mid-sentence has an open mouth in y0: closing it then reads as a closing motion as
large as that opening, which a portrait with a closed mouth cannot make: its lips fold over
each other and the chin and jaw pull up after them (measured on a held-out pair: mouth r
-0.66, the face melted). ``MouthNeutral`` keeps, per stream, the frame whose inner lips were
the most closed since the anchor (the mouth's neutral) and adds the anchor's offset from it
(at the lips and the jaw) to F's motion: the mouth then moves from the driver's neutral
mouth, as the rest of the face moves from the anchor, and the portrait's own mouth (closed,
or open in a smile) is what the driver's neutral mouth shows. The correction changes only
when the driver's lips are at their most closed, where it moves the output by at most
CLOSER_BY: nothing jumps. A driver who starts with the mouth closed never needs it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rt_dtgan.models.warp import FACING_POINTS, JAW, LIPS_INNER, LIPS_OUTER, MOVING_POINTS

# The inner lips' facing (upper, lower) points; the keypoints the correction moves.
INNER_LIP_PAIRS = tuple(pair for pair in FACING_POINTS if pair[0] in LIPS_INNER)
MOUTH_KEYPOINTS = tuple(MOVING_POINTS.index(point) for point in LIPS_OUTER + LIPS_INNER + JAW)
# A frame becomes the neutral mouth when its inner-lip gap is this much smaller (eye units):
# more than the tracker's own jitter on a still mouth.
CLOSER_BY = 0.01


def lip_gap(mesh: Tensor) -> Tensor:
    """(B, MESH_POINTS, 2) meshes -> (B,) the mean inner-lip gap, eye units."""
    upper = [pair[0] for pair in INNER_LIP_PAIRS]
    lower = [pair[1] for pair in INNER_LIP_PAIRS]
    return (mesh[:, lower, 1] - mesh[:, upper, 1]).mean(dim=1)


class MouthNeutral:
    """One stream's mouth: its anchor's and its most closed frame's frontal meshes (1, MESH_POINTS, 2)."""

    def __init__(self, anchor: Tensor) -> None:
        self.anchor = self.neutral = anchor
        self.neutral_gap = float(lip_gap(anchor)[0])
        self.correction = anchor.new_zeros(1, len(MOVING_POINTS), 2)

    def step(self, mesh: Tensor) -> Tensor:
        """This frame's frontal mesh (1, MESH_POINTS, 2) -> (1, K, 2) the correction to add to its offsets."""
        gap = float(lip_gap(mesh)[0])
        if gap < self.neutral_gap - CLOSER_BY:
            self.neutral, self.neutral_gap = mesh, gap
            mouth = [MOVING_POINTS[index] for index in MOUTH_KEYPOINTS]
            self.correction = torch.zeros_like(self.correction)
            self.correction[:, list(MOUTH_KEYPOINTS)] = (self.anchor - self.neutral)[:, mouth]
        return self.correction


def mouth_corrections(meshes: Tensor) -> Tensor:
    """(T, MESH_POINTS, 2) one stream's frontal meshes, the first its anchor -> (T, K, 2) the
    correction of each frame's offsets (0 for the anchor)."""
    neutral = MouthNeutral(meshes[:1])
    return torch.cat([meshes.new_zeros(1, len(MOVING_POINTS), 2)] + [neutral.step(meshes[t : t + 1]) for t in range(1, len(meshes))])
