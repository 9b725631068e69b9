"""Typed, validated model configuration, saved as JSON beside every checkpoint.

A ``ModelConfig`` holds everything needed to rebuild the networks and to feed them:
the architecture of each part (A, F, G, Ds, Dd) and the preprocessing of a face crop.
``ModelConfig.for_size(S)`` gives the presets for S in {64, 128, 256}.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rt_dtgan.errors import RtDtganError

SUPPORTED_SIZES = (64, 128, 256)
EXPRESSION_CLASSES = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise")
# How synthetic training and test sequences show the head and the sensor (rt_dtgan.train.data).
HEAD_POSES = ("drift", "aligned")
SENSOR_NOISES = ("per-frame", "per-sequence")
# Training sequences. "onset": neutral to apex; "window": the neutral anchor then free-form
# motion, as the live stream's window sees it; "mixed": onsets on even steps, windows on odd.
SEQUENCE_KINDS = ("onset", "window", "mixed")
# What A reads per frame: the aligned crop's pixels (the paper), or the tracker's face mesh
# aligned on the eyes (rt_dtgan.face.geometry), through a small MLP.
ENCODER_INPUTS = ("rgb", "mesh")
# FaceMesh points without the iris refinement.
MESH_POINTS = 468


@dataclass(frozen=True)
class GeneratorContract:
    """What a kind of G asks of a stream and gives per frame. ``draws`` True: G draws the
    crop from the target, G(target, F(z_d)); a ``target`` graph prepares the target once and
    the step graph gives the crop. False: F gives offsets of the target's own keypoints,
    G(target, target_mesh, F(z_d)) moves its pixels; the step graph gives the offsets, the
    runtime warps with them and a ``refine`` graph runs G's refiner. ``step_output`` names
    the step graph's first output."""

    draws: bool
    step_output: str


DRAWS_CROP = GeneratorContract(draws=True, step_output="output")
MOVES_KEYPOINTS = GeneratorContract(draws=False, step_output="offsets")


@dataclass(frozen=True)
class GeneratorKind:
    """A kind of G (``GeneratorConfig.kind``): ``module`` names the module whose
    ``embedder_and_generator(config)`` builds its F and G, ``contract`` what its streams ask and give."""

    module: str
    contract: GeneratorContract


# How G draws: a U-Net redraws the crop (the paper), or F's keypoint offsets move the
# portrait's own pixels through a thin-plate spline (rt_dtgan.models.warp). A new kind is
# its module and its entry here; the model, the graphs and the engine follow the entry.
GENERATOR_KINDS = {
    "unet": GeneratorKind("rt_dtgan.models.generator", DRAWS_CROP),
    "warp": GeneratorKind("rt_dtgan.models.warp", MOVES_KEYPOINTS),
}


class ConfigError(RtDtganError, ValueError):
    """A configuration value is out of range or the JSON does not describe a config."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_dropout(name: str, value: float) -> None:
    _require(0.0 <= value < 1.0, f"{name} must be in [0, 1), got {value}")


def _check_positive(name: str, values: tuple[int, ...]) -> None:
    _require(len(values) > 0 and all(v > 0 for v in values), f"{name} must be positive, got {values}")


# The portrait's head: "follow" turns, nods, tilts and moves it as the driver's head, "lock"
# keeps it still (rt_dtgan.face.head); how far it follows, within these limits.
POSE_MODES = ("follow", "lock")
POSE_STRENGTH_LIMITS = (0.0, 2.0)

# A portrait larger than this on its longer side is brought down to it at load, in pixels
# (the live path's working size: a 48-megapixel photo runs at the rate of a small one).
PORTRAIT_SIZE = 1280


@dataclass(frozen=True)
class PreprocessConfig:
    """How a face crop is made and scaled before it reaches the networks.

    The crop is square, ``size`` pixels, RGB, values ``(pixel / 127.5) - 1`` in [-1, 1].
    It is aligned so that the eye centres land at ``left_eye`` and ``right_eye``, given as
    fractions of the crop side (x, y), as seen in the image (the subject's right eye on the left).
    """

    size: int = 128
    color_order: str = "RGB"
    value_range: tuple[float, float] = (-1.0, 1.0)
    left_eye: tuple[float, float] = (0.35, 0.40)
    right_eye: tuple[float, float] = (0.65, 0.40)

    def __post_init__(self) -> None:
        _require(self.size in SUPPORTED_SIZES, f"crop size must be one of {SUPPORTED_SIZES}, got {self.size}")
        _require(self.color_order == "RGB", f"only RGB crops are supported, got {self.color_order}")
        _require(tuple(self.value_range) == (-1.0, 1.0), f"value range must be (-1, 1), got {self.value_range}")
        for name, (x, y) in (("left_eye", self.left_eye), ("right_eye", self.right_eye)):
            _require(0.0 < x < 1.0 and 0.0 < y < 1.0, f"{name} must lie inside the crop, got {(x, y)}")
        _require(self.left_eye[0] < self.right_eye[0], "left_eye must be left of right_eye")


@dataclass(frozen=True)
class EncoderConfig:
    """A: per frame, with ``input`` "rgb", a strided CNN (``channels`` per stage, each halving
    the side) and a linear projection of the flattened last map to ``feature_dim``; with
    ``input`` "mesh", an MLP (``mesh_hidden`` widths) from the eye-aligned face mesh
    (MESH_POINTS x 2) to ``feature_dim``. Then a one-layer LSTM with ``hidden_dim`` units.
    ``num_classes`` sizes the expression-recognition head (on H) and ``num_controls`` the
    expression-control readout (on z_d), both used only to pretrain A."""

    channels: tuple[int, ...] = (16, 32, 64, 96, 128)
    feature_dim: int = 128
    hidden_dim: int = 128
    num_classes: int = len(EXPRESSION_CLASSES)
    num_controls: int = 12
    input: str = "rgb"
    mesh_hidden: tuple[int, ...] = (256,)

    def __post_init__(self) -> None:
        _require(self.input in ENCODER_INPUTS, f"encoder.input must be one of {ENCODER_INPUTS}, got {self.input!r}")
        _check_positive("encoder.mesh_hidden", tuple(self.mesh_hidden))
        _check_positive("encoder.channels", tuple(self.channels))
        _check_positive("encoder dims", (self.feature_dim, self.hidden_dim, self.num_classes, self.num_controls))


@dataclass(frozen=True)
class EmbedderConfig:
    """F: z_d (hidden_dim) -> ``out_channels`` maps of the crop size. A linear layer makes a
    ``seed_side`` x ``seed_side`` grid of ``seed_channels``; transposed convolutions double
    it up to the crop size. Dropout on the input and after the linear layer is F's noise.
    For a "warp" generator F is instead a bias-free MLP (``offset_hidden`` widths) from z_d
    to the keypoint offsets, so that z_d = 0 gives no motion exactly."""

    seed_channels: int = 32
    seed_side: int = 8
    out_channels: int = 1
    dropout: float = 0.1
    offset_hidden: tuple[int, ...] = (256,)

    def __post_init__(self) -> None:
        _check_positive("embedder.offset_hidden", tuple(self.offset_hidden))
        _check_positive("embedder dims", (self.seed_channels, self.seed_side, self.out_channels))
        _require(self.seed_side & (self.seed_side - 1) == 0, f"seed_side must be a power of two, got {self.seed_side}")
        _check_dropout("embedder.dropout", self.dropout)


@dataclass(frozen=True)
class GeneratorConfig:
    """G. ``kind`` "unet": a pix2pix-style U-Net. ``channels`` per encoder level (each halves
    the side); the decoder mirrors it with skip connections. Dropout in the
    ``dropout_layers`` innermost decoder levels is G's noise. With ``residual`` the output
    is the target plus a predicted change, clipped to [-1, 1].

    ``kind`` "warp": F gives offsets of the portrait's keypoints (rt_dtgan.models.warp),
    a thin-plate spline through them, sampled on a ``flow_grid`` x ``flow_grid`` grid and
    upsampled, moves the portrait's own pixels; a U-Net of ``channels`` per level (no
    dropout) gives a mask and the colours to blend in where the warp cannot show what is new."""

    kind: str = "unet"
    channels: tuple[int, ...] = (16, 32, 64, 128, 192)
    dropout: float = 0.5
    dropout_layers: int = 2
    residual: bool = True
    flow_grid: int = 64

    def __post_init__(self) -> None:
        _require(self.kind in GENERATOR_KINDS, f"generator.kind must be one of {tuple(GENERATOR_KINDS)}, got {self.kind!r}")
        _require(8 <= self.flow_grid <= 256, f"generator.flow_grid must be in [8, 256], got {self.flow_grid}")
        _check_positive("generator.channels", tuple(self.channels))
        _check_dropout("generator.dropout", self.dropout)
        _require(0 <= self.dropout_layers <= len(self.channels), "generator.dropout_layers exceeds the depth")


@dataclass(frozen=True)
class SpatialDiscriminatorConfig:
    """Ds: a PatchGAN conv stack on single frames; ``channels`` per strided level."""

    channels: tuple[int, ...] = (32, 64, 128, 256)

    def __post_init__(self) -> None:
        _check_positive("spatial_discriminator.channels", tuple(self.channels))


@dataclass(frozen=True)
class DynamicsDiscriminatorConfig:
    """Dd: an MLP on z_d(T), whose size does not depend on T."""

    hidden: tuple[int, ...] = (256, 128)

    def __post_init__(self) -> None:
        _check_positive("dynamics_discriminator.hidden", tuple(self.hidden))


@dataclass(frozen=True)
class ModelConfig:
    """The whole Dynamics Transfer GAN: five parts and the crop they expect.

    ``appearance_suppression`` True is the paper's z_d = H - H_st; False feeds G with
    H alone, the ablation of the paper's experiment 3. ``stream_window`` W > 0 makes
    streams replay only the anchor and the last W frames (stable over hours, see
    dynamics.py); 0 keeps the whole history, exactly as offline."""

    appearance_suppression: bool = True
    stream_window: int = 16
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    spatial_discriminator: SpatialDiscriminatorConfig = field(default_factory=SpatialDiscriminatorConfig)
    dynamics_discriminator: DynamicsDiscriminatorConfig = field(default_factory=DynamicsDiscriminatorConfig)

    def __post_init__(self) -> None:
        size = self.preprocess.size
        _require(0 <= self.stream_window <= 120, f"stream_window must be in [0, 120], got {self.stream_window}")
        _require(
            self.encoder.input != "rgb" or size >> len(self.encoder.channels) >= 1,
            f"encoder depth {len(self.encoder.channels)} is too deep for {size} px",
        )
        _require(self.embedder.seed_side <= size, f"embedder.seed_side exceeds the crop size {size}")
        _require(
            size >> len(self.generator.channels) >= 1,
            f"generator depth {len(self.generator.channels)} is too deep for {size} px",
        )
        _require(
            size >> len(self.spatial_discriminator.channels) >= 2,
            f"spatial discriminator depth is too deep for {size} px",
        )

    @property
    def image_size(self) -> int:
        return self.preprocess.size

    @classmethod
    def for_size(cls, size: int) -> ModelConfig:
        """The preset for a crop of ``size`` pixels (64 for tests, 128 default, 256 for GPUs)."""
        _require(size in SUPPORTED_SIZES, f"size must be one of {SUPPORTED_SIZES}, got {size}")
        presets = {
            64: dict(
                encoder=EncoderConfig(channels=(16, 32, 64, 96), feature_dim=64, hidden_dim=64),
                embedder=EmbedderConfig(seed_channels=16, seed_side=8),
                generator=GeneratorConfig(channels=(16, 32, 64, 96), dropout_layers=1),
                spatial_discriminator=SpatialDiscriminatorConfig(channels=(32, 64, 128)),
            ),
            128: {},
            256: dict(
                encoder=EncoderConfig(channels=(16, 32, 64, 96, 128, 160)),
                generator=GeneratorConfig(channels=(16, 32, 64, 128, 192, 256), dropout_layers=3),
                spatial_discriminator=SpatialDiscriminatorConfig(channels=(32, 64, 128, 256, 256)),
            ),
        }
        return cls(preprocess=PreprocessConfig(size=size), **presets[size])

    @classmethod
    def geometry(cls, size: int) -> ModelConfig:
        """The preset of ``for_size`` with A on the face mesh and G warping the portrait."""
        preset = cls.for_size(size)
        return dataclasses.replace(
            preset,
            encoder=dataclasses.replace(preset.encoder, input="mesh"),
            generator=dataclasses.replace(preset.generator, kind="warp", channels=(16, 32, 64, 96)),
        )

    @property
    def reads_mesh(self) -> bool:
        """Whether A reads the face mesh (else the crop's pixels)."""
        return self.encoder.input == "mesh"

    @property
    def generator_contract(self) -> GeneratorContract:
        """What G's kind asks of a stream and gives per frame (its entry in GENERATOR_KINDS)."""
        return GENERATOR_KINDS[self.generator.kind].contract

    @property
    def warps(self) -> bool:
        """Whether G moves the portrait's pixels (else it redraws the crop)."""
        return not self.generator_contract.draws

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from ``to_dict`` output; unknown or mistyped keys raise ConfigError."""
        return _dataclass_from_dict(cls, data, "model")

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"model config is not valid JSON: {error}") from error
        return cls.from_dict(data)


Config = TypeVar("Config")


def _dataclass_from_dict(kind: type[Config], data: Any, where: str) -> Config:
    """Build ``kind`` (a dataclass whose fields all have defaults) from a JSON object."""
    _require(isinstance(data, dict), f"{where}: expected an object, got {type(data).__name__}")
    defaults = kind()
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(kind)})
    _require(not unknown, f"{where}: unknown keys {unknown}")
    values = {}
    for name, value in data.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            values[name] = _dataclass_from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            _require(isinstance(value, (list, tuple)), f"{where}.{name}: expected a list, got {value!r}")
            values[name] = tuple(value)
        else:
            values[name] = value
    try:
        return kind(**values)
    except TypeError as error:
        raise ConfigError(f"{where}: {error}") from error
