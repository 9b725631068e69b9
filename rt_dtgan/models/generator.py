"""G, the U-Net generator (pix2pix style) on concat(x, F(z_d))."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rt_dtgan.config import GeneratorConfig, ModelConfig
from rt_dtgan.models.embedder import DynamicsEmbedder


def down_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """4x4 stride-2 convolution, batch norm, LeakyReLU: halves the side."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    )


def up_stage(in_channels: int, out_channels: int, dropout: float) -> nn.Sequential:
    """4x4 stride-2 transposed convolution, batch norm, ReLU, optional dropout: doubles the side."""
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def through_unet(stem_output: Tensor, down: nn.ModuleList, up: nn.ModuleList) -> Tensor:
    """A U-Net's levels after its stem: ``down`` stages, then ``up`` stages innermost first,
    each output joined with the skip of its level -> the features its head reads."""
    skips = [stem_output]
    for stage in down:
        skips.append(stage(skips[-1]))
    features = skips.pop()
    for stage in reversed(up):
        features = torch.cat([stage(features), skips.pop()], dim=1)
    return features


class UNetGenerator(nn.Module):
    """(x (B, 3, S, S), f (B, E, S, S)), both in [-1, 1] -> frame (B, 3, S, S) in [-1, 1].

    The first convolution of concat(x, f) is split into ``target_stem(x) + embedding_stem(f)``
    (the same linear map), so a stream can compute ``target_stem(x)`` once per target and
    call ``from_target_response``.
    """

    def __init__(self, config: GeneratorConfig, embed_channels: int) -> None:
        super().__init__()
        self.config = config
        widths = config.channels
        depth = len(widths)
        self.target_stem = nn.Conv2d(3, widths[0], 4, stride=2, padding=1)
        self.embedding_stem = nn.Conv2d(embed_channels, widths[0], 4, stride=2, padding=1, bias=False)
        self.stem_activation = nn.LeakyReLU(0.2)
        self.down = nn.ModuleList(down_stage(widths[i - 1], widths[i]) for i in range(1, depth))
        self.up = nn.ModuleList(
            up_stage(
                widths[i] if i == depth - 1 else 2 * widths[i],
                widths[i - 1],
                config.dropout if i >= depth - config.dropout_layers else 0.0,
            )
            for i in range(1, depth)
        )
        self.head = nn.ConvTranspose2d(2 * widths[0] if depth > 1 else widths[0], 3, 4, stride=2, padding=1)

    def forward(self, target: Tensor, embedding: Tensor) -> Tensor:
        return self.from_target_response(target, self.target_stem(target), embedding)

    def from_target_response(self, target: Tensor, target_response: Tensor, embedding: Tensor) -> Tensor:
        """As ``forward``, with ``target_response = target_stem(target)`` precomputed."""
        features = through_unet(self.stem_activation(target_response + self.embedding_stem(embedding)), self.down, self.up)
        change = self.head(features)
        if self.config.residual:
            return (target + change).clamp(-1.0, 1.0)
        return torch.tanh(change)


def embedder_and_generator(config: ModelConfig) -> tuple[DynamicsEmbedder, UNetGenerator]:
    """F and G of kind "unet": maps of the crop size from z_d, and the U-Net that reads them."""
    embedder = DynamicsEmbedder(config.embedder, config.encoder.hidden_dim, config.image_size)
    return embedder, UNetGenerator(config.generator, config.embedder.out_channels)
