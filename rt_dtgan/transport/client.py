"""The client: one stream on a remote worker (or broker), over a DEALER socket.

Single-threaded: every call advances the link (sends, receives, notices outages and
recovers), so a live loop calls ``submit`` and ``poll`` once per camera frame and an
offline loop calls ``process``. The one call for another thread is ``interrupt``: what
waits on the worker gives up at once, so that its owner can close the client. At most ``max_in_flight`` frames are on the wire; a frame
submitted while they are waits in one slot, where a newer frame replaces it. Results are
matched by sequence number and handed out in order; a late one is dropped.

When no reply comes for ``reply_timeout_s`` (or the worker has forgotten the stream), the
client reports an OUTAGE, drops its socket, pings on a fresh one until a worker answers,
reopens the stream with the same target and anchor (y0), and goes on.

The worker's model (``model``, learnt in ``connect``) says what a face is: a crop, or, for
a model that reads the face mesh or warps the portrait, a crop and its mesh; and what a
result is: a crop, or a warping model's KeypointMotion.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from rt_dtgan.config import MESH_POINTS, ConfigError
from rt_dtgan.errors import RtDtganError
from rt_dtgan.runtime.engine import Face, Generated
from rt_dtgan.runtime.warping import KeypointMotion
from rt_dtgan.transport.addresses import DEFAULT_ADDRESS
from rt_dtgan.transport.protocol import (
    DEFAULT_JPEG_QUALITY,
    IMAGE_FORMATS,
    JPEG_QUALITY_RANGE,
    ErrorCode,
    JpegCodec,
    MessageType,
    ModelInfo,
    ProtocolError,
    decode_image,
    decode_motion,
    encode_header,
    encode_image,
    encode_mesh,
    parse_header,
)
from rt_dtgan.transport.security import ClientKeys, check_exposure, secure_client


class TransportError(RtDtganError, RuntimeError):
    """The worker refused a request or did not answer in time."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class LinkStatus(str, enum.Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    OUTAGE = "outage"
    CLOSED = "closed"


class _Phase(enum.Enum):
    IDLE = enum.auto()  # no stream opened yet
    STREAMING = enum.auto()
    PINGING = enum.auto()  # recovering: waiting for any worker to answer
    REOPENING = enum.auto()  # recovering: OPEN sent, waiting for OPENED


@dataclass(frozen=True)
class ClientConfig:
    """How to reach a worker. ``keys`` are needed for any address beyond loopback."""

    address: str = DEFAULT_ADDRESS
    frame_format: str = "rgb24"
    result_format: str = "rgb24"
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    max_in_flight: int = 2
    reply_timeout_s: float = 2.0
    retry_interval_s: float = 0.2
    keys: ClientKeys | None = None

    def __post_init__(self) -> None:
        for name in ("frame_format", "result_format"):
            if getattr(self, name) not in IMAGE_FORMATS:
                raise ConfigError(f"{name} must be one of {IMAGE_FORMATS}, got {getattr(self, name)!r}")
        low, high = JPEG_QUALITY_RANGE
        if not low <= self.jpeg_quality <= high:
            raise ConfigError(f"jpeg_quality must be in [{low}, {high}] (lower is better), got {self.jpeg_quality}")
        if self.max_in_flight not in (1, 2):
            raise ConfigError(f"max_in_flight must be 1 or 2, got {self.max_in_flight}")
        if not self.reply_timeout_s > 0 or not self.retry_interval_s > 0:
            raise ConfigError("reply_timeout_s and retry_interval_s must be positive")
        check_exposure(self.address, self.keys is not None, "connect to")


@dataclass(frozen=True)
class RemoteResult:
    """What the worker made of the frame numbered ``seq``: a generated ``crop``, uint8 (S, S, 3)
    RGB, or for a warping model its ``motion`` (and ``crop`` None). ``timings`` in ms: the
    worker's decode, queue, engine and encode, and the client's round_trip."""

    crop: np.ndarray | None
    seq: int
    ts_ns: int | None
    timings: dict[str, float]
    batch: int
    motion: KeypointMotion | None = None

    @property
    def generated(self) -> Generated:
        """The crop or the motion: what StreamEngine.step gives in-process."""
        return self.crop if self.motion is None else self.motion


@dataclass
class _Sent:
    face: Face
    ts_ns: int | None
    sent_at: float


@dataclass
class _Link:
    socket: zmq.Socket
    pinged_at: float = 0.0
    requested_at: float = field(default_factory=time.monotonic)
    open_seq: int | None = None


class StreamClient:
    """One remote stream. ``connect()`` learns the crop size and the model; ``open(target)``
    starts the stream; then ``submit``/``poll`` (live) or ``process`` (offline, one result
    per frame). Where ``model.needs_mesh``, every face goes with its mesh (the ``mesh``
    arguments, float32 (MESH_POINTS, 2) in eye units); elsewhere meshes are refused."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.crop_size: int | None = None
        self.model: ModelInfo | None = None
        self.stream_id: int | None = None
        self.outages = 0
        self.last_error: str | None = None
        self._context = zmq.Context()
        self._codec = JpegCodec()
        self._seq = itertools.count(1)
        self._phase = _Phase.IDLE
        self._closed = False
        self._target: Face | None = None
        self._anchor: Face | None = None
        self._in_flight: dict[int, _Sent] = {}
        self._waiting: tuple[int, Face, int | None] | None = None
        self._strength = 1.0
        self._fresh: RemoteResult | None = None
        self._latest: RemoteResult | None = None
        self._failed: dict[int, TransportError] = {}
        self._replies: dict[int, dict] = {}
        self._outage_began: float | None = None
        self._interrupted = threading.Event()
        self._link = self._new_link()

    # -- status ----------------------------------------------------------------------------

    @property
    def status(self) -> LinkStatus:
        if self._closed:
            return LinkStatus.CLOSED
        return {
            _Phase.IDLE: LinkStatus.CONNECTING,
            _Phase.STREAMING: LinkStatus.STREAMING,
            _Phase.PINGING: LinkStatus.OUTAGE,
            _Phase.REOPENING: LinkStatus.OUTAGE,
        }[self._phase]

    @property
    def outage_s(self) -> float:
        """Seconds since the current outage began; 0 while streaming."""
        return 0.0 if self._outage_began is None else time.monotonic() - self._outage_began

    @property
    def latest(self) -> RemoteResult | None:
        """The last good result: what to show during an outage."""
        return self._latest

    # -- setup -----------------------------------------------------------------------------

    def connect(self, timeout_s: float = 10.0) -> int:
        """Ping until the worker answers; returns its crop size S and sets ``model``."""
        reply = self._request([encode_header(MessageType.PING, seq=next(self._seq))], MessageType.PONG, timeout_s)
        self.crop_size = _positive_int(reply, "crop_size")
        self.model = _model(reply)
        return self.crop_size

    def open(
        self,
        target_crop: np.ndarray,
        reference_crop: np.ndarray | None = None,
        timeout_s: float = 10.0,
        *,
        target_mesh: np.ndarray | None = None,
        reference_mesh: np.ndarray | None = None,
        strength: float = 1.0,
    ) -> int:
        """Start driving ``target_crop`` (uint8 (S, S, 3) RGB); ``reference_crop`` is the neutral
        anchor y0, or, without one, the first frame is. ``strength`` scales a warping model's
        motion (0 to 3). Returns the stream id."""
        if self._closed or self._phase != _Phase.IDLE:
            raise TransportError("this client has opened its stream already; use another client for another stream")
        if self.crop_size is None:
            self.connect(timeout_s)
        self._target = self._face(target_crop, target_mesh, "target")
        self._anchor = None if reference_crop is None else self._face(reference_crop, reference_mesh, "reference")
        self._strength = strength
        reply = self._request(self._open_message(next(self._seq)), MessageType.OPENED, timeout_s)
        self.stream_id = _positive_int(reply, "stream")
        self._phase = _Phase.STREAMING
        return self.stream_id

    def recalibrate(
        self, reference_crop: np.ndarray | None = None, timeout_s: float = 5.0, *, reference_mesh: np.ndarray | None = None
    ) -> None:
        """Make ``reference_crop`` the anchor y0, or, without one, the next frame. During an
        outage it takes effect when the stream is reopened."""
        self._require_stream()
        reference = None if reference_crop is None else self._face(reference_crop, reference_mesh, "reference")
        if self._phase != _Phase.STREAMING:
            self._anchor = reference
            return
        faces = [] if reference is None else [reference]
        header = encode_header(MessageType.CALIBRATE, seq=next(self._seq), stream=self.stream_id, **self._face_fields(faces))
        self._request([header, *self._face_payloads(faces)], MessageType.CALIBRATED, timeout_s)
        self._anchor = reference

    def interrupt(self) -> None:
        """Make a call waiting on the worker (``process``, ``connect``, ``open``,
        ``recalibrate``) raise TransportError within 50 ms, and every such call after it:
        the client is then only to be closed. Safe from any thread."""
        self._interrupted.set()

    def close(self) -> None:
        """Close the stream (best effort) and the socket."""
        if self._closed:
            return
        if self._phase == _Phase.STREAMING:
            self._send([encode_header(MessageType.CLOSE, seq=next(self._seq), stream=self.stream_id)])
        self._link.socket.close(linger=100)
        self._context.term()
        self._closed = True

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- live mode -------------------------------------------------------------------------

    def submit(self, crop: np.ndarray, ts_ns: int | None = None, *, mesh: np.ndarray | None = None) -> int:
        """Queue ``crop`` (uint8 (S, S, 3) RGB) without blocking; it replaces any frame still
        waiting for a free slot. Returns its sequence number."""
        self._require_stream()
        face = self._face(crop, mesh, "frame")
        seq = next(self._seq)
        self._waiting = (seq, face, ts_ns)
        self._advance(0.0)
        return seq

    def poll(self, timeout_s: float = 0.0) -> RemoteResult | None:
        """Advance the link for up to ``timeout_s`` (returning early on a result); the newest
        result not handed out yet, or None."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._advance(max(0.0, min(deadline - time.monotonic(), 0.05)))
            if self._fresh is not None or time.monotonic() >= deadline:
                fresh, self._fresh = self._fresh, None
                return fresh

    # -- offline mode ----------------------------------------------------------------------

    def process(
        self, crop: np.ndarray, ts_ns: int | None = None, timeout_s: float | None = None, *, mesh: np.ndarray | None = None
    ) -> RemoteResult:
        """Send ``crop`` and wait for its result: every call gets exactly one. Across an outage
        it is sent again once the stream is reopened. Raises TransportError on an ERROR
        reply or an unreadable result, or when ``timeout_s`` passes first."""
        self._require_stream()
        face = self._face(crop, mesh, "frame")
        self._drain_in_flight(timeout_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        seq = None
        while self._may_wait(deadline):
            if self._phase == _Phase.STREAMING and seq not in self._in_flight:
                seq = next(self._seq)
                self._send_frame(seq, face, ts_ns)
            self._advance(0.05)
            if seq in self._failed:
                raise self._failed.pop(seq)
            if self._fresh is not None and self._fresh.seq == seq:
                result, self._fresh = self._fresh, None
                return result
        raise TransportError(f"no result within {timeout_s} s (link {self.status.value})")

    # -- the link ----------------------------------------------------------------------------

    def _advance(self, timeout_s: float) -> None:
        """Receive what has come, detect outages, drive recovery, send a waiting frame."""
        if self._link.socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            self._receive_all()
        now = time.monotonic()
        if self._phase == _Phase.STREAMING and self._in_flight:
            oldest = min(sent.sent_at for sent in self._in_flight.values())
            if now - oldest > self.config.reply_timeout_s:
                self._begin_outage("no reply")
        if self._phase == _Phase.REOPENING and now - self._link.requested_at > self.config.reply_timeout_s:
            self._begin_outage("no answer to OPEN")
        if self._phase == _Phase.PINGING and now - self._link.pinged_at > self.config.retry_interval_s:
            self._link.pinged_at = now
            self._send([encode_header(MessageType.PING, seq=next(self._seq))])
        self._send_waiting()

    def _receive_all(self) -> None:
        while True:
            try:
                parts = self._link.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                header = parse_header(parts[0].buffer)
            except ProtocolError as error:
                self.last_error = f"unreadable reply: {error}"
                continue
            self._on_reply(header, parts[1:])

    def _on_reply(self, header: dict, payload: list) -> None:
        kind = header["type"]
        if kind == MessageType.RESULT:
            self._on_result(header, payload)
        elif kind == MessageType.ERROR:
            self._on_error(header)
        elif kind == MessageType.PONG and self._phase == _Phase.PINGING:
            self._phase = _Phase.REOPENING
            self._link.requested_at = time.monotonic()
            self._link.open_seq = next(self._seq)
            self._send(self._open_message(self._link.open_seq))
        elif kind == MessageType.OPENED and self._phase == _Phase.REOPENING and header.get("seq") == self._link.open_seq:
            self.stream_id = _positive_int(header, "stream")
            self.model = _model(header)
            self._phase = _Phase.STREAMING
            self._outage_began = None
        else:
            self._remember_reply(header)

    def _on_result(self, header: dict, payload: list) -> None:
        seq = header.get("seq")
        if header.get("stream") != self.stream_id or seq not in self._in_flight:
            return  # late (a newer result came first) or from a stream this client gave up
        sent = self._in_flight[seq]
        for older in [s for s in self._in_flight if s <= seq]:
            del self._in_flight[older]  # those the worker dropped for a newer frame will never come
        try:
            crop, motion = self._decode_result(header, payload)
        except ProtocolError as error:
            self.last_error = f"unreadable result: {error}"
            self._fail(seq, TransportError(f"frame {seq}: unreadable result: {error}", error.code))
            return
        if header.get("anchor") is True:
            self._anchor = sent.face
        timings = dict(header.get("timings") or {})
        timings["round_trip_ms"] = (time.monotonic() - sent.sent_at) * 1e3
        result = RemoteResult(crop, seq, header.get("ts_ns"), timings, int(header.get("batch") or 1), motion)
        self._fresh = self._latest = result

    def _decode_result(self, header: dict, payload: list) -> tuple[np.ndarray | None, KeypointMotion | None]:
        """A RESULT's (crop, None), or (None, motion) from a warping model. Raises ProtocolError."""
        if self.model.warps:
            return None, decode_motion(header, payload, self.model, self.crop_size, self._codec)
        if len(payload) != 1:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"a RESULT carries one crop, got {len(payload)} payloads")
        return decode_image(payload[0].buffer, header.get("format", "rgb24"), self.crop_size, self._codec), None

    def _on_error(self, header: dict) -> None:
        code, seq, text = header.get("code"), header.get("seq"), str(header.get("message", ""))
        self.last_error = f"{code}: {text}"
        if code == ErrorCode.UNKNOWN_STREAM and header.get("stream") == self.stream_id and self._phase == _Phase.STREAMING:
            self._begin_outage("the worker no longer knows the stream")
        elif self._phase == _Phase.REOPENING and code in (ErrorCode.UNAVAILABLE, ErrorCode.STREAM_LIMIT):
            self._phase = _Phase.PINGING
            self._link.pinged_at = time.monotonic()  # try again after the retry interval
        elif seq in self._in_flight:
            del self._in_flight[seq]
            self._fail(seq, TransportError(f"frame {seq} refused: {text}", code))
        else:
            self._remember_reply(header)

    def _fail(self, seq: int, error: TransportError) -> None:
        """Keep why frame ``seq`` got no result, for ``process`` to raise (a few, newest first)."""
        self._failed[seq] = error
        while len(self._failed) > 16:
            del self._failed[min(self._failed)]

    def _remember_reply(self, header: dict) -> None:
        """Keep a reply for the control request waiting on its seq (a few, newest first)."""
        if isinstance(header.get("seq"), int):
            self._replies[header["seq"]] = header
            while len(self._replies) > 16:
                del self._replies[min(self._replies)]

    def _begin_outage(self, reason: str) -> None:
        """Forget the socket and everything in flight; ping on a fresh socket until a worker answers."""
        self.last_error = f"outage: {reason}"
        self.outages += 1
        if self._outage_began is None:
            self._outage_began = time.monotonic()
        self._in_flight.clear()
        self._link.socket.close(linger=0)
        self._link = self._new_link()
        self._phase = _Phase.PINGING

    def _new_link(self) -> _Link:
        socket = self._context.socket(zmq.DEALER)
        socket.sndhwm = socket.rcvhwm = 8
        socket.reconnect_ivl = 100
        if self.config.keys is not None:
            secure_client(socket, self.config.keys)
        socket.connect(self.config.address)
        return _Link(socket)

    def _send_waiting(self) -> None:
        if self._waiting is None or self._phase != _Phase.STREAMING or len(self._in_flight) >= self.config.max_in_flight:
            return
        seq, face, ts_ns = self._waiting
        self._waiting = None
        self._send_frame(seq, face, ts_ns)

    def _send_frame(self, seq: int, face: Face, ts_ns: int | None) -> None:
        ts_ns = time.time_ns() if ts_ns is None else ts_ns
        header = encode_header(MessageType.FRAME, seq=seq, stream=self.stream_id, ts_ns=ts_ns, **self._face_fields([face]))
        payloads = self._face_payloads([face])
        self._in_flight[seq] = _Sent(face, ts_ns, time.monotonic())
        self._send([header, *payloads])

    def _open_message(self, seq: int) -> list:
        faces = [self._target] if self._anchor is None else [self._target, self._anchor]
        header = encode_header(
            MessageType.OPEN,
            seq=seq,
            reply_format=self.config.result_format,
            jpeg_quality=self.config.jpeg_quality,
            strength=None if self._strength == 1.0 else self._strength,
            **self._face_fields(faces),
        )
        return [header, *self._face_payloads(faces)]

    def _face_payloads(self, faces: list[Face]) -> list[np.ndarray | bytes]:
        """Each face's image, then its mesh where it has one."""
        payloads = []
        for face in faces:
            payloads.append(encode_image(face.crop, self.config.frame_format, self._codec, self.config.jpeg_quality))
            if face.mesh is not None:
                payloads.append(encode_mesh(face.mesh))
        return payloads

    def _face_fields(self, faces: list[Face]) -> dict:
        """The header fields that describe ``faces`` (none without a face)."""
        if not faces:
            return {}
        height, width = faces[0].crop.shape[:2]
        with_meshes = faces[0].mesh is not None
        return {"format": self.config.frame_format, "width": width, "height": height, "mesh": with_meshes or None}

    def _send(self, parts: list) -> None:
        try:
            self._link.socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.last_error = "send queue full; a message was dropped"

    def _request(self, parts: list, expected: str, timeout_s: float) -> dict:
        """Send a control message and wait for its reply (matched by seq); raise on ERROR."""
        seq = parse_header(parts[0])["seq"]
        self._send(parts)
        deadline = time.monotonic() + timeout_s
        while self._may_wait(deadline):
            self._advance(0.05)
            reply = self._replies.pop(seq, None)
            if reply is None:
                continue
            if reply["type"] == MessageType.ERROR:
                raise TransportError(f"{expected} refused ({reply.get('code')}): {reply.get('message')}", reply.get("code"))
            if reply["type"] == expected:
                return reply
        raise TransportError(f"no {expected} from {self.config.address} within {timeout_s} s")

    def _drain_in_flight(self, timeout_s: float | None) -> None:
        """Before a blocking call: let frames submitted earlier come back (or time out)."""
        self._waiting = None
        deadline = time.monotonic() + (self.config.reply_timeout_s if timeout_s is None else timeout_s)
        while self._in_flight and self._phase == _Phase.STREAMING and self._may_wait(deadline):
            self._advance(0.05)
        self._fresh = None

    def _may_wait(self, deadline: float | None) -> bool:
        """Whether a wait goes on: before ``deadline`` (None: no limit). Raises TransportError once interrupted."""
        if self._interrupted.is_set():
            raise TransportError(f"interrupted while waiting on {self.config.address} (link {self.status.value})")
        return deadline is None or time.monotonic() < deadline

    def _require_stream(self) -> None:
        if self._closed:
            raise TransportError("the client is closed")
        if self._phase == _Phase.IDLE:
            raise TransportError("open a stream first")

    def _face(self, crop: np.ndarray, mesh: np.ndarray | None, what: str) -> Face:
        """``crop`` and ``mesh`` checked against the worker's crop size and model."""
        size = self.crop_size
        if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.shape != (size, size, 3):
            found = f"{crop.dtype} {crop.shape}" if isinstance(crop, np.ndarray) else type(crop).__name__
            raise ValueError(f"{what} must be a uint8 ({size}, {size}, 3) RGB crop, got {found}")
        if not self.model.needs_mesh:
            if mesh is not None:
                raise ValueError(f"the worker's model reads crops only; give the {what} without a mesh")
            return Face(crop)
        if not isinstance(mesh, np.ndarray) or mesh.shape != (MESH_POINTS, 2) or not np.isfinite(mesh).all():
            found = f"{mesh.dtype} {mesh.shape}" if isinstance(mesh, np.ndarray) else type(mesh).__name__
            needed = f"a finite ({MESH_POINTS}, 2) float32 mesh in eye units"
            raise ValueError(f"the worker's model reads the face mesh or warps: the {what} needs {needed}, got {found}")
        return Face(crop, mesh)


def _positive_int(header: dict, key: str) -> int:
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise TransportError(f"malformed reply: {key} = {value!r}")
    return value


def _model(header: dict) -> ModelInfo:
    """The model a PONG or OPENED describes, if this client can feed it."""
    try:
        model = ModelInfo.from_header(header)
    except ProtocolError as error:
        raise TransportError(f"malformed reply: {error}") from None
    if model.needs_mesh and model.mesh_points != MESH_POINTS:
        raise TransportError(f"the worker's model reads {model.mesh_points}-point meshes; this client tracks {MESH_POINTS}")
    return model
