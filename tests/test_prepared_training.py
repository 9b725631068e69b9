"""Training on a prepared dataset of real videos: batches, labels, the encoder and GAN steps."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from rt_dtgan.config import EXPRESSION_CLASSES, ModelConfig, PreprocessConfig
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.synth import Expression, Identity, render
from rt_dtgan.synth.dataset import VideoWriter
from rt_dtgan.train.config import EncoderTrainingConfig, GanTrainingConfig, RunConfig
from rt_dtgan.train.objectives import EncoderObjective
from rt_dtgan.train.prepared import PreparedDataConfig, prepared_batch
from rt_dtgan.train.run import train_gan

SIZE = 64


def write_prepared(root, sequences: list[tuple[str, int, str | None]]) -> str:
    """A prepared dataset of synthetic onsets, written as `data prepare` writes real ones:
    sequences are (id, frames, label or None)."""
    (root / "sequences").mkdir(parents=True)
    entries = []
    for number, (name, frames, label) in enumerate(sequences):
        identity = Identity.from_seed(number)
        with VideoWriter(root / "sequences" / f"{name}.mkv", SIZE) as writer:
            for t in np.linspace(0.0, 1.0, frames):
                writer.write(render(identity, Expression(jaw_drop=float(t)), None, SIZE))
        entries.append({
            "id": name, "source": name, "video": f"sequences/{name}.mkv", "subject": None, "label": label, "fps": 30.0,
            "frames": frames, "kept": frames, "kept_indices": list(range(frames)), "signature": "s",
        })
    manifest = {
        "format": "rt-dtgan prepared faces", "version": 1, "size": SIZE, "layout": "folder",
        "preprocess": dataclasses.asdict(PreprocessConfig(size=SIZE)), "sequences": entries, "skipped": [],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return str(root)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    return write_prepared(root, [("a", 12, "surprise"), ("b", 80, None), ("c", 9, "happiness")])


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


def test_encoder_pretraining_reads_only_labelled_sequences_and_skips_missing_controls(prepared, tmp_path):
    config = PreparedDataConfig(root=prepared, batch_size=4, min_length=4, max_length=5, labelled_only=True)
    assert {entry["id"] for entry in config.sequences()} == {"a", "c"}
    batch = prepared_batch(config, step=0)
    assert (batch.frame_labels >= 0).all()
    objective = EncoderObjective(DynamicsTransferGAN(ModelConfig.for_size(SIZE)), EncoderTrainingConfig(), 1)
    losses = objective.step(batch)
    assert np.isfinite(losses["loss"]) and losses["control_mse"] == 0.0
    assert all(p.isfinite().all() for p in objective.model.encoder.parameters())
    unlabelled = write_prepared(tmp_path / "unlabelled", [("u", 5, None)])
    with pytest.raises(ValueError, match="no labelled sequences"):
        PreparedDataConfig(root=unlabelled, labelled_only=True)


def test_gan_trains_on_a_prepared_dataset(prepared, tmp_path):
    from rt_dtgan.checkpoint import save_checkpoint

    encoder = save_checkpoint(tmp_path / "encoder.safetensors", DynamicsTransferGAN(ModelConfig.for_size(SIZE)), parts=["encoder"])
    data = PreparedDataConfig(root=prepared, batch_size=2, min_length=4, max_length=5)
    run = RunConfig(steps=2, log_every=1, image_every=1000, checkpoint_every=2, loader_workers=0, data=data)
    checkpoint = train_gan(GanTrainingConfig(run=run), tmp_path / "gan", encoder, progress=False)
    assert checkpoint.is_file()
    assert json.loads((tmp_path / "gan" / "config.json").read_text())["gan_training"]["run"]["data"]["root"] == prepared
