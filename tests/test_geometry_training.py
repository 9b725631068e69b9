"""Training the geometry model on prepared video: both stages, validation figures, resume."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from rt_dtgan.models.checkpoint import load_checkpoint
from rt_dtgan.prepare import prepare_dataset
from rt_dtgan.synth import Expression, Identity, render
from rt_dtgan.synth.dataset import VideoWriter
from rt_dtgan.train.geometry import GeometryTrainingConfig, keypoint_batch, keypoint_loss, load_clips, train_geometry

SIZE = 64


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Three synthetic talkers (the jaw opens and closes), prepared as real video is."""
    source = tmp_path_factory.mktemp("talkers")
    for seed in range(3):
        identity = Identity.from_seed(seed)
        with VideoWriter(source / f"talker{seed}.mkv", 256) as writer:
            for t in range(24):
                opening = 0.5 - 0.5 * np.cos(t / 3.0 + seed)
                writer.write(render(identity, Expression(jaw_drop=float(opening), lips_part=float(opening)), None, 256))
    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset(source, out, layout="folder", size=SIZE, progress=False)
    return str(out)


def test_both_stages_train_validate_on_the_held_out_clip_and_resume(prepared, tmp_path):
    config = GeometryTrainingConfig(
        data=(prepared,), hold_out=("talker2",), size=SIZE, steps=40, batch_size=16, refine_steps=10,
        refine_batch_size=4, checkpoint_every=25,
    )
    training, held = load_clips(config.data, config.hold_out)
    assert sorted(training) == ["talker0", "talker1"] and list(held) == ["talker2"]
    torch.manual_seed(0)
    checkpoint = train_geometry(config, str(tmp_path / "run"), progress=False)
    model = load_checkpoint(checkpoint)
    assert model.config.reads_mesh and model.config.warps and model.config.image_size == SIZE
    logged = [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [25, 40, 50]
    assert {"talker2/mouth_r", "talker2/error", "refine_l1", "warp_only_l1"} <= set(logged[-1])
    assert logged[1]["talker2/error"] < logged[0]["talker2/error"] or logged[1]["talker2/mouth_r"] > 0.5

    longer = GeometryTrainingConfig(**{**config.to_dict(), "refine_steps": 20})
    train_geometry(longer, str(tmp_path / "run"), progress=False)
    logged = [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged][3:] == [60]  # resumed at 50, not started again


def test_stage_one_learns_the_keypoint_motion(prepared):
    from rt_dtgan.config import ModelConfig
    from rt_dtgan.models import DynamicsTransferGAN

    config = GeometryTrainingConfig(data=(prepared,), size=SIZE, batch_size=16)
    training, _ = load_clips(config.data, ())
    clips = list(training.values())
    torch.manual_seed(1)
    model = DynamicsTransferGAN(ModelConfig.geometry(SIZE))
    fixed = keypoint_batch(clips, config, model.config.stream_window, np.random.default_rng(3))
    before = keypoint_loss(model, fixed).item()
    optimizer = torch.optim.Adam([*model.encoder.parameters(), *model.embedder.parameters()], lr=1e-3)
    rng = np.random.default_rng(4)
    for _ in range(60):
        loss = keypoint_loss(model, keypoint_batch(clips, config, model.config.stream_window, rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert keypoint_loss(model, fixed).item() < 0.6 * before


def test_a_config_without_data_or_with_an_unknown_held_out_clip_is_refused(prepared):
    with pytest.raises(ValueError, match="at least one prepared dataset"):
        GeometryTrainingConfig(data=())
    with pytest.raises(ValueError, match="not found in the data"):
        load_clips((prepared,), ("nobody",))


def test_the_adversarial_stage_moves_only_the_refiner_and_resumes_with_its_discriminator(prepared, tmp_path, monkeypatch):
    from rt_dtgan.train import geometry
    from rt_dtgan.train.state import load_training_state

    run = str(tmp_path / "run")
    config = GeometryTrainingConfig(
        data=(prepared,), hold_out=("talker2",), size=SIZE, steps=20, batch_size=16, refine_steps=5,
        refine_batch_size=4, checkpoint_every=100,
    )

    def with_adversarial_steps(count: int) -> GeometryTrainingConfig:
        return GeometryTrainingConfig(**{**config.to_dict(), "adversarial_steps": count})

    # Parameters, not state_dict(): the refiner's BatchNorm statistics move on every training-mode
    # pass, whether or not an optimiser steps.
    before = dict(load_checkpoint(train_geometry(config, run, progress=False)).named_parameters())
    _, at_refined, _ = load_training_state(run)
    after = dict(load_checkpoint(train_geometry(with_adversarial_steps(3), run, progress=False)).named_parameters())
    moved = [name for name in before if not torch.equal(before[name], after[name])]
    assert moved, "no parameter moved in the adversarial stage"
    assert moved == [name for name in before if name.startswith("generator.refiner.")]
    step, saved, _ = load_training_state(run)
    assert step == 28 and _adam_steps(saved["optimizer.discriminator"]) == 3
    trained = saved["discriminator"]
    assert all(not torch.equal(at_refined["discriminator"][name], trained[name]) for name in trained if name.endswith("weight"))

    # Resumed after three adversarial steps, the discriminator and its optimiser are the saved ones.
    resumed = {}
    original_resume = geometry._resume

    def recording_resume(run_path, resumed_config, model, discriminator, optimizers):
        resumed["step"] = original_resume(run_path, resumed_config, model, discriminator, optimizers)
        resumed["discriminator"] = copy.deepcopy(discriminator.state_dict())
        resumed["optimizer"] = copy.deepcopy(optimizers["discriminator"][0].state_dict())
        return resumed["step"]

    monkeypatch.setattr(geometry, "_resume", recording_resume)
    train_geometry(with_adversarial_steps(6), run, progress=False)
    assert resumed["step"] == 28
    assert _same_tree(resumed["discriminator"], trained), "the resumed discriminator's weights are not the saved ones"
    assert _same_tree(resumed["optimizer"], saved["optimizer.discriminator"]), "the discriminator's optimiser state was not resumed"
    logged = json.loads((tmp_path / "run" / "validation.jsonl").read_text().splitlines()[-1])
    assert logged["step"] == 31 and {"refine_detail", "warp_only_detail"} <= set(logged)
    step, saved, _ = load_training_state(run)
    assert step == 31 and _adam_steps(saved["optimizer.discriminator"]) == 6


def _adam_steps(optimizer_state: dict) -> int:
    """The steps an Adam state dict has taken (the same for each of its parameters)."""
    steps = {int(entry["step"]) for entry in optimizer_state["state"].values()}
    assert len(steps) == 1, steps
    return steps.pop()


def _same_tree(a, b) -> bool:
    """Whether two state dicts (nested dicts and lists of tensors and scalars) hold equal values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_tree(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b))
    return a == b


def test_the_discriminator_sees_open_mouths_where_only_the_interior_differs():
    from rt_dtgan.train.geometry import MOUTH_PATCH, mouth_views

    real = torch.zeros(3, 3, SIZE, SIZE)
    fake = real.clone()
    mouth = torch.zeros(3, 1, SIZE, SIZE)
    mouth[0, :, 40:44, 20:30] = 1.0  # an open mouth low in the crop
    mouth[2, :, 2:5, 60:63] = 1.0  # one at the corner: the window stays inside the crop
    fake[mouth.expand(-1, 3, -1, -1) > 0] = 0.5
    views = mouth_views(real, fake, mouth)
    assert views.real.shape == views.fake.shape == (2, 3, MOUTH_PATCH, MOUTH_PATCH)  # item 1 has no opening
    assert torch.equal(views.real, torch.zeros_like(views.real))
    assert float((views.fake == 0.5).sum()) == 3 * (4 * 10 + 3 * 3)  # every interior pixel is in its window
