"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): causal, adaptive smoothing.

A first-order low-pass filter whose cutoff rises with the signal's speed: at rest the
cutoff is ``min_cutoff`` (strong smoothing, no jitter), in fast motion it grows by
``beta`` per unit of speed (little lag). The speed itself is low-passed at ``d_cutoff``.
Timestamps are passed explicitly, in seconds, so irregular frame times are handled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    """Cutoffs in Hz; ``beta`` in Hz per (signal unit per second).

    The tracker filters eye positions in units of the inter-ocular distance, so the
    defaults are for a signal where 1.0 is the distance between the eyes.
    """

    min_cutoff: float = 1.0
    beta: float = 10.0
    d_cutoff: float = 2.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and math.isfinite(self.min_cutoff + self.d_cutoff)):
            raise ValueError(f"cutoffs must be positive and finite, got {self.min_cutoff} and {self.d_cutoff}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ValueError(f"beta must be non-negative and finite, got {self.beta}")


def smoothing_factor(cutoff: float | np.ndarray, elapsed: float) -> float | np.ndarray:
    """Exponential smoothing weight of the new sample for a cutoff (Hz) over ``elapsed`` s."""
    time_constant = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + time_constant / elapsed)


class OneEuroFilter:
    """Filters an array signal element-wise: ``filter(value, timestamp) -> smoothed value``.

    Timestamps must increase strictly between calls (a ValueError otherwise); ``reset()``
    forgets the past so that the next value passes unchanged.
    """

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._timestamp = 0.0

    @property
    def last_timestamp(self) -> float | None:
        """The timestamp of the last filtered value, or None after a reset."""
        return None if self._value is None else self._timestamp

    def reset(self) -> None:
        self._value = None
        self._speed = None

    def filter(self, value: np.ndarray, timestamp: float) -> np.ndarray:
        """value: any-shape float array (the same shape every call) -> float64 smoothed value."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None:
            return self._start(value, timestamp)
        if value.shape != self._value.shape:
            raise ValueError(f"signal shape changed from {self._value.shape} to {value.shape}; reset first")
        elapsed = timestamp - self._timestamp
        if not elapsed > 0:
            raise ValueError(f"timestamps must increase: {timestamp} after {self._timestamp}")
        raw_speed = (value - self._value) / elapsed
        self._speed = self._speed + (raw_speed - self._speed) * smoothing_factor(self.config.d_cutoff, elapsed)
        cutoff = self.config.min_cutoff + self.config.beta * np.abs(self._speed)
        self._value = self._value + (value - self._value) * smoothing_factor(cutoff, elapsed)
        self._timestamp = timestamp
        return self._value.copy()

    def _start(self, value: np.ndarray, timestamp: float) -> np.ndarray:
        self._value = value.copy()
        self._speed = np.zeros_like(value)
        self._timestamp = timestamp
        return value.copy()
