"""Hostile clients against one worker, then a real one: does the worker stay available?

A worker with the default limits (16 streams, ClientLimits) runs in its own process with
fresh weights at 64 px. Each of ``connections`` DEALER connections opens a stream, then sends
its share of ``messages`` structure-aware hostile messages, seeded: mutations of valid
messages (every header field, wrong payload sizes, extra and missing parts, truncated
JSON), JPEGs whose frame header claims 65535x65535, and floods of OPEN. After every 40 a
PING keeps the connection in step, and every reply must be one a worker sends. Then the
hostile connections close, and a real client must be served within 2 s and get every one
of its frames, with the worker's resident memory within 100 MiB of where it started
(``failures`` says which of these failed). bench/fuzz_worker.py runs it from the command line;
the tests use ``mutated`` on a worker of their own.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter

import numpy as np
import zmq

from rt_dtgan.runtime.doctor import resident_mib
from rt_dtgan.transport.addresses import free_address
from rt_dtgan.transport.client import ClientConfig, StreamClient
from rt_dtgan.transport.protocol import WORKER_REPLIES

SIZE = 64
CHUNK = 40
OPEN_FLOOD_SHARE = 0.2
SERVED_WITHIN_S = 2.0
MEMORY_BOUND_MIB = 100
REAL_FRAMES = 30


class FuzzFailure(RuntimeError):
    """The worker failed outright: it stopped answering, or sent a reply no worker sends."""


def _serve(address: str, on_ray: bool) -> None:
    """The worker process: fresh weights at 64 px, default limits, until terminated; on Ray,
    the edge (``serve --ray local``) with two replicas of that model."""
    import torch

    from rt_dtgan.config import ModelConfig
    from rt_dtgan.models import DynamicsTransferGAN
    from rt_dtgan.runtime.backends import TorchBackend
    from rt_dtgan.runtime.engine import StreamEngine
    from rt_dtgan.transport.worker import WorkerConfig, run_worker

    model = DynamicsTransferGAN(ModelConfig.for_size(SIZE)).eval()
    if on_ray:
        from rt_dtgan.transport.cluster import ClusterConfig, run_edge
        from rt_dtgan.transport.replica import ModelRecipe

        run_edge(WorkerConfig(bind=address), ClusterConfig(), ModelRecipe(model))
        return
    torch.set_num_threads(1)
    run_worker(WorkerConfig(bind=address), StreamEngine(TorchBackend(model)))


def _header(**fields) -> bytes:
    return json.dumps({"v": 1, **fields}).encode()


def _huge_jpeg() -> bytes:
    """A JPEG whose start-of-frame claims 65535 x 65535 pixels, and nothing after it."""
    start_of_frame = bytes([0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x03])
    components = bytes([1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
    return b"\xff\xd8" + start_of_frame + components + b"\xff\xd9"


def valid_messages(stream: int, rng: np.random.Generator) -> list[list[bytes]]:
    """Well-formed requests on ``stream`` (and OPEN, PING), the material the mutations start from."""
    crop = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8).tobytes()
    image = dict(format="rgb24", width=SIZE, height=SIZE)
    return [
        [_header(type="FRAME", seq=3, stream=stream, **image), crop],
        [_header(type="FRAME", seq=4, stream=stream, format="jpeg", width=SIZE, height=SIZE), _huge_jpeg()],
        [_header(type="CALIBRATE", seq=5, stream=stream, **image), crop],
        [_header(type="OPEN", seq=6, **image), crop],
        [_header(type="CLOSE", seq=7, stream=stream)],
        [_header(type="PING", seq=8)],
    ]


def mutated(rng: np.random.Generator, valid: list[list[bytes]]) -> list[bytes]:
    """A random mutation of a valid message, or random bytes."""
    parts = [bytearray(p) for p in valid[rng.integers(len(valid))]]
    choice = rng.integers(8)
    if choice == 0:
        return [rng.bytes(int(rng.integers(0, 300))) for _ in range(int(rng.integers(1, 5)))]
    if choice == 1:
        index = int(rng.integers(len(parts)))
        for position in rng.integers(0, max(1, len(parts[index])), size=int(rng.integers(1, 6))):
            if parts[index]:
                parts[index][position] ^= 1 << int(rng.integers(8))
    elif choice == 2:
        index = int(rng.integers(len(parts)))
        parts[index] = parts[index][: int(rng.integers(0, len(parts[index]) + 1))]
    elif choice == 3:
        parts = parts + [parts[-1]] * int(rng.integers(1, 9))
    elif choice == 4:
        parts = parts[:1]
    elif choice == 5:
        fields = json.loads(bytes(parts[0]))
        key = ["v", "type", "seq", "stream", "format", "width", "height", "ts_ns"][int(rng.integers(8))]
        fields[key] = [None, -1, 2**63, 1e308, "x" * 50, [1], {"a": 1}, True, 0, 64][int(rng.integers(10))]
        parts[0] = bytearray(json.dumps(fields).encode())
    elif choice == 6:
        parts[-1] = parts[-1] + rng.bytes(int(rng.integers(1, 50_000)))
    else:
        parts[0] = bytearray(rng.bytes(int(rng.integers(1, 40)))) + parts[0]
    return [bytes(p) for p in parts]


class _HostilePeer:
    """One connection: a stream of its own, then mutations and OPENs (OPEN_FLOOD_SHARE of the
    messages) in chunks, each chunk closed by a PING."""

    def __init__(self, context: zmq.Context, address: str, rng: np.random.Generator) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(address)
        self.rng = rng
        crop = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8).tobytes()
        self.socket.send_multipart([_header(type="OPEN", seq=1, format="rgb24", width=SIZE, height=SIZE), crop])
        opened = self.replies_until(lambda reply: reply.get("seq") == 1)
        self.valid = valid_messages(opened[-1].get("stream", 1), rng)

    def replies_until(self, last, timeout_ms: int = 20_000) -> list[dict]:
        replies = []
        while True:
            if not self.socket.poll(timeout_ms):
                raise FuzzFailure("the worker stopped answering")
            reply = json.loads(self.socket.recv_multipart()[0])
            if reply.get("type") not in WORKER_REPLIES:
                raise FuzzFailure(f"a reply no worker sends: {reply}")
            replies.append(reply)
            if last(reply):
                return replies

    def chunk(self, count: int, marker: int) -> list[dict]:
        for _ in range(count):
            flood = self.rng.random() < OPEN_FLOOD_SHARE
            self.socket.send_multipart(self.valid[3] if flood else mutated(self.rng, self.valid))
        self.socket.send_multipart([_header(type="PING", seq=marker)])
        return self.replies_until(lambda reply: reply["type"] == "PONG" and reply.get("seq") == marker)


def _real_client(address: str, rng: np.random.Generator) -> dict:
    """Open a stream as `live --remote` would and send REAL_FRAMES frames, each answered."""
    crops = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(REAL_FRAMES + 1)]
    began = time.monotonic()
    with StreamClient(ClientConfig(address=address, reply_timeout_s=5.0)) as client:
        client.open(crops[0])
        served_s = time.monotonic() - began
        answered = sum(client.process(crop).crop.shape == (SIZE, SIZE, 3) for crop in crops[1:])
    return {"served_after_s": served_s, "frames_sent": REAL_FRAMES, "frames_answered": answered}


def fuzz_worker(messages: int = 10_000, connections: int = 8, seed: int = 7, on_ray: bool = False) -> dict:
    """Run the experiment (the module's docstring) on a worker of its own, or on the Ray edge
    (``on_ray``) -> its figures: the replies by code, the real client's service, the worker's
    (the edge's) memory before and after. Raises FuzzFailure when the worker stops answering
    or answers what no worker sends."""
    address = free_address()
    worker = multiprocessing.get_context("spawn").Process(target=_serve, args=(address, on_ray), daemon=True)
    worker.start()
    rng = np.random.default_rng(seed)
    try:
        with StreamClient(ClientConfig(address=address)) as probe:
            probe.connect(timeout_s=120)
        _real_client(address, rng)  # the engine's first calls, out of the memory baseline
        rss_before = resident_mib(worker.pid)
        replies: Counter = Counter()
        began = time.monotonic()
        with zmq.Context() as context:
            peers = [_HostilePeer(context, address, rng) for _ in range(connections)]
            per_peer = messages // connections
            for start in range(0, per_peer, CHUNK):
                for index, peer in enumerate(peers):
                    for reply in peer.chunk(min(CHUNK, per_peer - start), marker=10**6 + start * 100 + index):
                        replies[str(reply.get("code", reply["type"]))] += 1
            for peer in peers:
                peer.socket.close()
        fuzz_s = time.monotonic() - began
        real = _real_client(address, rng)
        rss_after = resident_mib(worker.pid)
    finally:
        worker.terminate()
        worker.join(timeout=30)
    return {
        "messages": per_peer * connections,
        "connections": connections,
        "seed": seed,
        "server": "ray edge" if on_ray else "worker",
        "fuzz_s": fuzz_s,
        "replies": dict(replies),
        "real_client": real,
        "worker_rss_mib_before": rss_before,
        "worker_rss_mib_after": rss_after,
    }


def failures(result: dict) -> list[str]:
    """What ``fuzz_worker``'s figures fall short in, one sentence each; empty when it passed."""
    real = result["real_client"]
    found = []
    if real["served_after_s"] > SERVED_WITHIN_S:
        found.append(f"the real client was served after {real['served_after_s']:.2f} s, not within {SERVED_WITHIN_S} s")
    if real["frames_answered"] != real["frames_sent"]:
        found.append(f"{real['frames_answered']} of {real['frames_sent']} frames answered")
    grown = result["worker_rss_mib_after"] - result["worker_rss_mib_before"]
    if grown > MEMORY_BOUND_MIB:
        found.append(f"the worker's memory grew by {grown:.0f} MiB")
    return found
