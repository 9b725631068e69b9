"""Checkpoints rebuild the model bit for bit, and every bad file fails with its own message."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_lively_model, random_video
from safetensors.torch import load_file, save_file

from rt_dtgan.models import PARTS
from rt_dtgan.models.checkpoint import (
    DEFAULT_CHECKPOINT,
    SHIPPED_MODELS,
    CheckpointError,
    load_checkpoint,
    read_config,
    resolve_checkpoint,
    save_checkpoint,
)
from rt_dtgan.models.dynamics import dynamics_offline, dynamics_streamed


def _outputs(model, video):
    with torch.inference_mode():
        z_d = dynamics_streamed(model.encoder, video)
        return z_d, model.generate(video[:, 0], z_d[:, -1])


@pytest.fixture(scope="module")
def model():
    return make_lively_model(seed=3)


@pytest.fixture
def saved(model, tmp_path):
    return save_checkpoint(tmp_path / "model.safetensors", model)


def test_round_trip_is_bit_identical(model, saved):
    video = random_video(1, 8, 64, seed=9)
    loaded = load_checkpoint(saved)
    assert loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(_outputs(model, video), _outputs(loaded, video)))


def test_all_parts_round_trip(model, tmp_path):
    path = save_checkpoint(tmp_path / "all.safetensors", model, parts=PARTS)
    assert read_config(path) == (model.config, list(PARTS))
    loaded = load_checkpoint(path)
    for part in PARTS:
        ours, theirs = getattr(model, part).state_dict(), getattr(loaded, part).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_half_precision_file_loads_as_float32_close_to_the_original(model, tmp_path):
    path = save_checkpoint(tmp_path / "half.safetensors", model, dtype=torch.float16)
    loaded = load_checkpoint(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    video = random_video(1, 8, 64, seed=10)
    for ours, half in zip(_outputs(model, video), _outputs(loaded, video)):
        # float16 keeps 11 significant bits (each weight within 4.9e-4 of itself); through the
        # layers the outputs drift by under 1e-3 of their scale, bfloat16's 8 bits by 4e-3 or more.
        assert (ours - half).abs().max() <= 2e-3 * ours.abs().max()


def test_pickle_is_refused_without_being_opened(model, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"model\.pt: is a pickle"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [3, 200, 0.5, -16])
def test_truncated_file_is_reported(saved, keep):
    data = saved.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    saved.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: .*(truncated|too short)"):
        load_checkpoint(saved)


def test_wrong_shape_names_the_tensor(saved):
    tensors, metadata = load_file(saved), _metadata(saved)
    tensors["generator.head.weight"] = torch.zeros(1, 2, 3)
    save_file(tensors, saved, metadata=metadata)
    with pytest.raises(CheckpointError, match=r"'generator.head.weight' has shape \(1, 2, 3\)"):
        load_checkpoint(saved)


def test_missing_tensor_is_named(saved):
    tensors, metadata = load_file(saved), _metadata(saved)
    del tensors["embedder.to_grid.1.weight"]
    save_file(tensors, saved, metadata=metadata)
    with pytest.raises(CheckpointError, match=r"missing 1 tensor\(s\), first \['embedder.to_grid.1.weight'\]"):
        load_checkpoint(saved)


def test_missing_part_is_reported(model, tmp_path):
    path = save_checkpoint(tmp_path / "encoder.safetensors", model, parts=["encoder"])
    with pytest.raises(CheckpointError, match=r"\['embedder', 'generator'\] are needed"):
        load_checkpoint(path)
    assert load_checkpoint(path, required_parts=["encoder"]).config == model.config


def test_foreign_safetensors_file_is_reported(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an rt-dtgan checkpoint"):
        load_checkpoint(path)


def test_bad_config_in_header_is_reported(saved):
    tensors, metadata = load_file(saved), _metadata(saved)
    config = json.loads(metadata["config"])
    config["preprocess"]["size"] = 100
    metadata["config"] = json.dumps(config)
    save_file(tensors, saved, metadata=metadata)
    with pytest.raises(CheckpointError, match="bad header: .*crop size must be one of"):
        load_checkpoint(saved)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "absent.safetensors")


def _metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()


def test_header_length_that_looks_like_a_pickle_mark_still_loads(model, tmp_path):
    """A safetensors file starts with its header length; a low byte of 0x80 is not a pickle."""
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    padded = length + (0x80 - length) % 256
    header = data[8 : 8 + length] + b" " * (padded - length)
    path.write_bytes(padded.to_bytes(8, "little") + header + data[8 + length :])
    assert path.read_bytes()[0] == 0x80
    assert load_checkpoint(path).config == model.config


def test_the_shipped_paper_model_is_small_float16_and_complete():
    paper = resolve_checkpoint("paper")
    assert paper == SHIPPED_MODELS["paper"] and resolve_checkpoint(None) == DEFAULT_CHECKPOINT == SHIPPED_MODELS["geometry"]
    assert paper.stat().st_size < 25 * 2**20
    tensors = load_file(str(paper)).values()
    # Weights in float16; batch norm's step counters stay integers.
    assert {tensor.dtype for tensor in tensors if tensor.is_floating_point()} == {torch.float16}
    assert {tensor.dtype for tensor in tensors if not tensor.is_floating_point()} <= {torch.int64}
    model = load_checkpoint(paper)
    assert model.config.image_size == 128 and not model.config.reads_mesh
    video = random_video(1, 3, 128)
    with torch.no_grad():
        assert model.generate_video(video[:, 0], dynamics_offline(model.encoder, video)).isfinite().all()
