"""The geometry model: A reads the eye-aligned face mesh, G warps the portrait's own pixels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import make_lively_geometry_model

from rt_dtgan.config import MESH_POINTS, ModelConfig, PreprocessConfig
from rt_dtgan.face.align import SimilarityTransform, eyes_to_crop_transform
from rt_dtgan.face.geometry import eye_units
from rt_dtgan.models.checkpoint import load_checkpoint, save_checkpoint
from rt_dtgan.models.dynamics import windowed_offline
from rt_dtgan.models.neutral import INNER_LIP_PAIRS, mouth_correction
from rt_dtgan.models.warp import HELD_POINTS, MOVING_POINTS, KeypointWarp, lid_gain, with_measured_eyes
from rt_dtgan.runtime.backends import OnnxRuntimeBackend, TorchBackend
from rt_dtgan.runtime.engine import Face, StreamEngine
from rt_dtgan.runtime.export import export_onnx
from rt_dtgan.runtime.warping import KeypointMotion

SIZE = 64


def random_meshes(count: int, seed: int) -> np.ndarray:
    """(count, MESH_POINTS, 2) float32: one face shape that moves a little from frame to frame."""
    rng = np.random.default_rng(seed)
    face = rng.uniform(-1.0, 1.0, size=(MESH_POINTS, 2))
    return (face + 0.1 * rng.standard_normal((count, MESH_POINTS, 2))).astype(np.float32)


def test_the_mesh_in_eye_units_does_not_depend_on_the_faces_scale_roll_or_place():
    config = PreprocessConfig(size=128)
    rng = np.random.default_rng(0)
    points = rng.uniform(100, 300, size=(MESH_POINTS, 3))
    eyes_of = lambda p: np.stack([p[[33, 133], :2].mean(0), p[[362, 263], :2].mean(0)])  # noqa: E731
    reference = eye_units(points, eyes_to_crop_transform(eyes_of(points), config), config)
    angle, scale = math.radians(25.0), 0.6
    matrix = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = points.copy()
    moved[:, :2] = SimilarityTransform(matrix, np.array([40.0, -15.0])).apply(points[:, :2])
    again = eye_units(moved, eyes_to_crop_transform(eyes_of(moved), config), config)
    np.testing.assert_allclose(again, reference, atol=1e-5)
    eyes = np.stack([reference[[33, 133]].mean(0), reference[[362, 263]].mean(0)])
    np.testing.assert_allclose(eyes, [[-0.5, 0.0], [0.5, 0.0]], atol=1e-5)


def test_the_warp_is_the_identity_without_motion_and_moves_the_keypoints_with_it():
    warp = KeypointWarp(PreprocessConfig(size=SIZE), grid_side=32)
    portrait = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    mesh = torch.from_numpy(random_meshes(1, 1)) * 0.6
    still = torch.zeros(1, len(MOVING_POINTS), 2)
    assert torch.equal(warp(portrait, mesh, still), portrait)
    grid = warp.sampling_grid(mesh, still)
    from rt_dtgan.models.warp import grid_centres

    np.testing.assert_allclose(grid.reshape(-1, 2).double(), grid_centres(32, SIZE), atol=1e-3)
    moved = still.clone()
    moved[0, MOVING_POINTS.index(14), 1] = 0.1  # the lower inner lip drops a tenth of the eye distance
    assert not torch.equal(warp(portrait, mesh, moved), portrait)


def test_several_streams_warp_together_on_several_threads():
    """MKL's batched solve fails for systems of our size on several threads
    (pytorch/pytorch#142815): a batch of streams must warp as each stream alone."""
    warp = KeypointWarp(PreprocessConfig(size=SIZE), grid_side=32)
    meshes = torch.from_numpy(random_meshes(4, 2)) * 0.6
    offsets = 0.05 * torch.randn(4, len(MOVING_POINTS), 2, generator=torch.Generator().manual_seed(3))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        together = warp.sampling_grid(meshes, offsets)
    finally:
        torch.set_num_threads(threads)
    for i in range(4):
        torch.testing.assert_close(together[i : i + 1], warp.sampling_grid(meshes[i : i + 1], offsets[i : i + 1]))


def test_a_lid_or_lip_never_passes_its_partner():
    warp = KeypointWarp(PreprocessConfig(size=SIZE), grid_side=16)
    keypoints = torch.zeros(1, len(MOVING_POINTS), 2, dtype=torch.float64)
    lid, partner = MOVING_POINTS.index(159), MOVING_POINTS.index(145)
    keypoints[0, lid, 1], keypoints[0, partner, 1] = 30.0, 32.0  # an open eye, 2 px
    closing = keypoints.clone()
    closing[0, lid, 1] = 31.0
    assert torch.equal(warp.uncross(closing, keypoints), closing)
    overshoot = keypoints.clone()
    overshoot[0, lid, 1] = 35.0  # a blink that would put the upper lid 3 px below the lower
    fixed = warp.uncross(overshoot, keypoints)
    assert fixed[0, lid, 1] == fixed[0, partner, 1] == 33.5


def test_a_brow_pulled_down_stops_above_its_lid():
    """A frown that would bring the brow onto the eye: it comes down at most BROW_KEEP of its
    height over the lid, the brow's upper row pushed back with it; a small frown passes as it is."""
    from rt_dtgan.models.warp import BROW_KEEP

    warp = KeypointWarp(PreprocessConfig(size=SIZE), grid_side=16)
    keypoints = torch.zeros(1, len(MOVING_POINTS), 2, dtype=torch.float64)
    brow, lid, above, lower_lid = (MOVING_POINTS.index(point) for point in (52, 159, 105, 145))
    keypoints[0, [brow, lid, above, lower_lid], 1] = torch.tensor([20.0, 30.0, 17.0, 36.0], dtype=torch.float64)
    small = keypoints.clone()
    small[0, [brow, above], 1] += 3.0
    small[0, lid, 1] += 2.0  # the lid closing does not let the brow further down
    assert torch.equal(warp.uncross(small, keypoints), small)
    frown = keypoints.clone()
    frown[0, [brow, above], 1] += 9.0  # the brow would end 1 px over the lid
    fixed = warp.uncross(frown, keypoints)
    assert fixed[0, brow, 1] == pytest.approx(20.0 + BROW_KEEP * 10.0)
    assert fixed[0, above, 1] == pytest.approx(17.0 + BROW_KEEP * 10.0)


def test_the_renderer_gives_the_portrait_back_without_motion_and_moves_only_the_face_box(portrait_target):
    from rt_dtgan.face.render import WarpPlan
    from rt_dtgan.models.warp import grid_centres

    plan = WarpPlan.build(portrait_target, grid_side=32)
    image = portrait_target.image
    identity = grid_centres(32, SIZE).float().view(32, 32, 2).numpy()
    no_paint = np.zeros((SIZE, SIZE), np.uint8), np.zeros((SIZE, SIZE, 3), np.uint8)
    assert np.array_equal(plan.render(identity, *no_paint), image)
    warp = KeypointWarp(PreprocessConfig(size=SIZE), grid_side=32)
    offsets = torch.zeros(1, len(MOVING_POINTS), 2)
    offsets[0, MOVING_POINTS.index(14), 1] = 0.15
    grid = warp.sampling_grid(torch.from_numpy(portrait_target.mesh).unsqueeze(0), offsets)[0].numpy()
    moved = plan.render(grid, *no_paint)
    assert not np.array_equal(moved, image)
    outside = np.ones(image.shape[:2], bool)
    outside[plan.rows, plan.columns] = False
    assert np.array_equal(moved[outside], image[outside])
    painted = plan.render(grid, np.full((SIZE, SIZE), 255, np.uint8), np.zeros((SIZE, SIZE, 3), np.uint8))
    inside = (plan.crop_x > 1) & (plan.crop_x < SIZE - 2) & (plan.crop_y > 1) & (plan.crop_y < SIZE - 2)
    assert (painted[plan.rows, plan.columns][inside] == 0).all()  # a full mask paints its colour (black) over the crop


@pytest.fixture(scope="module")
def portrait_target():
    from rt_dtgan.face import prepare_target
    from rt_dtgan.synth.dataset import synthetic_target

    return prepare_target(synthetic_target(5, 256), PreprocessConfig(size=SIZE))


@pytest.mark.parametrize("window", [0, 4])
def test_streamed_offsets_equal_the_offline_computation(window):
    model = make_lively_geometry_model(window=window)
    meshes = random_meshes(12, seed=window)
    lower, upper = ([pair[i] for pair in INNER_LIP_PAIRS] for i in (1, 0))
    portrait = meshes[0].copy()
    portrait[lower, 1] = portrait[upper, 1]  # a closed mouth
    meshes[0, lower, 1] = meshes[0, upper, 1] + 0.05  # the driver starts mid-sentence
    engine = StreamEngine(TorchBackend(model))
    stream = engine.open(Face(np.zeros((SIZE, SIZE, 3), np.uint8), portrait))
    motions = [engine.step(stream, Face(None, mesh)) for mesh in meshes]
    assert motions[0].still and not any(motion.still for motion in motions[1:])
    streamed = np.stack([motion.offsets for motion in motions])
    video = torch.from_numpy(meshes).unsqueeze(0)
    with torch.no_grad():
        if window:
            z_d = windowed_offline(model.encoder, video, window)[0]
        else:
            from rt_dtgan.models.dynamics import dynamics_offline

            z_d = dynamics_offline(model.encoder, video)[0]
        anchor, target = torch.from_numpy(meshes[:1]), torch.from_numpy(portrait[None])
        corrections = mouth_correction(anchor).expand(len(meshes), -1, -1).clone()  # the anchor's mouth closed
        corrections[0] = 0.0  # the anchor's own frame shows the portrait as it is
        moved = with_measured_eyes(model.embedder(z_d) + corrections, video[0], anchor)  # the eyes as the driver's
        moved[0] = 0.0
        offline = (moved * lid_gain(target, anchor)).numpy()
    assert np.abs(corrections.numpy()).max() > 0.01, "the anchor's open mouth must count for the comparison to cover it"
    assert np.abs(offline).max() > 0.01, "offsets must move for the comparison to mean anything"
    assert not streamed[0].any(), "z_d(0) = 0 must move nothing"
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


def test_onnxruntime_matches_torch_for_the_geometry_model(tmp_path):
    model = make_lively_geometry_model(window=16, seed=3)
    checkpoint = save_checkpoint(tmp_path / "geometry.safetensors", model)
    export_onnx(model, tmp_path / "onnx", checkpoint)
    assert json.loads((tmp_path / "onnx" / "meta.json").read_text())["graphs"].keys() == {"calibrate", "step", "refine"}
    meshes = random_meshes(40, seed=7)
    portrait = Face(np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), meshes[0] * 0.5)
    outputs = {}
    for backend in (TorchBackend(model), OnnxRuntimeBackend(tmp_path / "onnx", threads=1)):
        engine = StreamEngine(backend)
        stream = engine.open(portrait)
        motions = [engine.step(stream, Face(None, mesh)) for mesh in meshes][1:]  # the anchor's output is still
        outputs[backend.name] = [np.stack([getattr(m, name) for m in motions]) for name in ("offsets", "grid", "mask", "colour")]
    assert np.abs(outputs["torch"][0]).max() > 0.01
    # offsets in eye units, the grid in crop pixels (a hundredth of one); the 8-bit mask and
    # colour see the grid's differences through the warped crop: one level at most
    for onnx, reference, tolerance in zip(outputs["onnxruntime"], outputs["torch"], (1e-4, 1e-2, 1, 1)):
        np.testing.assert_allclose(onnx.astype(np.float32), reference.astype(np.float32), atol=tolerance)


def test_a_geometry_checkpoint_round_trips_and_a_pixel_one_still_loads(tmp_path):
    model = make_lively_geometry_model()
    loaded = load_checkpoint(save_checkpoint(tmp_path / "g.safetensors", model))
    assert loaded.config == model.config and loaded.config.reads_mesh and loaded.config.warps
    for part in ("encoder", "embedder", "generator"):
        for name, tensor in getattr(model, part).state_dict().items():
            assert torch.equal(getattr(loaded, part).state_dict()[name], tensor)
    old = ModelConfig.for_size(SIZE).to_dict()
    del old["encoder"]["input"], old["generator"]["kind"]  # a config written before the kinds existed
    assert ModelConfig.from_dict(old) == ModelConfig.for_size(SIZE)


def test_engine_strength_scales_the_motion_and_bare_crops_are_refused():
    model = make_lively_geometry_model()
    meshes = random_meshes(6, seed=2)
    engine = StreamEngine(TorchBackend(model))
    target = Face(np.zeros((SIZE, SIZE, 3), np.uint8), meshes[0])
    full, half = engine.open(target), engine.open(target, strength=0.5)
    for mesh in meshes:
        moved = engine.step(full, Face(None, mesh))
        scaled = engine.step(half, Face(None, mesh))
    assert isinstance(moved, KeypointMotion) and moved.grid.shape[0] == model.config.generator.flow_grid
    np.testing.assert_allclose(scaled.offsets, 0.5 * moved.offsets, rtol=1e-6)
    with pytest.raises(ValueError, match="reads the face mesh"):
        engine.step(full, np.zeros((SIZE, SIZE, 3), np.uint8))
    with pytest.raises(ValueError, match="strength must be in"):
        engine.set_strength(full, 4.0)


def test_lid_motion_is_scaled_by_the_portraits_lid_gap_over_the_drivers(portrait_target):
    portrait = torch.from_numpy(portrait_target.mesh).unsqueeze(0)
    driver = portrait.clone()
    driver[0, [145, 153, 154, 144, 163, 374, 380, 381, 373, 390], 1] += 0.05  # the driver's eyes open wider
    gain = lid_gain(portrait, driver)[0]
    eye_points = [MOVING_POINTS.index(p) for p in (33, 159, 145, 362, 386, 374)]
    assert (gain[eye_points, 1] < 1).all() and (gain[eye_points, 0] == 1).all()
    assert (gain[[MOVING_POINTS.index(p) for p in (13, 14, 61, 152, 105)]] == 1).all()
    assert torch.equal(lid_gain(portrait, portrait), torch.ones(1, len(MOVING_POINTS), 2))


def test_keypoint_sets_are_distinct_facemesh_points():
    assert len(set(MOVING_POINTS)) == len(MOVING_POINTS) and not set(MOVING_POINTS) & set(HELD_POINTS)
    assert max(MOVING_POINTS + HELD_POINTS) < MESH_POINTS


def test_the_refiner_paints_only_inside_the_moved_inner_lips(portrait_target):
    from rt_dtgan.models.warp import polygon_inside

    square = torch.tensor([[[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]]])
    points = torch.tensor([[2.0, 2.0], [0.5, 2.0], [2.0, 3.5], [2.9, 1.1]])
    assert polygon_inside(square, points).tolist() == [[1.0, 0.0, 0.0, 1.0]]
    model = make_lively_geometry_model()
    warp = model.generator.warp
    mesh = torch.from_numpy(portrait_target.mesh).unsqueeze(0)
    closed = torch.zeros(1, len(MOVING_POINTS), 2)
    opened = closed.clone()
    opened[0, [MOVING_POINTS.index(p) for p in (14, 87, 317, 178, 402)], 1] = 0.3  # the lower inner lip drops
    _, opening = warp.grid_and_mouth(mesh, opened)
    _, shut = warp.grid_and_mouth(mesh, closed)
    assert opening.sum() > 10 * shut.sum()
    mouth = torch.zeros(1, 1, SIZE, SIZE)
    mask, _ = model.generator.refiner(torch.rand(1, 3, SIZE, SIZE) * 2 - 1, torch.zeros(1, 2, SIZE, SIZE), mouth)
    assert not mask.any()


def test_the_shipped_geometry_model_opens_the_portraits_mouth_when_the_driver_opens_theirs():
    from safetensors.torch import load_file

    from rt_dtgan.face import FaceTracker, prepare_target
    from rt_dtgan.models.checkpoint import SHIPPED_MODELS, resolve_checkpoint
    from rt_dtgan.synth import Expression, Identity, render
    from rt_dtgan.synth.dataset import synthetic_target

    path = resolve_checkpoint("geometry")
    assert path == SHIPPED_MODELS["geometry"] and path.stat().st_size < 25 * 2**20
    tensors = load_file(str(path)).values()
    assert {tensor.dtype for tensor in tensors if tensor.is_floating_point()} == {torch.float16}
    model = load_checkpoint(path)
    assert model.config.reads_mesh and model.config.warps and model.config.image_size == 128
    engine = StreamEngine(TorchBackend(model))
    stream = engine.open(prepare_target(synthetic_target(7, 256), model.config.preprocess))
    driver = Identity.from_seed(8)  # another face drives
    gaps = []
    with FaceTracker(model.config.preprocess) as tracker:
        for index, opening in enumerate([0.0] * 4 + [0.2, 0.5, 0.8, 0.8, 0.4, 0.0, 0.0]):
            tracked = tracker.track(render(driver, Expression(jaw_drop=opening, lips_part=opening), None, 256), index / 30)
            motion = engine.step(stream, tracked)
            gaps.append(motion.offsets[MOVING_POINTS.index(14), 1] - motion.offsets[MOVING_POINTS.index(13), 1])
    assert gaps[0] == 0 and max(gaps) > 0.1, f"the inner lips part by {max(gaps):.3f} eye distances at most"
    assert int(np.argmax(gaps)) in (6, 7) and abs(gaps[-1]) < 0.35 * max(gaps)


def test_the_commands_take_the_shipped_names_and_say_what_a_geometry_model_cannot_do(tmp_path):
    import subprocess
    import sys

    run = lambda *args: subprocess.run([sys.executable, "-m", "rt_dtgan", *args], capture_output=True, text=True)  # noqa: E731
    doctor = run("doctor", "--checkpoint", "geometry", "--frames", "20")
    assert doctor.returncode == 0 and "streaming dynamics  ok: 20 frames (geometry)" in doctor.stdout
    info = run("info", "paper")
    assert info.returncode == 0 and "generator" in info.stdout
    visualize = run("visualize", "--checkpoint", "geometry", "--source", "synthetic:1", "--out", str(tmp_path / "v.mp4"))
    assert visualize.returncode != 0 and "experiment 4 needs a G that draws crops" in visualize.stderr


def test_a_driver_who_starts_mid_sentence_never_closes_the_portraits_lips_past_closed():
    """The anchor's mouth open: its opening is added at the lower lips (and, by JAW_SHARE, the
    jaw), so the driver's closing mouth closes the portrait's only as far as closed; a closed
    anchor adds nothing, and nothing else moves."""
    from rt_dtgan.models.neutral import JAW_SHARE, LOWER_LIPS, mouth_correction
    from rt_dtgan.models.warp import JAW

    closed = torch.from_numpy(random_meshes(1, seed=3))
    lower, upper = ([pair[i] for pair in INNER_LIP_PAIRS] for i in (1, 0))
    closed[0, lower, 1] = closed[0, upper, 1]
    assert not mouth_correction(closed).any()
    opened = closed.clone()
    opened[0, lower, 1] += 0.08
    correction = mouth_correction(opened)[0]
    lips, jaw = ([MOVING_POINTS.index(point) for point in points] for points in (LOWER_LIPS, JAW))
    torch.testing.assert_close(correction[lips, 1], torch.full((len(lips),), 0.08))
    torch.testing.assert_close(correction[jaw, 1], torch.full((len(jaw),), JAW_SHARE * 0.08))
    others = torch.ones(len(MOVING_POINTS), dtype=torch.bool)
    others[lips + jaw] = False
    assert not correction[others].any() and not correction[:, 0].any()
