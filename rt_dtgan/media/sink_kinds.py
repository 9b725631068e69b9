"""The kinds of output, ``open_sink``, which opens a spec with the first kind that claims it,
and ``open_sinks``, which opens several as one MultiSink.

A new kind of output is a module with its ``Sink`` and its ``SinkKind`` (``media/sink.py``),
and that kind added to ``SINK_KINDS``. The kinds are asked in order, which matters only where
two could claim one spec (``udp://HOST:PORT/out.mp4`` is a stream, not a file, so the files
come last); ``SINK_SPEC_HELP``, the help of an unknown output's error, lists them in that order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from fractions import Fraction

from rt_dtgan.media.encoded import UDP_OUTPUT, VIDEO_FILE_OUTPUT
from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.multi import MultiSink, each_then_raise
from rt_dtgan.media.null import NULL_OUTPUT
from rt_dtgan.media.sink import Sink, SinkKind
from rt_dtgan.media.threaded import ThreadedSink
from rt_dtgan.media.virtualcam import VIRTUAL_CAMERA_OUTPUT
from rt_dtgan.media.window import WINDOW_OUTPUT
from rt_dtgan.media.y4m import Y4M_FILE_OUTPUT, Y4M_PIPE_OUTPUT
from rt_dtgan.media.zmq_pub import ZMQ_OUTPUT

SINK_KINDS = (
    Y4M_PIPE_OUTPUT,
    UDP_OUTPUT,
    ZMQ_OUTPUT,
    VIRTUAL_CAMERA_OUTPUT,
    WINDOW_OUTPUT,
    NULL_OUTPUT,
    VIDEO_FILE_OUTPUT,
    Y4M_FILE_OUTPUT,
)
SINK_SPEC_HELP = "an output is " + ", ".join(kind.help for kind in SINK_KINDS[:-1]) + f" or {SINK_KINDS[-1].help}"


def open_sink(spec: str, width: int, height: int, fps: float | Fraction) -> Sink:
    """Open the output that ``spec`` names, with the first of SINK_KINDS that claims it; raises SinkError."""
    text = spec.strip()
    return _checked_kind(text).open(text, width, height, fps)


def check_sink_spec(spec: str) -> None:
    """Raise SinkError, one sentence, unless ``spec`` names an output that could be opened
    (a known kind, its own check passed); opens nothing."""
    _checked_kind(spec.strip())


def _checked_kind(text: str) -> SinkKind:
    kind = next((kind for kind in SINK_KINDS if kind.claims(text)), None) if text else None
    if kind is None:
        raise SinkError(f"unknown output {text!r}: {SINK_SPEC_HELP}")
    if kind.check is not None:
        kind.check(text)
    return kind


def open_sinks(
    specs: Iterable[str], width: int, height: int, fps: float | Fraction, threaded: bool = True
) -> MultiSink:
    """Open every output in ``specs`` as one MultiSink; if one fails to open, the ones already
    opened are closed before the error is raised. ``threaded``: every output that
    ``writes_on_own_thread`` (all but the window and null) writes on its own thread (ThreadedSink)."""
    opened: list[Sink] = []
    try:
        for spec in specs:
            sink = open_sink(spec, width, height, fps)
            opened.append(ThreadedSink(sink) if threaded and sink.writes_on_own_thread else sink)
        return MultiSink(opened)
    except BaseException:
        with contextlib.suppress(Exception):  # the error that stopped the opening is the one to report
            each_then_raise(opened, Sink.close)
        raise
