"""The head's pose apart from the expression (face/pose.py) and the portrait's head moved as one (face/head.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from rt_dtgan.face.head import (
    ANGLE_CAPS,
    ANGLE_KNEES,
    HeadFollower,
    HeadRig,
    RelativePose,
    check_pose_settings,
    soft_limit,
)
from rt_dtgan.face.pose import canonical_face, frontal_mesh, head_pose, rotation_angles, rotation_from_angles

# The tracker's own noise on a perfectly still face, in eye units (DESIGN.md section 7:
# tracking settles within about 0.007 to 0.02 of frame 0 with the attention mesh).
TRACKER_NOISE = 0.007


def posed(points: np.ndarray, yaw: float, pitch: float, roll: float, scale: float = 80.0, at=(320.0, 240.0, 0.0)) -> np.ndarray:
    """Canonical-frame points (N, 3) turned by the angles (degrees), scaled to pixels and placed at ``at``."""
    rotation = rotation_from_angles(*np.radians([yaw, pitch, roll]))
    return scale * points @ rotation.T + np.asarray(at)


def expressive_face(seed: int = 0) -> np.ndarray:
    """The canonical face with a different person's proportions and an open mouth, (468, 3)."""
    rng = np.random.default_rng(seed)
    face = canonical_face() * np.array([1.05, 0.95, 1.1]) + rng.normal(0.0, 0.01, canonical_face().shape)
    face[[14, 87, 178, 88, 95, 317, 402, 318, 324], 1] += 0.12  # the lower inner lip drops
    return face


def test_angles_round_trip() -> None:
    for angles in ([10.0, -7.0, 5.0], [-30.0, 20.0, -30.0], [0.0, 0.0, 45.0]):
        rotation = rotation_from_angles(*np.radians(angles))
        np.testing.assert_allclose(np.degrees(rotation_angles(rotation)), angles, atol=1e-9)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)


def test_the_pose_of_a_turned_face_is_recovered() -> None:
    pose = head_pose(posed(canonical_face(), 25.0, -15.0, 10.0, scale=64.0, at=(100.0, 200.0, 5.0)))
    np.testing.assert_allclose(pose.angles, [25.0, -15.0, 10.0], atol=1e-6)
    assert pose.scale == pytest.approx(64.0)
    np.testing.assert_allclose(pose.offset, [100.0, 200.0, 5.0], atol=1e-6)


@pytest.mark.parametrize(
    "angles", [(30.0, 0.0, 0.0), (-30.0, 0.0, 0.0), (0.0, 20.0, 0.0), (0.0, -20.0, 0.0), (0.0, 0.0, 30.0), (20.0, 15.0, -25.0)]
)
def test_a_rigid_turn_leaves_the_frontal_mesh_within_the_trackers_noise(angles) -> None:
    """A head turning with a still face: the keypoints A reads do not move (while the eye-aligned
    image mesh of before moved by up to a third of an eye distance under such a turn)."""
    face = expressive_face()
    front = posed(face, 0.0, 0.0, 0.0)
    turned = posed(face, *angles, scale=70.0, at=(200.0, 300.0, -4.0))
    still, moved = (frontal_mesh(points, head_pose(points)) for points in (front, turned))
    assert np.abs(moved - still).max() < TRACKER_NOISE
    image_motion = np.abs((turned - turned.mean(0))[:, :2] / 70.0 - (front - front.mean(0))[:, :2] / 80.0).max()
    assert image_motion > 10 * TRACKER_NOISE  # the turn itself is large in the image


def test_the_frontal_mesh_keeps_the_expression() -> None:
    face = expressive_face()
    points = posed(face, 20.0, 10.0, -15.0)
    mesh = frontal_mesh(points, head_pose(points))
    gap = mesh[14, 1] - mesh[13, 1]
    neutral_gap = canonical_face()[14, 1] - canonical_face()[13, 1]
    assert gap - neutral_gap == pytest.approx(0.12 * 0.95, abs=0.03)


def test_pose_settings_are_checked() -> None:
    check_pose_settings("follow", 1.0)
    check_pose_settings("lock", 0.0)
    for mode, strength in (("spin", 1.0), ("follow", -0.1), ("follow", 2.5), ("follow", math.nan)):
        with pytest.raises(ValueError):
            check_pose_settings(mode, strength)


def test_soft_limit_is_the_identity_to_the_knee_then_bends_below_the_cap() -> None:
    inside = np.array([29.0, -19.0, 10.0])
    np.testing.assert_array_equal(soft_limit(inside), inside)
    far = soft_limit(np.array([50.0, -30.0, 45.0]))
    assert np.all(np.abs(far) < ANGLE_CAPS) and np.all(np.abs(far) > ANGLE_KNEES)
    assert np.all(np.abs(soft_limit(np.array([500.0, -500.0, 500.0]))) <= ANGLE_CAPS)
    assert far[1] < 0
    steps = soft_limit(np.stack([np.linspace(0, 90, 91)] * 3, axis=-1))
    assert np.all(np.diff(steps, axis=0) >= 0)


def driver_poses(angles_per_frame, noise: float = 0.0, seed: int = 0):
    """HeadPoses of a driver's face turned frame by frame, its points jittered by ``noise`` pixels."""
    rng = np.random.default_rng(seed)
    face = expressive_face(1)
    return [head_pose(posed(face, *angles) + rng.normal(0.0, noise, (len(face), 3))) for angles in angles_per_frame]


def test_a_still_driver_leaves_the_head_exactly_still() -> None:
    """The tracker's jitter (0.3 px on a face 80 px between the eyes) moves nothing."""
    follower = HeadFollower()
    poses = driver_poses([(0.0, 0.0, 0.0)] * 60, noise=0.3)
    assert all(follower.follow(pose, index / 30.0) is None for index, pose in enumerate(poses))


def test_the_follower_follows_relative_to_its_anchor_and_re_anchors() -> None:
    poses = driver_poses([(0.0, 0.0, 0.0)] + [(20.0, -10.0, 8.0)] * 30)
    follower = HeadFollower()
    motions = [follower.follow(pose, index / 30.0) for index, pose in enumerate(poses)]
    assert motions[0] is None
    np.testing.assert_allclose(np.degrees(rotation_angles(motions[-1].rotation)), [20.0, -10.0, 8.0], atol=0.5)
    follower.anchor(poses[-1])
    assert follower.follow(poses[-1], 2.0) is None
    half = HeadFollower(strength=0.5)
    for index, pose in enumerate(poses):
        motion = half.follow(pose, index / 30.0)
    assert np.degrees(rotation_angles(motion.rotation))[0] == pytest.approx(10.0, abs=0.5)
    locked = HeadFollower("lock")
    assert all(locked.follow(pose, index / 30.0) is None for index, pose in enumerate(poses))


def portrait_rig(width: int = 800, height: int = 960) -> HeadRig:
    """A rig whose box lies inside the image (not cut by its edges)."""
    return HeadRig.build(posed(expressive_face(2), 0.0, 0.0, 0.0, scale=80.0, at=(400.0, 480.0, 0.0)), (width, height))


def jacobian(positions: np.ndarray) -> np.ndarray:
    """(h, w, 2) sampling positions -> (h - 1, w - 1) the determinant of their derivative."""
    along_x, along_y = np.diff(positions, axis=1)[:-1], np.diff(positions, axis=0)[:, :-1]
    return along_x[..., 0] * along_y[..., 1] - along_x[..., 1] * along_y[..., 0]


def test_no_motion_samples_the_portrait_where_it_is() -> None:
    rig = portrait_rig()
    sampling = rig.sampling(RelativePose(np.eye(3), np.zeros(3), 1.0))
    rows, columns = np.mgrid[sampling.rows, sampling.columns]
    np.testing.assert_allclose(sampling.positions, np.stack([columns + 0.5, rows + 0.5], axis=-1), atol=0.05)


TURNS = [(30.0, 0.0, 0.0), (-30.0, 0.0, 0.0), (0.0, 20.0, 0.0), (0.0, -20.0, 0.0), (0.0, 0.0, 30.0), (0.0, 0.0, -30.0), (30.0, 20.0, 30.0)]


@pytest.mark.parametrize("angles", TURNS)
def test_the_head_turns_as_one_without_folding_and_the_edges_stay(angles) -> None:
    """Up to 30 degrees of yaw and roll and 20 of pitch (with a lean toward the camera and a
    shift): the face moves, the sampling map never folds (its Jacobian stays positive), and
    the box's edge (background, shoulders) stays."""
    rig = portrait_rig()
    shift, scale = (np.array([0.2, 0.1, 0.0]), 1.1) if all(angles) else (np.zeros(3), 1.0)
    sampling = rig.sampling(RelativePose(rotation_from_angles(*np.radians(angles)), shift, scale))
    rows, columns = np.mgrid[sampling.rows, sampling.columns]
    identity = np.stack([columns + 0.5, rows + 0.5], axis=-1)
    moved = np.linalg.norm(sampling.positions - identity, axis=-1)
    assert moved.max() > 0.25 * rig.unit
    edges = np.concatenate([moved[0], moved[-1], moved[:, 0], moved[:, -1]])
    assert edges.max() < 0.02 * rig.unit
    assert jacobian(sampling.positions).min() > 0.0


def test_the_rig_refuses_a_head_outside_the_image() -> None:
    with pytest.raises(ValueError, match="outside the image"):
        HeadRig.build(posed(canonical_face(), 0.0, 0.0, 0.0, at=(-5000.0, -5000.0, 0.0)), (640, 480))


def test_a_transfer_moves_the_head_with_the_driver_and_recalibration_re_anchors_it() -> None:
    """FaceTransfer's head: a still-expression frame whose driver turned renders the head moved;
    after a recalibration the same pose is the anchor, and the portrait comes back."""
    from rt_dtgan.config import PreprocessConfig
    from rt_dtgan.face.align import eyes_to_crop_transform
    from rt_dtgan.pipeline.transfer import FaceTransfer, TrackedFrame
    from rt_dtgan.runtime.warping import KeypointMotion

    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    points = posed(expressive_face(2), 0.0, 0.0, 0.0, scale=70.0, at=(320.0, 220.0, 0.0))
    eyes = np.stack([points[[33, 133], :2].mean(0), points[[362, 263], :2].mean(0)])
    config = PreprocessConfig()
    target = SimpleNamespace(
        image=image, landmarks=SimpleNamespace(points=points), config=config, transform=eyes_to_crop_transform(eyes, config)
    )
    still = KeypointMotion(np.zeros((4, 2), np.float32))
    driver = SimpleNamespace(recalibrate=lambda reference=None: None, step=lambda tracked: still)
    transfer = FaceTransfer(driver, target, tracker=None, head=HeadFollower())
    straight, turned = driver_poses([(0.0, 0.0, 0.0), (20.0, 0.0, 0.0)])

    def through(pose, timestamp: float) -> np.ndarray:
        tracked = SimpleNamespace(found=True, pose=pose, timestamp=timestamp)
        return transfer.draw(transfer.step(TrackedFrame(SimpleNamespace(pts_s=timestamp), tracked, 0.0, 0.0)))[0]

    assert np.array_equal(through(straight, 0.0), image)
    outputs = [through(turned, index / 30.0) for index in range(1, 30)]
    assert np.abs(outputs[-1].astype(int) - image).mean() > 5
    transfer.recalibrate()
    assert np.array_equal(through(turned, 1.0), image)
    assert np.array_equal(through(turned, 1.1), image)
