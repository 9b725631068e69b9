"""Expression controls (action-unit-like, each in [0, 1]), the six basic expressions and head pose."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

CONTROLS = (
    "brow_raise",          # AU1+2: whole brow up, forehead wrinkles
    "brow_lower",          # AU4: brows down and together, glabella lines
    "eye_widen",           # AU5: upper lid up, more sclera
    "blink",               # AU45/43: upper lid down; 1 = closed
    "cheek_raise",         # AU6: cheeks up, lower lid up, eyes narrow
    "nose_wrinkle",        # AU9/10: wrinkles on the bridge, upper lip up
    "lip_corner_pull",     # AU12: smile
    "lip_corner_depress",  # AU15: corners down
    "lip_stretch",         # AU20: mouth wider and flatter
    "lip_pucker",          # AU18/22: mouth narrower and rounder
    "lips_part",           # AU25: lips apart
    "jaw_drop",            # AU26/27: jaw and lower lip down
)
NUM_CONTROLS = len(CONTROLS)

BASIC_EXPRESSIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
EXPRESSION_LABELS = ("neutral",) + BASIC_EXPRESSIONS


@dataclass(frozen=True)
class Expression:
    """Twelve controls in [0, 1]; all zeros is the neutral face."""

    brow_raise: float = 0.0
    brow_lower: float = 0.0
    eye_widen: float = 0.0
    blink: float = 0.0
    cheek_raise: float = 0.0
    nose_wrinkle: float = 0.0
    lip_corner_pull: float = 0.0
    lip_corner_depress: float = 0.0
    lip_stretch: float = 0.0
    lip_pucker: float = 0.0
    lips_part: float = 0.0
    jaw_drop: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (float, int, np.floating)) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"Expression.{f.name} must be a number in [0, 1], got {value!r}")

    def to_vector(self) -> np.ndarray:
        """(12,) float32 in [0, 1], in the order of CONTROLS."""
        return np.array([getattr(self, name) for name in CONTROLS], dtype=np.float32)

    @classmethod
    def from_vector(cls, vector: np.ndarray | list[float]) -> Expression:
        """Inverse of to_vector: a (12,) sequence of numbers in [0, 1]."""
        values = np.asarray(vector, dtype=np.float32)
        if values.shape != (NUM_CONTROLS,):
            raise ValueError(f"expression vector must have shape ({NUM_CONTROLS},), got {values.shape}")
        return cls(**{name: float(v) for name, v in zip(CONTROLS, values)})

    def is_neutral(self) -> bool:
        return not np.any(self.to_vector())


# Apex control values of the six basic expressions (EMFACS-style prototypes).
APEX_CONTROLS: dict[str, dict[str, float]] = {
    "anger": {"brow_lower": 1.0, "eye_widen": 0.45, "lip_pucker": 0.35, "lip_corner_depress": 0.35,
              "nose_wrinkle": 0.15, "lips_part": 0.15},
    "disgust": {"nose_wrinkle": 1.0, "brow_lower": 0.55, "cheek_raise": 0.45, "lip_corner_depress": 0.6,
                "lips_part": 0.35, "blink": 0.15},
    "fear": {"brow_raise": 0.8, "brow_lower": 0.55, "eye_widen": 1.0, "lip_stretch": 0.9,
             "lips_part": 0.7, "jaw_drop": 0.3},
    "happiness": {"lip_corner_pull": 1.0, "cheek_raise": 0.85, "lips_part": 0.55, "jaw_drop": 0.1},
    "sadness": {"brow_raise": 0.6, "brow_lower": 0.6, "lip_corner_depress": 1.0, "blink": 0.3,
                "lip_pucker": 0.15},
    "surprise": {"brow_raise": 1.0, "eye_widen": 0.9, "jaw_drop": 0.75, "lips_part": 0.8},
}


def apex_vector(name: str, intensity: float = 1.0) -> np.ndarray:
    """(12,) float32 apex of a basic expression scaled by intensity in [0, 1]."""
    if name not in APEX_CONTROLS:
        raise ValueError(f"unknown expression {name!r}; expected one of {BASIC_EXPRESSIONS}")
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"intensity must be in [0, 1], got {intensity!r}")
    controls = APEX_CONTROLS[name]
    return np.array([controls.get(c, 0.0) * intensity for c in CONTROLS], dtype=np.float32)


_POSE_LIMITS = {"yaw": 25.0, "pitch": 20.0, "roll": 20.0, "shift_x": 0.1, "shift_y": 0.1}


@dataclass(frozen=True)
class Pose:
    """Small head motion: angles in degrees, scale around 1, shifts as fractions of the frame."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def __post_init__(self) -> None:
        for name, limit in _POSE_LIMITS.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and abs(value) <= limit):
                raise ValueError(f"Pose.{name} must be within +-{limit}, got {value!r}")
        if not (math.isfinite(self.scale) and 0.8 <= self.scale <= 1.2):
            raise ValueError(f"Pose.scale must be in [0.8, 1.2], got {self.scale!r}")

    def is_identity(self) -> bool:
        return self == Pose()

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> Pose:
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown pose keys {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in values.items()})
