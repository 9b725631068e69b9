"""Generated frames: any ``render(index) -> image``, and ``synthetic:SEED``, whose frames the
caller's ``synthetic_factory`` makes (the media layer does not import the generator;
``GeneratedSource`` is a ready adapter for it)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rt_dtgan.media.errors import SourceError
from rt_dtgan.media.source import Source, SourceKind, SourceRequest

SYNTHETIC_PREFIX = "synthetic:"


class GeneratedSource(Source):
    """Frames made by ``render(index) -> (H, W, 3) uint8 RGB`` at ``fps``; ``frame_count`` frames,
    or endless when None. The adapter for generated drivers such as ``synthetic:SEED``."""

    def __init__(
        self,
        render: Callable[[int], np.ndarray],
        fps: float,
        frame_count: int | None = None,
        pace: bool = True,
        description: str = "generated frames",
    ) -> None:
        if not fps > 0:
            raise SourceError(f"fps must be > 0, got {fps}")
        if frame_count is not None and frame_count < 1:
            raise SourceError(f"frame_count must be >= 1 or None, got {frame_count}")
        self._render = render
        self._fps = float(fps)
        self._frame_count = frame_count
        self._first_image = render(0)
        super().__init__(description, self._fps if pace else None)

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._first_image.shape[1], self._first_image.shape[0]

    @property
    def frame_count(self) -> int | None:
        return self._frame_count

    def _read(self) -> tuple[np.ndarray, float]:
        index = self._next_index
        if self._frame_count is not None and index >= self._frame_count:
            raise StopIteration
        image = self._first_image if index == 0 else self._render(index)
        return image, index / self._fps

    def _release(self) -> None:
        """Nothing is held open."""


def _open_synthetic(request: SourceRequest) -> Source:
    if request.synthetic_factory is None:
        raise SourceError(
            f"{request.spec!r} needs a synthetic_factory: pass the synthetic generator's factory to open_source"
        )
    return request.synthetic_factory(request.spec[len(SYNTHETIC_PREFIX) :], request.options)


def _check_synthetic(spec: str) -> None:
    seed = spec[len(SYNTHETIC_PREFIX) :].strip()
    if not (seed.isascii() and seed.isdigit()):
        raise SourceError(f"the seed in {spec!r} must be a non-negative integer, like '{SYNTHETIC_PREFIX}123'")


SYNTHETIC_SOURCE = SourceKind(
    f"{SYNTHETIC_PREFIX}SEED", lambda spec: spec.startswith(SYNTHETIC_PREFIX), _open_synthetic, _check_synthetic
)
