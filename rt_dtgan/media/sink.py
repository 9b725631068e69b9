"""The sink interface: ``write(Frame)``, an idempotent ``close()``, context manager."""

from __future__ import annotations

from abc import ABC, abstractmethod
from fractions import Fraction

from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.frames import Frame


def frame_rate_fraction(fps: float | Fraction) -> Fraction:
    """A frame rate as a small exact fraction: 30 -> 30/1, 29.97 -> 2997/100, 30000/1001 kept."""
    if not fps > 0:
        raise SinkError(f"fps must be > 0, got {fps}")
    return Fraction(fps).limit_denominator(1001)


class Sink(ABC):
    """An output for frames of ``width`` x ``height`` pixels at ``fps``; writes must match the size."""

    def __init__(self, description: str, width: int, height: int, fps: float | Fraction) -> None:
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            raise SinkError(f"{description}: width and height must be positive integers, got {width}x{height}")
        self.description = description
        self.width = width
        self.height = height
        self.fps = frame_rate_fraction(fps)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, frame: Frame) -> None:
        """Output one frame; its image must be (height, width, 3) uint8 RGB."""
        if self._closed:
            raise SinkError(f"{self.description} is closed")
        if frame.size != (self.width, self.height):
            raise SinkError(
                f"{self.description} was opened for {self.width}x{self.height}, "
                f"got a {frame.width}x{frame.height} frame"
            )
        self._write(frame)

    def close(self) -> None:
        """Finish the output (flush, trailer, release the device); safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description}, {self.width}x{self.height} at {self.fps} fps)"

    @abstractmethod
    def _write(self, frame: Frame) -> None:
        """Output a frame already checked for size."""

    @abstractmethod
    def _release(self) -> None:
        """Flush and close what the sink holds open."""
