"""The five parts of the Dynamics Transfer GAN, built from one ModelConfig."""

from __future__ import annotations

from torch import Tensor, nn

from rt_dtgan.config import ModelConfig
from rt_dtgan.models.discriminators import DynamicsDiscriminator, SpatialDiscriminator
from rt_dtgan.models.embedder import DynamicsEmbedder, KeypointEmbedder
from rt_dtgan.models.encoder import DynamicsEncoder
from rt_dtgan.models.generator import UNetGenerator
from rt_dtgan.models.warp import WarpGenerator

PARTS = ("encoder", "embedder", "generator", "spatial_discriminator", "dynamics_discriminator")
INFERENCE_PARTS = ("encoder", "embedder", "generator")


class DynamicsTransferGAN(nn.Module):
    """A (encoder), F (embedder), G (generator), Ds and Dd. ``freeze_encoder`` fixes A: its
    parameters take no gradient and it stays in eval mode, while gradients still flow
    through it to whatever produced its input."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        hidden_dim = config.encoder.hidden_dim
        self.encoder = DynamicsEncoder(config.encoder, config.image_size)
        if config.warps:
            self.generator = WarpGenerator(config.generator, config.preprocess)
            self.embedder = KeypointEmbedder(config.embedder, hidden_dim, self.generator.keypoints)
        else:
            self.embedder = DynamicsEmbedder(config.embedder, hidden_dim, config.image_size)
            self.generator = UNetGenerator(config.generator, config.embedder.out_channels)
        self.spatial_discriminator = SpatialDiscriminator(config.spatial_discriminator)
        self.dynamics_discriminator = DynamicsDiscriminator(config.dynamics_discriminator, hidden_dim)
        self.encoder_frozen = False

    def freeze_encoder(self) -> None:
        self.encoder_frozen = True
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> DynamicsTransferGAN:
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def generate(self, target: Tensor, z_d: Tensor, target_mesh: Tensor | None = None) -> Tensor:
        """target (B, 3, S, S) in [-1, 1], z_d (B, hidden_dim) -> frames (B, 3, S, S) in [-1, 1].
        A warping G also needs the target's own eye-aligned mesh (B, MESH_POINTS, 2)."""
        if not self.config.warps:
            return self.generator(target, self.embedder(z_d))
        if target_mesh is None:
            raise ValueError("a warping generator needs the target's face mesh")
        return self.generator(target, target_mesh, self.embedder(z_d))

    def generate_video(self, target: Tensor, z_d: Tensor, target_mesh: Tensor | None = None) -> Tensor:
        """target (B, 3, S, S), z_d (B, T, hidden_dim) -> video (B, T, 3, S, S) in [-1, 1]."""
        batch, length = z_d.shape[:2]
        targets = target.unsqueeze(1).expand(-1, length, -1, -1, -1).flatten(0, 1)
        meshes = None if target_mesh is None else target_mesh.unsqueeze(1).expand(-1, length, -1, -1).flatten(0, 1)
        return self.generate(targets, z_d.flatten(0, 1), meshes).unflatten(0, (batch, length))
