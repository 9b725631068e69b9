"""The Ray edge: the worker's ZeroMQ front over engine replicas in a Ray cluster (docs/cluster.md).

``rt-dtgan serve --ray ADDRESS`` runs the plain ``Worker`` (the same socket, protocol, CURVE,
per-client limits, idle reclaim and send bounds) with a ``ReplicaPool`` as its engine. The
pool is the Ray driver: it starts ``EngineReplica`` actors (transport/replica.py), places each
new stream on the least loaded one and keeps it there while the replica lives, and sends each
replica one batched ``step_many`` per turn of the worker's loop, all replicas at once.

Failover is the pool's, not Ray's restart: per stream it keeps the target, the anchor and the
last W faces (the model's ``stream_window``), from which the stream's state is a function. A
replica whose call fails (its process or node died) or does not answer within
``step_timeout_s`` is given up; its streams are rebuilt on the other replicas and the frames
in flight are stepped there, so every frame gets its result, equal to a local transfer's, and
a log line names the frames that waited. Replicas grow to hold ``streams_per_replica`` each,
between ``min_replicas`` and ``max_replicas``, and a replica in surplus for
``scale_down_after_s`` is drained (its streams rebuilt elsewhere) and stopped.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError
from ray.util import metrics

from rt_dtgan.config import ConfigError
from rt_dtgan.errors import RtDtganError
from rt_dtgan.runtime.engine import Face, Generated, StreamEngine
from rt_dtgan.transport.replica import EngineReplica, StreamRecord
from rt_dtgan.transport.serving import stop_on_signals
from rt_dtgan.transport.worker import Worker, WorkerConfig

NO_CROP = np.zeros((0, 0, 3), np.uint8)  # a face's crop where the model reads only its mesh
# Calls' arguments and results up to this size travel inline, not through the object store:
# a batch of 16 crops of 64 px each way took 1.9 ms instead of 5.7 (Ray's default: 100 KiB).
INLINE_BYTES = 4 * 2**20

log = logging.getLogger(__name__)


class ClusterError(RtDtganError):
    """No engine replica could be started or reached."""


class EngineError(RuntimeError):
    """The engine raised inside a replica (the replica lives on); the message is its error."""


@dataclass(frozen=True)
class ClusterConfig:
    """Where the replicas run and how many. ``address``: ``local`` starts a one-machine
    cluster in this process (its dashboard on loopback), ``auto`` joins the cluster running on
    this machine, HOST:PORT the one whose head (GCS) is there. ``replica_cpus`` is what a
    replica asks of a node without GPUs; where the cluster has GPUs each asks one."""

    address: str = "local"
    min_replicas: int = 2
    max_replicas: int = 4
    streams_per_replica: int = 8
    replica_cpus: float = 1.0
    step_timeout_s: float = 5.0
    start_timeout_s: float = 300.0
    scale_down_after_s: float = 30.0
    status_every_s: float = 10.0
    namespace: str = "rt-dtgan"

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas <= 1024:
            raise ConfigError(f"need 1 <= min_replicas <= max_replicas <= 1024, got {self.min_replicas} and {self.max_replicas}")
        if self.streams_per_replica < 1:
            raise ConfigError(f"streams_per_replica must be at least 1, got {self.streams_per_replica}")
        if not self.replica_cpus >= 0:
            raise ConfigError(f"replica_cpus must be at least 0, got {self.replica_cpus}")
        timings = (self.step_timeout_s, self.start_timeout_s, self.status_every_s)
        if not all(value > 0 for value in timings) or not self.scale_down_after_s >= 0:
            raise ConfigError("the timeouts and the status interval must be positive, scale_down_after_s at least 0")


@dataclass
class _Replica:
    """``ready``: the ref of its first ``info()`` until it has answered, then None."""

    name: str
    handle: object
    ready: object | None
    streams: set[int] = field(default_factory=set)


@dataclass
class _Stream:
    """The edge's copy of a stream: enough to rebuild it anywhere (``StreamRecord``), where it
    is (``replica``, ``engine_id``) and how many frames it has had."""

    target: Face
    strength: float
    window: deque
    anchor: Face | None = None
    frames_since_anchor: int = 0
    frames: int = 0
    replica: str = ""
    engine_id: int = 0

    def record(self) -> StreamRecord:
        return StreamRecord(self.target, self.strength, self.anchor, tuple(self.window))

    def stepped(self, face: Face) -> None:
        """``face`` went through the engine: the anchor when none was set, else the window's newest."""
        if self.anchor is None:
            self.anchor = face
        else:
            self.window.append(face)
        self.frames_since_anchor += 1
        self.frames += 1


@dataclass
class _Call:
    """One ``step_many`` call to a replica: its ref, the flight's indices it carries, when it was sent."""

    replica: str
    ref: object
    indices: list[int]
    sent: float


@dataclass
class _Flight:
    """Frames sent to the replicas together: (stream id, face) pairs, the faces as a replica
    reads them, when they were submitted, the calls still to collect, and the indices of the
    frames sent again after their replica was lost."""

    frames: list[tuple[int, Face]]
    faces: list[Face]
    began: float
    calls: list[_Call] = field(default_factory=list)
    resent: set[int] = field(default_factory=set)

    def stream_id(self, index: int) -> int:
        return self.frames[index][0]


class _ReplicaLost(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReplicaPool:
    """The streams of one edge on its replicas, with StreamEngine's interface for the Worker:
    ``open``, ``recalibrate``, ``close``, ``frames_seen``, ``step_many``, ``size`` and ``config``
    (the model's). ``tick()`` once per turn of the worker's loop grows, shrinks and replaces
    replicas and reports. Ray must be initialised (``connect``); ``make_engine()`` -> the
    StreamEngine each replica serves (a picklable recipe, transport/replica.py)."""

    def __init__(self, cluster: ClusterConfig, make_engine: Callable[[], StreamEngine]) -> None:
        self.cluster = cluster
        self.failovers = 0
        self._make_engine = make_engine
        self._actor = ray.remote(EngineReplica)
        self._replicas: dict[str, _Replica] = {}
        self._streams: dict[int, _Stream] = {}
        self._ids = itertools.count(1)
        self._names = (f"engine-{n}@{os.getpid()}" for n in itertools.count(1))
        self._gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self._surplus_since: float | None = None
        self._flights: deque[_Flight] = deque()  # submitted, not yet collected, oldest first
        self._meter = _Meter(cluster.status_every_s)
        try:
            for _ in range(cluster.min_replicas):
                self._start_replica()
            info = self._first_info()
        except BaseException:
            self.shutdown()
            raise
        self.config, self.size, self.backend_description = info.config, info.size, info.backend
        self._window = info.config.stream_window

    # -- StreamEngine's interface ------------------------------------------------------------

    def open(self, target: Face, strength: float = 1.0) -> int:
        """Place a new stream on the least loaded replica -> its id; its first frame is its anchor."""
        stream_id = next(self._ids)
        self._streams[stream_id] = _Stream(target, strength, deque(maxlen=self._window))
        try:
            self._place([stream_id])
        except BaseException:
            self._forget(stream_id)
            raise
        return stream_id

    def recalibrate(self, stream_id: int, reference: Face | None = None) -> None:
        """Make ``reference`` the anchor now, or, without one, the next frame."""
        stream = self._stream(stream_id)
        stream.anchor = None if reference is None else self._reading(reference)
        stream.window.clear()
        stream.frames_since_anchor = int(reference is not None)
        replica = self._replicas[stream.replica]
        try:
            self._get(replica.handle.recalibrate.remote(stream.engine_id, stream.anchor))
        except _ReplicaLost as lost:
            self._place(self._lose(replica.name, lost.reason))

    def close(self, stream_id: int) -> None:
        """Forget the stream; its replica frees it without being waited for."""
        stream = self._stream(stream_id)
        replica = self._forget(stream_id)
        if replica is not None:
            replica.handle.close.remote([stream.engine_id])

    def frames_seen(self, stream_id: int) -> int:
        """Frames since the stream's anchor, the anchor included."""
        return self._stream(stream_id).frames_since_anchor

    def step_many(self, frames: Sequence[tuple[int, Face]]) -> list[Generated]:
        """One frame for each of several streams -> their outputs, in order."""
        return self.submit_many(frames)()

    def submit_many(self, frames: Sequence[tuple[int, Face]]) -> Callable[[], list[Generated]]:
        """Send each replica its streams' frames in one call, all replicas at once -> a callable
        that waits for the outputs, in order. Call those in the order submitted (the Worker
        does). A replica lost meanwhile has its streams rebuilt elsewhere, and the frames sent
        to it, of this flight and of every later one, are sent again there in their order."""
        flight = _Flight(list(frames), [self._reading(face) for _, face in frames], time.monotonic())
        flight.calls = self._send(range(len(frames)), flight)
        self._flights.append(flight)
        return partial(self._collect, flight)

    def _collect(self, flight: _Flight) -> list[Generated | None]:
        """The flight's outputs (None for a stream closed meanwhile); records its frames."""
        outputs: list[Generated | None] = [None] * len(flight.frames)
        try:
            while flight.calls:
                call = flight.calls[0]
                try:
                    result = self._result(call)
                except _ReplicaLost as lost:
                    self._place(self._lose(call.replica, lost.reason))  # sends this call's frames again too
                    continue
                flight.calls.pop(0)
                for index, output in zip(call.indices, result):
                    outputs[index] = output
        finally:
            self._flights.remove(flight)
        for index, face in enumerate(flight.faces):
            stream = self._streams.get(flight.stream_id(index))
            if stream is not None:
                stream.stepped(face)
        named = [f"stream {flight.stream_id(i)} frame {self._streams[flight.stream_id(i)].frames} (1-based)"
                 for i in sorted(flight.resent) if flight.stream_id(i) in self._streams]
        if named:
            waited = time.monotonic() - flight.began
            log.warning("failover: %s waited %.2f s and resumed on another replica", ", ".join(named), waited)
        return outputs

    # -- the replicas -----------------------------------------------------------------------

    def tick(self) -> None:
        """Between turns: note replicas that have started, keep min..max replicas for the
        streams open, drain one in surplus for scale_down_after_s, report every status_every_s."""
        self._poll_starting()
        alive = len(self._replicas)
        wanted = min(max(math.ceil(len(self._streams) / self.cluster.streams_per_replica), self.cluster.min_replicas),
                     self.cluster.max_replicas)
        if alive < wanted:
            self._start_replica()
        now = time.monotonic()
        if alive <= wanted:
            self._surplus_since = None
        elif self._surplus_since is None:
            self._surplus_since = now
        elif now - self._surplus_since >= self.cluster.scale_down_after_s and not self._flights:
            self._surplus_since = None
            self.drain(min(self._replicas.values(), key=lambda r: (r.ready is None, len(r.streams))).name)
        if self._meter.due(now):
            self._meter.report(len(self._replicas), len(self._streams), self.status_line())

    def drain(self, name: str) -> None:
        """Move the replica's streams to the others (rebuilt exactly), then stop it."""
        replica = self._replicas.pop(name)
        log.info("draining %s: %d streams move to the other replicas", name, len(replica.streams))
        self._place(sorted(replica.streams & self._streams.keys()))
        ray.kill(replica.handle)

    def shutdown(self) -> None:
        for replica in self._replicas.values():
            ray.kill(replica.handle)
        self._replicas.clear()

    @property
    def replica_streams(self) -> dict[str, int]:
        """Each replica's name -> its streams (-1 while it starts)."""
        return {name: -1 if r.ready is not None else len(r.streams) for name, r in self._replicas.items()}

    def stream_replica(self, stream_id: int) -> str:
        return self._stream(stream_id).replica

    def replica_handle(self, name: str):
        """The Ray actor handle of a replica (tests and benchmarks: to find or kill it)."""
        return self._replicas[name].handle

    def status_line(self) -> str:
        starting = sum(r.ready is not None for r in self._replicas.values())
        return (
            f"ray: {len(self._replicas)} replicas ({starting} starting), {len(self._streams)} streams, "
            f"{self._meter.summary()}, {self.failovers} failovers"
        )

    def _start_replica(self) -> None:
        name = next(self._names)
        options = dict(
            num_cpus=0 if self._gpus else self.cluster.replica_cpus,
            num_gpus=self._gpus,
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy="SPREAD",
        )
        handle = self._actor.options(**options).remote(name, self._make_engine)
        self._replicas[name] = _Replica(name, handle, handle.info.remote())

    def _first_info(self):
        """Wait for the first replica to answer -> its ReplicaInfo."""
        deadline = time.monotonic() + self.cluster.start_timeout_s
        while time.monotonic() < deadline:
            for replica in list(self._replicas.values()):
                if replica.ready is None:
                    continue
                ready, _ = ray.wait([replica.ready], timeout=0)
                if ready:
                    try:
                        info = ray.get(replica.ready)
                    except RayError as error:
                        raise ClusterError(f"an engine replica failed to start: {error}") from error
                    replica.ready = None
                    return info
            time.sleep(0.05)
        raise ClusterError(f"no engine replica started within {self.cluster.start_timeout_s:.0f} s; does the cluster have "
                           f"{self.cluster.replica_cpus:g} CPUs (or a GPU) free?")

    def _poll_starting(self) -> None:
        for replica in [r for r in self._replicas.values() if r.ready is not None]:
            if not ray.wait([replica.ready], timeout=0)[0]:
                continue
            try:
                ray.get(replica.ready)
                replica.ready = None
                log.info("replica %s ready", replica.name)
            except RayError as error:
                self._replicas.pop(replica.name)
                log.warning("replica %s failed to start: %s", replica.name, error)

    def _least_loaded(self) -> _Replica:
        """The ready replica with the fewest streams; waits for a starting one if none is ready."""
        deadline = time.monotonic() + self.cluster.start_timeout_s
        while True:
            ready = [r for r in self._replicas.values() if r.ready is None]
            if ready:
                return min(ready, key=lambda r: len(r.streams))
            if not self._replicas:
                self._start_replica()
            if time.monotonic() > deadline:
                raise ClusterError(f"no engine replica became ready within {self.cluster.start_timeout_s:.0f} s")
            time.sleep(0.05)
            self._poll_starting()

    def _place(self, stream_ids: Sequence[int]) -> None:
        """(Re)build the streams' states on the least loaded replicas; a replica lost meanwhile
        gives its streams to the others too. Then the frames still out to lost replicas go again."""
        waiting = list(stream_ids)
        while waiting:
            groups = defaultdict(list)
            for stream_id in waiting:
                replica = self._least_loaded()
                replica.streams.add(stream_id)
                self._streams[stream_id].replica = replica.name
                groups[replica.name].append(stream_id)
            calls = {
                name: self._replicas[name].handle.rebuild.remote([self._streams[i].record() for i in ids])
                for name, ids in groups.items()
            }
            waiting = []
            for name, call in calls.items():
                try:
                    engine_ids = self._get(call)
                except _ReplicaLost as lost:
                    waiting += self._lose(name, lost.reason)
                    continue
                for stream_id, engine_id in zip(groups[name], engine_ids):
                    self._streams[stream_id].engine_id = engine_id
        self._send_again()

    def _send(self, indices: Sequence[int], flight: _Flight) -> list[_Call]:
        """One ``step_many`` call per replica for the flight's frames at ``indices`` (those of
        streams still open), each to where its stream is now."""
        by_replica = defaultdict(list)
        for index in indices:
            stream = self._streams.get(flight.stream_id(index))
            if stream is not None:
                by_replica[stream.replica].append(index)
        sent = time.perf_counter()
        return [
            _Call(name, self._replicas[name].handle.step_many.remote(
                [(self._streams[flight.stream_id(i)].engine_id, flight.faces[i]) for i in group]
            ), group, sent)
            for name, group in by_replica.items()
        ]

    def _send_again(self) -> None:
        """Every outstanding call to a replica given up, sent again where its streams are now,
        oldest flight first, so that each stream's frames reach its new replica in order."""
        for flight in self._flights:
            lost = [call for call in flight.calls if call.replica not in self._replicas]
            for call in lost:
                flight.calls.remove(call)
                flight.calls += self._send(call.indices, flight)
                flight.resent.update(call.indices)

    def _result(self, call: _Call) -> list[Generated]:
        """A step call's outputs; raises _ReplicaLost (and EngineError) as ``_get``."""
        outputs, engine_s = self._get(call.ref)
        self._meter.stepped(call.replica, len(outputs), engine_s, time.perf_counter() - call.sent)
        return outputs

    def _get(self, call):
        """The result of a replica's call; raises _ReplicaLost when the replica is gone or
        silent past step_timeout_s, EngineError when its engine raised."""
        try:
            return ray.get(call, timeout=self.cluster.step_timeout_s)
        except RayTaskError as error:
            raise EngineError(str(error.cause)) from None
        except GetTimeoutError:
            raise _ReplicaLost(f"no answer within {self.cluster.step_timeout_s:g} s") from None
        except RayError as error:
            raise _ReplicaLost(type(error).__name__) from None

    def _lose(self, name: str, reason: str) -> list[int]:
        """Give a replica up (stopped, in case it only hangs) -> the streams it held."""
        replica = self._replicas.pop(name, None)
        if replica is None:
            return []
        ray.kill(replica.handle)
        self.failovers += 1
        self._meter.failovers.inc()
        log.warning("replica %s lost (%s): %d streams move to the other replicas", name, reason, len(replica.streams))
        return sorted(replica.streams & self._streams.keys())

    def _forget(self, stream_id: int) -> _Replica | None:
        """Drop the stream's record -> the replica that held it, if it still lives."""
        stream = self._streams.pop(stream_id)
        replica = self._replicas.get(stream.replica)
        if replica is not None:
            replica.streams.discard(stream_id)
        return replica

    def _stream(self, stream_id: int) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise KeyError(f"no open stream {stream_id}") from None

    def _reading(self, face: Face) -> Face:
        """What the model's encoder reads of a face: the mesh alone where it reads meshes."""
        return Face(NO_CROP, face.mesh) if self.config.reads_mesh else Face(face.crop)


class _Meter:
    """Frames per second, engine and queue latency since the last report, for the status line
    and Ray's metrics (``ray_rt_dtgan_edge_*``, tagged with the replica, never a stream)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._since = time.monotonic()
        self._frames = 0
        self._engine_ms: list[float] = []
        self._queue_ms: list[float] = []
        self.failovers = metrics.Counter("rt_dtgan_edge_failovers", "replicas given up and their streams moved")
        self._replicas = metrics.Gauge("rt_dtgan_edge_replicas", "engine replicas")
        self._streams = metrics.Gauge("rt_dtgan_edge_streams", "streams open at the edge")
        self._queue = metrics.Histogram(
            "rt_dtgan_edge_queue_ms", "a step's round trip to a replica less its engine time, ms",
            [0.5, 1, 2, 5, 10, 20, 50, 100, 500], tag_keys=("replica",),
        )

    def due(self, now: float) -> bool:
        return now - self._since >= self.every_s

    def stepped(self, replica: str, frames: int, engine_s: float, call_s: float) -> None:
        self._frames += frames
        self._engine_ms.append(engine_s * 1e3)
        self._queue_ms.append(max(call_s - engine_s, 0.0) * 1e3)
        self._queue.observe(self._queue_ms[-1], tags={"replica": replica})

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self._since, 1e-9)
        if not self._engine_ms:
            return "0 frames/s"
        engine, queue = np.percentile(self._engine_ms, [50, 99]), np.percentile(self._queue_ms, [50, 99])
        return (f"{self._frames / elapsed:.1f} frames/s, engine p50 {engine[0]:.1f} ms p99 {engine[1]:.1f} ms, "
                f"queue p50 {queue[0]:.1f} ms p99 {queue[1]:.1f} ms")

    def report(self, replicas: int, streams: int, status_line: str) -> None:
        self._replicas.set(replicas)
        self._streams.set(streams)
        log.info(status_line)
        self._since, self._frames, self._engine_ms, self._queue_ms = time.monotonic(), 0, [], []


def connect(cluster: ClusterConfig) -> None:
    """Initialise Ray as ``cluster.address`` says: a new one-machine cluster (token
    authentication on, the dashboard on loopback, INLINE_BYTES; Ray's other ports listen on
    the machine's address: docs/cluster.md says what to firewall), or a running one (whose
    head sets its own system config)."""
    if cluster.address == "local":
        system = {"max_direct_call_object_size": INLINE_BYTES}
        ray.init(namespace=cluster.namespace, dashboard_host="127.0.0.1", log_to_driver=False, _system_config=system)
    else:
        ray.init(address=cluster.address, namespace=cluster.namespace, log_to_driver=False)


def run_edge(worker: WorkerConfig, cluster: ClusterConfig, make_engine: Callable[[], StreamEngine]) -> None:
    """Serve on ``worker.bind`` with engines on the Ray cluster until SIGINT or SIGTERM (from the
    main thread), then stop the replicas and leave the cluster."""
    connect(cluster)
    try:
        pool = ReplicaPool(cluster, make_engine)
        try:
            edge = Worker(worker, pool, on_turn=pool.tick)
            log.info("edge %s on %s, replicas serving %s: %s", worker.name, edge.address, pool.backend_description,
                     pool.status_line())
            with stop_on_signals(edge):
                edge.serve_forever()
        finally:
            pool.shutdown()
    finally:
        ray.shutdown()
