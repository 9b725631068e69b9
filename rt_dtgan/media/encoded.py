"""Encoded outputs through PyAV: H.264 files (.mp4, .mkv, .mov) and MPEG-TS over UDP.

H.264 comes from libx264 when this FFmpeg build has it, else MPEG-4 part 2 (``mpeg4``).
Pixels are yuv420p; each written frame is encoded as exactly one frame, with the time stamp
``n / fps`` for the n-th written frame (constant frame rate). Odd widths or heights are
padded by one repeated row or column, as yuv420p needs even sizes. Datasets' exact RGB
videos are written by ``synth.dataset.VideoWriter`` instead (libx264rgb, qp 0).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from rt_dtgan.endpoints import parse_endpoint
from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.sink import Sink, SinkKind

FILE_EXTENSIONS = (".mp4", ".mkv", ".mov")
UDP_PACKET_SIZE = 1316  # seven 188-byte TS packets: fits one Ethernet frame
MPEG4_QSCALE = 3  # fixed quantiser for the mpeg4 fallback: 1 best, 31 worst


def h264_codec_name() -> str:
    """'libx264' when available, else 'mpeg4'."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _encoder_options(codec_name: str, live: bool) -> dict[str, str]:
    if codec_name != "libx264":
        return {}
    if live:
        return {"preset": "ultrafast", "tune": "zerolatency"}
    return {"preset": "superfast", "crf": "18"}


class EncodedSink(Sink):
    """Encodes frames with PyAV into ``url`` (a file path, or udp://HOST:PORT with format 'mpegts').

    Files use libx264 superfast at CRF 18 (about 8 ms a 512x512 frame on two busy CPU cores);
    ``live`` selects low-latency encoding instead (ultrafast, zerolatency, a keyframe every
    second so a viewer can join at any time).
    """

    def __init__(
        self,
        url: str,
        width: int,
        height: int,
        fps: float | Fraction,
        container_format: str | None = None,
        live: bool = False,
        description: str | None = None,
    ) -> None:
        super().__init__(description or url, width, height, fps)
        codec_name = h264_codec_name()
        try:
            self._container = av.open(url, mode="w", format=container_format)
        except av.FFmpegError as error:
            raise SinkError(f"cannot open {self.description} for writing: {error}") from error
        try:
            options = _encoder_options(codec_name, live)
            self._stream = self._container.add_stream(codec_name, rate=self.fps, options=options)
            self._stream.width = width + width % 2
            self._stream.height = height + height % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.codec_context.time_base = 1 / self.fps
            if codec_name == "mpeg4":
                self._stream.codec_context.qscale = MPEG4_QSCALE
            if live:
                self._stream.codec_context.gop_size = max(1, round(self.fps))
        except (av.FFmpegError, ValueError) as error:
            self._container.close()
            raise SinkError(f"cannot set up {codec_name} for {self.description}: {error}") from error
        self._written = 0

    @property
    def codec_name(self) -> str:
        return self._stream.codec_context.name

    def _write(self, frame: Frame) -> None:
        image = frame.image
        if image.shape[:2] != (self._stream.height, self._stream.width):
            image = np.pad(image, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        # OpenCV's SIMD conversion (BT.601 limited range, as swscale's default): 0.4 ms a
        # 680x676 frame against about 3 ms inside the encoder.
        video_frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        video_frame.pts = self._written
        video_frame.time_base = self._stream.codec_context.time_base
        self._mux(video_frame)
        self._written += 1

    def _mux(self, video_frame: av.VideoFrame | None) -> None:
        try:
            self._container.mux(self._stream.encode(video_frame))
        except av.FFmpegError as error:
            raise SinkError(f"cannot write to {self.description}: {error}") from error

    def _release(self) -> None:
        try:
            self._mux(None)
        finally:
            self._container.close()


def open_video_file(path: str, width: int, height: int, fps: float | Fraction) -> EncodedSink:
    """An H.264 (or MPEG-4) file; the container follows the extension (.mp4, .mkv, .mov)."""
    return EncodedSink(path, width, height, fps, description=f"video file {path}")


def open_udp_stream(url: str, width: int, height: int, fps: float | Fraction) -> EncodedSink:
    """MPEG-TS over UDP to ``udp://HOST:PORT``, for an OBS Media Source or ffplay."""
    separator = "&" if "?" in url else "?"
    packet_url = url if "pkt_size=" in url else f"{url}{separator}pkt_size={UDP_PACKET_SIZE}"
    return EncodedSink(packet_url, width, height, fps, container_format="mpegts", live=True, description=url)


def _is_video_file(spec: str) -> bool:
    return Path(spec).suffix.lower() in FILE_EXTENSIONS


VIDEO_FILE_OUTPUT = SinkKind(f"a video file ({', '.join(FILE_EXTENSIONS)})", _is_video_file, open_video_file)
def _check_udp(spec: str) -> None:
    try:
        parse_endpoint(spec, ("udp",), any_port=False)
    except ValueError as error:
        raise SinkError(str(error)) from error


UDP_OUTPUT = SinkKind("udp://HOST:PORT", lambda spec: spec.startswith("udp://"), open_udp_stream, _check_udp)
