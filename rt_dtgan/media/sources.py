"""Video sources: cameras, video files, image sequences, lavfi test graphs and generated frames.

``open_source(spec)`` picks one from a spec:

- ``0`` or ``"0"``, ``/dev/video0``: a camera (v4l2 on Linux, avfoundation on macOS; on
  Windows name it, ``video=NAME``, for dshow). ``size`` and ``fps`` are requested from the
  device. Live: an end of stream is a disconnect, and ``reopen()`` reconnects.
- ``clip.mp4`` (any container PyAV reads): played at its own rate with ``pace=True``, as
  fast as it decodes with ``pace=False``; ``fps`` re-times it (no frame dropped or repeated).
- ``frames/`` or ``"frames/*.png"``: an image sequence in natural order, at ``fps`` (default 25).
- ``lavfi:testsrc=size=320x240:rate=30``: an ffmpeg lavfi graph opened exactly like a camera
  (same class, live, reopenable), so the device path is testable without a camera.
- ``synthetic:SEED``: generated faces, made by the ``synthetic_factory`` argument (the media
  layer does not import the generator; see ``GeneratedSource`` for a ready adapter).

Every source iterates ``Frame`` (``image``: (H, W, 3) uint8 RGB of ``size``), has ``fps``,
``size`` = (width, height), ``live``, ``paced``, an idempotent ``close()``, and is a context
manager. ``size`` resizes frames when it differs from the source's own size. For cameras
``size`` and ``fps`` are requests to the device; a lavfi graph sets its own rate.
"""

from __future__ import annotations

import collections
import glob
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rt_dtgan.media.errors import SourceError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.pacing import Pacer

LAVFI_PREFIX = "lavfi:"
SYNTHETIC_PREFIX = "synthetic:"
DEFAULT_IMAGE_FPS = 25.0
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"})
SOURCE_SPEC_HELP = (
    "a source is a camera index (0), a device path (/dev/video0, or video=NAME on Windows), a video file, "
    "a folder or glob of images, lavfi:GRAPH, or synthetic:SEED"
)


@dataclass(frozen=True)
class SourceOptions:
    """size: (width, height) in pixels, or None for the source's own; fps: frames per second,
    or None for the source's own (image sequences: 25); pace: play files and graphs in real time."""

    size: tuple[int, int] | None = None
    fps: float | None = None
    pace: bool = True

    def __post_init__(self) -> None:
        if self.size is not None:
            if len(self.size) != 2 or not all(isinstance(side, int) and side > 0 for side in self.size):
                raise SourceError(f"size must be (width, height), two positive integers, got {self.size}")
            object.__setattr__(self, "size", tuple(self.size))
        if self.fps is not None and not self.fps > 0:
            raise SourceError(f"fps must be > 0, got {self.fps}")


SyntheticFactory = Callable[[str, SourceOptions], "Source"]


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None or 0 in (int(match[1]), int(match[2])):
        raise SourceError(f"a size is WIDTHxHEIGHT with positive integers, for example 640x480; got {text!r}")
    return int(match[1]), int(match[2])


class Source(ABC):
    """An iterator of Frame with fps, size and an idempotent close(); see the module docstring."""

    def __init__(self, description: str, pace_fps: float | None) -> None:
        self.description = description
        self._pacer = Pacer(pace_fps) if pace_fps else None
        self._next_index = 0
        self._closed = False

    @property
    @abstractmethod
    def fps(self) -> float:
        """Frames per second of the source (as played)."""

    @property
    @abstractmethod
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames it yields."""

    @property
    def live(self) -> bool:
        """True for cameras (and lavfi graphs): an end is a disconnect, and reopen() reconnects."""
        return False

    @property
    def frame_count(self) -> int | None:
        """How many frames it will give, where known ahead (for progress bars), else None."""
        return None

    @property
    def paced(self) -> bool:
        """True when frames are released in real time (a camera, or playback with pace=True)."""
        return self._pacer is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def reopen(self) -> None:
        """Reconnect a live source; raises SourceError when it is still unavailable."""
        raise SourceError(f"{self.description} is not live and cannot be reopened")

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        image, pts_s = self._read()
        return self._stamp(image, pts_s)

    def close(self) -> None:
        """Release the device or file; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        width, height = self.size
        return f"{type(self).__name__}({self.description}, {width}x{height} at {self.fps:g} fps)"

    @abstractmethod
    def _read(self) -> tuple[np.ndarray, float]:
        """The next image ((H, W, 3) uint8 RGB) and its time in seconds from the first frame;
        raises StopIteration at the end and SourceError when reading fails."""

    @abstractmethod
    def _release(self) -> None:
        """Close what the source holds open."""

    def _stamp(self, image: np.ndarray, pts_s: float) -> Frame:
        if self._pacer is not None:
            self._pacer.wait(pts_s)
        frame = Frame(image=image, index=self._next_index, capture_ns=time.monotonic_ns(), pts_s=pts_s)
        self._next_index += 1
        return frame


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


class ImageSequenceSource(Source):
    """Images read in the given order at ``fps``; each is converted to RGB and resized to ``size``
    (default: the first image's size)."""

    def __init__(self, paths: Sequence[Path], description: str, options: SourceOptions) -> None:
        if not paths:
            raise SourceError(f"no images in {description}")
        self._paths = list(paths)
        self._fps = options.fps or DEFAULT_IMAGE_FPS
        self._first_image = _read_image(self._paths[0], options.size)
        self._size = (self._first_image.shape[1], self._first_image.shape[0])
        super().__init__(description, self._fps if options.pace else None)

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def frame_count(self) -> int:
        return len(self._paths)

    def _read(self) -> tuple[np.ndarray, float]:
        index = self._next_index
        if index >= len(self._paths):
            raise StopIteration
        image = self._first_image if index == 0 else _read_image(self._paths[index], self._size)
        return image, index / self._fps

    def _release(self) -> None:
        """Nothing is held open between images."""


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


def open_source(
    spec: str | int,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    pace: bool = True,
    synthetic_factory: SyntheticFactory | None = None,
) -> Source:
    """Open the source that ``spec`` names (see the module docstring); raises SourceError."""
    options = SourceOptions(size=size, fps=fps, pace=pace)
    text = str(spec).strip()
    if not text:
        raise SourceError(f"empty source spec: {SOURCE_SPEC_HELP}")
    if text.startswith(SYNTHETIC_PREFIX):
        if synthetic_factory is None:
            raise SourceError(
                f"{text!r} needs a synthetic_factory: pass the synthetic generator's factory to open_source"
            )
        return synthetic_factory(text[len(SYNTHETIC_PREFIX) :], options)
    if text.startswith(LAVFI_PREFIX):
        return _open_lavfi(text[len(LAVFI_PREFIX) :], options)
    if text.isdigit() or _is_device_path(text):
        return _open_camera(text, options)
    if glob.has_magic(text):
        return _open_glob(text, options)
    path = Path(text).expanduser()
    if path.is_dir():
        return _open_image_folder(path, options)
    if path.is_file():
        return AVSource(str(path), f"video file {text}", options, pace=options.pace)
    raise SourceError(f"no such file or folder: {text} ({SOURCE_SPEC_HELP})")


def _open_lavfi(graph: str, options: SourceOptions) -> AVSource:
    if not graph:
        raise SourceError("lavfi: needs a filter graph, for example lavfi:testsrc=size=320x240:rate=30")
    if "lavfi" not in av.formats_available:
        raise SourceError("this build of PyAV's FFmpeg has no lavfi input")
    return AVSource(graph, f"lavfi graph {graph!r}", options, container_format="lavfi", live=True, pace=options.pace)


def _is_device_path(text: str) -> bool:
    if sys.platform.startswith("linux"):
        return text.startswith("/dev/")
    if sys.platform == "win32":
        return text.startswith("video=")
    return False


def _open_camera(text: str, options: SourceOptions) -> AVSource:
    url, container_format, description = _camera_input(text)
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


def _open_glob(pattern: str, options: SourceOptions) -> ImageSequenceSource:
    paths = sorted((Path(name) for name in glob.glob(pattern)), key=_natural_key)
    files = [path for path in paths if path.is_file()]
    return ImageSequenceSource(files, f"image sequence {pattern}", options)


def _open_image_folder(folder: Path, options: SourceOptions) -> ImageSequenceSource:
    images = (path for path in folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())
    files = sorted(images, key=_natural_key)
    if not files:
        raise SourceError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {folder}")
    return ImageSequenceSource(files, f"image folder {folder}", options)


def _natural_key(path: Path) -> list[object]:
    """Sort key putting frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def _read_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB, resized to ``size`` = (width, height) if given."""
    width, height = size if size is not None else (None, None)
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            return frame.to_ndarray(format="rgb24", width=width, height=height)
    except (av.FFmpegError, StopIteration) as error:
        raise SourceError(f"cannot read image {path}: {error or 'no picture in it'}") from error


def _stream_fps(stream: av.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return rate
    return None
