"""Sources read with PyAV: video files, cameras, and lavfi graphs opened like a camera.

- ``0`` or ``"0"``, ``/dev/video0``: a camera (v4l2 on Linux, avfoundation on macOS; on
  Windows name it, ``video=NAME``, for dshow). ``size`` and ``fps`` are requested from the
  device. Live: an end of stream is a disconnect, and ``reopen()`` reconnects.
- ``lavfi:testsrc=size=320x240:rate=30``: an ffmpeg lavfi graph opened exactly like a camera
  (same class, live, reopenable), so the device path is testable without a camera; the
  graph sets its own rate.
- ``clip.mp4`` (any container PyAV reads): played at its own rate with ``pace=True``, as
  fast as it decodes with ``pace=False``; ``fps`` re-times it (no frame dropped or repeated).
"""

from __future__ import annotations

import collections
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rt_dtgan.media.errors import SourceError
from rt_dtgan.media.source import Source, SourceKind, SourceOptions, SourceRequest

LAVFI_PREFIX = "lavfi:"


class AVSource(Source):
    """A source read with PyAV: a video file, a camera, or a lavfi graph (the camera path)."""

    def __init__(
        self,
        url: str,
        description: str,
        options: SourceOptions,
        container_format: str | None = None,
        container_options: dict[str, str] | None = None,
        live: bool = False,
        pace: bool = False,
    ) -> None:
        self._url = url
        self._container_format = container_format
        self._container_options = dict(container_options or {})
        self._live = live
        self._retime_fps = options.fps if not live else None
        self._container, self._stream = self._open_container(description)
        native_size = (self._stream.codec_context.width, self._stream.codec_context.height)
        self._size = options.size or native_size
        self._fps = self._retime_fps or _stream_fps(self._stream) or options.fps
        if self._fps is None:
            self._container.close()
            raise SourceError(f"cannot tell the frame rate of {description}: give fps")
        super().__init__(description, self._fps if pace else None)
        self._packets = self._container.demux(self._stream)
        self._decoded: collections.deque[av.VideoFrame] = collections.deque()
        self._first_time_s: float | None = None
        self._time_offset_s = 0.0
        self._last_pts_s = 0.0

    @property
    def fps(self) -> float:
        return float(self._fps)

    @property
    def frame_count(self) -> int | None:
        """The container's frame count, or its duration at the frame rate; None for live sources."""
        if self._live:
            return None
        if self._stream.frames:
            return int(self._stream.frames)
        if self._stream.duration is not None and self._stream.time_base is not None:
            return max(1, round(float(self._stream.duration * self._stream.time_base) * self._fps))
        return None

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def live(self) -> bool:
        return self._live

    def reopen(self) -> None:
        if not self._live:
            super().reopen()
        if self._closed:
            raise SourceError(f"{self.description} is closed")
        self._container.close()
        self._container, self._stream = self._open_container(self.description)
        self._packets = self._container.demux(self._stream)
        self._decoded.clear()
        self._first_time_s = None
        self._time_offset_s = self._last_pts_s + 1.0 / self.fps
        if self._pacer is not None:
            self._pacer.reset()

    def _open_container(self, description: str) -> tuple[av.container.InputContainer, av.VideoStream]:
        try:
            container = av.open(self._url, format=self._container_format, options=self._container_options)
        except av.FFmpegError as error:
            raise SourceError(f"cannot open {description}: {error}") from error
        if not container.streams.video:
            container.close()
            raise SourceError(f"{description} has no video stream")
        stream = container.streams.video[0]
        if not self._live:
            stream.thread_type = "AUTO"
        return container, stream

    def _read(self) -> tuple[np.ndarray, float]:
        frame = self._next_av_frame()
        width, height = self._size
        try:
            image = frame.to_ndarray(format="rgb24", width=width, height=height)
        except av.FFmpegError as error:
            raise SourceError(f"cannot convert a frame of {self.description}: {error}") from error
        return image, self._pts_s(frame)

    def _next_av_frame(self) -> av.VideoFrame:
        while not self._decoded:
            try:
                packet = next(self._packets)
                self._decoded.extend(packet.decode())
            except BlockingIOError:
                time.sleep(0.001)
                self._packets = self._container.demux(self._stream)
            except av.FFmpegError as error:
                raise SourceError(f"cannot read {self.description}: {error}") from error
        return self._decoded.popleft()

    def _pts_s(self, frame: av.VideoFrame) -> float:
        if self._retime_fps is not None or frame.time is None:
            return self._next_index / self.fps
        if self._first_time_s is None:
            self._first_time_s = frame.time
        self._last_pts_s = self._time_offset_s + frame.time - self._first_time_s
        return self._last_pts_s

    def _release(self) -> None:
        self._container.close()


def _stream_fps(stream: av.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return rate
    return None


def _is_camera(spec: str) -> bool:
    return spec.isdigit() or _is_device_path(spec)


def _is_device_path(text: str) -> bool:
    if sys.platform.startswith("linux"):
        return text.startswith("/dev/")
    if sys.platform == "win32":
        return text.startswith("video=")
    return False


def _open_camera(request: SourceRequest) -> AVSource:
    options = request.options
    url, container_format, description = _camera_input(request.spec)
    container_options = {}
    if options.size is not None:
        container_options["video_size"] = f"{options.size[0]}x{options.size[1]}"
    if options.fps is not None:
        container_options["framerate"] = f"{options.fps:g}"
    elif container_format == "avfoundation":
        container_options["framerate"] = "30"
    return AVSource(url, description, options, container_format, container_options, live=True)


def _camera_input(text: str) -> tuple[str, str, str]:
    """(url, PyAV format, description) of a camera index or device path on this platform."""
    if sys.platform.startswith("linux"):
        path = f"/dev/video{text}" if text.isdigit() else text
        if not Path(path).exists():
            raise SourceError(f"no camera at {path}: is it plugged in? (v4l2-ctl --list-devices lists cameras)")
        return path, "v4l2", f"camera {path}"
    if sys.platform == "darwin":
        if not text.isdigit():
            raise SourceError(f"on macOS a camera is given by its index (0, 1, ...), got {text!r}")
        return f"{text}:none", "avfoundation", f"camera {text}"
    if sys.platform == "win32":
        if text.isdigit():
            raise SourceError(
                "on Windows name the camera, video=NAME (ffmpeg -list_devices true -f dshow -i dummy lists names)"
            )
        return text, "dshow", f"camera {text}"
    raise SourceError(f"cameras are not supported on {sys.platform}")


def _open_lavfi(request: SourceRequest) -> AVSource:
    graph, options = request.spec[len(LAVFI_PREFIX) :], request.options
    if not graph:
        raise SourceError("lavfi: needs a filter graph, for example lavfi:testsrc=size=320x240:rate=30")
    if "lavfi" not in av.formats_available:
        raise SourceError("this build of PyAV's FFmpeg has no lavfi input")
    return AVSource(graph, f"lavfi graph {graph!r}", options, container_format="lavfi", live=True, pace=options.pace)


def _open_video_file(request: SourceRequest) -> AVSource:
    path = Path(request.spec).expanduser()
    return AVSource(str(path), f"video file {request.spec}", request.options, pace=request.options.pace)


CAMERA_SOURCE = SourceKind("a camera index (0) or device path (/dev/video0, or video=NAME on Windows)", _is_camera, _open_camera)
def _check_lavfi(spec: str) -> None:
    if not spec[len(LAVFI_PREFIX) :].strip():
        raise SourceError("lavfi: needs a filter graph, for example lavfi:testsrc=size=320x240:rate=30")


LAVFI_SOURCE = SourceKind(f"{LAVFI_PREFIX}GRAPH", lambda spec: spec.startswith(LAVFI_PREFIX), _open_lavfi, _check_lavfi)
VIDEO_FILE_SOURCE = SourceKind("a video file", lambda spec: Path(spec).expanduser().is_file(), _open_video_file)
