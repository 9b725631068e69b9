"""The Ray edge (transport/cluster.py): streams on engine replicas in a local Ray cluster, one
replica killed with -9 mid-stream, replicas grown, drained and an edge replaced; every output
compared with a local StreamEngine's. A geometry model at 64 px with fresh, lively weights."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import ray
from conftest import HANG_S, LOOPBACK, make_lively_geometry_model, serving
from test_transport_geometry import SIZE, driving_faces

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.runtime.backends import TorchBackend
from rt_dtgan.runtime.engine import Face, StreamEngine
from rt_dtgan.runtime.warping import KeypointMotion
from rt_dtgan.transport import ClientConfig, StreamClient, Worker, WorkerConfig
from rt_dtgan.transport.cluster import ClusterConfig, ReplicaPool
from rt_dtgan.transport.replica import ModelRecipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(replica_cpus=0.5, step_timeout_s=HANG_S, start_timeout_s=120.0)


def restore_environment(environment: dict[str, str]) -> None:
    """Put os.environ back as it was: ray.init sets variables (PYTHONBREAKPOINT, RAY_AUTH_MODE, ...)
    that the later tests' subprocesses would inherit."""
    os.environ.clear()
    os.environ.update(environment)


@pytest.fixture(scope="module")
def local_ray():
    """A one-node Ray cluster for the module: 2 CPUs, a small object store, no dashboard."""
    environment = dict(os.environ)
    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False, namespace="rt-dtgan-tests", log_to_driver=False)
    yield
    ray.shutdown()
    restore_environment(environment)


@pytest.fixture(scope="module")
def model():
    return make_lively_geometry_model()


@pytest.fixture(scope="module")
def portraits():
    from rt_dtgan.face import prepare_target
    from rt_dtgan.synth.dataset import synthetic_target

    return [prepare_target(synthetic_target(seed, 256), PreprocessConfig(size=SIZE)) for seed in (5, 6, 7)]


def local_outputs(model, portrait, faces: list[Face]) -> list:
    engine = StreamEngine(TorchBackend(model))
    stream = engine.open(portrait)
    return [engine.step(stream, face) for face in faces]


def assert_same_motion(remote: KeypointMotion, local: KeypointMotion) -> None:
    """Equal but for float rounding: a batch of other streams' frames may sum in another order."""
    assert isinstance(remote, KeypointMotion) and remote.still == local.still
    for name, tolerance in (("offsets", 1e-5), ("grid", 1e-3), ("mask", 1), ("colour", 1)):
        expected, got = getattr(local, name), getattr(remote, name)
        assert (got is None) == (expected is None), name
        if expected is not None:
            difference = np.abs(got.astype(np.float64) - expected.astype(np.float64)).max()
            assert got.dtype == expected.dtype and difference <= tolerance, f"{name} differs by {difference}"


def replica_pid(pool: ReplicaPool, stream_id: int) -> int:
    return ray.get(pool.replica_handle(pool.stream_replica(stream_id)).info.remote()).pid


def ready_replicas(pool: ReplicaPool) -> int:
    return sum(streams >= 0 for streams in pool.replica_streams.values())


def tick_until(pool: ReplicaPool, condition) -> None:
    """Run the pool's turns until ``condition()`` holds (HANG_S at most)."""
    import time

    deadline = time.monotonic() + HANG_S * 4
    while not condition():
        assert time.monotonic() < deadline, f"never happened; replicas {pool.replica_streams}"
        pool.tick()
        time.sleep(0.05)


def test_a_replica_killed_mid_stream_loses_no_frame_and_changes_no_output(local_ray, model, portraits, caplog):
    pool = ReplicaPool(ClusterConfig(min_replicas=2, max_replicas=2, **FAST), ModelRecipe(model))
    try:
        tick_until(pool, lambda: ready_replicas(pool) == 2)
        faces = [driving_faces(portrait.mesh, 12, seed) for seed, portrait in enumerate(portraits)]
        streams = [pool.open(portrait) for portrait in portraits]
        assert len({pool.stream_replica(s) for s in streams}) == 2, "streams were not spread over both replicas"
        doomed = replica_pid(pool, streams[0])
        outputs, running = [[] for _ in streams], []
        with caplog.at_level(logging.WARNING, logger="rt_dtgan.transport.cluster"):
            for t in range(12):  # two steps out at a time, as the edge runs them
                running.append(pool.submit_many([(s, f[t]) for s, f in zip(streams, faces)]))
                if t == 5:
                    os.kill(doomed, signal.SIGKILL)
                if len(running) == 2 or t == 11:
                    for collect in running[: len(running) - (t < 11)]:
                        for out, output in zip(outputs, collect()):
                            out.append(output)
                    running = running[len(running) - (t < 11):]
        assert pool.failovers == 1 and len(pool.replica_streams) == 1
        failovers = [line for line in caplog.text.splitlines() if "failover: " in line]
        assert failovers and all(f"stream {streams[0]} frame " in line for line in failovers), caplog.text
        for portrait, face_list, got in zip(portraits, faces, outputs):
            for remote, local in zip(got, local_outputs(model, portrait, face_list), strict=True):
                assert_same_motion(remote, local)
    finally:
        pool.shutdown()


def test_a_frozen_replica_is_given_up_after_the_step_timeout_and_its_streams_go_on_exactly(local_ray, model, portraits, caplog):
    """SIGSTOP, as a host that hangs: no error comes, only silence past step_timeout_s."""
    pool = ReplicaPool(ClusterConfig(min_replicas=2, max_replicas=2, **{**FAST, "step_timeout_s": 3.0}), ModelRecipe(model))
    try:
        tick_until(pool, lambda: ready_replicas(pool) == 2)
        faces = [driving_faces(portrait.mesh, 8, seed) for seed, portrait in enumerate(portraits[:2])]
        streams = [pool.open(portrait) for portrait in portraits[:2]]
        frozen = replica_pid(pool, streams[0])
        outputs = [[] for _ in streams]
        with caplog.at_level(logging.WARNING, logger="rt_dtgan.transport.cluster"):
            for t in range(8):
                if t == 4:
                    os.kill(frozen, signal.SIGSTOP)
                for out, output in zip(outputs, pool.step_many([(s, f[t]) for s, f in zip(streams, faces)])):
                    out.append(output)
        assert pool.failovers == 1 and "no answer within 3 s" in caplog.text
        for portrait, face_list, got in zip(portraits, faces, outputs):
            for remote, local in zip(got, local_outputs(model, portrait, face_list), strict=True):
                assert_same_motion(remote, local)
    finally:
        pool.shutdown()


def test_replicas_grow_with_streams_and_a_drained_one_hands_its_streams_over_exactly(local_ray, model, portraits):
    cluster = ClusterConfig(min_replicas=1, max_replicas=2, streams_per_replica=1, scale_down_after_s=0, **FAST)
    pool = ReplicaPool(cluster, ModelRecipe(model))
    try:
        faces = driving_faces(portraits[0].mesh, 10, seed=3)
        first = pool.open(portraits[0])
        second = pool.open(portraits[1])
        tick_until(pool, lambda: ready_replicas(pool) == 2)
        third = pool.open(portraits[2])
        assert pool.stream_replica(third) != pool.stream_replica(first), "a new stream did not go to the new replica"
        outputs = [pool.step_many([(first, face)])[0] for face in faces[:6]]
        pool.close(second)
        pool.close(third)
        tick_until(pool, lambda: len(pool.replica_streams) == 1)
        pool.drain(pool.stream_replica(first))  # below min_replicas: a new replica takes the stream, exactly
        assert len(pool.replica_streams) == 1 and pool.stream_replica(first) in pool.replica_streams
        outputs += [pool.step_many([(first, face)])[0] for face in faces[6:]]
        for remote, local in zip(outputs, local_outputs(model, portraits[0], faces), strict=True):
            assert_same_motion(remote, local)
    finally:
        pool.shutdown()


def test_a_second_edge_at_the_same_address_takes_the_stream_over(local_ray, model, portraits):
    """The first edge stops; a second binds its address (as behind a load balancer). The client
    reopens there with the same anchor, every frame is answered, and once the window has
    refilled (W = 4 frames) the outputs equal a local transfer's again."""
    cluster = ClusterConfig(min_replicas=1, max_replicas=1, **FAST)
    faces = driving_faces(portraits[0].mesh, 16, seed=4)
    local = local_outputs(model, portraits[0], faces)
    first_pool = ReplicaPool(cluster, ModelRecipe(model))
    first = Worker(WorkerConfig(bind=LOOPBACK), first_pool, on_turn=first_pool.tick)
    address = first.address
    results = []
    config = ClientConfig(address=address, reply_timeout_s=1.0, retry_interval_s=0.1)
    with StreamClient(config) as client:
        with serving(first):
            client.connect(timeout_s=HANG_S)
            client.open(portraits[0].crop, target_mesh=portraits[0].mesh)
            results += [client.process(f.crop, mesh=f.mesh, timeout_s=HANG_S) for f in faces[:8]]
        first_pool.shutdown()
        second_pool = ReplicaPool(cluster, ModelRecipe(model))
        try:
            with serving(Worker(WorkerConfig(bind=address), second_pool, on_turn=second_pool.tick)):
                results += [client.process(f.crop, mesh=f.mesh, timeout_s=HANG_S) for f in faces[8:]]
        finally:
            second_pool.shutdown()
    assert len(results) == len(faces)
    for result, expected in zip(results[:8] + results[12:], local[:8] + local[12:]):
        assert_same_motion(result.motion, expected)


class BackgroundEngine:
    """A StreamEngine whose batches run only when their outputs are asked for, as a replica's
    run while the edge reads on: the Worker keeps one out (``submit_many``)."""

    def __init__(self, engine: StreamEngine) -> None:
        self.engine = engine
        self.size, self.config = engine.size, engine.config
        self.open, self.recalibrate, self.close = engine.open, engine.recalibrate, engine.close
        self.frames_seen, self.step_many = engine.frames_seen, engine.step_many

    def submit_many(self, frames):
        return lambda: self.engine.step_many(frames)


def test_a_calibrate_comes_after_the_frames_before_it_while_a_batch_runs_in_the_background(lively_model):
    """FRAME then CALIBRATE in one burst: the frame is stepped (and answered) before the
    recalibration, so the frame after it, not that one, becomes the new anchor."""
    import zmq
    from conftest import header

    crops = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(4)]
    image = {"format": "rgb24", "width": 64, "height": 64}
    worker = Worker(WorkerConfig(bind=LOOPBACK), BackgroundEngine(StreamEngine(TorchBackend(lively_model))))
    with serving(worker), zmq.Context() as context, context.socket(zmq.DEALER) as socket:
        socket.linger = 0
        socket.connect(worker.address)

        def replies(count: int) -> list[dict]:
            got = []
            while len(got) < count:
                assert socket.poll(int(HANG_S * 1000)), f"no reply after {got}"
                got.append(json.loads(socket.recv_multipart()[0]))
            return got

        socket.send_multipart([header(type="OPEN", seq=1, **image), crops[0].tobytes()])
        stream = replies(1)[0]["stream"]
        socket.send_multipart([header(type="FRAME", seq=2, stream=stream, **image), crops[1].tobytes()])
        assert replies(1)[0]["anchor"] is True
        socket.send_multipart([header(type="FRAME", seq=3, stream=stream, **image), crops[2].tobytes()])
        socket.send_multipart([header(type="CALIBRATE", seq=4, stream=stream)])
        socket.send_multipart([header(type="FRAME", seq=5, stream=stream, **image), crops[3].tobytes()])
        answered = replies(3)
    assert [(r["type"], r["seq"], r.get("anchor")) for r in answered] == [
        ("RESULT", 3, False), ("CALIBRATED", 4, None), ("RESULT", 5, True)
    ]


def test_serve_ray_without_ray_names_the_extra():
    """With ray unimportable, `serve --ray local` fails in one sentence naming the extra."""
    script = "import sys; sys.modules['ray'] = None; from rt_dtgan.cli import main; sys.exit(main(['serve', '--ray', 'local']))"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=HANG_S * 4)
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines() == [
        "rt-dtgan serve: rt-dtgan serve --ray needs the optional package 'ray': pip install 'rt-dtgan[cluster]'"
    ]


def test_serve_ray_refuses_a_broker_and_more_min_replicas_than_max(capsys):
    from rt_dtgan.cli import main

    assert main(["serve", "--ray", "local", "--min-replicas", "3", "--max-replicas", "2"]) == 2
    assert main(["serve", "--ray", "local", "--broker", "tcp://127.0.0.1:5556"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "rt-dtgan serve: --min-replicas 3 is above --max-replicas 2",
        "rt-dtgan serve: --ray serves clients itself: give --bind, not --broker",
    ]


def test_metrics_and_status_line_count_what_happened(local_ray, model, portraits):
    pool = ReplicaPool(ClusterConfig(min_replicas=1, max_replicas=1, **FAST), ModelRecipe(model))
    try:
        stream = pool.open(portraits[0])
        for face in driving_faces(portraits[0].mesh, 5, seed=9):
            pool.step_many([(stream, face)])
        line = pool.status_line()
        assert line.startswith("ray: 1 replicas (0 starting), 1 streams, ") and line.endswith(", 0 failovers"), line
        assert "engine p50" in line and not line.count(" 0.0 frames/s")
    finally:
        pool.shutdown()
