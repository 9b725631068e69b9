"""An in-process engine shared by the page's sessions: each session's driver takes the
engine's lock for every call (the StreamEngine is not written for calls from several threads)."""

from __future__ import annotations

import threading

from rt_dtgan.pipeline import LocalDriver
from rt_dtgan.runtime.engine import AlignedFace, Generated, StreamEngine


class SharedEngineDriver(LocalDriver):
    """A LocalDriver on an engine that other sessions use too, through ``lock``; its
    expression strength may change while it runs (``set_strength``, 0..3)."""

    def __init__(self, engine: StreamEngine, lock: threading.Lock, target: AlignedFace, strength: float = 1.0) -> None:
        self.lock = lock
        with lock:
            super().__init__(engine, target, None, strength)

    def step(self, face: AlignedFace) -> Generated:
        with self.lock:
            return super().step(face)

    def recalibrate(self, reference: AlignedFace | None = None) -> None:
        with self.lock:
            super().recalibrate(reference)

    def set_strength(self, strength: float) -> None:
        with self.lock:
            self.engine.set_strength(self.stream, strength)

    def close(self) -> None:
        with self.lock:
            super().close()
