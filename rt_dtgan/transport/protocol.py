"""The wire protocol of rt-dtgan's ZeroMQ transport (docs/protocol.md is its specification).

A message is a ZeroMQ multipart message ``[header, payload...]``. The header is a UTF-8
JSON object of at most MAX_HEADER_BYTES; payload frames are images, one per frame, each
either raw ``rgb24`` (height x width x 3 uint8, row-major, exactly h*w*3 bytes) or a
baseline ``jpeg`` file. Nothing is ever unpickled: headers are parsed with ``json`` and
checked field by field, images are checked for size before any pixel is decoded.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 4096
IMAGE_FORMATS = ("rgb24", "jpeg")
JPEG_QUALITY_RANGE = (2, 31)
DEFAULT_JPEG_QUALITY = 4
MAX_SEQ = 2**53 - 1  # seq and stream ids stay exact in every JSON implementation
MAX_TIMESTAMP = 2**63 - 1


class MessageType:
    """Message type names, as they appear in the header's ``type`` field."""

    OPEN = "OPEN"
    OPENED = "OPENED"
    FRAME = "FRAME"
    RESULT = "RESULT"
    CALIBRATE = "CALIBRATE"
    CALIBRATED = "CALIBRATED"
    CLOSE = "CLOSE"
    CLOSED = "CLOSED"
    PING = "PING"
    PONG = "PONG"
    ERROR = "ERROR"
    READY = "READY"


CLIENT_REQUESTS = (MessageType.OPEN, MessageType.FRAME, MessageType.CALIBRATE, MessageType.CLOSE, MessageType.PING)
WORKER_REPLIES = (
    MessageType.OPENED,
    MessageType.RESULT,
    MessageType.CALIBRATED,
    MessageType.CLOSED,
    MessageType.PONG,
    MessageType.ERROR,
)
STREAM_REQUESTS = (MessageType.FRAME, MessageType.CALIBRATE, MessageType.CLOSE)
IMAGE_COUNTS = {  # how many image payload frames each request may carry: (least, most)
    MessageType.OPEN: (1, 2),
    MessageType.FRAME: (1, 1),
    MessageType.CALIBRATE: (0, 1),
    MessageType.CLOSE: (0, 0),
    MessageType.PING: (0, 0),
}


class ErrorCode(IntEnum):
    """Numeric codes of ERROR replies (HTTP-like, so that their meaning is easy to guess)."""

    BAD_MESSAGE = 400
    UNKNOWN_STREAM = 404
    TOO_LARGE = 413
    UNSUPPORTED_FORMAT = 415
    BAD_IMAGE = 422
    UNSUPPORTED_VERSION = 426
    STREAM_LIMIT = 429
    ENGINE_FAILURE = 500
    UNAVAILABLE = 503


class ProtocolError(ValueError):
    """A message breaks the protocol. ``code`` goes into the ERROR reply; ``stream`` and
    ``seq`` are echoed there when they could be read."""

    def __init__(self, code: ErrorCode, message: str, stream: int | None = None, seq: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.stream = stream
        self.seq = seq


@dataclass
class Request:
    """A parsed, validated client request. ``images`` are uint8 (S, S, 3) RGB crops."""

    type: str
    seq: int
    stream: int | None = None
    ts_ns: int | None = None
    images: list[np.ndarray] = field(default_factory=list)
    reply_format: str = "rgb24"
    jpeg_quality: int = DEFAULT_JPEG_QUALITY


def encode_header(message_type: str, **fields: Any) -> bytes:
    """The JSON header of a message: ``{"v": 1, "type": ..., **fields}``; None fields are left out."""
    header = {"v": PROTOCOL_VERSION, "type": message_type}
    header.update({key: value for key, value in fields.items() if value is not None})
    return json.dumps(header, separators=(",", ":")).encode()


def error_message(code: ErrorCode, text: str, stream: int | None = None, seq: int | None = None) -> list[bytes]:
    return [encode_header(MessageType.ERROR, code=int(code), message=text[:500], stream=stream, seq=seq)]


def parse_header(frame: bytes | memoryview) -> dict[str, Any]:
    """A header frame -> its JSON object, with ``v`` and ``type`` checked. Raises ProtocolError."""
    if len(frame) > MAX_HEADER_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"header is {len(frame)} bytes; at most {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(frame).decode("utf-8"))
    except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, or too deep or too long a number
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"header is not UTF-8 JSON: {error}") from None
    if not isinstance(header, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "header must be a JSON object")
    stream, seq = _optional_int(header, "stream"), _optional_int(header, "seq")
    if header.get("v") != PROTOCOL_VERSION:
        message = f"protocol version {str(header.get('v'))[:20]!r}; this end speaks {PROTOCOL_VERSION}"
        raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION, message, stream, seq)
    if not isinstance(header.get("type"), str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "header needs a string 'type'", stream, seq)
    return header


def parse_request(parts: list, crop_size: int, codec: JpegCodec) -> Request:
    """``[header, image...]`` from a client -> a Request with decoded crops of ``crop_size``.

    Checks the type, the part count, every field's type and range, and each image's format,
    declared size and byte length before decoding it. Raises ProtocolError.
    """
    if not parts:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "empty message")
    header = parse_header(_buffer(parts[0]))
    kind = header["type"]
    seq = _optional_int(header, "seq")
    stream = _optional_int(header, "stream")
    if kind not in CLIENT_REQUESTS:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"unknown request type {kind[:40]!r}", stream, seq)
    if seq is None:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{kind} needs an integer 'seq' in [0, 2^53)", stream, None)
    if kind in STREAM_REQUESTS and stream is None:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{kind} needs an integer 'stream'", None, seq)
    least, most = IMAGE_COUNTS[kind]
    images = parts[1:]
    if not least <= len(images) <= most:
        message = f"{kind} carries {least} to {most} images, got {len(images)}"
        raise ProtocolError(ErrorCode.BAD_MESSAGE, message, stream, seq)
    request = Request(kind, seq, stream, _optional_int(header, "ts_ns", MAX_TIMESTAMP))
    try:
        if images:
            image_format = _image_format(header)
            _check_dimensions(header, crop_size)
            request.images = [decode_image(_buffer(part), image_format, crop_size, codec) for part in images]
        if kind == MessageType.OPEN:
            request.reply_format = _reply_format(header)
            request.jpeg_quality = _jpeg_quality(header)
    except ProtocolError as error:
        error.stream, error.seq = stream, seq
        raise
    return request


def encode_image(
    crop: np.ndarray, image_format: str, codec: JpegCodec, jpeg_quality: int = DEFAULT_JPEG_QUALITY
) -> np.ndarray | bytes:
    """uint8 (S, S, 3) RGB -> a payload frame: the array itself for rgb24 (sent zero-copy),
    JPEG file bytes for jpeg (``jpeg_quality`` is the quantiser scale, 2 best to 31 smallest)."""
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {crop.dtype} {crop.shape}")
    if image_format == "rgb24":
        return np.ascontiguousarray(crop)
    if image_format == "jpeg":
        return codec.encode(crop, jpeg_quality)
    raise ValueError(f"unknown image format {image_format!r}; choose from {IMAGE_FORMATS}")


def decode_image(payload: memoryview | bytes, image_format: str, size: int, codec: JpegCodec) -> np.ndarray:
    """A payload frame -> uint8 (size, size, 3) RGB. Raises ProtocolError (BAD_IMAGE) when the
    bytes are not an image of exactly that size; a JPEG's size is read before decoding it."""
    if image_format == "rgb24":
        if len(payload) != size * size * 3:
            message = f"rgb24 payload is {len(payload)} bytes; {size}x{size} needs {size * size * 3}"
            raise ProtocolError(ErrorCode.BAD_IMAGE, message)
        return np.frombuffer(payload, dtype=np.uint8).reshape(size, size, 3)
    if image_format != "jpeg":
        raise ProtocolError(ErrorCode.UNSUPPORTED_FORMAT, f"image format {str(image_format)[:40]!r}; known: {IMAGE_FORMATS}")
    if jpeg_dimensions(payload) != (size, size):
        raise ProtocolError(ErrorCode.BAD_IMAGE, f"jpeg payload is not a {size}x{size} baseline JPEG")
    return codec.decode(bytes(payload), size)


def jpeg_dimensions(data: memoryview | bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's first start-of-frame marker, or None if there is none."""
    data = bytes(data[:65536])
    if not data.startswith(b"\xff\xd8"):
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        is_start_of_frame = 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)
        if is_start_of_frame and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return height, width
        if length < 2:
            return None
        position += 2 + length
    return None


def payload_bytes(parts: list) -> int:
    return sum(len(_buffer(part)) for part in parts)


def _buffer(part) -> memoryview | bytes:
    """The bytes of a received part (a zmq.Frame when received with copy=False)."""
    return part.buffer if hasattr(part, "buffer") else part


def _optional_int(header: dict, key: str, limit: int = MAX_SEQ) -> int | None:
    """``header[key]`` if it is an integer in [0, limit], else None."""
    value = header.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit:
        return value
    return None


def _image_format(header: dict) -> str:
    image_format = header.get("format", "rgb24")
    if image_format not in IMAGE_FORMATS:
        raise ProtocolError(ErrorCode.UNSUPPORTED_FORMAT, f"image format {str(image_format)[:40]!r}; known: {IMAGE_FORMATS}")
    return image_format


def _reply_format(header: dict) -> str:
    reply_format = header.get("reply_format", "rgb24")
    if reply_format not in IMAGE_FORMATS:
        raise ProtocolError(ErrorCode.UNSUPPORTED_FORMAT, f"reply format {str(reply_format)[:40]!r}; known: {IMAGE_FORMATS}")
    return reply_format


def _jpeg_quality(header: dict) -> int:
    quality = header.get("jpeg_quality", DEFAULT_JPEG_QUALITY)
    low, high = JPEG_QUALITY_RANGE
    if not isinstance(quality, int) or isinstance(quality, bool) or not low <= quality <= high:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"jpeg_quality must be an integer in [{low}, {high}]")
    return quality


def _check_dimensions(header: dict, size: int) -> None:
    width, height = header.get("width"), header.get("height")
    if width != size or height != size or isinstance(width, bool) or isinstance(height, bool):
        message = f"images must be {size}x{size} (width, height); header says {str(width)[:20]}x{str(height)[:20]}"
        raise ProtocolError(ErrorCode.BAD_IMAGE, message)


class JpegCodec:
    """Baseline JPEG (4:2:0, full range) through PyAV's mjpeg codec. One per thread: the
    encoders and the decoder it keeps are not thread-safe."""

    def __init__(self) -> None:
        self._encoders: dict[tuple[int, int, int], Any] = {}
        self._decoders: dict[int, Any] = {}

    def encode(self, crop: np.ndarray, quality: int) -> bytes:
        """uint8 (H, W, 3) RGB -> JPEG file bytes; ``quality`` is the quantiser scale, 2 to 31."""
        import av

        height, width = crop.shape[:2]
        key = (width, height, quality)
        if key not in self._encoders:
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
            encoder.time_base = Fraction(1, 30)
            encoder.qmin = encoder.qmax = quality
            self._encoders[key] = encoder
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24").reformat(format="yuvj420p")
        return b"".join(bytes(packet) for packet in self._encoders[key].encode(frame))

    def decode(self, data: bytes, size: int) -> np.ndarray:
        """JPEG bytes -> uint8 (size, size, 3) RGB; the decoder refuses images larger than that."""
        import av

        decoder = self._decoders.pop(size, None)
        if decoder is None:
            decoder = av.CodecContext.create("mjpeg", "r")
            decoder.options = {"max_pixels": str(size * size)}
        try:
            frames = decoder.decode(av.Packet(data))
        except av.FFmpegError as error:
            raise ProtocolError(ErrorCode.BAD_IMAGE, f"undecodable jpeg: {error}") from None
        self._decoders[size] = decoder
        if len(frames) != 1 or (frames[0].height, frames[0].width) != (size, size):
            raise ProtocolError(ErrorCode.BAD_IMAGE, f"jpeg payload does not decode to one {size}x{size} image")
        return frames[0].to_ndarray(format="rgb24")
