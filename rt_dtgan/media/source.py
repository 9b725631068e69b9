"""What a source is, and how a kind of source registers.

A source iterates ``Frame`` (``image``: (H, W, 3) uint8 RGB of ``size``), has ``fps``,
``size`` = (width, height), ``live``, ``paced``, an idempotent ``close()``, and is a context
manager. ``size`` resizes frames when it differs from the source's own size. A ``SourceKind``
tells the registry (``SOURCE_KINDS`` in ``media/source_kinds.py``) which specs name it, how
to open one, and how its spec is written.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from rt_dtgan.media.errors import SourceError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.pacing import Pacer


@dataclass(frozen=True)
class SourceOptions:
    """size: (width, height) in pixels, or None for the source's own; fps: frames per second,
    or None for the source's own (image sequences: 25); pace: play files and graphs in real time."""

    size: tuple[int, int] | None = None
    fps: float | None = None
    pace: bool = True

    def __post_init__(self) -> None:
        if self.size is not None:
            if len(self.size) != 2 or not all(isinstance(side, int) and side > 0 for side in self.size):
                raise SourceError(f"size must be (width, height), two positive integers, got {self.size}")
            object.__setattr__(self, "size", tuple(self.size))
        if self.fps is not None and not self.fps > 0:
            raise SourceError(f"fps must be > 0, got {self.fps}")


SyntheticFactory = Callable[[str, SourceOptions], "Source"]


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None or 0 in (int(match[1]), int(match[2])):
        raise SourceError(f"a size is WIDTHxHEIGHT with positive integers, for example 640x480; got {text!r}")
    return int(match[1]), int(match[2])


class Source(ABC):
    """An iterator of Frame with fps, size and an idempotent close(); see the module docstring."""

    def __init__(self, description: str, pace_fps: float | None) -> None:
        self.description = description
        self._pacer = Pacer(pace_fps) if pace_fps else None
        self._next_index = 0
        self._closed = False

    @property
    @abstractmethod
    def fps(self) -> float:
        """Frames per second of the source (as played)."""

    @property
    @abstractmethod
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames it yields."""

    @property
    def live(self) -> bool:
        """True for cameras (and lavfi graphs): an end is a disconnect, and reopen() reconnects."""
        return False

    @property
    def frame_count(self) -> int | None:
        """How many frames it will give, where known ahead (for progress bars), else None."""
        return None

    @property
    def paced(self) -> bool:
        """True when frames are released in real time (a camera, or playback with pace=True)."""
        return self._pacer is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def reopen(self) -> None:
        """Reconnect a live source; raises SourceError when it is still unavailable."""
        raise SourceError(f"{self.description} is not live and cannot be reopened")

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        image, pts_s = self._read()
        return self._stamp(image, pts_s)

    def close(self) -> None:
        """Release the device or file; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        width, height = self.size
        return f"{type(self).__name__}({self.description}, {width}x{height} at {self.fps:g} fps)"

    @abstractmethod
    def _read(self) -> tuple[np.ndarray, float]:
        """The next image ((H, W, 3) uint8 RGB) and its time in seconds from the first frame;
        raises StopIteration at the end and SourceError when reading fails."""

    @abstractmethod
    def _release(self) -> None:
        """Close what the source holds open."""

    def _stamp(self, image: np.ndarray, pts_s: float) -> Frame:
        if self._pacer is not None:
            self._pacer.wait(pts_s)
        frame = Frame(image=image, index=self._next_index, capture_ns=time.monotonic_ns(), pts_s=pts_s)
        self._next_index += 1
        return frame


@dataclass(frozen=True)
class SourceRequest:
    """What ``open_source`` was asked: the spec (stripped, not empty), the options, and the
    factory that makes ``synthetic:SEED`` frames (None where the caller gave none)."""

    spec: str
    options: SourceOptions
    synthetic_factory: SyntheticFactory | None = None


@dataclass(frozen=True)
class SourceKind:
    """One kind of source in the registry. ``open_source`` asks the kinds in order whether
    they ``claim`` a spec and opens it with the first that does; ``help`` is how its spec is
    written, one phrase of ``SOURCE_SPEC_HELP``; ``check(spec)``, where given, raises
    SourceError for a claimed spec that cannot work, without opening anything."""

    help: str
    claims: Callable[[str], bool]
    open: Callable[[SourceRequest], Source]
    check: Callable[[str], None] | None = None
