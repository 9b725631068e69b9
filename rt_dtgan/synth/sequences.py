"""Expression sequences with per-frame ground truth.

Onset sequences go from neutral to the apex of one basic expression (as in Oulu-CASIA);
free-form sequences are endless, generated lazily: talking, blinks, mixed expressions,
returns to neutral and slow head motion. A track (FrameSpec items) is identity-free, so
the ground truth of a transfer is simply another identity rendered with the same track.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from rt_dtgan.synth.expression import BASIC_EXPRESSIONS, CONTROLS, NUM_CONTROLS, Expression, Pose, apex_vector
from rt_dtgan.synth.identity import Identity
from rt_dtgan.synth.render import render

FPS = 30
ONSET_LENGTH_RANGE = (10, 60)
_BLINK_PROFILE = (0.35, 0.8, 1.0, 1.0, 0.75, 0.4, 0.15)
_CONTROL_INDEX = {name: index for index, name in enumerate(CONTROLS)}


@dataclass(frozen=True)
class FrameSpec:
    """Ground truth of one frame: the expression, the head pose, the label and the noise seed."""

    expression: Expression
    pose: Pose
    label: str
    noise_seed: int | None = None

    def to_json(self) -> dict:
        """Per-frame label record: expression (12 floats), pose, label, and noise_seed when set."""
        record = {"expression": [float(v) for v in self.expression.to_vector()], "pose": self.pose.to_dict(), "label": self.label}
        if self.noise_seed is not None:
            record["noise_seed"] = self.noise_seed
        return record


@dataclass(frozen=True, eq=False)
class Frame:
    """A rendered frame: index in its sequence, (S, S, 3) uint8 RGB image and its ground truth."""

    index: int
    image: np.ndarray
    spec: FrameSpec


def ease_in_out(t: float) -> float:
    """Sine ease from 0 at t=0 to 1 at t=1."""
    return 0.5 - 0.5 * math.cos(math.pi * min(max(t, 0.0), 1.0))


def frame_noise_seed(sequence_seed: int, index: int) -> int:
    """A non-negative noise seed for frame `index` of a sequence."""
    return (sequence_seed * 1_000_003 + index) % (1 << 31)


def random_onset_length(seed: int) -> int:
    """A sequence length in ONSET_LENGTH_RANGE drawn from seed."""
    low, high = ONSET_LENGTH_RANGE
    return int(np.random.default_rng([seed, 0x1E]).integers(low, high + 1))


def _check_seed(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def onset_track(expression_name: str, length: int, seed: int) -> list[FrameSpec]:
    """Neutral (frame 0, all controls exactly 0) to apex (last frame) of a basic expression.

    Intensity and the mix of controls vary with seed (0.65 to 1 of the prototype, each
    control x0.8 to x1.2), so does the timing (eased, with a random acceleration) and a
    small slow head drift. Every frame is labelled with expression_name.
    """
    if expression_name not in BASIC_EXPRESSIONS:
        raise ValueError(f"unknown expression {expression_name!r}; expected one of {BASIC_EXPRESSIONS}")
    if not isinstance(length, (int, np.integer)) or length < 2:
        raise ValueError(f"length must be an integer >= 2, got {length!r}")
    _check_seed("seed", seed)
    rng = np.random.default_rng([seed, 0x0A5E])
    apex = np.clip(apex_vector(expression_name) * rng.uniform(0.65, 1.0) * rng.uniform(0.8, 1.2, NUM_CONTROLS), 0.0, 1.0)
    apex = apex.astype(np.float32)
    timing = rng.uniform(0.7, 1.4)
    start, end = _small_pose(rng, 0.4), _small_pose(rng, 1.0)
    specs = []
    for index in range(length):
        t = index / (length - 1)
        weight = ease_in_out(t ** timing)
        vector = (apex * np.float32(weight)).astype(np.float32)
        pose = _lerp_pose(start, end, ease_in_out(t))
        specs.append(FrameSpec(Expression.from_vector(vector), pose, expression_name, frame_noise_seed(seed, index)))
    return specs


def _small_pose(rng: np.random.Generator, amount: float) -> np.ndarray:
    """(6,) yaw, pitch, roll (degrees), scale, shift_x, shift_y of a small random head pose."""
    limits = np.array([4.0, 3.0, 3.0, 0.03, 0.012, 0.012]) * amount
    pose = rng.uniform(-limits, limits)
    pose[3] += 1.0
    return pose


def _lerp_pose(a: np.ndarray, b: np.ndarray, t: float) -> Pose:
    return Pose(*(float(v) for v in a + (b - a) * t))


def onset_sequence(
    identity_seed: int, expression_name: str, length: int | None = None, seed: int = 0, size: int = 128
) -> Iterator[Frame]:
    """Rendered onset sequence of identity `identity_seed`; length None draws 10 to 60 frames from seed."""
    _check_seed("identity_seed", identity_seed)
    _check_seed("seed", seed)
    length = random_onset_length(seed) if length is None else length
    return render_track(Identity.from_seed(identity_seed), onset_track(expression_name, length, seed), size)


def render_track(identity: Identity, track: Iterable[FrameSpec], size: int = 128) -> Iterator[Frame]:
    """Render an identity through a track, lazily: yields Frame(index, (S, S, 3) uint8, spec)."""
    for index, spec in enumerate(track):
        yield Frame(index, render(identity, spec.expression, spec.pose, size, spec.noise_seed), spec)


def transfer_ground_truth(identity_b: Identity | int, source: Iterable[FrameSpec | Frame], size: int = 128) -> Iterator[Frame]:
    """Identity B making A's expressions: B rendered with each source frame's expression, pose and noise."""
    identity = Identity.from_seed(identity_b) if isinstance(identity_b, (int, np.integer)) else identity_b
    return render_track(identity, (item.spec if isinstance(item, Frame) else item for item in source), size)


def freeform_sequence(seed: int, length: int, size: int = 128, identity_seed: int | None = None) -> Iterator[Frame]:
    """Rendered free-form sequence (lazy, flat memory); the identity defaults to seed."""
    _check_seed("seed", seed)
    identity = Identity.from_seed(seed if identity_seed is None else identity_seed)
    return render_track(identity, freeform_track(seed, length), size)


def freeform_track(seed: int, length: int) -> Iterator[FrameSpec]:
    """Lazily yields `length` frames of talking, blinking, mixed expressions and slow head motion.

    The label is the dominant basic expression while its weight is at least 0.4, else "neutral".
    """
    _check_seed("seed", seed)
    if not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    rng = np.random.default_rng([seed, 0xF4EE])
    motion = _HeadMotion(rng)
    blinks = _blinks(rng)
    segments = _segments(rng)
    for index in range(length):
        weights, talk = next(segments)
        vector = np.zeros(NUM_CONTROLS, np.float32)
        for name, weight in weights.items():
            vector += apex_vector(name) * np.float32(weight)
        vector += talk
        blink = _CONTROL_INDEX["blink"]
        vector[blink] = max(vector[blink], next(blinks))
        vector = np.clip(vector, 0.0, 1.0).astype(np.float32)
        dominant = max(weights, key=weights.get, default=None)
        label = dominant if dominant is not None and weights[dominant] >= 0.4 else "neutral"
        yield FrameSpec(Expression.from_vector(vector), motion.pose(index), label, frame_noise_seed(seed, index))


class _HeadMotion:
    """Slow head motion: per axis a sum of three sinusoids of random frequency (0.03 to 0.3 Hz)."""

    _AMPLITUDE = np.array([6.0, 4.0, 3.0, 0.03, 0.015, 0.015])

    def __init__(self, rng: np.random.Generator) -> None:
        self.freq = rng.uniform(0.03, 0.3, (6, 3)) * 2.0 * math.pi / FPS
        self.phase = rng.uniform(0.0, 2.0 * math.pi, (6, 3))
        self.weight = rng.dirichlet(np.ones(3), 6) * self._AMPLITUDE[:, None]

    def pose(self, index: int) -> Pose:
        values = (self.weight * np.sin(self.freq * index + self.phase)).sum(axis=1)
        yaw, pitch, roll, scale, shift_x, shift_y = (float(v) for v in values)
        return Pose(yaw, pitch, roll, 1.0 + scale, shift_x, shift_y)


def _blinks(rng: np.random.Generator) -> Iterator[float]:
    """Blink control per frame: a blink every 1.5 to 6 seconds."""
    while True:
        for _ in range(int(rng.integers(45, 180))):
            yield 0.0
        yield from _BLINK_PROFILE


def _segments(rng: np.random.Generator) -> Iterator[tuple[dict[str, float], np.ndarray]]:
    """Per frame: (weights of basic expressions, talking controls (12,) float32), segment after segment."""
    kinds = ("neutral", "expression", "talk", "mixed", "talk_expression")
    while True:
        kind = kinds[int(rng.choice(len(kinds), p=[0.2, 0.3, 0.25, 0.15, 0.1]))]
        names = list(rng.choice(BASIC_EXPRESSIONS, size=2, replace=False))
        if kind == "neutral":
            targets = {}
        elif kind == "mixed":
            split = rng.uniform(0.3, 0.7)
            targets = {names[0]: split, names[1]: 1.0 - split}
        else:
            targets = {names[0]: rng.uniform(0.4, 1.0)}
        talking = kind in ("talk", "talk_expression")
        rise, hold, fall = (int(rng.integers(8, 25)), int(rng.integers(10, 90)), int(rng.integers(8, 25)))
        talk = _talking(rng) if talking else None
        for index in range(rise + hold + fall):
            if index < rise:
                envelope = ease_in_out(index / rise)
            elif index < rise + hold:
                envelope = 1.0
            else:
                envelope = 1.0 - ease_in_out((index - rise - hold) / fall)
            weights = {name: value * envelope for name, value in targets.items()}
            yield weights, next(talk) if talk is not None else np.zeros(NUM_CONTROLS, np.float32)


def _talking(rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Mouth motion of speech: syllables at 3 to 6 Hz with random openings and some rounding."""
    rate = rng.uniform(3.0, 6.0) * 2.0 * math.pi / FPS
    phase = 0.0
    amplitude = rng.uniform(0.2, 0.5)
    rounding = 0.0
    while True:
        phase += rate
        if phase > 2.0 * math.pi:
            phase -= 2.0 * math.pi
            amplitude = rng.uniform(0.1, 0.55)
            rounding = rng.uniform(0.0, 0.6) if rng.random() < 0.3 else 0.0
        opening = amplitude * (0.5 - 0.5 * math.cos(phase))
        vector = np.zeros(NUM_CONTROLS, np.float32)
        vector[_CONTROL_INDEX["jaw_drop"]] = opening
        vector[_CONTROL_INDEX["lips_part"]] = min(1.0, 0.3 + 1.2 * opening)
        vector[_CONTROL_INDEX["lip_pucker"]] = rounding * (0.5 + 0.5 * math.cos(phase))
        yield vector
