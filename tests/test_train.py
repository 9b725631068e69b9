"""The trainer: losses fall on a fixed batch, two gloo processes stay in sync, and a
resumed run continues bit for bit."""

from __future__ import annotations

import dataclasses
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as multiprocessing
from safetensors.torch import load_file, save_file

from rt_dtgan.config import ModelConfig
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.train.config import EncoderTrainingConfig, GanTrainingConfig, RunConfig
from rt_dtgan.train.data import SyntheticDataConfig, synthetic_batch
from rt_dtgan.train.loop import run_training, setup_distributed
from rt_dtgan.train.objectives import EncoderObjective, GanObjective
from rt_dtgan.train.run import train_encoder, train_gan

TINY_DATA = SyntheticDataConfig(size=64, batch_size=2, min_length=4, max_length=5, identities=50)


def tiny_run(steps: int, checkpoint_every: int = 2) -> RunConfig:
    return RunConfig(
        steps=steps, log_every=1, image_every=1000, checkpoint_every=checkpoint_every, loader_workers=0, data=TINY_DATA
    )


def _losses_over(objective, batch, steps: int) -> list[dict[str, float]]:
    return [objective.step(batch) for _ in range(steps)]


def test_encoder_losses_fall_on_a_fixed_batch():
    torch.manual_seed(0)
    objective = EncoderObjective(DynamicsTransferGAN(ModelConfig.for_size(64)), EncoderTrainingConfig(learning_rate=3e-3), 1)
    history = _losses_over(objective, synthetic_batch(TINY_DATA, step=0), 25)
    for term in ("label_ce", "control_mse"):
        assert history[-1][term] < 0.7 * history[0][term], term


def test_gan_losses_fall_on_a_fixed_batch():
    torch.manual_seed(0)
    model = DynamicsTransferGAN(ModelConfig.for_size(64))
    objective = GanObjective(model, GanTrainingConfig(generator_learning_rate=1e-3), 1)
    history = _losses_over(objective, synthetic_batch(TINY_DATA, step=0), 12)
    # The discriminators learn to tell the first fakes apart and G fits the frames and the
    # dynamics; G's adversarial term rises as the discriminators improve (a minimax game).
    # The most of its first value each term may keep: trained, Ds keeps 96.7%, Dd 99.92% (it
    # settles at chance, log 4) and G's terms 34-38%; with the optimisers' steps skipped,
    # they wander by 0.04%, 0.005% and up to 21%.
    most_kept = {"d_spatial": 0.99, "d_dynamics": 0.9995, "g_frame_l1": 0.6, "g_dynamics_l1": 0.6, "g_moving_l1": 0.6}
    for term, kept in most_kept.items():
        assert min(h[term] for h in history[-3:]) < kept * history[0][term], term


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("suppression", [True, False])
def test_a_gan_step_back_propagates_through_the_frozen_encoder_on_cuda(suppression):
    """A is frozen in eval mode, where cuDNN's LSTM has no backward pass."""
    torch.manual_seed(0)
    config = dataclasses.replace(ModelConfig.for_size(64), appearance_suppression=suppression)
    objective = GanObjective(DynamicsTransferGAN(config).cuda(), GanTrainingConfig(appearance_suppression=suppression), 1)
    losses = objective.step(synthetic_batch(TINY_DATA, step=0).to(torch.device("cuda")))
    assert all(math.isfinite(value) for value in losses.values())


def test_reconstruction_pretraining_leaves_the_discriminators_alone():
    torch.manual_seed(0)
    model = DynamicsTransferGAN(ModelConfig.for_size(64))
    before = {k: v.clone() for k, v in model.spatial_discriminator.state_dict().items()}
    config = GanTrainingConfig(generator_learning_rate=1e-3, lambda_adversarial=0.0, lambda_dynamics=0.0)
    history = _losses_over(GanObjective(model, config, 1), synthetic_batch(TINY_DATA, step=0), 8)
    assert set(history[0]) == {"g_total", "g_frame_l1", "g_moving_l1"}
    assert history[-1]["g_moving_l1"] < 0.6 * history[0]["g_moving_l1"]  # 0.40 trained, 0.98 with no steps taken
    for name, value in model.spatial_discriminator.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_moving_l1_counts_only_the_pixels_that_leave_the_first_frame():
    from rt_dtgan.train.losses import moving_l1

    real = torch.zeros(1, 3, 3, 4, 4)
    real[0, 2, 0, 1, 1] = 0.5  # one pixel moves in the last frame
    fake = real.clone()
    fake[:, :, :, 0, 0] += 0.3  # a still pixel is off: not counted
    assert moving_l1(real, fake) == 0
    fake[0, 2, 1, 1, 1] = 0.6  # the moving pixel is off by 0.6 in one of its 3 channels
    assert moving_l1(real, fake).item() == pytest.approx(0.2)
    assert moving_l1(torch.zeros_like(real), fake) == 0


def test_aligned_sequences_keep_only_yaw_and_pitch_and_share_one_noise_pattern():
    import dataclasses

    drifting = synthetic_batch(dataclasses.replace(TINY_DATA, augment=False), step=3)
    aligned = synthetic_batch(dataclasses.replace(TINY_DATA, augment=False, head_pose="aligned", sensor_noise="per-sequence"), step=3)
    assert torch.equal(drifting.expressions, aligned.expressions)
    # The top-left corner is background: it changes between frames only through the sensor noise.
    corner = (slice(None), slice(None), slice(None), slice(0, 6), slice(0, 6))
    assert (drifting.video[corner].diff(dim=1).abs() > 0).any()
    assert torch.equal(aligned.video[corner].diff(dim=1), torch.zeros_like(aligned.video[corner][:, 1:]))


@pytest.mark.parametrize(
    "bad",
    [dict(size=100), dict(min_length=1), dict(min_length=9, max_length=8), dict(max_length=61), dict(batch_size=0), dict(head_pose="x")],
)
def test_synthetic_data_config_refuses_bad_values(bad):
    import dataclasses

    with pytest.raises(ValueError):
        dataclasses.replace(TINY_DATA, **bad)


def test_lower_face_stretch_moves_rows_below_the_eye_line_down_and_keeps_those_above():
    from rt_dtgan.train.data import stretch_lower_face

    side = 64
    video = torch.full((2, 3, 3, side, side), -1.0)
    video[..., 20, :] = 1.0  # above the eye line at row 25.6
    video[..., 40, :] = 1.0  # its centre 14.9 rows below the line; 22.35 rows once stretched by 1.5
    stretched = stretch_lower_face(video, torch.tensor([1.0, 1.5]), torch.tensor([0.4, 0.4]))
    assert torch.allclose(stretched[0], video[0], atol=1e-6)
    profile = stretched[1, 0, 0, :, 0]
    assert profile[20] == pytest.approx(1.0, abs=1e-6)
    assert profile[47] + profile[48] > 0 and profile[40] == -1.0


def test_window_sequences_start_at_the_neutral_anchor_and_mixed_alternates():
    import dataclasses

    windows = dataclasses.replace(TINY_DATA, sequences="window", min_length=6, max_length=6)
    batch = synthetic_batch(windows, step=0)
    assert batch.video.shape[:2] == (2, 6)
    assert torch.equal(batch.expressions[:, 0], torch.zeros_like(batch.expressions[:, 0]))
    assert (batch.frame_labels[:, 0] == 0).all()
    assert batch.expressions[:, 1:].abs().sum() > 0  # free-form motion: talking at least
    mixed = dataclasses.replace(windows, sequences="mixed")
    assert torch.equal(synthetic_batch(mixed, step=1).video, synthetic_batch(windows, step=1).video)
    assert torch.equal(synthetic_batch(mixed, step=0).video, synthetic_batch(dataclasses.replace(windows, sequences="onset"), step=0).video)


def test_align_pose_removes_roll_scale_and_shift():
    from rt_dtgan.synth import Expression, Pose
    from rt_dtgan.synth.sequences import FrameSpec
    from rt_dtgan.train.data import align_pose

    frame = FrameSpec(Expression(), Pose(yaw=3.0, pitch=-2.0, roll=2.5, scale=1.02, shift_x=0.01, shift_y=-0.01), "joy", 7)
    assert align_pose(frame) == FrameSpec(Expression(), Pose(yaw=3.0, pitch=-2.0), "joy", 7)


def test_gan_training_can_start_from_another_models_generator(tmp_path):
    from rt_dtgan.models.checkpoint import load_checkpoint, save_checkpoint

    encoder = train_encoder(EncoderTrainingConfig(run=tiny_run(1)), tmp_path / "encoder", progress=False)
    torch.manual_seed(5)
    start = save_checkpoint(tmp_path / "start.safetensors", DynamicsTransferGAN(ModelConfig.for_size(64)))
    config = GanTrainingConfig(run=tiny_run(1), generator_learning_rate=1e-12)
    tuned = load_checkpoint(train_gan(config, tmp_path / "tuned", encoder, progress=False, init_checkpoint=start))
    # Batch-norm statistics move in one step; the weights, at a negligible learning rate, stay.
    began = load_checkpoint(start)
    assert torch.allclose(tuned.generator.head.weight, began.generator.head.weight, atol=1e-6)
    assert torch.allclose(tuned.embedder.to_grid[1].weight, began.embedder.to_grid[1].weight, atol=1e-6)
    torch.manual_seed(6)
    other = save_checkpoint(tmp_path / "other.safetensors", DynamicsTransferGAN(ModelConfig.for_size(128)))
    with pytest.raises(ValueError, match="does not fit this model"):
        train_gan(config, tmp_path / "misfit", encoder, progress=False, init_checkpoint=other)


def test_encoder_training_can_start_from_another_checkpoints_encoder(tmp_path):
    from rt_dtgan.models.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(7)
    start = save_checkpoint(tmp_path / "start.safetensors", DynamicsTransferGAN(ModelConfig.for_size(64)), parts=["encoder"])
    config = EncoderTrainingConfig(run=tiny_run(1), learning_rate=1e-12)
    tuned = load_checkpoint(train_encoder(config, tmp_path / "tuned", progress=False, init_checkpoint=start), ["encoder"])
    began = load_checkpoint(start, ["encoder"])
    assert torch.allclose(tuned.encoder.lstm.weight_hh_l0, began.encoder.lstm.weight_hh_l0, atol=1e-6)
    other = save_checkpoint(tmp_path / "other.safetensors", DynamicsTransferGAN(ModelConfig.for_size(128)), parts=["encoder"])
    with pytest.raises(ValueError, match="encodes 128 px crops, but the training data is 64 px"):
        train_encoder(config, tmp_path / "misfit", progress=False, init_checkpoint=other)


def test_resumed_run_continues_bit_identically(tmp_path):
    straight = train_encoder(EncoderTrainingConfig(run=tiny_run(4)), tmp_path / "straight", progress=False)
    train_encoder(EncoderTrainingConfig(run=tiny_run(2)), tmp_path / "resumed", progress=False)
    resumed = train_encoder(EncoderTrainingConfig(run=tiny_run(4)), tmp_path / "resumed", progress=False)
    assert _equal_files(straight, resumed)
    gan_straight = train_gan(GanTrainingConfig(run=tiny_run(4)), tmp_path / "gan_straight", straight, progress=False)
    train_gan(GanTrainingConfig(run=tiny_run(2)), tmp_path / "gan_resumed", straight, progress=False)
    gan_resumed = train_gan(GanTrainingConfig(run=tiny_run(4)), tmp_path / "gan_resumed", straight, progress=False)
    assert _equal_files(gan_straight, gan_resumed)


def test_resume_with_another_config_is_refused(tmp_path):
    train_encoder(EncoderTrainingConfig(run=tiny_run(2)), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="holds a run with another config"):
        train_encoder(EncoderTrainingConfig(run=tiny_run(4), learning_rate=5e-4), tmp_path / "run", progress=False)


def _equal_files(a, b) -> bool:
    first, second = load_file(str(a)), load_file(str(b))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str, kind: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed = setup_distributed()
    torch.manual_seed(0)
    model = DynamicsTransferGAN(ModelConfig.for_size(64))
    if kind == "encoder":
        objective = EncoderObjective(model, EncoderTrainingConfig(), world_size)
    else:
        objective = GanObjective(model, GanTrainingConfig(), world_size)
    run_training(
        objective, tiny_run(3, checkpoint_every=100), f"{out_dir}/run", {"kind": kind}, distributed, "out.safetensors", progress=False
    )
    # Parameters must agree; batch-norm statistics are broadcast from rank 0 at each forward.
    parameters = {k: v.detach().contiguous() for k, v in model.named_parameters()}
    save_file(parameters, f"{out_dir}/rank{rank}.safetensors")
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("kind", ["encoder", "gan"])
def test_two_gloo_processes_keep_replicas_in_sync(tmp_path, kind):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    multiprocessing.spawn(_ddp_worker, args=(2, port, str(tmp_path), kind), nprocs=2, join=True)
    rank0, rank1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    torch.manual_seed(0)
    untrained = dict(DynamicsTransferGAN(ModelConfig.for_size(64)).named_parameters())
    trained_part = "encoder." if kind == "encoder" else "generator."
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert any(not torch.equal(rank0[k], untrained[k]) for k in rank0 if k.startswith(trained_part))


def test_eval_produces_every_field_on_a_tiny_model(tmp_path, capsys):
    import dataclasses
    import json

    from rt_dtgan.cli import main
    from rt_dtgan.models.checkpoint import save_checkpoint

    torch.manual_seed(1)
    model = DynamicsTransferGAN(ModelConfig.for_size(64))
    ablation = DynamicsTransferGAN(dataclasses.replace(ModelConfig.for_size(64), appearance_suppression=False))
    paths = {name: save_checkpoint(tmp_path / f"{name}.safetensors", m) for name, m in (("model", model), ("ablation", ablation))}
    out = tmp_path / "eval.json"
    argv = ["eval", "--checkpoint", str(paths["model"]), "--synthetic", "--identities", "2", "--length", "4"]
    argv += ["--judge", str(paths["model"]), "--ablation", str(paths["ablation"]), "--json", str(out)]
    assert main(argv) == 0
    figures = json.loads(out.read_text())
    expected = {
        "self_psnr",
        "self_ssim",
        "transfer_psnr",
        "transfer_ssim",
        "expression_accuracy",
        "temporal_error",
        "ablation_win_rate",
        "static_baseline_ssim",
        "dynamic_region_psnr",
        "static_baseline_dynamic_region_psnr",
    }
    assert expected <= figures.keys()
    assert all(isinstance(figures[k], float) and math.isfinite(figures[k]) for k in expected), figures
    assert 0 <= figures["expression_accuracy"] <= 1 and 0 <= figures["ablation_win_rate"] <= 1
    assert -1 <= figures["transfer_ssim"] <= 1 and figures["static_baseline_ssim"] < 1


def test_eval_scores_the_shipped_default_model_without_being_told_which(tmp_path):
    import json

    from rt_dtgan.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval", "--synthetic", "--identities", "1", "--length", "4", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["checkpoint"] == "default" and figures["pairs"] == 1
    assert figures["dynamic_region_psnr"] > 0
