"""Opening outputs from specs, and writing to several at once.

- ``out.mp4``, ``out.mkv``, ``out.mov``: an H.264 file (libx264, else mpeg4), yuv420p.
- ``out.y4m``: a raw Y4M file.
- ``-``: raw Y4M on standard output, for ``| ffplay -`` or ``| ffmpeg -i - -f v4l2 /dev/videoN``.
- ``udp://HOST:PORT``: MPEG-TS over UDP, low-latency H.264, for an OBS Media Source.
- ``zmq`` (tcp://127.0.0.1:5556), ``zmq://tcp://HOST:PORT``, ``zmq+tcp://HOST:PORT``,
  ``zmq+ipc://PATH``: a ZeroMQ PUB socket (see zmq_pub for the message format).
- ``virtualcam``, ``virtualcam:DEVICE``: a virtual camera through pyvirtualcam (extra 'vcam').
- ``window``: an OpenCV preview window with an FPS and latency overlay and hotkeys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

from rt_dtgan.media.encoded import FILE_EXTENSIONS, open_udp_stream, open_video_file
from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.sink import Sink
from rt_dtgan.media.threaded import ThreadedSink
from rt_dtgan.media.virtualcam import VirtualCameraSink
from rt_dtgan.media.window import PreviewWindow
from rt_dtgan.media.y4m import Y4MSink
from rt_dtgan.media.zmq_pub import DEFAULT_ZMQ_ENDPOINT, ZmqPublisherSink

SINK_SPEC_HELP = (
    "an output is a file (.mp4, .mkv, .mov, .y4m), - (Y4M on stdout), udp://HOST:PORT, "
    "zmq://tcp://HOST:PORT, virtualcam or window"
)


def open_sink(spec: str, width: int, height: int, fps: float | Fraction) -> Sink:
    """Open the output that ``spec`` names (see the module docstring); raises SinkError."""
    text = spec.strip()
    if text == "-":
        return Y4MSink(width, height, fps)
    if text.startswith("udp://"):
        return open_udp_stream(text, width, height, fps)
    if text == "zmq" or text.startswith(("zmq://", "zmq+")):
        return ZmqPublisherSink(_zmq_endpoint(text), width, height, fps)
    if text == "virtualcam" or text.startswith("virtualcam:"):
        device = text.partition(":")[2] or None
        return VirtualCameraSink(width, height, fps, device=device)
    if text == "window":
        return PreviewWindow(width, height, fps)
    suffix = Path(text).suffix.lower()
    if suffix in FILE_EXTENSIONS:
        return open_video_file(text, width, height, fps)
    if suffix == ".y4m":
        return _open_y4m_file(Path(text), width, height, fps)
    raise SinkError(f"unknown output {spec!r}: {SINK_SPEC_HELP}")


def _zmq_endpoint(text: str) -> str:
    if text == "zmq":
        return DEFAULT_ZMQ_ENDPOINT
    if text.startswith("zmq://"):
        return text[len("zmq://") :]
    return text[len("zmq+") :]


def _open_y4m_file(path: Path, width: int, height: int, fps: float | Fraction) -> Y4MSink:
    try:
        stream = path.open("wb")
    except OSError as error:
        raise SinkError(f"cannot write {path}: {error}") from error
    try:
        return Y4MSink(width, height, fps, stream=stream, description=f"Y4M file {path}", close_stream=True)
    except SinkError:
        stream.close()
        raise


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
        _each_then_raise(self.sinks, lambda sink: sink.write(frame))

    def _release(self) -> None:
        _each_then_raise(self.sinks, Sink.close)


def _each_then_raise(sinks: list[Sink], action: Callable[[Sink], None]) -> None:
    first_error: Exception | None = None
    for sink in sinks:
        try:
            action(sink)
        except Exception as error:  # every sink gets its turn; the first error is raised below
            first_error = first_error or error
    if first_error is not None:
        raise first_error


def open_sinks(
    specs: Iterable[str], width: int, height: int, fps: float | Fraction, threaded: bool = True
) -> MultiSink:
    """Open every output in ``specs`` as one MultiSink; if one fails to open, the ones already
    opened are closed before the error is raised. ``threaded``: every output but the window
    (whose GUI stays on the calling thread) writes on its own thread (ThreadedSink)."""
    opened: list[Sink] = []
    try:
        for spec in specs:
            sink = open_sink(spec, width, height, fps)
            opened.append(ThreadedSink(sink) if threaded and not isinstance(sink, PreviewWindow) else sink)
        return MultiSink(opened)
    except BaseException:
        with contextlib.suppress(Exception):  # the error that stopped the opening is the one to report
            _each_then_raise(opened, Sink.close)
        raise
