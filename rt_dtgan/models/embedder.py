"""F, the dynamics embedder: z_d(t) -> feature channel(s) the size of the crop."""

from __future__ import annotations

from torch import Tensor, nn

from rt_dtgan.config import EmbedderConfig


class DynamicsEmbedder(nn.Module):
    """z_d (B, hidden_dim) -> maps (B, out_channels, S, S) in [-1, 1].

    Linear to a seed_side x seed_side grid, then transposed convolutions doubling the side
    up to S. Dropout on z_d and on the grid is the embedder's noise (paper, section 3.2).
    """

    def __init__(self, config: EmbedderConfig, hidden_dim: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        seed_size = config.seed_channels * config.seed_side**2
        self.to_grid = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(hidden_dim, seed_size),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(config.dropout),
        )
        stages = []
        channels, side = config.seed_channels, config.seed_side
        while side < image_size:
            out = max(channels // 2, 4)
            stages += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            channels, side = out, side * 2
        stages += [nn.Conv2d(channels, config.out_channels, 3, padding=1), nn.Tanh()]
        self.upsample = nn.Sequential(*stages)

    def forward(self, z_d: Tensor) -> Tensor:
        grid = self.to_grid(z_d).unflatten(1, (self.config.seed_channels, self.config.seed_side, self.config.seed_side))
        return self.upsample(grid)
