"""A sink that writes on its own thread, so encoding overlaps the next frame's work.

``write`` hands the frame to a queue of ``depth`` frames and returns; when the queue is full
it waits (backpressure), so no frame is ever dropped and memory stays bounded. An error of
the wrapped sink is raised by every later ``write`` and by ``close``. ``close`` writes every
queued frame, then closes the wrapped sink (the file is complete and playable).
"""

from __future__ import annotations

from rt_dtgan.media.frames import Frame
from rt_dtgan.media.handoff import End, HandoffThread
from rt_dtgan.media.sink import Sink


class ThreadedSink(Sink):
    """Wraps ``sink`` (any sink whose writes may run on another thread: not a GUI window)."""

    def __init__(self, sink: Sink, depth: int = 2) -> None:
        super().__init__(sink.description, sink.width, sink.height, sink.fps)
        self.sink = sink
        self._error: BaseException | None = None
        self._writer: HandoffThread[Frame] = HandoffThread(self._run, f"sink {sink.description}", depth)
        self._writer.start()

    def _write(self, frame: Frame) -> None:
        self._raise_pending()
        self._writer.put(frame)

    def _release(self) -> None:
        self._writer.put(End())
        self._writer.join()
        self._raise_pending()

    def _run(self) -> None:
        try:
            while not isinstance(frame := self._writer.get(), End):
                self.sink.write(frame)
        except Exception as error:  # handed to the writing thread; the queue keeps draining
            self._error = error
            self._skip_to_end()
        finally:
            self._close_wrapped()

    def _skip_to_end(self) -> None:
        while not isinstance(self._writer.get(), End):
            pass

    def _close_wrapped(self) -> None:
        try:
            self.sink.close()
        except Exception as error:
            self._error = self._error or error

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error
