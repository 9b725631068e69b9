"""Frames published on a ZeroMQ PUB socket, for programs that want raw pixels.

Each frame is a two-part message:
1. a UTF-8 JSON header: {"version": 1, "type": "frame", "index", "capture_ns", "pts_s",
   "width", "height", "format": "rgb24"};
2. the pixels: height * width * 3 bytes, rows top to bottom, RGB, 8 bits each.

The socket binds (subscribers connect) to loopback by default. It keeps at most
``SEND_HIGH_WATER_MARK`` messages per subscriber: a slow subscriber loses old frames, and
the publisher never waits.

Specs: ``zmq`` (tcp://127.0.0.1:5557), ``zmq://tcp://HOST:PORT``, ``zmq+tcp://HOST:PORT``,
``zmq+ipc://PATH``.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import zmq

from rt_dtgan.endpoints import parse_endpoint
from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.sink import Sink, SinkKind

# Beside the worker (5555) and the broker's back (5556), so that all three run on one machine.
DEFAULT_ZMQ_ENDPOINT = "tcp://127.0.0.1:5557"
PROTOCOL_VERSION = 1
SEND_HIGH_WATER_MARK = 2


def frame_header(frame: Frame) -> bytes:
    """The JSON header of a published frame."""
    header = {
        "version": PROTOCOL_VERSION,
        "type": "frame",
        "index": frame.index,
        "capture_ns": frame.capture_ns,
        "pts_s": frame.pts_s,
        "width": frame.width,
        "height": frame.height,
        "format": "rgb24",
    }
    return json.dumps(header, separators=(",", ":")).encode("utf-8")


class ZmqPublisherSink(Sink):
    """Publishes frames on a PUB socket bound to ``endpoint`` (tcp://HOST:PORT or ipc://PATH)."""

    def __init__(self, endpoint: str, width: int, height: int, fps: float | Fraction) -> None:
        super().__init__(f"ZeroMQ publisher {endpoint}", width, height, fps)
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, SEND_HIGH_WATER_MARK)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as error:
            self._release()
            raise SinkError(f"cannot bind {self.description}: {error}") from error
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def _write(self, frame: Frame) -> None:
        pixels = np.ascontiguousarray(frame.image)
        self._socket.send_multipart([frame_header(frame), pixels.data])

    def _release(self) -> None:
        self._socket.close()
        self._context.term()


def _is_zmq(spec: str) -> bool:
    return spec == "zmq" or spec.startswith(("zmq://", "zmq+"))


def _zmq_endpoint(spec: str) -> str:
    if spec == "zmq":
        return DEFAULT_ZMQ_ENDPOINT
    if spec.startswith("zmq://"):
        return spec[len("zmq://") :]
    return spec[len("zmq+") :]


def _open_zmq(spec: str, width: int, height: int, fps: float | Fraction) -> ZmqPublisherSink:
    return ZmqPublisherSink(_zmq_endpoint(spec), width, height, fps)


def _check_zmq(spec: str) -> None:
    try:
        parse_endpoint(_zmq_endpoint(spec), ("tcp", "ipc"))
    except ValueError as error:
        raise SinkError(f"output {spec!r}: {error}") from error


ZMQ_OUTPUT = SinkKind("zmq://tcp://HOST:PORT", _is_zmq, _open_zmq, _check_zmq)
