"""A thread and the bounded queue it shares with its owner, written once for the lossless
capture's reader (``BlockingCapture``), the tracking stage (``pipeline.TrackingStage``)
and the threaded sink (``ThreadedSink``).

One side puts items, in order, then an ``End``; the other gets them. ``put`` waits while
the queue is full (backpressure: nothing is dropped) and gives up once ``stop`` was called,
so a closing owner never leaves the thread stuck.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

# How often a waiting ``put`` looks whether it is asked to stop, in seconds.
STOP_POLL_S = 0.1

Item = TypeVar("Item")


@dataclass(frozen=True, eq=False)
class End:
    """The last thing through the queue: ``error`` is why it ended (None: a clean end)."""

    error: BaseException | None = None


class HandoffThread(Generic[Item]):
    """A daemon thread named ``name`` that runs ``work`` once started, and a queue of
    ``depth`` items between it and its owner, in either direction."""

    def __init__(self, work: Callable[[], None], name: str, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._queue: queue.Queue[Item | End] = queue.Queue(maxsize=depth)
        self._stopping = threading.Event()
        self._end: End | None = None
        self._thread = threading.Thread(target=work, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called: the thread's cue to finish."""
        return self._stopping.is_set()

    @property
    def ended(self) -> End | None:
        """The End once ``get`` has given it, else None."""
        return self._end

    def put(self, item: Item | End) -> bool:
        """Queue ``item``, waiting while the queue is full; False (not queued) once stopping."""
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=STOP_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self, timeout: float | None = None) -> Item | End | None:
        """The next item; None after ``timeout`` seconds without one; once the End came, the
        End again at every call."""
        if self._end is None:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
            if not isinstance(item, End):
                return item
            self._end = item
        return self._end

    def ask_to_stop(self) -> None:
        """Cue the thread to finish, without waiting: several threads then wind down at once."""
        self._stopping.set()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to finish and wait for it, at most ``timeout`` seconds (None: until
        it has), dropping what it still queues so that its ``put`` returns."""
        self.ask_to_stop()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive() and (deadline is None or time.monotonic() < deadline):
            self._drop_queued()
            self._thread.join(0.05)

    def join(self) -> None:
        """Wait for the thread to finish its work (after the owner has put the End)."""
        self._thread.join()

    def _drop_queued(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            return
