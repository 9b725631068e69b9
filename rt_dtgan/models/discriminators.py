"""Ds judges single frames; Dd judges the dynamics z_d(T) of a whole sequence."""

from __future__ import annotations

from torch import Tensor, nn

from rt_dtgan.config import DynamicsDiscriminatorConfig, SpatialDiscriminatorConfig


class SpatialDiscriminator(nn.Module):
    """frames (N, 3, S, S) in [-1, 1] -> patch logits (N, 1, S / 2^L, S / 2^L); L = len(channels)."""

    def __init__(self, config: SpatialDiscriminatorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for out_channels in config.channels:
            layers += [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            in_channels = out_channels
        layers.append(nn.Conv2d(in_channels, 1, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, frames: Tensor) -> Tensor:
        return self.layers(frames)


class DynamicsDiscriminator(nn.Module):
    """z_d(T) (B, hidden_dim) -> logit (B, 1). Its input size does not depend on T."""

    def __init__(self, config: DynamicsDiscriminatorConfig, hidden_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_features = hidden_dim
        for width in config.hidden:
            layers += [nn.Linear(in_features, width), nn.LeakyReLU(0.2, inplace=True)]
            in_features = width
        layers.append(nn.Linear(in_features, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, final_dynamics: Tensor) -> Tensor:
        return self.layers(final_dynamics)
