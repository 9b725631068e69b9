"""Synthetic face renderer: determinism, locality of controls, sequences, transfer ground truth,
dataset writing and MediaPipe realism."""

from __future__ import annotations

import dataclasses
import itertools
import json

import av
import numpy as np
import pytest

from rt_dtgan.synth import (
    BASIC_EXPRESSIONS,
    CONTROLS,
    EXPRESSION_LABELS,
    Expression,
    FaceGeometry,
    Identity,
    Pose,
    apex_vector,
    render,
)
from rt_dtgan.synth.canvas import box_slices
from rt_dtgan.synth.dataset import parse_synthetic_spec, synthetic_target, write_dataset
from rt_dtgan.synth.sequences import (
    ONSET_LENGTH_RANGE,
    freeform_track,
    onset_sequence,
    onset_track,
    random_onset_length,
    transfer_ground_truth,
)

SIZE = 128


def _mask(size: int, *boxes, margin_px: int = 0) -> np.ndarray:
    """(S, S) bool: pixels of the given frame-unit boxes, grown by margin_px."""
    mask = np.zeros((size, size), bool)
    for box in boxes:
        rows, cols = box_slices(box, size)
        mask[max(rows.start - margin_px, 0) : rows.stop + margin_px, max(cols.start - margin_px, 0) : cols.stop + margin_px] = True
    return mask


def _changed(a: np.ndarray, b: np.ndarray, levels: int = 3) -> np.ndarray:
    """(S, S) bool: pixels whose colour differs by more than `levels` in some channel."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > levels


def _eye_core(g: FaceGeometry, side: int):
    x, y = g.eye_center(side)
    return (x - g.eye_w, y - g.eye_h, x + g.eye_w, y + g.eye_h)


def _regions(g: FaceGeometry) -> dict[str, tuple]:
    return {
        "brows": (g.brow_box(-1), g.brow_box(1)),
        "forehead": (g.forehead_box(),),
        "eyes": (g.eye_box(-1), g.eye_box(1)),
        "cheeks": (g.cheek_box(-1), g.cheek_box(1)),
        "nose": (g.nose_bridge_box(),),
        "mouth": (g.mouth_box(),),
        "jaw": (g.jaw_box(),),
    }


# control -> (regions where it may change pixels, region that must change)
ACTS_ON = {
    "brow_raise": (("brows", "forehead"), "brows"),
    "brow_lower": (("brows", "forehead", "eyes"), "brows"),
    "eye_widen": (("eyes",), "eyes"),
    "blink": (("eyes",), "eyes"),
    "cheek_raise": (("eyes", "cheeks"), "cheeks"),
    "nose_wrinkle": (("nose", "cheeks", "mouth"), "nose"),
    "lip_corner_pull": (("cheeks", "mouth"), "mouth"),
    "lip_corner_depress": (("cheeks", "mouth"), "mouth"),
    "lip_stretch": (("cheeks", "mouth"), "mouth"),
    "lip_pucker": (("cheeks", "mouth"), "mouth"),
    "lips_part": (("mouth",), "mouth"),
    "jaw_drop": (("jaw", "mouth"), "mouth"),
}


def test_identity_is_deterministic_and_seeds_differ():
    assert Identity.from_seed(11) == Identity.from_seed(11)
    first = render(Identity.from_seed(11), Expression(), Pose(yaw=4.0), 64, noise_seed=3)
    again = render(Identity.from_seed(11), Expression(), Pose(yaw=4.0), 64, noise_seed=3)
    assert np.array_equal(first, again)
    identities = [Identity.from_seed(seed) for seed in range(40)]
    assert len(set(identities)) == 40
    assert len({(i.skin_rgb, i.hair_style, i.face_width) for i in identities}) == 40
    other = render(identities[12], Expression(), Pose(yaw=4.0), 64, noise_seed=3)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 10


def test_identity_validation():
    identity = Identity.from_seed(1)
    with pytest.raises(ValueError, match="face_width"):
        dataclasses.replace(identity, face_width=0.9)
    with pytest.raises(ValueError, match="hair_style"):
        dataclasses.replace(identity, hair_style="mohawk")
    with pytest.raises(ValueError, match="skin_rgb"):
        dataclasses.replace(identity, skin_rgb=(1.2, 0.5, 0.5))
    with pytest.raises(ValueError, match="seed"):
        Identity.from_seed(-1)


def test_expression_vector_round_trip_and_validation():
    assert Expression().to_vector().tolist() == [0.0] * len(CONTROLS)
    assert Expression().is_neutral()
    vector = apex_vector("surprise", 0.7)
    assert vector.dtype == np.float32 and vector.shape == (len(CONTROLS),)
    expression = Expression.from_vector(vector)
    assert np.array_equal(expression.to_vector(), vector)
    assert Expression.from_vector(expression.to_vector()) == expression
    with pytest.raises(ValueError, match="brow_raise"):
        Expression(brow_raise=1.5)
    with pytest.raises(ValueError, match="shape"):
        Expression.from_vector(np.zeros(5))
    with pytest.raises(ValueError, match="unknown expression"):
        apex_vector("boredom")
    with pytest.raises(ValueError, match="yaw"):
        Pose(yaw=80.0)


@pytest.mark.parametrize("size", [64, 128, 256])
def test_render_shape_dtype_and_framing(size):
    identity = Identity.from_seed(5)
    image = render(identity, Expression(), None, size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8 and image.flags["C_CONTIGUOUS"]
    g = FaceGeometry.of(identity)
    assert 0.5 <= 2 * g.face_w + 0.04 <= 0.75, "the face spans roughly the central 55-70% of the frame"
    assert np.array_equal(render(identity, Expression(), Pose(), size), image)


def test_noise_is_seeded_and_small():
    identity = Identity.from_seed(2)
    clean = render(identity, Expression(), None, SIZE)
    noisy = render(identity, Expression(), None, SIZE, noise_seed=1)
    assert np.array_equal(noisy, render(identity, Expression(), None, SIZE, noise_seed=1))
    assert not np.array_equal(noisy, render(identity, Expression(), None, SIZE, noise_seed=2))
    difference = np.abs(noisy.astype(int) - clean.astype(int))
    assert 0 < difference.mean() < 6


@pytest.mark.parametrize("seed", [0, 7, 31])
def test_each_control_changes_only_its_own_regions(seed):
    identity = Identity.from_seed(seed)
    g = FaceGeometry.of(identity)
    regions = _regions(g)
    neutral = render(identity, Expression(), None, SIZE)
    for control, (allowed, required) in ACTS_ON.items():
        image = render(identity, Expression(**{control: 1.0}), None, SIZE)
        changed = _changed(image, neutral)
        allowed_mask = _mask(SIZE, *itertools.chain.from_iterable(regions[name] for name in allowed), margin_px=1)
        assert not changed[~allowed_mask].any(), f"{control} changed pixels outside {allowed}"
        assert changed[_mask(SIZE, *regions[required])].mean() > 0.03, f"{control} did not visibly change the {required}"


def test_controls_move_the_expected_parts():
    identity = Identity.from_seed(3)
    g = FaceGeometry.of(identity)
    neutral = render(identity, Expression(), None, SIZE)
    eyes = _mask(SIZE, _eye_core(g, -1), _eye_core(g, 1))
    mouth = _mask(SIZE, g.mouth_box())
    brows = _mask(SIZE, g.brow_box(-1), g.brow_box(1))
    chin = _mask(SIZE, (g.cx - 0.05, g.chin_y - 0.02, g.cx + 0.05, g.chin_y + 0.06))

    jaw = _changed(render(identity, Expression(jaw_drop=1.0), None, SIZE), neutral)
    assert jaw[mouth].mean() > 0.1 and jaw[chin].mean() > 0.1 and not jaw[eyes | brows].any()
    blink = _changed(render(identity, Expression(blink=1.0), None, SIZE), neutral)
    assert blink[eyes].mean() > 0.2 and not blink[mouth].any()
    raise_ = _changed(render(identity, Expression(brow_raise=1.0), None, SIZE), neutral)
    assert raise_[brows].mean() > 0.05 and not raise_[mouth | eyes].any()
    smile = _changed(render(identity, Expression(lip_corner_pull=1.0), None, SIZE), neutral)
    assert smile[mouth].mean() > 0.1 and not smile[eyes | brows].any()


def _sclera_pixels(image: np.ndarray, g: FaceGeometry) -> int:
    """Whitish pixels (bright, low chroma) inside both eye openings."""
    core = image[_mask(image.shape[0], _eye_core(g, -1), _eye_core(g, 1))].astype(int)
    return int(((core.max(axis=-1) - core.min(axis=-1) < 30) & (core.mean(axis=-1) > 90)).sum())


@pytest.mark.parametrize("seed", [4, 10, 22])
def test_open_eyes_show_sclera_and_closed_eyes_do_not(seed):
    identity = Identity.from_seed(seed)
    g = FaceGeometry.of(identity)
    assert _sclera_pixels(render(identity, Expression(eye_widen=1.0), None, SIZE), g) > 4
    assert _sclera_pixels(render(identity, Expression(blink=1.0), None, SIZE), g) == 0


def test_pose_moves_the_head_but_not_the_background():
    identity = Identity.from_seed(9)
    frontal = render(identity, Expression(), None, SIZE)
    for pose in (Pose(yaw=10.0), Pose(pitch=8.0), Pose(roll=8.0), Pose(scale=1.08), Pose(shift_x=0.03)):
        moved = render(identity, Expression(), pose, SIZE)
        changed = _changed(moved, frontal)
        assert changed[40:90, 40:90].mean() > 0.05, pose
        assert not changed[:6, :6].any(), "the top-left corner is background"


def test_transfer_ground_truth_is_b_rendered_with_a_track():
    source = onset_track("happiness", 12, seed=21)
    identity_b = Identity.from_seed(77)
    frames = list(transfer_ground_truth(identity_b, source, size=64))
    assert len(frames) == len(source)
    for frame, spec in zip(frames, source):
        a_vector = spec.expression.to_vector()
        expected = render(identity_b, Expression.from_vector(a_vector), spec.pose, 64, spec.noise_seed)
        assert np.array_equal(frame.image, expected)
        assert frame.spec == spec
    from_frames = list(transfer_ground_truth(77, onset_sequence(5, "happiness", 12, seed=21, size=64), size=64))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(from_frames, frames))


@pytest.mark.parametrize("name", BASIC_EXPRESSIONS)
def test_onset_sequences_go_from_neutral_to_apex(name):
    for seed in range(3):
        length = random_onset_length(seed * 13 + 1)
        assert ONSET_LENGTH_RANGE[0] <= length <= ONSET_LENGTH_RANGE[1]
        track = onset_track(name, length, seed)
        vectors = np.stack([spec.expression.to_vector() for spec in track])
        assert len(track) == length
        assert not vectors[0].any(), "first frame is neutral"
        assert np.array_equal(vectors[-1], vectors.max(axis=0)), "apex at the end"
        assert np.all(np.diff(vectors, axis=0) >= 0), "onset never goes back"
        assert vectors[-1].max() >= 0.5
        assert all(spec.label == name for spec in track)
    assert len({random_onset_length(seed) for seed in range(60)}) > 10


def test_onset_sequences_vary_per_seed_and_render():
    apexes = {tuple(onset_track("anger", 10, seed)[-1].expression.to_vector()) for seed in range(5)}
    assert len(apexes) == 5
    frames = list(onset_sequence(3, "surprise", length=10, seed=1, size=64))
    assert [f.index for f in frames] == list(range(10))
    assert all(f.image.shape == (64, 64, 3) for f in frames)
    assert not np.array_equal(frames[0].image, frames[-1].image)
    with pytest.raises(ValueError, match="length"):
        onset_track("anger", 1, 0)


def test_freeform_track_is_lazy_long_and_varied():
    track = freeform_track(seed=4, length=100_000)
    assert iter(track) is track
    specs = list(itertools.islice(track, 3000))
    vectors = np.stack([spec.expression.to_vector() for spec in specs])
    labels = {spec.label for spec in specs}
    assert vectors.min() >= 0.0 and vectors.max() <= 1.0
    assert labels <= set(EXPRESSION_LABELS) and "neutral" in labels and len(labels) >= 3
    assert (vectors[:, CONTROLS.index("blink")] == 1.0).sum() >= 5, "blinks"
    jaw = vectors[:, CONTROLS.index("jaw_drop")]
    assert (np.abs(np.diff(jaw)) > 0.01).sum() > 50, "talking mouth motion"
    assert (~vectors.any(axis=1)).sum() > 0, "returns to neutral"
    yaws = np.array([spec.pose.yaw for spec in specs])
    assert yaws.std() > 0.5 and np.abs(np.diff(yaws)).max() < 1.0, "slow head motion"
    assert [s.expression for s in itertools.islice(freeform_track(4, 50), 50)] == [s.expression for s in specs[:50]]


def test_write_dataset_layout_and_pixels_match_labels(tmp_path):
    out = write_dataset(tmp_path / "ds", identities=2, size=64, seed=3, sequences_per_identity=2, freeform_length=12, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "rt-dtgan-dataset" and manifest["version"] == 1
    assert manifest["size"] == 64 and manifest["fps"] == 30 and manifest["source"] == "synthetic"
    assert manifest["controls"] == list(CONTROLS) and manifest["expressions"] == list(EXPRESSION_LABELS)
    assert len(manifest["sequences"]) == 2 * 3
    assert len({(e["subject"], e["name"]) for e in manifest["sequences"]}) == 6
    for entry in manifest["sequences"]:
        labels = json.loads((out / entry["labels"]).read_text())
        with av.open(str(out / entry["video"])) as container:
            images = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        assert len(images) == entry["frames"] == len(labels["frames"])
        assert all(image.shape == (64, 64, 3) for image in images)
        assert entry["label"] == labels["label"]
        if entry["name"] != "freeform":
            assert entry["label"] in BASIC_EXPRESSIONS
            assert ONSET_LENGTH_RANGE[0] <= entry["frames"] <= ONSET_LENGTH_RANGE[1]
        identity = Identity.from_seed(entry["identity_seed"])
        for index in (0, len(images) - 1):
            frame = labels["frames"][index]
            assert len(frame["expression"]) == len(CONTROLS) and frame["label"] in EXPRESSION_LABELS + BASIC_EXPRESSIONS
            expected = render(identity, Expression.from_vector(frame["expression"]), Pose.from_dict(frame["pose"]), 64,
                              frame["noise_seed"])
            assert np.array_equal(images[index], expected), "lossless video: pixels match the labels"


def test_write_dataset_refuses_bad_arguments_and_non_empty_dirs(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(tmp_path / "full", identities=1, size=64, sequences_per_identity=1, progress=False)
    for kwargs, message in (
        ({"identities": 0}, "identities"),
        ({"identities": 1, "size": 100}, "size"),
        ({"identities": 1, "seed": -2}, "seed"),
        ({"identities": 1, "sequences_per_identity": 0}, "nothing to write"),
        ({"identities": 1, "freeform_length": -1}, "freeform_length"),
    ):
        with pytest.raises(ValueError, match=message):
            write_dataset(tmp_path / "new", progress=False, **kwargs)
    out = write_dataset(tmp_path / "full", identities=1, size=64, sequences_per_identity=1, progress=False, overwrite=True)
    assert (out / "manifest.json").exists() and (out / "x.txt").read_text() == "keep"


def test_synthetic_target_and_spec():
    assert parse_synthetic_spec("synthetic:123") == 123
    for bad in ("synthetic:", "synthetic:-4", "synthetic:abc", "synth:1", "123", "synthetic:1.5"):
        with pytest.raises(ValueError, match="synthetic"):
            parse_synthetic_spec(bad)
    target = synthetic_target(8, size=128)
    assert target.shape == (128, 128, 3) and target.dtype == np.uint8
    assert np.array_equal(target, render(Identity.from_seed(8), Expression(), None, 128))


def _random_frame(rng: np.random.Generator, index: int):
    """A random identity, expression (apex of a random label, partly jittered) and pose at 256 px."""
    identity = Identity.from_seed(int(rng.integers(0, 1_000_000)))
    label = str(rng.choice(EXPRESSION_LABELS))
    vector = np.zeros(len(CONTROLS), np.float32) if label == "neutral" else apex_vector(label, float(rng.uniform(0.3, 1.0)))
    vector = np.clip(vector + (rng.random(len(CONTROLS)) < 0.2) * rng.uniform(0.0, 0.5, len(CONTROLS)), 0.0, 1.0)
    pose = Pose(yaw=rng.uniform(-12, 12), pitch=rng.uniform(-8, 8), roll=rng.uniform(-8, 8),
                scale=rng.uniform(0.93, 1.07), shift_x=rng.uniform(-0.03, 0.03), shift_y=rng.uniform(-0.03, 0.03))
    return identity, render(identity, Expression.from_vector(vector.astype(np.float32)), pose, 256, noise_seed=index)


def _detection_rate(frames: int, seed: int) -> float:
    mp = pytest.importorskip("mediapipe")
    rng = np.random.default_rng(seed)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        found = sum(mesh.process(_random_frame(rng, i)[1]).multi_face_landmarks is not None for i in range(frames))
    return found / frames


def test_mediapipe_finds_random_faces():
    assert _detection_rate(20, seed=1) >= 0.9


@pytest.mark.heavy
def test_mediapipe_finds_random_faces_heavy():
    assert _detection_rate(240, seed=2) >= 0.95


def test_mediapipe_landmarks_sit_on_the_drawn_features():
    mp = pytest.importorskip("mediapipe")
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        for seed in (0, 1, 2):
            identity = Identity.from_seed(seed)
            g = FaceGeometry.of(identity)
            result = mesh.process(render(identity, Expression(), None, 256))
            assert result.multi_face_landmarks, seed
            points = result.multi_face_landmarks[0].landmark
            iris = sorted((points[i].x, points[i].y) for i in (468, 473))
            interocular = 2 * g.eye_dx
            for found, side in zip(iris, (-1, 1)):
                assert np.hypot(*np.subtract(found, g.eye_center(side))) < 0.08 * interocular
            lips = np.mean([(points[i].x, points[i].y) for i in (13, 14)], axis=0)
            assert np.hypot(*(lips - (g.cx, g.mouth_y))) < 0.12 * interocular
