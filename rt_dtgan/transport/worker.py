"""The worker: many client streams on one StreamEngine behind one ZeroMQ socket.

It binds a ROUTER socket for clients (``rt-dtgan serve``), or connects a DEALER socket to a
broker's back end (several workers behind ``rt-dtgan broker``). Each loop drains every
message waiting on the socket without blocking, answers control messages in arrival order,
keeps only the newest FRAME per stream, and runs those frames through one ``step_many``
call. A stream belongs to the connection that opened it; nobody else can address it, and
it closes as soon as that connection does. A client holds at most ClientLimits' streams
and opens them at a bounded rate; when every slot is taken, the stream idle longest
(no message for ``reclaim_idle_s``) gives its slot up before an OPEN is refused. Behind
a broker, the broker applies the client limits and closes the streams of clients that go.
Faces come as crops, with their meshes where the model reads meshes or warps; a warping
model's results go back as the parts of its KeypointMotion.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket as socket_module
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import zmq

from rt_dtgan.config import ConfigError
from rt_dtgan.runtime.engine import Face, StreamEngine
from rt_dtgan.runtime.warping import KeypointMotion
from rt_dtgan.transport.addresses import DEFAULT_ADDRESS
from rt_dtgan.transport.protocol import (
    PROTOCOL_VERSION,
    ErrorCode,
    JpegCodec,
    MessageType,
    ModelInfo,
    ProtocolError,
    Request,
    encode_header,
    encode_image,
    encode_motion,
    error_message,
    parse_request,
    payload_bytes,
)
from rt_dtgan.transport.security import ClientKeys, check_exposure, secure_client, secure_server, start_authenticator
from rt_dtgan.transport.serving import (
    MAX_PARTS,
    POLL_INTERVAL_MS,
    ClientLimits,
    ConnectionWatch,
    OpenGate,
    client_key,
    drain,
    stop_on_signals,
)

# What the worker keeps of a message: the client's identity (from a broker, its address and
# the delimiter), then a body; the rest of a longer one is counted and dropped.
RECEIVED_PARTS = 2 + MAX_PARTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker listens. Exactly one of ``bind`` (serve clients directly, ROUTER) and
    ``broker`` (connect to a broker's back end, DEALER) is set. Binding beyond loopback needs
    ``curve_dir`` (see transport.security); connecting to a remote broker needs ``broker_keys``.
    A stream with no message for ``reclaim_idle_s`` gives its slot to an OPEN that would
    otherwise be refused; after ``idle_timeout_s`` it closes in any case."""

    bind: str | None = DEFAULT_ADDRESS
    broker: str | None = None
    max_streams: int = 16
    max_message_bytes: int = 4 * 2**20
    idle_timeout_s: float = 60.0
    reclaim_idle_s: float = 5.0
    limits: ClientLimits = field(default_factory=ClientLimits)
    curve_dir: Path | None = None
    broker_keys: ClientKeys | None = None
    heartbeat_s: float = 1.0
    name: str = field(default_factory=lambda: f"{socket_module.gethostname()}-{os.getpid()}")

    def __post_init__(self) -> None:
        if (self.bind is None) == (self.broker is None):
            raise ConfigError("set exactly one of bind (serve clients) and broker (connect to a broker's back end)")
        if not 1 <= self.max_streams <= 4096:
            raise ConfigError(f"max_streams must be in [1, 4096], got {self.max_streams}")
        if not 64 * 1024 <= self.max_message_bytes <= 2**30:
            raise ConfigError(f"max_message_bytes must be in [64 KiB, 1 GiB], got {self.max_message_bytes}")
        if not self.idle_timeout_s > 0 or not self.heartbeat_s > 0 or not self.reclaim_idle_s > 0:
            raise ConfigError("idle_timeout_s, reclaim_idle_s and heartbeat_s must be positive")
        if self.curve_dir is not None and not Path(self.curve_dir).is_dir():
            raise ConfigError(f"curve_dir {self.curve_dir} is not a directory")
        if self.broker is not None:
            check_exposure(self.broker, self.broker_keys is not None, "connect to broker at")
        else:
            check_exposure(self.bind, self.curve_dir is not None, "bind")


@dataclass
class _Stream:
    owner: tuple[bytes, ...]
    engine_id: int
    reply_format: str
    jpeg_quality: int
    last_active: float
    key: str | None = None


@dataclass
class _PendingFrame:
    envelope: tuple[bytes, ...]
    stream_id: int
    request: Request
    received_at: float
    decode_s: float


@dataclass
class _Batch:
    """Frames handed to the engine together; ``outputs()`` waits for their outputs (or raises
    what the engine raised)."""

    frames: list[_PendingFrame]
    began: float
    outputs: Callable[[], list]


class Worker:
    """Serves ``engine`` as ``config`` says. ``serve_forever()`` runs until ``stop()`` (from any
    thread or a signal handler), then closes its sockets. ``engine`` is a StreamEngine, or what
    has its ``open``, ``recalibrate``, ``close``, ``frames_seen``, ``step_many``, ``size`` and
    ``config`` (the Ray edge's ReplicaPool); ``on_turn()``, when given, runs once per turn of
    the loop, at least every POLL_INTERVAL_MS. An engine that also has ``submit_many`` (frames
    -> a callable that waits for their outputs) keeps one batch running while the worker
    reads the next frames and answers the batch before it."""

    def __init__(self, config: WorkerConfig, engine: StreamEngine, on_turn: Callable[[], None] | None = None) -> None:
        self.config = config
        self.engine = engine
        self._on_turn = on_turn
        self.crop_size = engine.size
        self.model = ModelInfo.of(engine.config)
        self.codec = JpegCodec()
        self.frames_dropped = 0
        self._streams: dict[int, _Stream] = {}
        self._pending: dict[int, _PendingFrame] = {}
        self._in_engine: deque[_Batch] = deque()
        self._batches_kept = 1 if hasattr(engine, "submit_many") else 0
        self._stop = threading.Event()
        self._last_heartbeat = 0.0
        self._last_expiry = time.monotonic()
        self._gate = OpenGate(config.limits)
        self._context = zmq.Context()
        self._authenticator = None
        self._watch: ConnectionWatch | None = None
        try:
            self._socket = self._open_socket()
            self._watch = None if config.broker else ConnectionWatch(self._socket)
        except Exception:
            self._close_sockets()
            raise

    @property
    def address(self) -> str:
        """The endpoint bound or connected to, with the real port when bound to port '*'."""
        return self._socket.getsockopt_string(zmq.LAST_ENDPOINT) or self.config.broker or ""

    @property
    def stream_ids(self) -> frozenset[int]:
        """The ids of the streams open now (for monitoring)."""
        return frozenset(self._streams)

    def serve_forever(self) -> None:
        try:
            while not self._stop.is_set():
                if self._socket.poll(0 if self._in_engine else POLL_INTERVAL_MS, zmq.POLLIN):
                    self._serve(self._drain())
                else:
                    self._finish_batches(keep=0)
                if self._watch is not None:
                    self._forget_clients(self._watch.gone())
                self._expire_idle_streams()
                self._heartbeat()
                if self._on_turn is not None:
                    self._on_turn()
        finally:
            self._close_sockets()

    def stop(self) -> None:
        self._stop.set()

    def _open_socket(self) -> zmq.Socket:
        config = self.config
        socket = self._context.socket(zmq.DEALER if config.broker else zmq.ROUTER)
        socket.linger = 200
        socket.rcvhwm = socket.sndhwm = 4 * config.max_streams + 16
        socket.setsockopt(zmq.MAXMSGSIZE, config.max_message_bytes)
        if config.broker:
            if config.broker_keys is not None:
                secure_client(socket, config.broker_keys)
            socket.connect(config.broker)
        else:
            if config.curve_dir is not None:
                self._authenticator = start_authenticator(self._context, config.curve_dir)
                secure_server(socket, config.curve_dir)
            socket.bind(config.bind)
        return socket

    def _close_sockets(self) -> None:
        if getattr(self, "_watch", None) is not None:
            self._watch.close()
        if getattr(self, "_socket", None) is not None:
            self._socket.close()
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()

    def _drain(self) -> Iterator[tuple[tuple[bytes, ...], list, int, float, str | None]]:
        """Every message waiting now, up to a bound: (envelope, body parts, part count, time
        received, the client's CURVE key). Clients seen gone meanwhile are forgotten."""
        for parts, count in drain(self._socket, RECEIVED_PARTS, 4 * self.config.max_streams + 16):
            envelope, body = self._split_envelope(parts)
            if envelope is None:
                continue
            if self._watch is not None:
                self._forget_clients(self._watch.seen(envelope[0], parts[0]))
            yield envelope, body, count - len(parts) + len(body), time.perf_counter(), client_key(parts[0])

    def _split_envelope(self, parts: list) -> tuple[tuple[bytes, ...] | None, list]:
        """ROUTER: the first part is the client's identity. From a broker: the parts up to the
        empty delimiter are the client's address."""
        if not self.config.broker:
            return (parts[0].bytes,), parts[1:]
        for index, part in enumerate(parts):
            if len(part) == 0:
                return tuple(p.bytes for p in parts[:index]), parts[index + 1 :]
        return None, []

    def _serve(self, messages: Iterator[tuple[tuple[bytes, ...], list, int, float, str | None]]) -> None:
        for envelope, body, count, received_at, key in messages:
            try:
                self._handle(envelope, body, count, received_at, key)
            except ProtocolError as error:
                self._send(envelope, error_message(error.code, str(error), error.stream, error.seq))
        self._flush_frames()

    def _handle(self, envelope: tuple[bytes, ...], body: list, count: int, received_at: float, key: str | None) -> None:
        if count > MAX_PARTS:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{count} parts; a message has at most {MAX_PARTS}")
        if payload_bytes(body) > self.config.max_message_bytes:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"message exceeds {self.config.max_message_bytes} bytes")
        began = time.perf_counter()
        request = parse_request(body, self.crop_size, self.codec, self.model.needs_mesh)
        decode_s = time.perf_counter() - began
        if request.type == MessageType.PING:
            self._send(envelope, [self._pong(request)])
        elif request.type == MessageType.OPEN:
            self._open(envelope, request, key)
        else:
            stream = self._owned_stream(envelope, request)
            stream.last_active = time.monotonic()
            if request.type == MessageType.FRAME:
                self._queue_frame(_PendingFrame(envelope, request.stream, request, received_at, decode_s))
            elif request.type == MessageType.CALIBRATE:
                self._calibrate(envelope, stream, request)
            else:
                self._close_stream(envelope, request)

    def _pong(self, request: Request) -> bytes:
        return encode_header(
            MessageType.PONG,
            seq=request.seq,
            crop_size=self.crop_size,
            streams=len(self._streams),
            max_streams=self.config.max_streams,
            worker=self.config.name,
            protocol=[PROTOCOL_VERSION],
            model=self.model.to_json(),
        )

    def _open(self, envelope: tuple[bytes, ...], request: Request, key: str | None) -> None:
        self._admit(envelope, request, key)
        if request.strength != 1.0 and not self.model.warps:
            message = "strength needs a model that warps the portrait; this worker's model redraws the crop"
            raise ProtocolError(ErrorCode.BAD_MESSAGE, message, seq=request.seq)
        with self._engine_errors(request):
            engine_id = self._open_engine_stream(_faces(request), request.strength)
        stream_id = self._new_stream_id()
        self._streams[stream_id] = _Stream(envelope, engine_id, request.reply_format, request.jpeg_quality, time.monotonic(), key)
        opened = encode_header(
            MessageType.OPENED, seq=request.seq, stream=stream_id, crop_size=self.crop_size, model=self.model.to_json()
        )
        self._send(envelope, [opened])

    def _admit(self, envelope: tuple[bytes, ...], request: Request, key: str | None) -> None:
        """Raise STREAM_LIMIT unless the client is within its limits (a bound worker: behind
        a broker, the broker applies them) and a slot is free or can be reclaimed."""
        if not self.config.broker:
            client_streams = sum(stream.owner == envelope for stream in self._streams.values())
            key_streams = sum(key is not None and stream.key == key for stream in self._streams.values())
            refusal = self._gate.refusal(envelope[0], key, client_streams, key_streams)
            if refusal is not None:
                raise ProtocolError(ErrorCode.STREAM_LIMIT, refusal, seq=request.seq)
        if len(self._streams) >= self.config.max_streams and not self._reclaim_idle_slot():
            message = f"this worker serves at most {self.config.max_streams} streams, all active"
            raise ProtocolError(ErrorCode.STREAM_LIMIT, message, seq=request.seq)

    def _reclaim_idle_slot(self) -> bool:
        """Close the stream idle longest if it has been idle for reclaim_idle_s; -> whether one was."""
        stream_id, stream = min(self._streams.items(), key=lambda item: item[1].last_active)
        idle_s = time.monotonic() - stream.last_active
        if idle_s < self.config.reclaim_idle_s:
            return False
        self._drop(stream_id)
        log.info("stream %d, idle %.1f s, gave its slot to a new one", stream_id, idle_s)
        return True

    def _forget_clients(self, clients: list[bytes]) -> None:
        """Close every stream of clients whose connection is gone."""
        for client in clients:
            self._gate.forget(client)
            for stream_id in [i for i, s in self._streams.items() if s.owner == (client,)]:
                self._drop(stream_id)
                log.info("stream %d closed: its client disconnected", stream_id)

    def _drop(self, stream_id: int) -> None:
        """Close a stream and forget any frame of it still waiting."""
        self._pending.pop(stream_id, None)
        self.engine.close(self._streams.pop(stream_id).engine_id)

    def _open_engine_stream(self, faces: list[Face], strength: float) -> int:
        """An engine stream for the target ``faces[0]``, anchored on ``faces[1]`` when given;
        nothing is left open if that fails."""
        engine_id = self.engine.open(faces[0], strength)
        if len(faces) == 2:
            try:
                self.engine.recalibrate(engine_id, faces[1])
            except Exception:
                self.engine.close(engine_id)
                raise
        return engine_id

    def _new_stream_id(self) -> int:
        """Random, so that stream ids from several workers behind one broker do not collide."""
        while True:
            stream_id = secrets.randbelow(2**53 - 1) + 1
            if stream_id not in self._streams:
                return stream_id

    def _owned_stream(self, envelope: tuple[bytes, ...], request: Request) -> _Stream:
        stream = self._streams.get(request.stream)
        if stream is None or stream.owner != envelope:
            message = f"no open stream {request.stream} on this connection"
            raise ProtocolError(ErrorCode.UNKNOWN_STREAM, message, request.stream, request.seq)
        return stream

    def _queue_frame(self, frame: _PendingFrame) -> None:
        """Newest frame per stream wins: an older one waiting for the same stream is dropped."""
        if self._pending.pop(frame.stream_id, None) is not None:
            self.frames_dropped += 1
        self._pending[frame.stream_id] = frame

    def _settle(self, stream_id: int) -> None:
        """Answer every frame of the stream that waits or runs, so that what follows comes after them."""
        if stream_id in self._pending or any(f.stream_id == stream_id for b in self._in_engine for f in b.frames):
            self._flush_frames()
            self._finish_batches(keep=0)

    def _calibrate(self, envelope: tuple[bytes, ...], stream: _Stream, request: Request) -> None:
        self._settle(request.stream)
        with self._engine_errors(request):
            faces = _faces(request)
            self.engine.recalibrate(stream.engine_id, faces[0] if faces else None)
        self._send(envelope, [encode_header(MessageType.CALIBRATED, seq=request.seq, stream=request.stream)])

    def _close_stream(self, envelope: tuple[bytes, ...], request: Request) -> None:
        self._settle(request.stream)
        self._drop(request.stream)
        self._send(envelope, [encode_header(MessageType.CLOSED, seq=request.seq, stream=request.stream)])

    def _flush_frames(self) -> None:
        """Hand every waiting frame to the engine in one batch; answer the batches before it
        (all of them, unless the engine runs one while the worker goes on)."""
        frames = [f for f in self._pending.values() if f.stream_id in self._streams]
        self._pending.clear()
        if frames:
            engine_frames = [(self._streams[f.stream_id].engine_id, _faces(f.request)[0]) for f in frames]
            submit = getattr(self.engine, "submit_many", None)
            outputs = partial(self.engine.step_many, engine_frames) if submit is None else submit(engine_frames)
            self._in_engine.append(_Batch(frames, time.perf_counter(), outputs))
        self._finish_batches(keep=self._batches_kept)

    def _finish_batches(self, keep: int) -> None:
        """Wait for the oldest batches' outputs until ``keep`` are left, and send one RESULT per
        frame whose stream is still open."""
        while len(self._in_engine) > keep:
            batch = self._in_engine.popleft()
            try:
                outputs = batch.outputs()
            except Exception as error:  # the engine must not take the worker down; every stream in the batch is told
                log.exception("engine step failed for %d streams", len(batch.frames))
                for f in batch.frames:
                    reply = error_message(ErrorCode.ENGINE_FAILURE, f"engine failed: {error}", f.stream_id, f.request.seq)
                    self._send(f.envelope, reply)
                continue
            engine_s = time.perf_counter() - batch.began
            for frame, output in zip(batch.frames, outputs):
                if frame.stream_id in self._streams:
                    self._send_result(frame, output, batch.began - frame.received_at, engine_s, len(batch.frames))

    def _send_result(self, frame: _PendingFrame, output, queue_s: float, engine_s: float, batch: int) -> None:
        """RESULT with the generated crop, or with the parts of a warping model's KeypointMotion."""
        stream = self._streams[frame.stream_id]
        began = time.perf_counter()
        moves = isinstance(output, KeypointMotion)
        if moves:
            payloads = encode_motion(output, stream.reply_format, self.codec, stream.jpeg_quality)
        else:
            payloads = [encode_image(output, stream.reply_format, self.codec, stream.jpeg_quality)]
        timings = {
            "decode_ms": round(frame.decode_s * 1e3, 3),
            "queue_ms": round(queue_s * 1e3, 3),
            "engine_ms": round(engine_s * 1e3, 3),
            "encode_ms": round((time.perf_counter() - began) * 1e3, 3),
        }
        header = encode_header(
            MessageType.RESULT,
            stream=frame.stream_id,
            seq=frame.request.seq,
            ts_ns=frame.request.ts_ns,
            format=stream.reply_format,
            width=self.crop_size,
            height=self.crop_size,
            anchor=self.engine.frames_seen(stream.engine_id) == 1,
            batch=batch,
            timings=timings,
            motion={"still": output.still} if moves else None,
        )
        self._send(frame.envelope, [header, *payloads])

    @contextmanager
    def _engine_errors(self, request: Request) -> Iterator[None]:
        try:
            yield
        except Exception as error:  # reported to the one client that asked; the worker goes on
            log.exception("engine failed on %s", request.type)
            raise ProtocolError(ErrorCode.ENGINE_FAILURE, f"engine failed: {error}", request.stream, request.seq) from error

    def _send(self, envelope: tuple[bytes, ...], parts: list) -> None:
        delimiter = [b""] if self.config.broker else []
        try:
            self._socket.send_multipart([*envelope, *delimiter, *parts], flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.warning("send queue full; a reply was dropped")

    def _expire_idle_streams(self) -> None:
        now = time.monotonic()
        if now - self._last_expiry < 1.0:
            return
        self._last_expiry = now
        for stream_id in [i for i, s in self._streams.items() if now - s.last_active > self.config.idle_timeout_s]:
            self._drop(stream_id)
            log.info("stream %d expired after %.0f s idle", stream_id, self.config.idle_timeout_s)

    def _heartbeat(self) -> None:
        """Behind a broker: announce capacity on start and every heartbeat_s."""
        now = time.monotonic()
        if not self.config.broker or now - self._last_heartbeat < self.config.heartbeat_s:
            return
        self._last_heartbeat = now
        ready = encode_header(
            MessageType.READY,
            worker=self.config.name,
            crop_size=self.crop_size,
            streams=len(self._streams),
            max_streams=self.config.max_streams,
            model=self.model.to_json(),
        )
        self._send((), [ready])


def _faces(request: Request) -> list[Face]:
    """The faces a request carries: each crop with its mesh, or without one where none came."""
    meshes = request.meshes or [None] * len(request.images)
    return [Face(image, mesh) for image, mesh in zip(request.images, meshes)]


def run_worker(config: WorkerConfig, engine: StreamEngine) -> None:
    """Serve until SIGINT or SIGTERM (when called from the main thread), then close cleanly."""
    worker = Worker(config, engine)
    kind = "meshes and crops" if worker.model.needs_mesh else "crops"
    log.info("worker %s serving %d px %s on %s", config.name, engine.size, kind, worker.address)
    with stop_on_signals(worker):
        worker.serve_forever()
