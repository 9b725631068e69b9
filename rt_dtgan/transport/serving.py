"""What the worker and the broker share as servers: message bounds, the poll interval,
receiving what waits on a socket, stopping on signals, knowing when a peer's connection is
gone, and admitting OPENs.

Connections: libzmq's stable API tells a ROUTER's owner nothing when a peer disconnects
(ROUTER_NOTIFY is a draft option, absent from the released wheels). Its socket monitor
does report the file descriptor of every closed connection, and every received message
carries the descriptor it came in on (SRCFD), so ``ConnectionWatch`` maps one to the other.
The kernel closes a killed process's sockets, so a client killed with -9 is seen gone
within one poll interval.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import zmq
from zmq.utils.monitor import recv_monitor_message

from rt_dtgan.config import ConfigError

MAX_PARTS = 8  # of a request's body, after its envelope
POLL_INTERVAL_MS = 50


class Server(Protocol):
    def stop(self) -> None: ...


def drain(socket: zmq.Socket, keep: int, most: int) -> Iterator[tuple[list[zmq.Frame], int]]:
    """Every multipart message waiting on ``socket`` now, at most ``most`` of them, each as
    (its first ``keep`` parts, how many parts it had): the rest are read and dropped, so that
    a message of many parts costs no memory."""
    for _ in range(most):
        try:
            parts = [socket.recv(zmq.NOBLOCK, copy=False)]
        except zmq.Again:
            return
        count = 1
        while socket.getsockopt(zmq.RCVMORE):
            part = socket.recv(copy=False)
            count += 1
            if len(parts) < keep:
                parts.append(part)
        yield parts, count


@contextmanager
def stop_on_signals(server: Server) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``server.stop()`` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: server.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class ConnectionWatch:
    """Which peer identities a ROUTER socket's connections carry, and which have gone.

    ``seen(identity, frame)`` for every message (its first frame, the identity ROUTER
    prepended) returns the identities known gone because their descriptor now carries
    another peer; ``gone()`` returns those whose connection closed since the last call.
    A descriptor reused twice within one poll, the second time by a peer that sends
    nothing, can make ``gone()`` name a live peer: its streams close and its client
    reopens them, as after any outage."""

    def __init__(self, socket: zmq.Socket) -> None:
        self._socket = socket
        self._monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._identity_on: dict[int, bytes] = {}
        self._superseded = Counter()  # descriptor -> disconnect events still to come for peers already given up

    def seen(self, identity: bytes, frame: zmq.Frame) -> list[bytes]:
        descriptor = frame.get(zmq.SRCFD)
        previous = self._identity_on.get(descriptor)
        self._identity_on[descriptor] = identity
        if previous is None or previous == identity:
            return []
        self._superseded[descriptor] += 1
        return [previous]

    def gone(self) -> list[bytes]:
        identities = []
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return identities
            descriptor = int(event["value"])
            if self._superseded[descriptor]:
                self._superseded[descriptor] -= 1
                continue
            identity = self._identity_on.pop(descriptor, None)
            if identity is not None:
                identities.append(identity)

    def close(self) -> None:
        self._socket.disable_monitor()
        self._monitor.close(linger=0)


@dataclass(frozen=True)
class ClientLimits:
    """What one client may hold: streams per connection, streams per CURVE key (where
    clients authenticate), and OPENs per second per connection (a token bucket of
    ``open_burst``)."""

    streams_per_client: int = 4
    streams_per_key: int = 8
    opens_per_s: float = 5.0
    open_burst: int = 10

    def __post_init__(self) -> None:
        if self.streams_per_client < 1 or self.streams_per_key < 1 or self.open_burst < 1:
            raise ConfigError("streams per client, streams per key and the OPEN burst must be at least 1")
        if not self.opens_per_s > 0:
            raise ConfigError(f"opens_per_s must be positive, got {self.opens_per_s}")


class OpenGate:
    """Admits OPENs under ClientLimits. ``refusal(...)`` -> None to admit, or the sentence
    naming the limit that refuses."""

    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits
        self._buckets: dict[bytes, tuple[float, float]] = {}  # client -> (tokens, when counted)

    def refusal(self, client: bytes, key: str | None, client_streams: int, key_streams: int) -> str | None:
        limits = self.limits
        if not self._take_token(client):
            return f"at most {limits.opens_per_s:g} OPENs per second per connection (bursts of {limits.open_burst})"
        if client_streams >= limits.streams_per_client:
            return f"at most {limits.streams_per_client} streams per connection"
        if key is not None and key_streams >= limits.streams_per_key:
            return f"at most {limits.streams_per_key} streams per client key"
        return None

    def forget(self, client: bytes) -> None:
        self._buckets.pop(client, None)

    def _take_token(self, client: bytes) -> bool:
        now = time.monotonic()
        tokens, counted = self._buckets.get(client, (float(self.limits.open_burst), now))
        tokens = min(float(self.limits.open_burst), tokens + (now - counted) * self.limits.opens_per_s)
        admitted = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if admitted else tokens, now)
        return admitted


def client_key(frame: zmq.Frame) -> str | None:
    """The CURVE public key (Z85) a message was authenticated with, or None without CURVE."""
    try:
        key = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return key or None
