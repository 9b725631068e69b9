"""Identity parameters of a synthetic face: everything that does not change with expression.

All lengths are fractions of the frame side (the canonical, frontal, eye-aligned frame),
all colours are RGB triples in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

HAIR_STYLES = ("bald", "buzz", "short", "side_part", "bangs", "long", "bun", "curly")
GLASSES_STYLES = ("none", "round", "rectangular")
BEARD_STYLES = ("none", "stubble", "full", "goatee", "moustache")

RGB = tuple[float, float, float]

_SKIN_PALETTE = np.array(
    [
        (0.97, 0.84, 0.74),
        (0.93, 0.76, 0.63),
        (0.86, 0.66, 0.51),
        (0.76, 0.55, 0.40),
        (0.62, 0.43, 0.30),
        (0.47, 0.31, 0.21),
        (0.34, 0.22, 0.15),
    ],
    dtype=np.float64,
)
_HAIR_PALETTE = np.array(
    [
        (0.05, 0.04, 0.04),
        (0.14, 0.09, 0.06),
        (0.27, 0.17, 0.10),
        (0.45, 0.31, 0.18),
        (0.75, 0.60, 0.38),
        (0.55, 0.25, 0.12),
        (0.55, 0.54, 0.52),
        (0.85, 0.84, 0.80),
    ],
    dtype=np.float64,
)
_HAIR_WEIGHTS = np.array([0.24, 0.22, 0.18, 0.1, 0.08, 0.06, 0.07, 0.05])
_IRIS_PALETTE = np.array(
    [
        (0.20, 0.11, 0.05),
        (0.33, 0.20, 0.09),
        (0.42, 0.33, 0.16),
        (0.30, 0.42, 0.25),
        (0.28, 0.45, 0.65),
        (0.45, 0.52, 0.58),
    ],
    dtype=np.float64,
)
_IRIS_WEIGHTS = np.array([0.35, 0.2, 0.12, 0.1, 0.15, 0.08])

# (field name, low, high) for every scalar float field; checked in __post_init__.
_RANGES: dict[str, tuple[float, float]] = {
    "eye_line": (0.38, 0.46),
    "face_width": (0.24, 0.33),
    "face_length": (0.34, 0.45),
    "forehead_height": (0.26, 0.36),
    "jaw_squareness": (1.8, 4.0),
    "blush": (0.0, 0.4),
    "eye_spacing": (0.11, 0.155),
    "eye_width": (0.040, 0.062),
    "eye_height": (0.28, 0.50),
    "eye_tilt": (-0.15, 0.2),
    "brow_thickness": (0.006, 0.022),
    "brow_arch": (0.0, 0.02),
    "brow_gap": (0.045, 0.075),
    "nose_length": (0.11, 0.17),
    "nose_width": (0.030, 0.055),
    "mouth_drop": (0.065, 0.095),
    "mouth_width": (0.055, 0.09),
    "upper_lip": (0.007, 0.018),
    "lower_lip": (0.010, 0.024),
    "hairline": (0.08, 0.16),
    "hair_volume": (0.0, 1.0),
    "light_azimuth": (-1.2, 1.2),
    "light_elevation": (0.1, 1.2),
    "ambient": (0.2, 0.6),
    "noise_sigma": (0.0, 0.03),
}


def _check_rgb(name: str, value: RGB) -> None:
    if len(value) != 3 or not all(0.0 <= float(c) <= 1.0 for c in value):
        raise ValueError(f"{name} must be an RGB triple in [0, 1], got {value!r}")


def _pick(rng: np.random.Generator, palette: np.ndarray, weights: np.ndarray | None = None) -> RGB:
    """A palette colour with a little jitter, as an RGB tuple in [0, 1]."""
    p = None if weights is None else weights / weights.sum()
    base = palette[rng.choice(len(palette), p=p)]
    jitter = rng.normal(0.0, 0.025, 3)
    return tuple(float(c) for c in np.clip(base + jitter, 0.0, 1.0))


def _skin(rng: np.random.Generator) -> RGB:
    """A skin tone interpolated along a light-to-dark palette, with a warm/cool tint."""
    t = rng.uniform(0, len(_SKIN_PALETTE) - 1)
    i = min(int(t), len(_SKIN_PALETTE) - 2)
    base = _SKIN_PALETTE[i] * (1 - (t - i)) + _SKIN_PALETTE[i + 1] * (t - i)
    tint = rng.normal(0.0, 0.02) * np.array([1.0, 0.2, -0.8])
    return tuple(float(c) for c in np.clip(base + tint, 0.0, 1.0))


def _uniform_rgb(rng: np.random.Generator, low: float, high: float) -> RGB:
    return tuple(float(c) for c in rng.uniform(low, high, 3))


@dataclass(frozen=True)
class Identity:
    """Everything about a synthetic face that does not change with expression or pose."""

    seed: int
    eye_line: float
    face_width: float
    face_length: float
    forehead_height: float
    jaw_squareness: float
    skin_rgb: RGB
    blush: float
    eye_spacing: float
    eye_width: float
    eye_height: float
    eye_tilt: float
    iris_rgb: RGB
    brow_rgb: RGB
    brow_thickness: float
    brow_arch: float
    brow_gap: float
    nose_length: float
    nose_width: float
    mouth_drop: float
    mouth_width: float
    upper_lip: float
    lower_lip: float
    lip_rgb: RGB
    hair_style: str
    hair_rgb: RGB
    hairline: float
    hair_volume: float
    glasses: str
    glasses_rgb: RGB
    beard: str
    background_top_rgb: RGB
    background_bottom_rgb: RGB
    clothing_rgb: RGB
    light_azimuth: float
    light_elevation: float
    ambient: float
    noise_sigma: float

    def __post_init__(self) -> None:
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"Identity.{name} must be in [{low}, {high}], got {value!r}")
        for f in fields(self):
            if f.name.endswith("_rgb"):
                _check_rgb(f"Identity.{f.name}", getattr(self, f.name))
        for name, allowed in (("hair_style", HAIR_STYLES), ("glasses", GLASSES_STYLES), ("beard", BEARD_STYLES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"Identity.{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @classmethod
    def from_seed(cls, seed: int) -> Identity:
        """A random but reproducible identity; distinct seeds give distinct faces."""
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"identity seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng([int(seed), 0x1D])
        masculine = rng.random() < 0.5
        hair_style = str(rng.choice(HAIR_STYLES, p=_hair_style_weights(masculine)))
        hair = _pick(rng, _HAIR_PALETTE, _HAIR_WEIGHTS)
        brow = tuple(float(c) for c in np.clip(np.array(hair) * 0.7 + 0.02, 0, 1))
        skin = _skin(rng)
        lip = tuple(float(c) for c in np.clip(np.array(skin) * np.array([0.92, 0.62, 0.62]) + rng.normal(0, 0.02, 3), 0, 1))
        beard = "none"
        if masculine and rng.random() < 0.35:
            beard = str(rng.choice(BEARD_STYLES[1:]))
        glasses = "none" if rng.random() < 0.75 else str(rng.choice(GLASSES_STYLES[1:]))
        return cls(
            seed=int(seed),
            eye_line=float(rng.uniform(0.40, 0.44)),
            face_width=float(rng.uniform(0.26, 0.31)),
            face_length=float(rng.uniform(0.36, 0.42)),
            forehead_height=float(rng.uniform(0.28, 0.33)),
            jaw_squareness=float(rng.uniform(2.4, 3.4) if masculine else rng.uniform(2.0, 2.8)),
            skin_rgb=skin,
            blush=float(rng.uniform(0.0, 0.3)),
            eye_spacing=float(rng.uniform(0.122, 0.142)),
            eye_width=float(rng.uniform(0.046, 0.056)),
            eye_height=float(rng.uniform(0.34, 0.46)),
            eye_tilt=float(rng.uniform(-0.06, 0.14)),
            iris_rgb=_pick(rng, _IRIS_PALETTE, _IRIS_WEIGHTS),
            brow_rgb=brow,
            brow_thickness=float(rng.uniform(0.011, 0.018) if masculine else rng.uniform(0.008, 0.013)),
            brow_arch=float(rng.uniform(0.0, 0.015)),
            brow_gap=float(rng.uniform(0.052, 0.066)),
            nose_length=float(rng.uniform(0.125, 0.155)),
            nose_width=float(rng.uniform(0.034, 0.048)),
            mouth_drop=float(rng.uniform(0.072, 0.088)),
            mouth_width=float(rng.uniform(0.062, 0.08)),
            upper_lip=float(rng.uniform(0.009, 0.015)),
            lower_lip=float(rng.uniform(0.013, 0.02)),
            lip_rgb=lip,
            hair_style=hair_style,
            hair_rgb=hair,
            hairline=float(rng.uniform(0.10, 0.14)),
            hair_volume=float(rng.uniform(0.0, 1.0)),
            glasses=glasses,
            glasses_rgb=_uniform_rgb(rng, 0.02, 0.5),
            beard=beard,
            background_top_rgb=_uniform_rgb(rng, 0.15, 0.9),
            background_bottom_rgb=_uniform_rgb(rng, 0.1, 0.8),
            clothing_rgb=_uniform_rgb(rng, 0.05, 0.85),
            light_azimuth=float(rng.uniform(-0.9, 0.9)),
            light_elevation=float(rng.uniform(0.3, 0.9)),
            ambient=float(rng.uniform(0.3, 0.45)),
            noise_sigma=float(rng.uniform(0.003, 0.015)),
        )


def _hair_style_weights(masculine: bool) -> np.ndarray:
    """Probabilities over HAIR_STYLES."""
    if masculine:
        w = np.array([0.07, 0.18, 0.3, 0.2, 0.05, 0.06, 0.0, 0.14])
    else:
        w = np.array([0.0, 0.02, 0.1, 0.14, 0.2, 0.3, 0.12, 0.12])
    return w / w.sum()
