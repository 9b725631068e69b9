"""A sink that writes on its own thread, so encoding overlaps the next frame's work.

``write`` hands the frame to a queue of ``depth`` frames and returns; when the queue is full
it waits (backpressure), so no frame is ever dropped and memory stays bounded. An error of
the wrapped sink is raised by every later ``write`` and by ``close``. ``close`` writes every
queued frame, then closes the wrapped sink (the file is complete and playable).
"""

from __future__ import annotations

import queue
import threading

from rt_dtgan.media.frames import Frame
from rt_dtgan.media.sink import Sink

_CLOSE = object()


class ThreadedSink(Sink):
    """Wraps ``sink`` (any sink whose writes may run on another thread: not a GUI window)."""

    def __init__(self, sink: Sink, depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        super().__init__(sink.description, sink.width, sink.height, sink.fps)
        self.sink = sink
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"sink {sink.description}", daemon=True)
        self._thread.start()

    def _write(self, frame: Frame) -> None:
        self._raise_pending()
        self._queue.put(frame)

    def _release(self) -> None:
        self._queue.put(_CLOSE)
        self._thread.join()
        self._raise_pending()

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not _CLOSE:
                self.sink.write(item)
        except Exception as error:  # handed to the writing thread; the queue keeps draining
            self._error = error
            self._drain()
        finally:
            self._close_wrapped()

    def _drain(self) -> None:
        while self._queue.get() is not _CLOSE:
            pass

    def _close_wrapped(self) -> None:
        try:
            self.sink.close()
        except Exception as error:
            self._error = self._error or error

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error
