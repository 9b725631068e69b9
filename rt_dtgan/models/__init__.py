"""Pure torch modules of the Dynamics Transfer GAN (this package imports only torch and the config)."""

from rt_dtgan.models.discriminators import DynamicsDiscriminator, SpatialDiscriminator
from rt_dtgan.models.dtgan import INFERENCE_PARTS, PARTS, DynamicsTransferGAN
from rt_dtgan.models.embedder import DynamicsEmbedder, KeypointEmbedder
from rt_dtgan.models.encoder import DynamicsEncoder, LSTMState
from rt_dtgan.models.frames import FrameFold
from rt_dtgan.models.generator import UNetGenerator
from rt_dtgan.models.warp import KeypointWarp, WarpGenerator

__all__ = [
    "INFERENCE_PARTS",
    "PARTS",
    "DynamicsDiscriminator",
    "DynamicsEmbedder",
    "DynamicsEncoder",
    "DynamicsTransferGAN",
    "FrameFold",
    "KeypointEmbedder",
    "KeypointWarp",
    "WarpGenerator",
    "LSTMState",
    "SpatialDiscriminator",
    "UNetGenerator",
]
