"""What a sink is, and how a kind of sink registers.

A sink has ``write(Frame)``, an idempotent ``close()``, and is a context manager. A
``SinkKind`` tells the registry (``SINK_KINDS`` in ``media/sink_kinds.py``) which output specs
name it, how to open one, and how its spec is written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.frames import Frame


def frame_rate_fraction(fps: float | Fraction) -> Fraction:
    """A frame rate as a small exact fraction: 30 -> 30/1, 29.97 -> 2997/100, 30000/1001 kept."""
    if not fps > 0:
        raise SinkError(f"fps must be > 0, got {fps}")
    return Fraction(fps).limit_denominator(1001)


class Sink(ABC):
    """An output for frames of ``width`` x ``height`` pixels at ``fps``; writes must match the size.
    ``writes_on_own_thread``: whether ``open_sinks`` gives it a writing thread (ThreadedSink);
    False for a window, whose GUI stays on the calling thread, or a sink with nothing to overlap."""

    writes_on_own_thread: ClassVar[bool] = True

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


@dataclass(frozen=True)
class SinkKind:
    """One kind of output in the registry. ``open_sink`` asks the kinds in order whether they
    ``claim`` a spec and opens it with the first that does, ``open(spec, width, height, fps)``;
    ``help`` is how its spec is written, one phrase of ``SINK_SPEC_HELP``; ``check(spec)``, where
    given, raises SinkError for a claimed spec that cannot work (a port that does not exist),
    without opening anything, so that a command refuses it before it starts."""

    help: str
    claims: Callable[[str], bool]
    open: Callable[[str, int, int, float | Fraction], Sink]
    check: Callable[[str], None] | None = None
