"""Shared fixtures: small models whose dynamics are large enough for tolerances to mean something."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from rt_dtgan.config import ModelConfig
from rt_dtgan.models import DynamicsTransferGAN


def make_lively_model(size: int = 64, seed: int = 0, stream_window: int | None = None) -> DynamicsTransferGAN:
    """A freshly initialised model in eval mode whose encoder reacts strongly to its input.

    At default initialisation, random frames give z_d of about 1e-3, too little for a
    tolerance to test anything; larger gains on the encoder's projection and LSTM input, and
    on G's embedding stem, give z_d of order 0.1 to 1 and outputs that move with it, as a
    trained model does, while keeping the LSTM stable.
    """
    torch.manual_seed(seed)
    config = ModelConfig.for_size(size)
    if stream_window is not None:
        config = dataclasses.replace(config, stream_window=stream_window)
    model = DynamicsTransferGAN(config)
    with torch.no_grad():
        model.encoder.project[1].weight.mul_(10.0)
        nn.init.normal_(model.encoder.lstm.weight_ih_l0, std=0.3)
        model.generator.embedding_stem.weight.mul_(10.0)
    return model.eval()


def random_video(batch: int, length: int, size: int, seed: int = 0) -> torch.Tensor:
    """(batch, length, 3, size, size) uniform in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, length, 3, size, size, generator=generator) * 2 - 1


@pytest.fixture(scope="session")
def lively_model() -> DynamicsTransferGAN:
    return make_lively_model()
