"""Shapes and ranges of the five parts, the split first convolution, dropout as noise, the
frozen encoder that still passes gradient to the generator, and every registered kind of G."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import make_lively_model, random_video
from torch import nn

from rt_dtgan.config import GENERATOR_KINDS, ModelConfig
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.models.dynamics import dynamics_offline
from rt_dtgan.runtime.graphs import graph_specs


@pytest.mark.parametrize("size", [64, 128, 256])
def test_parts_have_the_documented_shapes(size):
    config = ModelConfig.for_size(size)
    model = DynamicsTransferGAN(config).eval()
    hidden = config.encoder.hidden_dim
    target = torch.rand(2, 3, size, size) * 2 - 1
    z_d = torch.randn(2, hidden)
    with torch.inference_mode():
        embedding = model.embedder(z_d)
        frames = model.generate(target, z_d)
        patches = model.spatial_discriminator(frames)
        features = model.encoder.frame_features(frames)
    assert embedding.shape == (2, config.embedder.out_channels, size, size)
    assert frames.shape == (2, 3, size, size)
    assert frames.min() >= -1 and frames.max() <= 1
    assert patches.shape == (2, 1, size >> len(config.spatial_discriminator.channels), size >> len(config.spatial_discriminator.channels))
    assert features.shape == (2, config.encoder.feature_dim)


def test_dynamics_discriminator_input_does_not_depend_on_length(lively_model):
    scores = []
    for length in (2, 9, 40):
        with torch.inference_mode():
            z_d = dynamics_offline(lively_model.encoder, random_video(2, length, 64, seed=length))
            final = z_d[:, -1]
            assert final.shape == (2, lively_model.config.encoder.hidden_dim)
            scores.append(lively_model.dynamics_discriminator(final))
    assert all(score.shape == (2, 1) for score in scores)


def test_split_first_convolution_equals_convolution_of_the_concatenation(lively_model):
    generator = lively_model.generator
    target, embedding = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 1, 64, 64) * 2 - 1
    joint = nn.Conv2d(4, generator.target_stem.out_channels, 4, stride=2, padding=1)
    with torch.no_grad():
        joint.weight.copy_(torch.cat([generator.target_stem.weight, generator.embedding_stem.weight], dim=1))
        joint.bias.copy_(generator.target_stem.bias)
        split = generator.target_stem(target) + generator.embedding_stem(embedding)
        assert (split - joint(torch.cat([target, embedding], dim=1))).abs().max() < 1e-5
        reused = generator.from_target_response(target, generator.target_stem(target), embedding)
        assert torch.equal(reused, generator(target, embedding))


def test_dropout_is_the_noise_in_training_and_off_in_eval():
    model = make_lively_model(seed=1)
    target, z_d = torch.rand(1, 3, 64, 64) * 2 - 1, torch.randn(1, model.config.encoder.hidden_dim)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model.generate(target, z_d), model.generate(target, z_d))
        model.eval()
        assert torch.equal(model.generate(target, z_d), model.generate(target, z_d))


def test_frozen_encoder_never_changes_but_passes_gradient_to_the_generator():
    model = make_lively_model(seed=2)
    model.freeze_encoder()
    model.train()
    assert not model.encoder.training, "train() must keep the frozen encoder in eval mode"
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    generator_before = {k: v.clone() for k, v in model.generator.named_parameters()}
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)

    source = random_video(2, 6, 64, seed=3)
    target = source[:, 0]
    z_real = dynamics_offline(model.encoder, source)
    generated = model.generate_video(target, z_real)
    z_generated = dynamics_offline(model.encoder, generated)
    dynamics_l1 = F.l1_loss(z_generated[:, 1:], z_real[:, 1:])
    dynamics_l1.backward()

    assert all(p.grad is None for p in model.encoder.parameters())
    generator_grad = sum(p.grad.abs().sum() for p in model.generator.parameters() if p.grad is not None)
    assert generator_grad > 0
    optimiser.step()
    assert all(torch.equal(v, encoder_before[k]) for k, v in model.encoder.state_dict().items())
    assert any(not torch.equal(p, generator_before[k]) for k, p in model.generator.named_parameters())


@pytest.mark.parametrize("kind", GENERATOR_KINDS)
def test_every_generator_kind_builds_from_its_module_and_streams_as_its_contract_says(kind):
    preset = ModelConfig.for_size(64)
    config = dataclasses.replace(preset, generator=dataclasses.replace(preset.generator, kind=kind))
    model = DynamicsTransferGAN(config)
    contract, specs = config.generator_contract, graph_specs(config)
    assert type(model.generator).__module__ == GENERATOR_KINDS[kind].module
    assert next(iter(specs["step"].outputs)) == contract.step_output
    assert ("target" in specs) == contract.draws and ("refine" in specs) == (not contract.draws)
