"""YUV4MPEG2 (Y4M) output: raw video with a one-line header, readable by ffplay and ffmpeg.

Stream: ``YUV4MPEG2 W<w> H<h> F<num>:<den> Ip A1:1 C<chroma> XCOLORRANGE=LIMITED\\n``, then
per frame ``FRAME\\n`` and the Y, U (Cb), V (Cr) planes, 8 bits, BT.601 limited range
(Y 16..235, chroma 16..240). Chroma ``420jpeg`` is 2x2-averaged chroma (centred siting),
each plane ceil(w/2) x ceil(h/2); ``444`` keeps full-resolution chroma.
"""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from rt_dtgan.media.errors import PipeClosedError, SinkError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.sink import Sink, SinkKind, frame_rate_fraction

CHROMA_FORMATS = ("420jpeg", "444")
# BT.601 limited range, RGB in 0..255 -> Y in 16..235, Cb and Cr in 16..240 (rows: Y, Cb, Cr).
RGB_TO_YCBCR = np.array(
    [
        [0.256788, 0.504129, 0.097906],
        [-0.148223, -0.290993, 0.439216],
        [0.439216, -0.367788, -0.071427],
    ],
    dtype=np.float32,
)
YCBCR_OFFSET = (16.0, 128.0, 128.0)
YCBCR_TRANSFORM = np.hstack([RGB_TO_YCBCR, np.array(YCBCR_OFFSET, np.float32)[:, None]])  # (3, 4): matrix | offset


def y4m_header(width: int, height: int, fps: float | Fraction, chroma: str = "420jpeg") -> bytes:
    """The stream header line, newline included."""
    if chroma not in CHROMA_FORMATS:
        raise SinkError(f"Y4M chroma must be one of {CHROMA_FORMATS}, got {chroma!r}")
    rate = frame_rate_fraction(fps)
    return (
        f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C{chroma} XCOLORRANGE=LIMITED\n"
    ).encode("ascii")


def y4m_frame(image: np.ndarray, chroma: str = "420jpeg") -> bytes:
    """``FRAME\\n`` and the Y, Cb, Cr planes of an (H, W, 3) uint8 RGB image.

    OpenCV's SIMD kernels do the work (a numpy version took 3.8 ms at 680x676, this one
    0.3): the matrix is applied with rounding to 8 bits (``cv2.transform``); for 4:2:0 the
    RGB is first averaged over 2x2 blocks (``INTER_AREA`` at half size, edges repeated where
    a side is odd), which equals averaging the chroma itself, the conversion being linear.
    """
    ycbcr = cv2.transform(image, YCBCR_TRANSFORM)
    if chroma == "444":
        small = ycbcr
    else:
        height, width = image.shape[:2]
        even = cv2.copyMakeBorder(image, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
        halved = cv2.resize(even, ((width + 1) // 2, (height + 1) // 2), interpolation=cv2.INTER_AREA)
        small = cv2.transform(halved, YCBCR_TRANSFORM)
    return b"FRAME\n" + ycbcr[..., 0].tobytes() + small[..., 1].tobytes() + small[..., 2].tobytes()


class Y4MSink(Sink):
    """Writes Y4M to a binary stream (default: standard output, for ``| ffplay -``); closes
    the stream on close() only when ``close_stream``.

    When the reader goes away (BrokenPipeError), ``write`` raises PipeClosedError with a
    one-line message, and standard output is pointed at the null device so that Python's
    exit does not print a second BrokenPipeError.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float | Fraction,
        stream: BinaryIO | None = None,
        chroma: str = "420jpeg",
        description: str = "standard output (Y4M)",
        close_stream: bool = False,
    ) -> None:
        super().__init__(description, width, height, fps)
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._chroma = chroma
        self._close_stream = close_stream
        self._send(y4m_header(width, height, self.fps, chroma))

    def _write(self, frame: Frame) -> None:
        self._send(y4m_frame(frame.image, self._chroma))

    def _send(self, data: bytes) -> None:
        try:
            self._stream.write(data)
            self._stream.flush()
        except BrokenPipeError as error:
            self._closed = True
            self._silence_stream()
            message = f"{self.description}: the reader closed the pipe (the viewer was quit); stopping"
            raise PipeClosedError(message) from error

    def _silence_stream(self) -> None:
        """Point the broken stream's descriptor at the null device, so later flushes succeed."""
        try:
            descriptor = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, descriptor)
        os.close(null)

    def _release(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence_stream()
        finally:
            if self._close_stream:
                self._stream.close()


def _open_y4m_file(spec: str, width: int, height: int, fps: float | Fraction) -> Y4MSink:
    path = Path(spec)
    try:
        stream = path.open("wb")
    except OSError as error:
        raise SinkError(f"cannot write {path}: {error}") from error
    try:
        return Y4MSink(width, height, fps, stream=stream, description=f"Y4M file {path}", close_stream=True)
    except SinkError:
        stream.close()
        raise


def _open_stdout(spec: str, width: int, height: int, fps: float | Fraction) -> Y4MSink:
    return Y4MSink(width, height, fps)


Y4M_PIPE_OUTPUT = SinkKind("- (Y4M on stdout)", lambda spec: spec == "-", _open_stdout)
Y4M_FILE_OUTPUT = SinkKind("a Y4M file (.y4m)", lambda spec: Path(spec).suffix.lower() == ".y4m", _open_y4m_file)
