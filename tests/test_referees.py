"""What `rt-dtgan eval` scores a model with: the judge and the ablation, shipped and chosen."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import make_lively_geometry_model

from rt_dtgan.commands.train import referee_paths
from rt_dtgan.config import ModelConfig
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.models.checkpoint import SHIPPED_ABLATIONS, SHIPPED_JUDGE, load_checkpoint
from rt_dtgan.models.dynamics import windowed_offline
from rt_dtgan.train.evaluate import check_referees
from rt_dtgan.train.geometry import SETTLED_FROM, streamed_offsets


def test_eval_takes_the_shipped_judge_and_the_default_models_ablation_unless_told_otherwise():
    judge, ablation = str(SHIPPED_JUDGE), str(SHIPPED_ABLATIONS["geometry"])
    assert referee_paths(None, None, None) == (judge, ablation)
    assert referee_paths("geometry", None, None) == (judge, ablation)
    assert referee_paths("paper", None, None) == (judge, None), "no ablation of the paper model is shipped"
    assert referee_paths("runs/mine.safetensors", None, None) == (judge, None), "a model of one's own has no shipped ablation"
    assert referee_paths(None, "none", "none") == (None, None)
    assert referee_paths(None, "j.safetensors", "a.safetensors") == ("j.safetensors", "a.safetensors")


def test_the_shipped_referees_fit_the_shipped_default_model():
    model = load_checkpoint(SHIPPED_ABLATIONS["geometry"].with_name("geometry-128.safetensors"))
    judge = load_checkpoint(SHIPPED_JUDGE, required_parts=["encoder"])
    ablation = load_checkpoint(SHIPPED_ABLATIONS["geometry"])
    check_referees(model, judge, ablation)
    assert not ablation.config.appearance_suppression and model.config.appearance_suppression
    for path in (SHIPPED_JUDGE, SHIPPED_ABLATIONS["geometry"]):
        assert path.stat().st_size < 4 * 2**20, f"{path.name} must stay small"


def test_a_judge_or_an_ablation_that_cannot_score_the_model_is_refused():
    model = make_lively_geometry_model()
    with pytest.raises(ValueError, match="trained with --no-suppression"):
        check_referees(model, None, make_lively_geometry_model())
    pixels_ablation = DynamicsTransferGAN(dataclasses.replace(ModelConfig.for_size(64), appearance_suppression=False))
    with pytest.raises(ValueError, match="another kind of model"):
        check_referees(model, None, pixels_ablation)
    with pytest.raises(ValueError, match="must read 64 px crops"):
        check_referees(model, DynamicsTransferGAN(ModelConfig.for_size(128)), None)
    with pytest.raises(ValueError, match="must read 64 px crops"):
        check_referees(model, make_lively_geometry_model(), None)


def test_the_geometry_ablation_validates_on_h_where_the_model_validates_on_z_d():
    """streamed_offsets (training's validation) gives F(z_d) for the model and F(H) =
    F(z_d + H_st) for its ablation, H_st being A over the anchor and a window of it."""
    window = 4
    model = make_lively_geometry_model(window=window)
    ablation = DynamicsTransferGAN(dataclasses.replace(model.config, appearance_suppression=False)).eval()
    ablation.load_state_dict(model.state_dict())
    rng = np.random.default_rng(3)
    meshes = (rng.uniform(-1, 1, size=(1, 468, 2)) + 0.05 * rng.standard_normal((12, 468, 2))).astype(np.float32)
    video = torch.from_numpy(meshes[SETTLED_FROM:]).unsqueeze(0)
    with torch.no_grad():
        z_d = windowed_offline(model.encoder, video, window)[0]
        static = model.encoder(video[:, :1].expand(1, window + 1, -1, -1))[0, -1]
        expected_model, expected_ablation = (model.embedder(dynamics).numpy() for dynamics in (z_d, z_d + static))
    np.testing.assert_allclose(streamed_offsets(model, meshes), expected_model, atol=1e-5)
    np.testing.assert_allclose(streamed_offsets(ablation, meshes), expected_ablation, atol=1e-5)
    assert np.abs(expected_ablation - expected_model).max() > 0.01, "H and z_d must differ for the test to mean anything"


@pytest.mark.heavy
def test_eval_gives_expression_accuracy_and_the_ablation_win_rate_from_a_clean_checkout(tmp_path):
    from rt_dtgan.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval", "--synthetic", "--identities", "2", "--length", "6", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    for name in ("expression_accuracy", "judge_accuracy_on_ground_truth", "ablation_win_rate"):
        assert 0.0 <= figures[name] <= 1.0, name
    assert figures["judge"] == f"shipped {SHIPPED_JUDGE.name}"
    assert figures["ablation"] == f"shipped {SHIPPED_ABLATIONS['geometry'].name}"


def test_eval_refuses_an_ablation_trained_with_suppression_in_one_line(capsys):
    from rt_dtgan.cli import main
    from rt_dtgan.models.checkpoint import SHIPPED_MODELS

    argv = ["eval", "--synthetic", "--identities", "1", "--length", "2", "--ablation", str(SHIPPED_MODELS["geometry"])]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "trained with --no-suppression" in error and len(error.splitlines()) == 1
