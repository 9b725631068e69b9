"""The five parts of the Dynamics Transfer GAN, built from one ModelConfig."""

from __future__ import annotations

from importlib import import_module

from torch import Tensor, nn

from rt_dtgan.config import GENERATOR_KINDS, ModelConfig
from rt_dtgan.models.discriminators import DynamicsDiscriminator, SpatialDiscriminator
from rt_dtgan.models.encoder import DynamicsEncoder
from rt_dtgan.models.frames import FrameFold

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
        self.embedder, self.generator = embedder_and_generator(config)
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
        if self.config.generator_contract.draws:
            return self.generator(target, self.embedder(z_d))
        if target_mesh is None:
            raise ValueError("a warping generator needs the target's face mesh")
        return self.generator(target, target_mesh, self.embedder(z_d))

    def generate_video(self, target: Tensor, z_d: Tensor, target_mesh: Tensor | None = None) -> Tensor:
        """target (B, 3, S, S), z_d (B, T, hidden_dim) -> video (B, T, 3, S, S) in [-1, 1]."""
        fold = FrameFold.of(z_d)
        return fold.unfold(self.generate(fold.held(target), fold.frames(z_d), fold.held(target_mesh)))


def embedder_and_generator(config: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """F and G of the config's generator kind, built by the module its GENERATOR_KINDS entry names."""
    return import_module(GENERATOR_KINDS[config.generator.kind].module).embedder_and_generator(config)
