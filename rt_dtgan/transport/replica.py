"""An engine replica: one StreamEngine in a Ray actor, many streams' states on it.

The edge (transport/cluster.py) places each stream on a replica and sends it, each turn, one
``step_many`` with the newest frame of every stream it holds there, as the plain worker
batches its own engine. A replica keeps no state the edge cannot give again: a stream is its
target, its strength, its anchor and the last W faces after it (W the model's
``stream_window``), and ``rebuild`` recreates the stream's exact state from those on any
replica. Faces carry only what the model's encoder reads (the crop, or the mesh of a model
that reads meshes), so that a batch stays within Ray's inline size. This module runs inside
Ray's worker processes; Ray itself is imported only where the metrics are made.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rt_dtgan.config import ModelConfig
from rt_dtgan.runtime.engine import Face, Generated, StreamEngine, open_engine

STEP_MS_BOUNDARIES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]


@dataclass(frozen=True)
class CheckpointRecipe:
    """How a replica opens its engine: ``open_engine``'s arguments (a checkpoint file or a
    shipped model's name; the backend; exported engines; CPU threads)."""

    checkpoint: str | None = None
    backend: str = "auto"
    engines: str | None = None
    threads: int | None = 1
    cuda_graphs: bool = False

    def __call__(self) -> StreamEngine:
        return open_engine(self.checkpoint, self.backend, self.engines, self.threads, self.cuda_graphs)[0]


@dataclass(frozen=True)
class ModelRecipe:
    """A replica's engine around a model given whole (tests and benchmarks: fresh weights)."""

    model: object  # a DynamicsTransferGAN in eval mode
    threads: int = 1

    def __call__(self) -> StreamEngine:
        import torch

        from rt_dtgan.runtime.backends import TorchBackend

        torch.set_num_threads(self.threads)
        return StreamEngine(TorchBackend(self.model))


@dataclass(frozen=True)
class StreamRecord:
    """What rebuilds a stream's state: ``target`` (the portrait's face), ``strength`` in [0, 3],
    ``anchor`` (the face y0, or None until the next frame becomes it) and ``window``, the
    faces after the anchor, at most W, oldest first."""

    target: Face
    strength: float
    anchor: Face | None
    window: tuple[Face, ...]


@dataclass(frozen=True)
class ReplicaInfo:
    """What a replica serves: the model's config, the crop size S and the backend's description."""

    config: ModelConfig
    size: int
    backend: str
    pid: int


class EngineReplica:
    """The actor's class (Ray names its process ``ray::EngineReplica``). ``make_engine()`` ->
    the StreamEngine it serves; ``name`` tags its metrics."""

    def __init__(self, name: str, make_engine: Callable[[], StreamEngine]) -> None:
        self.name = name
        self.engine = make_engine()
        self._stream_ids: set[int] = set()
        self._metrics = _ReplicaMetrics(name)

    def info(self) -> ReplicaInfo:
        return ReplicaInfo(self.engine.config, self.engine.size, self.engine.backend.describe(), os.getpid())

    def rebuild(self, records: Sequence[StreamRecord]) -> list[int]:
        """Open a stream for each record, in the state its anchor and window make -> their ids
        on this replica. The window's faces run in batches, as many streams as have one left,
        the states alone (no output is made for them)."""
        ids = [self.engine.open(record.target, record.strength) for record in records]
        for stream_id, record in zip(ids, records):
            if record.anchor is not None:
                self.engine.recalibrate(stream_id, record.anchor)
        longest = max((len(record.window) for record in records), default=0)
        for index in range(longest):
            self.engine.advance_many([(i, r.window[index]) for i, r in zip(ids, records) if index < len(r.window)])
        self._stream_ids.update(ids)
        self._metrics.streams.set(len(self._stream_ids))
        return ids

    def recalibrate(self, stream_id: int, anchor: Face | None) -> None:
        self.engine.recalibrate(stream_id, anchor)

    def close(self, stream_ids: Sequence[int]) -> None:
        for stream_id in stream_ids:
            self.engine.close(stream_id)
            self._stream_ids.discard(stream_id)
        self._metrics.streams.set(len(self._stream_ids))

    def step_many(self, frames: Sequence[tuple[int, Face]]) -> tuple[list[Generated], float]:
        """One frame for each of several streams -> (their outputs in order, the engine's seconds)."""
        began = time.perf_counter()
        outputs = self.engine.step_many(frames)
        engine_s = time.perf_counter() - began
        self._metrics.frames.inc(len(frames))
        self._metrics.step_ms.observe(engine_s * 1e3)
        self._metrics.streams.set(len(self._stream_ids))
        return outputs, engine_s


class _ReplicaMetrics:
    """Ray metrics (Prometheus: ``ray_rt_dtgan_*``) tagged with the replica's name, never a stream's."""

    def __init__(self, name: str) -> None:
        from ray.util import metrics

        tags = {"replica": name}
        self.frames = metrics.Counter("rt_dtgan_replica_frames", "frames stepped", tag_keys=("replica",)).set_default_tags(tags)
        self.streams = metrics.Gauge("rt_dtgan_replica_streams", "streams held", tag_keys=("replica",)).set_default_tags(tags)
        self.step_ms = metrics.Histogram(
            "rt_dtgan_replica_step_ms", "engine time of one batched step, ms", STEP_MS_BOUNDARIES, tag_keys=("replica",)
        ).set_default_tags(tags)
