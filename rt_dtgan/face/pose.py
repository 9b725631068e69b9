"""The head's rigid pose from the 3D face mesh, and the mesh with the pose taken out.

FaceMesh gives every point in image pixels with a depth z scaled like x (y down, z away
from the camera). A weighted similarity (Umeyama) from the canonical face
(rt_dtgan/assets/canonical_face.npy, made by tools/canonical_face.py; eye units, eye
midpoint at the origin, image-right eye at +x) to the frame's nearly rigid points gives the
pose: image point = scale * rotation @ canonical point + offset. The same frame's points
taken back through it are its *frontal mesh*: the face as if it looked straight into the
camera, at eye-unit scale, so that a head turning with a still face leaves it unchanged
(what the geometry model's encoder reads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from rt_dtgan.config import MESH_POINTS

# Nearly rigid FaceMesh points: forehead, nose bridge and tip, the eyes' corners, temples and
# upper cheeks (no lips, lids, brows or jaw).
RIGID_POINTS = (
    10, 151, 9, 8, 109, 338, 67, 297, 103, 332,
    168, 6, 197, 195, 5, 4, 1,
    33, 133, 362, 263, 130, 359, 243, 463,
    127, 356, 234, 454, 116, 345, 50, 280, 117, 346,
)
EYE_CORNERS = ((33, 133), (362, 263))  # image-left eye, image-right eye


@dataclass(frozen=True, eq=False)
class HeadPose:
    """image point (x, y, z) = ``scale`` * ``rotation`` @ canonical point + ``offset``.
    ``rotation`` (3, 3), ``offset`` (3,) in image pixels (where the canonical eye midpoint
    lands), ``scale`` image pixels per eye unit."""

    rotation: np.ndarray
    offset: np.ndarray
    scale: float

    @property
    def angles(self) -> np.ndarray:
        """(yaw, pitch, roll) in degrees, for rotation = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
        return np.degrees(rotation_angles(self.rotation))

    def frontal(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) image points -> (N, 3) in the canonical frame (eye units, pose removed)."""
        return (np.asarray(points, dtype=np.float64) - self.offset) @ self.rotation / self.scale

    def to_image(self, canonical) -> np.ndarray:
        """(..., 3) points in the canonical frame -> (..., 3) image points (``frontal``'s inverse)."""
        return self.scale * np.asarray(canonical, dtype=np.float64) @ self.rotation.T + self.offset


@cache
def canonical_face() -> np.ndarray:
    """(MESH_POINTS, 3) float64, read-only: the canonical face in eye units."""
    with resources.files("rt_dtgan.assets").joinpath("canonical_face.npy").open("rb") as file:
        face = np.load(file).astype(np.float64)
    if face.shape != (MESH_POINTS, 3):
        raise ValueError(f"the canonical face has shape {face.shape}, expected ({MESH_POINTS}, 3)")
    face.flags.writeable = False
    return face


def head_pose(points: np.ndarray) -> HeadPose:
    """(N >= MESH_POINTS, 3) FaceMesh points in image pixels -> their HeadPose."""
    rigid = list(RIGID_POINTS)
    scale, rotation, offset = fit_similarity(canonical_face()[rigid], np.asarray(points, dtype=np.float64)[rigid])
    return HeadPose(rotation, offset, scale)


def frontal_mesh(points: np.ndarray, pose: HeadPose) -> np.ndarray:
    """(N >= MESH_POINTS, 3) image points and their pose -> (MESH_POINTS, 2) float32: x and y
    of the frontal mesh, in eye units (eye midpoint of the canonical face at the origin)."""
    return pose.frontal(np.asarray(points)[:MESH_POINTS])[:, :2].astype(np.float32)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama) -> (scale, rotation (3, 3), offset (3,)) with
    target ~ scale * source @ rotation.T + offset, for (N, 3) point sets."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(centred_target.T @ centred_source)
    sign = np.eye(3)
    sign[2, 2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ sign @ vt
    scale = float((singular * np.diag(sign)).sum() / (centred_source**2).sum())
    return scale, rotation, target_mean - scale * source_mean @ rotation.T


def eye_frame(mesh: np.ndarray) -> tuple[np.ndarray, float]:
    """(N, 3) mesh -> (its eye midpoint (3,), its eye distance), eyes as corner means."""
    eyes = [mesh[list(corners)].mean(axis=0) for corners in EYE_CORNERS]
    return (eyes[0] + eyes[1]) / 2, float(np.linalg.norm(eyes[1] - eyes[0]))


def rotation_angles(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) (yaw, pitch, roll) in radians, rotation = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    yaw = np.arcsin(np.clip(-rotation[..., 2, 0], -1.0, 1.0))
    pitch = np.arctan2(rotation[..., 2, 1], rotation[..., 2, 2])
    roll = np.arctan2(rotation[..., 1, 0], rotation[..., 0, 0])
    return np.stack([yaw, pitch, roll], axis=-1)


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) Rz(roll) @ Ry(yaw) @ Rx(pitch), angles in radians."""
    cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
    about_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return about_z @ about_y @ about_x
