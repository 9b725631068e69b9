"""The ``null`` output: frames are checked for size and dropped, unconverted; for benchmarks,
and for a run whose only output is its status line."""

from __future__ import annotations

from fractions import Fraction

from rt_dtgan.media.frames import Frame
from rt_dtgan.media.sink import Sink, SinkKind


class NullSink(Sink):
    """Discards every frame. Writing costs the size check only, so it needs no thread of its own."""

    writes_on_own_thread = False

    def __init__(self, width: int, height: int, fps: float | Fraction) -> None:
        super().__init__("null output (frames discarded)", width, height, fps)

    def _write(self, frame: Frame) -> None:
        """Nothing: the frame is dropped."""

    def _release(self) -> None:
        """Nothing is held open."""


def _open_null(spec: str, width: int, height: int, fps: float | Fraction) -> NullSink:
    return NullSink(width, height, fps)


NULL_OUTPUT = SinkKind("null (frames discarded)", lambda spec: spec == "null", _open_null)
