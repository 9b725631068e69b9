"""The wire protocol of rt-dtgan's ZeroMQ transport (docs/protocol.md is its specification).

A message is a ZeroMQ multipart message ``[header, payload...]``. The header is a UTF-8
JSON object of at most MAX_HEADER_BYTES; payload frames are images, each either raw
``rgb24`` (height x width x 3 uint8, row-major, exactly h*w*3 bytes) or a baseline ``jpeg``
file, and, for a model that reads the face mesh or warps the portrait, each face's mesh
after its image and the parts of a KeypointMotion in a RESULT (raw little-endian float32
and uint8 arrays). Nothing is ever unpickled: headers are parsed with ``json`` and checked
field by field, payloads are checked for size before anything is decoded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction
from typing import Any

import numpy as np

from rt_dtgan.config import MESH_POINTS, ModelConfig, PreprocessConfig
from rt_dtgan.models.warp import MOVING_POINTS
from rt_dtgan.runtime.warping import KeypointMotion

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 4096
IMAGE_FORMATS = ("rgb24", "jpeg")
JPEG_QUALITY_RANGE = (2, 31)
DEFAULT_JPEG_QUALITY = 4
STRENGTH_RANGE = (0.0, 3.0)  # a warping model's expression strength (StreamEngine.set_strength)
MAX_SEQ = 2**53 - 1  # seq and stream ids stay exact in every JSON implementation
MAX_TIMESTAMP = 2**63 - 1
FLOAT32_LE = np.dtype("<f4")


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
FACE_COUNTS = {  # how many faces each request may carry: (least, most); a face is an image, then its mesh if flagged
    MessageType.OPEN: (1, 2),
    MessageType.FRAME: (1, 1),
    MessageType.CALIBRATE: (0, 1),
    MessageType.CLOSE: (0, 0),
    MessageType.PING: (0, 0),
}


class ErrorCode(IntEnum):
    """Numeric codes of ERROR replies (HTTP-like, so that their meaning is easy to guess).
    BAD_IMAGE covers every payload: images, meshes and the arrays of a motion."""

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
    """A parsed, validated client request. ``images`` are uint8 (S, S, 3) RGB crops;
    ``meshes``, float32 (MESH_POINTS, 2) in eye units, one per image when the message
    carried meshes, else empty. ``strength``: an OPEN's expression strength."""

    type: str
    seq: int
    stream: int | None = None
    ts_ns: int | None = None
    images: list[np.ndarray] = field(default_factory=list)
    meshes: list[np.ndarray] = field(default_factory=list)
    reply_format: str = "rgb24"
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    strength: float = 1.0


@dataclass(frozen=True)
class ModelInfo:
    """What a worker's model reads and gives, as PONG, OPENED and READY tell it (``"model"``).
    A model that ``needs_mesh`` takes each face as its image and its mesh of ``mesh_points``;
    one that ``warps`` answers with a KeypointMotion of ``keypoints`` offsets and a
    ``flow_grid`` x ``flow_grid`` grid. Crops are aligned with the eye centres at
    ``left_eye`` and ``right_eye`` (fractions of the crop side, x then y)."""

    reads_mesh: bool = False
    warps: bool = False
    mesh_points: int = MESH_POINTS
    keypoints: int | None = None
    flow_grid: int | None = None
    left_eye: tuple[float, float] = PreprocessConfig.left_eye
    right_eye: tuple[float, float] = PreprocessConfig.right_eye

    @property
    def needs_mesh(self) -> bool:
        return self.reads_mesh or self.warps

    @classmethod
    def of(cls, config: ModelConfig) -> ModelInfo:
        warps = config.warps
        return cls(
            reads_mesh=config.reads_mesh,
            warps=warps,
            keypoints=len(MOVING_POINTS) if warps else None,
            flow_grid=config.generator.flow_grid if warps else None,
            left_eye=tuple(config.preprocess.left_eye),
            right_eye=tuple(config.preprocess.right_eye),
        )

    def to_json(self) -> dict[str, Any]:
        """The header field's value; ``keypoints`` and ``flow_grid`` only for a warping model."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}

    @classmethod
    def from_header(cls, header: dict) -> ModelInfo:
        """``header["model"]`` -> ModelInfo; a header without one is from a worker that predates
        it, and so serves a crop model. Raises ProtocolError (BAD_MESSAGE) when malformed."""
        model = header.get("model")
        if model is None:
            return cls()
        if not isinstance(model, dict):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "'model' must be a JSON object")
        reads_mesh, warps = _flag(model, "reads_mesh"), _flag(model, "warps")
        return cls(
            reads_mesh=reads_mesh,
            warps=warps,
            mesh_points=_positive(model, "mesh_points", MESH_POINTS),
            keypoints=_positive(model, "keypoints") if warps else None,
            flow_grid=_positive(model, "flow_grid") if warps else None,
            left_eye=_point(model, "left_eye", PreprocessConfig.left_eye),
            right_eye=_point(model, "right_eye", PreprocessConfig.right_eye),
        )

    def preprocess(self, size: int) -> PreprocessConfig:
        """How to align crops of ``size`` pixels for this model."""
        return PreprocessConfig(size=size, left_eye=self.left_eye, right_eye=self.right_eye)


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


def parse_request(parts: list, crop_size: int, codec: JpegCodec, needs_mesh: bool = False) -> Request:
    """``[header, payload...]`` from a client -> a Request with decoded crops of ``crop_size``
    and, where ``needs_mesh`` (the worker's model reads meshes or warps), their meshes.

    Checks the type, the part count, every field's type and range, each image's format,
    declared size and byte length before decoding it, and each mesh's length and values.
    Raises ProtocolError.
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
    request = Request(kind, seq, stream, _optional_int(header, "ts_ns", MAX_TIMESTAMP))
    try:
        with_meshes = _mesh_flag(header, kind, len(parts) - 1, needs_mesh)
        images, meshes = _split_faces(kind, parts[1:], with_meshes)
        if images:
            image_format = _image_format(header)
            _check_dimensions(header, crop_size)
            request.images = [decode_image(_buffer(part), image_format, crop_size, codec) for part in images]
            request.meshes = [decode_mesh(_buffer(part)) for part in meshes]
        if kind == MessageType.OPEN:
            request.reply_format = _reply_format(header)
            request.jpeg_quality = _jpeg_quality(header)
            request.strength = _strength(header)
    except ProtocolError as error:
        error.stream, error.seq = stream, seq
        raise
    return request


def _mesh_flag(header: dict, kind: str, payloads: int, needs_mesh: bool) -> bool:
    """Whether the faces of this request carry meshes: the header's ``mesh``, which must
    agree with the worker's model."""
    if FACE_COUNTS[kind] == (0, 0):
        return False
    flag = _get(header, "mesh", False)
    if not isinstance(flag, bool):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "'mesh' must be true or false")
    if flag and not needs_mesh:
        message = f"{kind} carries meshes, but this worker's model reads crops only: send no meshes"
        raise ProtocolError(ErrorCode.BAD_MESSAGE, message)
    if needs_mesh and payloads and not flag:
        message = (
            f"{kind} lacks the face mesh: this worker's model reads the face mesh or warps the portrait, so every face "
            f'is its image then its mesh ({MESH_POINTS} x 2 float32 little-endian) and the header says "mesh": true'
        )
        raise ProtocolError(ErrorCode.BAD_MESSAGE, message)
    return flag


def _split_faces(kind: str, payloads: list, with_meshes: bool) -> tuple[list, list]:
    """The payload frames -> (images, meshes), checking how many faces ``kind`` carries."""
    least, most = FACE_COUNTS[kind]
    per_face = 2 if with_meshes else 1
    if len(payloads) % per_face or not least <= len(payloads) // per_face <= most:
        shape = " (each face an image then its mesh)" if with_meshes else ""
        message = f"{kind} carries {least} to {most} faces{shape}, got {len(payloads)} payload frames"
        raise ProtocolError(ErrorCode.BAD_MESSAGE, message)
    return payloads[::per_face], payloads[1::2] if with_meshes else []


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


def encode_mesh(mesh: np.ndarray) -> np.ndarray:
    """float (MESH_POINTS, 2) finite, in eye units -> the payload: float32 little-endian x, y per point."""
    if mesh.shape != (MESH_POINTS, 2) or not np.isfinite(mesh).all():
        raise ValueError(f"expected a finite ({MESH_POINTS}, 2) face mesh, got {mesh.dtype} {mesh.shape}")
    return np.ascontiguousarray(mesh, dtype=FLOAT32_LE)


def decode_mesh(payload: memoryview | bytes) -> np.ndarray:
    """A mesh payload -> float32 (MESH_POINTS, 2). Raises ProtocolError (BAD_IMAGE) for a
    wrong byte count or a value that is not finite."""
    return _float_array(payload, (MESH_POINTS, 2), "mesh")


def encode_motion(
    motion: KeypointMotion, image_format: str, codec: JpegCodec, jpeg_quality: int = DEFAULT_JPEG_QUALITY
) -> list[np.ndarray | bytes]:
    """A KeypointMotion -> RESULT payloads: offsets (K, 2) float32 LE, and unless still, grid
    (G, G, 2) float32 LE, mask (S, S) uint8 and colour (an image in ``image_format``)."""
    payloads = [np.ascontiguousarray(motion.offsets, dtype=FLOAT32_LE)]
    if not motion.still:
        payloads.append(np.ascontiguousarray(motion.grid, dtype=FLOAT32_LE))
        payloads.append(np.ascontiguousarray(motion.mask, dtype=np.uint8))
        payloads.append(encode_image(motion.colour, image_format, codec, jpeg_quality))
    return payloads


def decode_motion(header: dict, payloads: list, model: ModelInfo, size: int, codec: JpegCodec) -> KeypointMotion:
    """A warping model's RESULT (header and payload frames) -> its KeypointMotion, every part
    checked against ``model`` and the crop ``size``. Raises ProtocolError."""
    motion = header.get("motion")
    if not isinstance(motion, dict) or not isinstance(motion.get("still"), bool):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a warping model's RESULT needs \"motion\": {\"still\": true or false}")
    expected = 1 if motion["still"] else 4
    if len(payloads) != expected:
        message = f"a {'still' if motion['still'] else 'moving'} motion has {expected} payloads, got {len(payloads)}"
        raise ProtocolError(ErrorCode.BAD_MESSAGE, message)
    offsets = _float_array(_buffer(payloads[0]), (model.keypoints, 2), "offsets")
    if motion["still"]:
        return KeypointMotion(offsets)
    grid = _float_array(_buffer(payloads[1]), (model.flow_grid, model.flow_grid, 2), "grid")
    mask = _uint8_array(_buffer(payloads[2]), (size, size), "mask")
    colour = decode_image(_buffer(payloads[3]), header.get("format", "rgb24"), size, codec)
    return KeypointMotion(offsets, grid, mask, colour)


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


def _float_array(payload: memoryview | bytes, shape: tuple[int, ...], what: str) -> np.ndarray:
    """float32 little-endian payload -> a finite float32 array of ``shape``; ProtocolError (BAD_IMAGE) otherwise."""
    expected = math.prod(shape) * FLOAT32_LE.itemsize
    if len(payload) != expected:
        dims = " x ".join(map(str, shape))
        raise ProtocolError(ErrorCode.BAD_IMAGE, f"{what} payload is {len(payload)} bytes; {dims} float32 need {expected}")
    values = np.frombuffer(payload, dtype=FLOAT32_LE).reshape(shape).astype(np.float32)
    if not np.isfinite(values).all():
        raise ProtocolError(ErrorCode.BAD_IMAGE, f"{what} payload has values that are not finite")
    return values


def _uint8_array(payload: memoryview | bytes, shape: tuple[int, ...], what: str) -> np.ndarray:
    """uint8 payload -> an array of ``shape``; ProtocolError (BAD_IMAGE) for another byte count."""
    expected = math.prod(shape)
    if len(payload) != expected:
        dims = " x ".join(map(str, shape))
        raise ProtocolError(ErrorCode.BAD_IMAGE, f"{what} payload is {len(payload)} bytes; {dims} uint8 need {expected}")
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def _flag(fields: dict, key: str) -> bool:
    value = _get(fields, key, False)
    if not isinstance(value, bool):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"model {key} must be true or false")
    return value


def _positive(fields: dict, key: str, default: int | None = None) -> int:
    value = _get(fields, key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 2**16:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"model {key} must be a positive integer, got {str(value)[:20]}")
    return value


def _point(fields: dict, key: str, default: tuple[float, float]) -> tuple[float, float]:
    value = _get(fields, key, default)
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_fraction(v) for v in value):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"model {key} must be [x, y] in (0, 1), got {str(value)[:40]}")
    return float(value[0]), float(value[1])


def _get(fields: dict, key: str, default: Any) -> Any:
    """``fields[key]``, or ``default`` where it is absent or null."""
    value = fields.get(key)
    return default if value is None else value


def _is_fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < 1.0


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


def _strength(header: dict) -> float:
    strength = _get(header, "strength", 1.0)
    low, high = STRENGTH_RANGE
    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not low <= strength <= high:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"strength must be a number in [{low:g}, {high:g}]")
    return float(strength)


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
