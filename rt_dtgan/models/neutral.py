"""The mouth never closed past closed: a driver who starts mid-sentence.

F gives the motion of the keypoints from the anchor y0 (z_d = H - H_static). A driver who
starts mid-sentence has an open mouth in y0: closing it then reads as a closing motion as
large as that opening, which a portrait with a closed mouth cannot make: its lips fold over
each other and the chin and jaw pull up after them (measured on a held-out pair: mouth r
-0.66, the face melted). ``MouthNeutral`` closes the anchor's mouth instead: its lower lips
(inner and outer) and, by JAW_SHARE of it, its jaw are taken up by the anchor's inner-lip
gap, and that offset is added to F's motion at every frame of the stream. The mouth then
opens from closed, as far as the driver's opens, onto the portrait's own mouth (closed, or
open in a smile); the other keypoints still move from the anchor. A driver whose mouth is
closed in y0 gets (nearly) nothing added. The correction is fixed per anchor, so it never
moves the output between two frames (a first version took the most closed mouth seen so
far as the neutral: every new one shifted the mouth's baseline, and mouth r fell from 0.89
to 0.66 on a GRID speaker whose mouth is rarely quite closed).
"""

from __future__ import annotations

from torch import Tensor

from rt_dtgan.models.warp import FACING_POINTS, JAW, LIPS_INNER, MOVING_POINTS

# The inner lips' facing (upper, lower) points; the lower lips' points and the jaw's.
INNER_LIP_PAIRS = tuple(pair for pair in FACING_POINTS if pair[0] in LIPS_INNER)
LOWER_LIPS = tuple(pair[1] for pair in INNER_LIP_PAIRS) + (146, 91, 181, 84, 17, 314, 405, 321, 375)
# The jaw drops by about this share of the lips' opening.
JAW_SHARE = 0.8


def lip_gap(mesh: Tensor) -> Tensor:
    """(B, MESH_POINTS, 2) meshes -> (B,) the mean inner-lip gap, eye units."""
    upper = [pair[0] for pair in INNER_LIP_PAIRS]
    lower = [pair[1] for pair in INNER_LIP_PAIRS]
    return (mesh[:, lower, 1] - mesh[:, upper, 1]).mean(dim=1)


def mouth_correction(anchor: Tensor) -> Tensor:
    """The anchor's frontal mesh (1, MESH_POINTS, 2) -> (1, K, 2) what to add to F's offsets:
    the anchor's mouth opening, at its lower lips and (by JAW_SHARE) its jaw, along y."""
    gap = lip_gap(anchor).clamp_min(0.0)
    correction = anchor.new_zeros(1, len(MOVING_POINTS), 2)
    correction[:, [MOVING_POINTS.index(point) for point in LOWER_LIPS], 1] = gap
    correction[:, [MOVING_POINTS.index(point) for point in JAW], 1] = JAW_SHARE * gap
    return correction
