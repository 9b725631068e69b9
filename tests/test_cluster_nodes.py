"""The Ray edge on a real cluster of two nodes on this host (ray.cluster_utils.Cluster): eight
streams from real clips over two replicas, one per node, with the shipped geometry model; one
node killed mid-run. Every stream gets all its frames, equal to a local transfer's (heavy)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av
import pytest
import ray
from ray.cluster_utils import Cluster
from test_cluster import assert_same_motion, restore_environment, tick_until

from rt_dtgan.face import FaceTracker, load_target
from rt_dtgan.runtime.engine import Face
from rt_dtgan.transport.cluster import ClusterConfig, ReplicaPool
from rt_dtgan.transport.replica import CheckpointRecipe

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
FRAMES = 30
KILL_AT = 12
STREAMS = 8
NODE_MEMORY = 80 * 2**20

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real is absent"),
]


@pytest.fixture(scope="module")
def two_nodes():
    """A head that runs nothing (the edge's driver) and two nodes of one CPU each."""
    environment = dict(os.environ)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, object_store_memory=NODE_MEMORY, include_dashboard=False))
    nodes = [cluster.add_node(num_cpus=1, object_store_memory=NODE_MEMORY) for _ in range(2)]
    ray.init(address=cluster.address, namespace="rt-dtgan-tests", log_to_driver=False)
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()
    restore_environment(environment)


def clip_faces(path: Path, tracker_size: int) -> list[Face]:
    """The first FRAMES faces found in a clip, aligned as the model wants, with their meshes."""
    from rt_dtgan.config import PreprocessConfig

    faces = []
    with FaceTracker(PreprocessConfig(size=tracker_size)) as tracker, av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            found = tracker.track(frame.to_ndarray(format="rgb24"), index / 25)
            if found.found:
                faces.append(Face(found.crop, found.mesh))
            if len(faces) == FRAMES:
                return faces
    raise AssertionError(f"{path.name}: fewer than {FRAMES} faces")


def test_serve_ray_local_serves_a_stream_and_stops_on_sigint():
    """The command as a user runs it: its own local cluster, a stream served, SIGINT ends it."""
    import signal
    import subprocess
    import sys

    import numpy as np

    from rt_dtgan.transport import ClientConfig, StreamClient
    from rt_dtgan.transport.addresses import free_address

    address = free_address()
    argv = ["serve", "--ray", "local", "--bind", address, "--checkpoint", "paper", "--min-replicas", "1", "--max-replicas", "1"]
    edge = subprocess.Popen([sys.executable, "-m", "rt_dtgan", *argv], stderr=subprocess.PIPE, text=True)
    try:
        with StreamClient(ClientConfig(address=address, reply_timeout_s=30.0)) as client:
            size = client.connect(timeout_s=120)
            crops = np.random.default_rng(0).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
            client.open(crops[0])
            results = [client.process(crop, timeout_s=60) for crop in crops]
        assert [r.crop.shape for r in results] == [(size, size, 3)] * len(crops)
    finally:
        edge.send_signal(signal.SIGINT)
        _, err = edge.communicate(timeout=60)
    assert edge.returncode == 0, err
    assert "with engines on Ray (local)" in err and "replicas serving torch" in err


def test_a_node_killed_mid_run_costs_no_frame_and_no_output(two_nodes, caplog):
    cluster, nodes = two_nodes
    recipe = CheckpointRecipe(threads=1)
    engine = recipe()
    clips = sorted((REAL / "driving").glob("*.mp4")) + sorted((REAL / "grid").glob("*.mpg"))
    targets = sorted((REAL / "targets").iterdir())
    drives = [clip_faces(clip, engine.size) for clip in clips[:STREAMS]]
    portraits = [load_target(targets[i % len(targets)], engine.config.preprocess) for i in range(STREAMS)]

    config = ClusterConfig(min_replicas=2, max_replicas=2, replica_cpus=1, step_timeout_s=30.0, start_timeout_s=120.0)
    pool = ReplicaPool(config, recipe)
    try:
        tick_until(pool, lambda: min(pool.replica_streams.values()) >= 0)
        streams = [pool.open(portrait) for portrait in portraits]
        held = {name: count for name, count in pool.replica_streams.items()}
        assert sorted(held.values()) == [STREAMS // 2, STREAMS // 2], held
        outputs = [[] for _ in streams]
        for t in range(FRAMES):
            if t == KILL_AT:
                cluster.remove_node(nodes[0], allow_graceful=False)
            with caplog.at_level(logging.WARNING, logger="rt_dtgan.transport.cluster"):
                for out, output in zip(outputs, pool.step_many([(s, drive[t]) for s, drive in zip(streams, drives)])):
                    out.append(output)
        assert pool.failovers == 1 and len(pool.replica_streams) == 1
        assert "failover: " in caplog.text and f"frame {KILL_AT + 1} (1-based)" in caplog.text
    finally:
        pool.shutdown()
    for portrait, drive, got in zip(portraits, drives, outputs):
        local = engine.open(portrait)
        for remote, face in zip(got, drive, strict=True):
            assert_same_motion(remote, engine.step(local, face))
