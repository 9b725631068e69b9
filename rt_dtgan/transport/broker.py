"""The broker: many workers behind one address, in ZeroMQ's load-balancing pattern.

Clients connect their DEALER to the front ROUTER exactly as they would to a worker. Workers
connect a DEALER to the back ROUTER and announce themselves with READY (capacity and load)
every heartbeat. An OPEN goes to the worker with the most free stream slots (the least
recently chosen among equals); the worker's OPENED pins that (client, stream) to it, and
every later message of the stream goes there. A worker whose connection closes (a crash,
kill -9), or that is silent for ``worker_timeout_s``, is forgotten with its streams: their
next message gets ERROR 404 and the client reopens elsewhere. A client whose connection
closes has its streams closed on their workers at once (the broker sends their CLOSE).
OPENs are admitted under ClientLimits, as a bound worker admits them. All workers serve the
crop size and model of the first one to join (a client learns them from one PONG and may be
reopened on any of them). It is kept for workers that can only dial out (one outbound
CURVE connection each); more engines behind one address, with failover that keeps the
streams' state, are the Ray edge's (transport/cluster.py, docs/protocol.md section 6).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from rt_dtgan.config import ConfigError
from rt_dtgan.transport import serving
from rt_dtgan.transport.addresses import DEFAULT_ADDRESS, DEFAULT_BROKER_BACK
from rt_dtgan.transport.protocol import (
    ErrorCode,
    MessageType,
    ModelInfo,
    ProtocolError,
    encode_header,
    error_message,
    parse_header,
    payload_bytes,
)
from rt_dtgan.transport.security import check_exposure, secure_server, start_authenticator

# What the broker keeps of a message: a client's identity, then a body; a worker's identity,
# its client's, the delimiter, then a body. The rest of a longer one is read and dropped.
CLIENT_PARTS = 1 + serving.MAX_PARTS
WORKER_PARTS = 3 + serving.MAX_PARTS
DRAIN_MOST = 1000  # messages taken from one socket before the other is looked at

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerConfig:
    """Where clients (``front``) and workers (``back``) connect. A non-loopback address
    needs ``curve_dir``, whose authorized_clients/ then lists client and worker keys alike."""

    front: str = DEFAULT_ADDRESS
    back: str = DEFAULT_BROKER_BACK
    curve_dir: Path | None = None
    max_message_bytes: int = 4 * 2**20
    worker_timeout_s: float = 3.0
    stream_idle_timeout_s: float = 120.0
    limits: serving.ClientLimits = field(default_factory=serving.ClientLimits)

    def __post_init__(self) -> None:
        if self.front == self.back and not self.front.endswith(":*"):
            raise ConfigError("front and back must be different addresses")
        if not 64 * 1024 <= self.max_message_bytes <= 2**30:
            raise ConfigError(f"max_message_bytes must be in [64 KiB, 1 GiB], got {self.max_message_bytes}")
        if not self.worker_timeout_s > 0 or not self.stream_idle_timeout_s > 0:
            raise ConfigError("worker_timeout_s and stream_idle_timeout_s must be positive")
        if self.curve_dir is not None and not Path(self.curve_dir).is_dir():
            raise ConfigError(f"curve_dir {self.curve_dir} is not a directory")
        for address in (self.front, self.back):
            check_exposure(address, self.curve_dir is not None, "bind")


@dataclass
class _WorkerInfo:
    name: str
    crop_size: int
    model: ModelInfo
    max_streams: int
    streams: int
    opens_since_report: int
    last_seen: float
    last_chosen: float = 0.0

    @property
    def free_slots(self) -> int:
        return self.max_streams - self.streams - self.opens_since_report


@dataclass
class _Pin:
    worker: bytes
    last_active: float


class Broker:
    """Routes client streams to workers. ``serve_forever()`` runs until ``stop()``."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.workers: dict[bytes, _WorkerInfo] = {}
        self.pins: dict[tuple[bytes, int], _Pin] = {}
        self._gate = serving.OpenGate(config.limits)
        self._client_keys: dict[bytes, str] = {}  # connection -> its CURVE key, where clients authenticate
        self._stop = threading.Event()
        self._context = zmq.Context()
        self._authenticator = None
        self._sockets: list[zmq.Socket] = []
        self._watches: list[serving.ConnectionWatch] = []
        try:
            self._front = self._bind(config.front)
            self._back = self._bind(config.back)
            self._front_watch, self._back_watch = serving.ConnectionWatch(self._front), serving.ConnectionWatch(self._back)
            self._watches = [self._front_watch, self._back_watch]
        except Exception:
            self._close()
            raise

    @property
    def front_address(self) -> str:
        return self._front.getsockopt_string(zmq.LAST_ENDPOINT)

    @property
    def back_address(self) -> str:
        return self._back.getsockopt_string(zmq.LAST_ENDPOINT)

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self._front, zmq.POLLIN)
        poller.register(self._back, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(serving.POLL_INTERVAL_MS))
                if self._back in ready:
                    for parts, count in serving.drain(self._back, WORKER_PARTS, DRAIN_MOST):
                        self._forget_workers(self._back_watch.seen(parts[0].bytes, parts[0]))
                        self._from_worker(parts, count)
                if self._front in ready:
                    for parts, count in serving.drain(self._front, CLIENT_PARTS, DRAIN_MOST):
                        self._forget_clients(self._front_watch.seen(parts[0].bytes, parts[0]))
                        self._from_client(parts, count)
                self._forget_workers(self._back_watch.gone())
                self._forget_clients(self._front_watch.gone())
                self._forget_silent_workers()
        finally:
            self._close()

    def stop(self) -> None:
        self._stop.set()

    def _bind(self, address: str) -> zmq.Socket:
        socket = self._context.socket(zmq.ROUTER)
        self._sockets.append(socket)
        socket.linger = 200
        socket.rcvhwm = socket.sndhwm = 1000
        socket.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_bytes)
        if self.config.curve_dir is not None:
            if self._authenticator is None:
                self._authenticator = start_authenticator(self._context, self.config.curve_dir)
            secure_server(socket, self.config.curve_dir)
        socket.bind(address)
        return socket

    def _close(self) -> None:
        for watch in self._watches:
            watch.close()
        for socket in self._sockets:
            socket.close()
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()

    # -- clients ---------------------------------------------------------------------------

    def _from_client(self, parts: list, count: int) -> None:
        client, body = parts[0].bytes, parts[1:]
        try:
            worker = self._route(client, body, count - 1, serving.client_key(parts[0]))
        except ProtocolError as error:
            reply = error_message(error.code, str(error), error.stream, error.seq)
            self._front.send_multipart([client, *reply], flags=zmq.NOBLOCK)
            return
        self._back.send_multipart([worker, client, b"", *body], flags=zmq.NOBLOCK, copy=False)

    def _route(self, client: bytes, body: list, body_parts: int, key: str | None) -> bytes:
        """The worker that a client message (``body_parts`` parts after its identity, ``body``
        the first of them) goes to; raises ProtocolError for an ERROR reply."""
        if not body or body_parts > serving.MAX_PARTS:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"a message has 1 to {serving.MAX_PARTS} parts")
        if payload_bytes(body) > self.config.max_message_bytes:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"message exceeds {self.config.max_message_bytes} bytes")
        header = parse_header(body[0].buffer)
        kind, stream, seq = header["type"], header.get("stream"), header.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        if kind == MessageType.OPEN:
            self._admit(client, key, seq)
        if kind in (MessageType.OPEN, MessageType.PING):
            return self._choose_worker(opening=kind == MessageType.OPEN, seq=seq)
        if kind in (MessageType.FRAME, MessageType.CALIBRATE, MessageType.CLOSE):
            stream = stream if isinstance(stream, int) and not isinstance(stream, bool) else None
            pin = self.pins.get((client, stream))
            if pin is None:
                raise ProtocolError(ErrorCode.UNKNOWN_STREAM, f"no open stream {stream} on this connection", stream, seq)
            pin.last_active = time.monotonic()
            return pin.worker
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"unknown request type {kind[:40]!r}", None, seq)

    def _admit(self, client: bytes, key: str | None, seq: int | None) -> None:
        """Raise STREAM_LIMIT unless the client is within its limits; remember its connection's key."""
        if key is not None:
            self._client_keys[client] = key
        client_streams = sum(owner == client for owner, _ in self.pins)
        key_streams = sum(key is not None and self._client_keys.get(owner) == key for owner, _ in self.pins)
        refusal = self._gate.refusal(client, key, client_streams, key_streams)
        if refusal is not None:
            raise ProtocolError(ErrorCode.STREAM_LIMIT, refusal, seq=seq)

    def _choose_worker(self, opening: bool, seq: int | None) -> bytes:
        candidates = [(info.free_slots, -info.last_chosen, identity) for identity, info in self.workers.items()]
        if opening:
            candidates = [c for c in candidates if c[0] > 0]
        if not candidates:
            reason = "no worker has a free stream slot" if opening else "no worker is connected"
            raise ProtocolError(ErrorCode.UNAVAILABLE, reason, seq=seq)
        identity = max(candidates)[2]
        info = self.workers[identity]
        info.last_chosen = time.monotonic()
        info.opens_since_report += int(opening)
        return identity

    # -- workers ---------------------------------------------------------------------------

    def _from_worker(self, parts: list, count: int) -> None:
        identity = parts[0].bytes
        if count > len(parts):
            log.warning("a message of %d parts from a worker, more than %d; dropped", count, WORKER_PARTS)
            return
        delimiter = next((i for i, part in enumerate(parts) if i > 0 and len(part) == 0), None)
        if delimiter is None or delimiter + 1 >= len(parts):
            return
        envelope, body = parts[1:delimiter], parts[delimiter + 1 :]
        try:
            header = parse_header(body[0].buffer)
        except ProtocolError as error:
            log.warning("unreadable message from a worker: %s", error)
            return
        if not envelope:
            self._on_ready(identity, header)
            return
        if identity not in self.workers:
            return  # a worker that was given up on; its clients have been told to reopen
        self.workers[identity].last_seen = time.monotonic()
        self._track(identity, envelope[0].bytes, header)
        self._front.send_multipart([*envelope, *body], flags=zmq.NOBLOCK, copy=False)

    def _on_ready(self, identity: bytes, header: dict) -> None:
        if header.get("type") != MessageType.READY:
            return
        announced = _announcement(header)
        if announced is None:
            log.warning("malformed READY from a worker: %s", header)
            return
        crop_size, model, max_streams, streams = announced
        served = {(info.crop_size, info.model) for key, info in self.workers.items() if key != identity}
        if served and (crop_size, model) not in served:
            name = header.get("worker")
            log.warning("worker %s serves %d px crops with %s, the others %s; not used", name, crop_size, model, served)
            return
        info = self.workers.get(identity)
        if info is None:
            log.info("worker %s joined (%d px, %d streams at most)", header.get("worker"), crop_size, max_streams)
            info = self.workers[identity] = _WorkerInfo(str(header.get("worker")), crop_size, model, max_streams, streams, 0, 0.0)
        info.max_streams, info.streams, info.opens_since_report = max_streams, streams, 0
        info.last_seen = time.monotonic()

    def _track(self, worker: bytes, client: bytes, header: dict) -> None:
        """Pin streams on OPENED; unpin on CLOSED and on the worker's 'unknown stream'."""
        kind, stream = header.get("type"), header.get("stream")
        if not isinstance(stream, int):
            return
        if kind == MessageType.OPENED:
            self.pins[(client, stream)] = _Pin(worker, time.monotonic())
        elif kind == MessageType.CLOSED or (kind == MessageType.ERROR and header.get("code") == ErrorCode.UNKNOWN_STREAM):
            self.pins.pop((client, stream), None)

    def _forget_workers(self, identities: list[bytes]) -> None:
        """Workers whose connection closed: forgotten now, with their streams."""
        for identity in identities:
            info = self.workers.pop(identity, None)
            if info is not None:
                log.warning("worker %s disconnected; its streams are dropped", info.name)
        if identities:
            self._drop_stale_pins()

    def _forget_clients(self, clients: list[bytes]) -> None:
        """Clients whose connection closed: their streams are closed on their workers."""
        for client in clients:
            self._gate.forget(client)
            for key in [k for k in self.pins if k[0] == client]:
                worker = self.pins.pop(key).worker
                close = encode_header(MessageType.CLOSE, seq=0, stream=key[1])
                self._back.send_multipart([worker, client, b"", close], flags=zmq.NOBLOCK)
            self._client_keys.pop(client, None)

    def _forget_silent_workers(self) -> None:
        now = time.monotonic()
        timeout_s = self.config.worker_timeout_s
        for identity in [k for k, info in self.workers.items() if now - info.last_seen > timeout_s]:
            log.warning("worker %s silent for %.1f s; its streams are dropped", self.workers.pop(identity).name, timeout_s)
        self._drop_stale_pins()

    def _drop_stale_pins(self) -> None:
        now = time.monotonic()
        idle_s = self.config.stream_idle_timeout_s
        for key in [k for k, pin in self.pins.items() if pin.worker not in self.workers or now - pin.last_active > idle_s]:
            del self.pins[key]


def _announcement(header: dict) -> tuple[int, ModelInfo, int, int] | None:
    """A READY's (crop_size, model, max_streams, streams), or None when it is malformed."""
    counts = [header.get(key) for key in ("crop_size", "max_streams", "streams")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        return None
    try:
        model = ModelInfo.from_header(header)
    except ProtocolError:
        return None
    crop_size, max_streams, streams = counts
    return crop_size, model, max_streams, streams


def run_broker(config: BrokerConfig) -> None:
    """Route until SIGINT or SIGTERM (when called from the main thread), then close cleanly."""
    broker = Broker(config)
    log.info("broker: clients on %s, workers on %s", broker.front_address, broker.back_address)
    with serving.stop_on_signals(broker):
        broker.serve_forever()
