"""The frame that travels from a source to the sinks, with its capture time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One video frame.

    image: (H, W, 3) uint8 RGB, values 0..255.
    index: the frame number in its source, from 0.
    capture_ns: time.monotonic_ns() when the frame became available; carried unchanged to
        the sinks, so that latency = sink time - capture_ns.
    pts_s: presentation time in the source, seconds (from 0 at the first frame).
    """

    image: np.ndarray
    index: int
    capture_ns: int
    pts_s: float

    def __post_init__(self) -> None:
        image = self.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            description = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"Frame.image must be a uint8 (H, W, 3) RGB array, got {description}")
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0, got {self.index}")

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    def with_image(self, image: np.ndarray) -> Frame:
        """The same frame (index, capture time, pts) carrying another image, e.g. the engine's output."""
        return Frame(image=image, index=self.index, capture_ns=self.capture_ns, pts_s=self.pts_s)


def latency_ns(frame: Frame, now_ns: int | None = None) -> int:
    """Nanoseconds from the frame's capture to ``now_ns`` (default: time.monotonic_ns())."""
    return (time.monotonic_ns() if now_ns is None else now_ns) - frame.capture_ns


def latency_ms(frame: Frame, now_ns: int | None = None) -> float:
    """Milliseconds from the frame's capture to ``now_ns`` (default: time.monotonic_ns())."""
    return latency_ns(frame, now_ns) / 1e6
