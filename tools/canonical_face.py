"""Builds the canonical face that head poses are measured against (rt_dtgan/assets/canonical_face.npy).

    python tools/canonical_face.py [--data DIR] [--frames-per-clip 12] [--out rt_dtgan/assets/canonical_face.npy]

FaceMesh (the live tracker's model, attention mesh on) reads frames spread over the GRID
clips of ../shared/data/real/grid (speakers facing the camera); their 3D meshes are aligned
by similarity on the rigid points (rt_dtgan.face.pose.RIGID_POINTS), averaged (generalised
Procrustes), made left-right symmetric about the plane the face's mirror pairs define, and
written in eye units: the eye midpoint at the origin, the image-right eye at (+0.5, 0, z),
y down, z away from the camera (FaceMesh's own axes). Yaw and roll are 0 by symmetry; pitch
0 is the mean pitch of the speakers, who look into the camera.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from rt_dtgan.config import MESH_POINTS
from rt_dtgan.face.landmarks import FaceMeshDetector
from rt_dtgan.face.pose import RIGID_POINTS, eye_frame, fit_similarity
from rt_dtgan.media import open_source

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SYMMETRY_ROUNDS = 3
# FaceMesh's points on the face's midline (forehead, nose, lips, chin): each is its own mirror.
MIDLINE_POINTS = (0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 94, 151, 152, 164, 168, 175, 195, 197, 199, 200)
OUT = Path(__file__).resolve().parents[1] / "rt_dtgan" / "assets" / "canonical_face.npy"


def clip_meshes(clip: Path, count: int) -> list[np.ndarray]:
    """Up to ``count`` (MESH_POINTS, 3) meshes in pixels, from frames spread over ``clip``."""
    with open_source(str(clip)) as source:
        frames = [frame.image for frame in source]
    picks = np.linspace(len(frames) // 4, len(frames) - 1, count).astype(int)
    meshes = []
    with FaceMeshDetector(video_mode=False) as detector:
        for index in picks:
            landmarks = detector.detect(frames[index])
            if landmarks is not None:
                meshes.append(landmarks.points[:MESH_POINTS])
    return meshes


def procrustes_mean(meshes: list[np.ndarray], rounds: int = 5) -> np.ndarray:
    """Generalised Procrustes on the rigid points -> the mean (MESH_POINTS, 3)."""
    mean = meshes[0]
    for _ in range(rounds):
        aligned = []
        for mesh in meshes:
            scale, rotation, offset = fit_similarity(mesh[list(RIGID_POINTS)], mean[list(RIGID_POINTS)])
            aligned.append(scale * mesh @ rotation.T + offset)
        mean = np.mean(aligned, axis=0)
    return mean


def mirror_pairs(mesh: np.ndarray) -> np.ndarray:
    """(N,) index of each point's mirror partner in a near-frontal mesh (MIDLINE_POINTS are their own):
    the assignment of least total 3D distance between the mesh and its mirror image about x = mean x."""
    mirrored = mesh * np.array([-1.0, 1.0, 1.0]) + np.array([2 * mesh[:, 0].mean(), 0.0, 0.0])
    distances = np.linalg.norm(mesh[:, None] - mirrored[None], axis=-1)
    midline = list(MIDLINE_POINTS)
    distances[midline, :] = distances[:, midline] = np.inf
    distances[midline, midline] = 0.0
    rows, columns = linear_sum_assignment(distances)
    return columns[np.argsort(rows)]


def symmetric(mesh: np.ndarray) -> np.ndarray:
    """The mesh rotated so that its mirror plane is x = 0, then averaged with its mirror image."""
    pairs = mirror_pairs(mesh)
    across = mesh - mesh[pairs]
    normal = across[np.linalg.norm(across, axis=1) > 1e-6]
    normal = (normal * np.sign(normal[:, :1])).mean(axis=0)
    normal /= np.linalg.norm(normal)
    axis = np.cross(normal, [1.0, 0.0, 0.0])
    angle = np.arcsin(np.clip(np.linalg.norm(axis), -1.0, 1.0))
    rotation = rotation_about(axis, angle) if np.linalg.norm(axis) > 1e-9 else np.eye(3)
    turned = (mesh - mesh.mean(axis=0)) @ rotation.T
    mirrored = turned[pairs] * np.array([-1.0, 1.0, 1.0])
    return (turned + mirrored) / 2


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: the rotation by ``angle`` radians about ``axis``."""
    axis = axis / np.linalg.norm(axis)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--frames-per-clip", type=int, default=12)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    clips = sorted((args.data / "grid").glob("*.mpg"))
    if not clips:
        raise SystemExit(f"no GRID clips under {args.data / 'grid'}")
    meshes = [mesh for clip in clips for mesh in clip_meshes(clip, args.frames_per_clip)]
    face = procrustes_mean(meshes)
    for _ in range(SYMMETRY_ROUNDS):  # each round's plane makes the next round's pairs truer
        face = symmetric(face)
    origin, unit = eye_frame(face)
    canonical = ((face - origin) / unit).astype(np.float32)
    np.save(args.out, canonical)
    print(f"{len(meshes)} frames of {len(clips)} clips -> {args.out}")


if __name__ == "__main__":
    main()
