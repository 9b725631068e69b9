"""F, the dynamics embedder: z_d(t) -> feature channel(s) the size of the crop."""

from __future__ import annotations

import math

from torch import Tensor, nn

from rt_dtgan.config import EmbedderConfig

LEAKY_SLOPE = 0.2


class DynamicsEmbedder(nn.Module):
    """z_d (B, hidden_dim) -> maps (B, out_channels, S, S) in [-1, 1].

    Linear to a seed_side x seed_side grid, then transposed convolutions doubling the side
    up to S. Dropout on z_d and on the grid is the embedder's noise (paper, section 3.2).

    Every layer starts variance-preserving with zero biases (``reset_parameters``): with
    PyTorch's default initialisation the signal of z_d shrinks at each of the stacked layers
    and the biases' constant pattern is all that reaches G (measured on a trained model:
    F(z_d) - F(0) about 0.02 on maps spanning +-0.6), so G learns to ignore the dynamics.
    """

    def __init__(self, config: EmbedderConfig, hidden_dim: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        seed_size = config.seed_channels * config.seed_side**2
        self.to_grid = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(hidden_dim, seed_size),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Dropout(config.dropout),
        )
        stages = []
        channels, side = config.seed_channels, config.seed_side
        while side < image_size:
            out = max(channels // 2, 4)
            stages += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
            channels, side = out, side * 2
        stages += [nn.Conv2d(channels, config.out_channels, 3, padding=1), nn.Tanh()]
        self.upsample = nn.Sequential(*stages)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights N(0, gain^2 / inputs per output value), biases 0; gain sqrt(2 / (1 + 0.2^2))
        before a LeakyReLU, 1 before the tanh. A stride-2, 4x4 transposed convolution sums
        2 x 2 taps per input channel into each output value."""
        leaky_gain = math.sqrt(2.0 / (1.0 + LEAKY_SLOPE**2))
        layers = [self.to_grid[1], *(m for m in self.upsample if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))]
        for layer in layers:
            if isinstance(layer, nn.Linear):
                inputs, gain = layer.in_features, leaky_gain
            elif isinstance(layer, nn.ConvTranspose2d):
                inputs, gain = layer.in_channels * 4, leaky_gain
            else:
                inputs, gain = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1], 1.0
            nn.init.normal_(layer.weight, std=gain / math.sqrt(inputs))
            nn.init.zeros_(layer.bias)

    def forward(self, z_d: Tensor) -> Tensor:
        grid = self.to_grid(z_d).unflatten(1, (self.config.seed_channels, self.config.seed_side, self.config.seed_side))
        return self.upsample(grid)


class KeypointEmbedder(nn.Module):
    """F for a warping G: z_d (B, hidden_dim) -> keypoint offsets (B, keypoints, 2) in eye units.

    A bias-free MLP with LeakyReLU: F(0) = 0 exactly, so z_d = 0 moves nothing. Dropout on
    z_d is its noise. The last layer starts small: a fresh model barely moves the face."""

    def __init__(self, config: EmbedderConfig, hidden_dim: int, keypoints: int) -> None:
        super().__init__()
        widths = (hidden_dim, *config.offset_hidden)
        layers: list[nn.Module] = [nn.Dropout(config.dropout)]
        for inputs, outputs in zip(widths, widths[1:]):
            layers += [nn.Linear(inputs, outputs, bias=False), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        self.layers = nn.Sequential(*layers, nn.Linear(widths[-1], keypoints * 2, bias=False))
        nn.init.normal_(self.layers[-1].weight, std=0.01 / math.sqrt(widths[-1]))
        self.keypoints = keypoints

    def forward(self, z_d: Tensor) -> Tensor:
        return self.layers(z_d).unflatten(1, (self.keypoints, 2))
