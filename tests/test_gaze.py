"""The eyes' look: the driver's irises read in their eyes' frames, followed relative to the
anchor (still when still, held through a blink), and the portrait's irises moved between
corners that stay."""

from types import SimpleNamespace

import numpy as np
import pytest

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face.align import eyes_to_crop_transform
from rt_dtgan.face.gaze import LIMITS, GazeFollower, GazeRig, iris_places
from rt_dtgan.face.render import WarpPlan

# Two eyes 60 px wide, 100 px apart, lids 16 px apart, irises in the middle.
EYES = {
    "image_left": {"corners": (33, 133), "lids": (159, 145), "iris": 468, "middle": (130.0, 100.0)},
    "image_right": {"corners": (362, 263), "lids": (386, 374), "iris": 473, "middle": (230.0, 100.0)},
}
HALF_WIDTH, HALF_GAP = 30.0, 8.0


def eye_points(look: float = 0.0, gap: float = HALF_GAP) -> np.ndarray:
    """(478, 3) points: the two eyes, each iris ``look`` corner distances to the image's right."""
    points = np.zeros((478, 3))
    for eye in EYES.values():
        x, y = eye["middle"]
        points[eye["corners"][0], :2] = (x - HALF_WIDTH, y)
        points[eye["corners"][1], :2] = (x + HALF_WIDTH, y)
        points[eye["lids"][0], :2] = (x, y - gap)
        points[eye["lids"][1], :2] = (x, y + gap)
        points[eye["iris"], :2] = (x + look * 2 * HALF_WIDTH, y)
    return points


def test_iris_places_read_the_look_in_each_eyes_frame() -> None:
    places = iris_places(eye_points(0.1))
    np.testing.assert_allclose(places[:, 0], 0.1)
    np.testing.assert_allclose(places[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(places[:, 2], 2 * HALF_GAP / (2 * HALF_WIDTH))
    assert iris_places(eye_points()[:468]) is None  # FaceMesh without its attention model


def follow_for(follower: GazeFollower, points: list[np.ndarray], start: float = 0.0) -> list:
    return [follower.follow(iris_places(each), start + index / 30.0) for index, each in enumerate(points)]


def test_a_still_driver_moves_no_eye_and_a_look_moves_them_up_to_a_limit() -> None:
    jitter = np.random.default_rng(0).normal(0.0, 0.003, 60)
    assert all(look is None for look in follow_for(GazeFollower(), [eye_points(j) for j in jitter]))
    looks = follow_for(GazeFollower(), [eye_points()] + [eye_points(0.1)] * 45)
    assert looks[-1][0] == pytest.approx(0.1, rel=0.15) and abs(looks[-1][1]) < 1e-6
    far = follow_for(GazeFollower(), [eye_points()] + [eye_points(0.45)] * 45)
    assert LIMITS[0] * 0.9 < far[-1][0] < LIMITS[0]


def test_a_blink_holds_the_look_and_recalibration_re_anchors_it() -> None:
    follower = GazeFollower()
    looks = follow_for(follower, [eye_points()] + [eye_points(0.1)] * 30)
    blinking = follow_for(follower, [eye_points(-0.3, gap=1.0)] * 5, start=2.0)  # the iris guessed under a closed lid
    assert all(look[0] == pytest.approx(looks[-1][0], abs=0.01) for look in blinking)
    follower.anchor()
    assert follow_for(follower, [eye_points(0.1)] * 3, start=3.0) == [None] * 3
    assert GazeFollower(strength=0.0).follow(iris_places(eye_points(0.1)), 0.0) is None


def portrait() -> SimpleNamespace:
    """A grey portrait with white eyes and a dark disc for each iris (a Target's parts a WarpPlan reads)."""
    image = np.full((240, 360, 3), 120, np.uint8)
    rows, columns = np.mgrid[0:240, 0:360] + 0.5
    for eye in EYES.values():
        x, y = eye["middle"]
        image[(np.abs(columns - x) < HALF_WIDTH) & (np.abs(rows - y) < HALF_GAP)] = 255
        image[(columns - x) ** 2 + (rows - y) ** 2 < 6.0**2] = 20
    points = eye_points()
    eyes = np.stack([points[[33, 133], :2].mean(0), points[[362, 263], :2].mean(0)])
    config = PreprocessConfig()
    return SimpleNamespace(
        image=image, landmarks=SimpleNamespace(points=points), config=config, transform=eyes_to_crop_transform(eyes, config)
    )


def dark_centres(image: np.ndarray) -> list[float]:
    """The x of the dark pixels' centroid in each eye's half of the image."""
    rows, columns = np.nonzero(image[..., 0] < 60)
    return [columns[columns < 180].mean() + 0.5, columns[columns >= 180].mean() + 0.5]


def test_the_rendered_irises_move_by_the_look_and_the_corners_stay() -> None:
    target = portrait()
    rig = GazeRig.build(target.landmarks.points, (360, 240))
    for eye in rig.eyes:
        assert eye.weight.max() == pytest.approx(1.0, abs=0.01)
    plan = WarpPlan.build(target, 64)
    moved = plan.render(None, None, None, gaze=rig.shift(np.array([0.1, 0.0])))
    # 0.1 of 60 px to the right at the iris's centre; its edges, nearer the corners, a little less.
    shifts = np.array(dark_centres(moved)) - [130.0, 230.0]
    assert ((shifts > 4.5) & (shifts < 6.5)).all()
    for eye in EYES.values():
        x, y = eye["middle"]
        for corner_x in (x - HALF_WIDTH, x + HALF_WIDTH):
            box = slice(int(y) - 3, int(y) + 3), slice(int(corner_x) - 1, int(corner_x) + 1)
            assert np.array_equal(moved[box], target.image[box])
    away = np.ones((240, 360), bool)
    for eye in rig.eyes:
        away[eye.rows, eye.columns] = False
    assert np.array_equal(moved[away], target.image[away])


def test_a_transfer_moves_the_eyes_with_the_driver_and_recalibration_re_anchors_them() -> None:
    from rt_dtgan.pipeline.transfer import FaceTransfer, TrackedFrame
    from rt_dtgan.runtime.warping import KeypointMotion

    target = portrait()
    still = KeypointMotion(np.zeros((4, 2), np.float32))
    driver = SimpleNamespace(recalibrate=lambda reference=None: None, step=lambda tracked: still)
    transfer = FaceTransfer(driver, target, tracker=None, gaze=GazeFollower())

    def through(look: float, timestamp: float) -> np.ndarray:
        tracked = SimpleNamespace(found=True, pose=None, timestamp=timestamp, landmarks=SimpleNamespace(points=eye_points(look)))
        return transfer.draw(transfer.step(TrackedFrame(SimpleNamespace(pts_s=timestamp), tracked, 0.0, 0.0)))[0]

    assert np.array_equal(through(0.0, 0.0), target.image)
    outputs = [through(-0.1, index / 30.0) for index in range(1, 30)]
    assert dark_centres(outputs[-1])[0] < 126.0  # from 130: the look (-0.1, softly limited) of 60 px
    transfer.recalibrate()
    assert np.array_equal(through(-0.1, 1.0), target.image)
