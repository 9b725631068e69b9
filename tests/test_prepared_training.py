"""Training on a prepared dataset of real videos: batches, labels, the encoder and GAN steps."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from rt_dtgan.config import EXPRESSION_CLASSES, ModelConfig, PreprocessConfig
from rt_dtgan.face.landmarks import MOTION_POINTS
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.synth import Expression, Identity, render
from rt_dtgan.synth.dataset import VideoWriter
from rt_dtgan.train.config import EncoderTrainingConfig, GanTrainingConfig, RunConfig
from rt_dtgan.train.objectives import EncoderObjective
from rt_dtgan.train.prepared import PreparedDataConfig, prepared_batch
from rt_dtgan.train.run import train_gan

SIZE = 64


def write_prepared(root, sequences: list[tuple[str, int, str | None]], with_landmarks: tuple[str, ...] = ()) -> str:
    """A prepared dataset of synthetic onsets (the jaw drops), written as `data prepare` writes
    real ones: sequences are (id, frames, label or None); those in ``with_landmarks`` get a
    landmark track whose lower lip (MOTION_POINTS[1]) drops 0.1 of the crop over the onset."""
    (root / "sequences").mkdir(parents=True)
    entries = []
    for number, (name, frames, label) in enumerate(sequences):
        identity = Identity.from_seed(number)
        with VideoWriter(root / "sequences" / f"{name}.mkv", SIZE) as writer:
            for t in np.linspace(0.0, 1.0, frames):
                writer.write(render(identity, Expression(jaw_drop=float(t)), None, SIZE))
        entry = {
            "id": name, "source": name, "video": f"sequences/{name}.mkv", "subject": None, "label": label, "fps": 30.0,
            "frames": frames, "kept": frames, "kept_indices": list(range(frames)), "signature": "s",
        }
        if name in with_landmarks:
            points = np.full((frames, len(MOTION_POINTS), 2), 0.5, dtype=np.float32)
            points[:, 1, 1] += np.linspace(0.0, 0.1, frames, dtype=np.float32)
            np.save(root / "sequences" / f"{name}.landmarks.npy", points)
            entry["landmarks"] = f"sequences/{name}.landmarks.npy"
        entries.append(entry)
    manifest = {
        "format": "rt-dtgan prepared faces", "version": 1, "size": SIZE, "layout": "folder",
        "preprocess": dataclasses.asdict(PreprocessConfig(size=SIZE)), "sequences": entries, "skipped": [],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return str(root)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    return write_prepared(root, [("a", 12, "surprise"), ("b", 80, None), ("c", 9, "happiness")], with_landmarks=("b",))


def test_batches_are_windows_with_labels_and_no_controls(prepared):
    config = PreparedDataConfig(root=prepared, batch_size=6, min_length=4, max_length=6)
    batch = prepared_batch(config, step=3)
    assert config.size == SIZE
    batch_size, length = batch.video.shape[:2]
    assert batch.video.shape == (6, length, 3, SIZE, SIZE) and 4 <= length <= 6
    assert batch.video.min() >= -1 and batch.video.max() <= 1
    assert batch.expressions.isnan().all()
    for labels, index in zip(batch.frame_labels, batch.identity_seeds):
        label = config.sequences()[index]["label"]
        if label is None:
            assert (labels == -100).all()
        else:
            assert labels[0] == 0 and labels[-1] == EXPRESSION_CLASSES.index(label)
    again = prepared_batch(config, step=3)
    assert torch.equal(batch.video, again.video) and not torch.equal(batch.video, prepared_batch(config, step=4).video)


def test_encoder_pretraining_reads_sequences_with_a_target_and_skips_missing_ones(prepared, tmp_path):
    config = PreparedDataConfig(root=prepared, batch_size=4, min_length=4, max_length=5, encoder_targets_only=True)
    assert {entry["id"] for entry in config.sequences()} == {"a", "b", "c"}
    bare = write_prepared(tmp_path / "bare", [("a", 12, "surprise"), ("u", 5, None)])
    assert [entry["id"] for entry in PreparedDataConfig(root=bare, encoder_targets_only=True).sequences()] == ["a"]
    objective = EncoderObjective(DynamicsTransferGAN(ModelConfig.for_size(SIZE)), EncoderTrainingConfig(), 1)
    losses = objective.step(prepared_batch(config, step=0))
    assert np.isfinite(losses["loss"]) and losses["control_mse"] == 0.0
    assert all(p.isfinite().all() for p in objective.model.encoder.parameters())
    nothing = write_prepared(tmp_path / "nothing", [("u", 5, None)])
    with pytest.raises(ValueError, match="no sequences with an expression label or landmarks"):
        PreparedDataConfig(root=nothing, encoder_targets_only=True)


def test_landmark_motion_runs_from_the_windows_first_frame_in_eye_distances(prepared):
    config = PreparedDataConfig(root=prepared, batch_size=6, min_length=5, max_length=5, augment=False)
    batch = prepared_batch(config, step=1)
    eye_distance = 0.65 - 0.35  # PreprocessConfig's eye positions across the crop
    for motion, index in zip(batch.landmark_motion, batch.identity_seeds):
        if config.sequences()[index]["id"] != "b":
            assert motion.isnan().all()
            continue
        assert (motion[0] == 0).all() and (motion[:, [0, *range(2, len(MOTION_POINTS))]] == 0).all()
        lower_lip_drop = motion[:, 1, 1]
        assert (lower_lip_drop.diff() > 0).all() and lower_lip_drop[-1] <= 0.1 / eye_distance + 1e-6
    assert any(config.sequences()[i]["id"] == "b" for i in batch.identity_seeds)


def test_the_landmark_target_teaches_a_to_read_unlabelled_video(tmp_path):
    torch.manual_seed(0)
    unlabelled = write_prepared(tmp_path / "unlabelled", [("b", 40, None)], with_landmarks=("b",))
    config = PreparedDataConfig(root=unlabelled, batch_size=4, min_length=5, max_length=5, encoder_targets_only=True)
    batch = prepared_batch(config, step=2)
    objective = EncoderObjective(DynamicsTransferGAN(ModelConfig.for_size(SIZE)), EncoderTrainingConfig(learning_rate=3e-3), 1)
    history = [objective.step(batch) for _ in range(30)]
    assert all(losses["label_ce"] == 0 and np.isfinite(losses["loss"]) for losses in history)
    assert history[0]["landmark_mse"] > 0 and history[-1]["landmark_mse"] < 0.5 * history[0]["landmark_mse"]


def test_gan_trains_on_a_prepared_dataset(prepared, tmp_path):
    """F and G learn from the prepared videos; the encoder they read stays frozen."""
    from rt_dtgan.models import INFERENCE_PARTS
    from rt_dtgan.models.checkpoint import load_checkpoint, save_checkpoint

    start = DynamicsTransferGAN(ModelConfig.for_size(SIZE))
    # The encoder to train on, and F and G to start from, so that their starting weights are known.
    start_checkpoint = save_checkpoint(tmp_path / "start.safetensors", start, parts=INFERENCE_PARTS)
    data = PreparedDataConfig(root=prepared, batch_size=2, min_length=4, max_length=5)
    run = RunConfig(steps=2, log_every=1, image_every=1000, checkpoint_every=2, loader_workers=0, data=data)
    config = GanTrainingConfig(run=run)
    checkpoint = train_gan(config, tmp_path / "gan", start_checkpoint, progress=False, init_checkpoint=start_checkpoint)
    assert json.loads((tmp_path / "gan" / "config.json").read_text())["gan_training"]["run"]["data"]["root"] == prepared
    trained = load_checkpoint(checkpoint)
    encoder_before, encoder_after = start.encoder.state_dict(), trained.encoder.state_dict()
    assert all(torch.equal(encoder_before[name], encoder_after[name]) for name in encoder_before), "the frozen encoder changed"
    # Parameters, not state_dict(): BatchNorm's running statistics change on every training-mode
    # pass, so they would show a change with every weight frozen.
    for part in ("embedder", "generator"):
        before, after = dict(getattr(start, part).named_parameters()), dict(getattr(trained, part).named_parameters())
        still = [name for name in before if torch.equal(before[name], after[name])]
        assert not still, f"the {part} did not learn: {len(still)} of {len(before)} parameters unchanged ({still[:3]}...)"
