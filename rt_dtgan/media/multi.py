"""Writing to several outputs at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.sink import Sink
from rt_dtgan.media.window import PreviewWindow


class MultiSink(Sink):
    """Writes each frame to every sink. A failing sink does not stop the others from getting the
    frame or from being closed; the first error is raised after all have had their turn."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)
        if not self.sinks:
            raise SinkError("MultiSink needs at least one sink")
        first = self.sinks[0]
        size = (first.width, first.height)
        mismatched = [sink.description for sink in self.sinks if (sink.width, sink.height) != size]
        if mismatched:
            raise SinkError(f"all outputs must have one size, {first.width}x{first.height}; these differ: {mismatched}")
        super().__init__(" + ".join(sink.description for sink in self.sinks), first.width, first.height, first.fps)

    @property
    def window(self) -> PreviewWindow | None:
        """The preview window among the outputs, whose hotkeys its caller polls (``poll_keys``); None without one."""
        return next((sink for sink in self.sinks if isinstance(sink, PreviewWindow)), None)

    def _write(self, frame: Frame) -> None:
        each_then_raise(self.sinks, lambda sink: sink.write(frame))

    def _release(self) -> None:
        each_then_raise(self.sinks, Sink.close)


def each_then_raise(sinks: list[Sink], action: Callable[[Sink], None]) -> None:
    """``action`` on every sink, then the first error any raised, if one did."""
    first_error: Exception | None = None
    for sink in sinks:
        try:
            action(sink)
        except Exception as error:  # every sink gets its turn; the first error is raised below
            first_error = first_error or error
    if first_error is not None:
        raise first_error
