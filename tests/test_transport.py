"""The ZeroMQ transport: protocol validation, worker, client, broker, security.

Workers run in threads (or, for kill -9, in a subprocess) on tcp://127.0.0.1 with random
ports; engines are small lively models at 64 px with the torch backend.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import zmq
from conftest import HANG_S, LOOPBACK, header, new_worker, serving

from rt_dtgan.runtime.backends import TorchBackend
from rt_dtgan.runtime.engine import StreamEngine
from rt_dtgan.transport import (
    Broker,
    BrokerConfig,
    ClientConfig,
    ClientKeys,
    ErrorCode,
    LinkStatus,
    SecurityError,
    StreamClient,
    TransportError,
    WorkerConfig,
    generate_keys,
    is_local_address,
)
from rt_dtgan.transport.fuzz import mutated
from rt_dtgan.transport.protocol import MAX_HEADER_BYTES, WORKER_REPLIES, JpegCodec, encode_image, jpeg_dimensions
from rt_dtgan.transport.security import AUTHORIZED_CLIENTS_DIR

SIZE = 64


# Each module's tests run torch on one thread, as a worker beside a tracker does.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def crops(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(count)]


def smooth_crop(seed: int) -> np.ndarray:
    """A crop with image-like structure (gradients and blobs), for JPEG round trips."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    channels = [np.sin(6 * x * rng.uniform(0.5, 2) + 4 * y * rng.uniform(0.5, 2) + rng.uniform(0, 6)) for _ in range(3)]
    return ((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)


class RawPeer:
    """A bare DEALER speaking the protocol by hand, as a client in another language would."""

    def __init__(self, context: zmq.Context, address: str) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(address)

    def request(self, parts: list, timeout_ms: int = 3000) -> tuple[dict, list[bytes]]:
        self.socket.send_multipart(parts)
        return self.receive(timeout_ms)

    def receive(self, timeout_ms: int = 3000) -> tuple[dict, list[bytes]]:
        assert self.socket.poll(timeout_ms), "no reply"
        reply = self.socket.recv_multipart()
        return json.loads(reply[0]), reply[1:]

    def open(self, target: np.ndarray) -> int:
        reply, _ = self.request([header(type="OPEN", seq=1, format="rgb24", width=SIZE, height=SIZE), target.tobytes()])
        assert reply["type"] == "OPENED", reply
        return reply["stream"]


# -- protocol -------------------------------------------------------------------------------


def test_jpeg_round_trip_is_close_and_smaller():
    codec = JpegCodec()
    crop = smooth_crop(0)
    data = encode_image(crop, "jpeg", codec, jpeg_quality=3)
    assert jpeg_dimensions(data) == (SIZE, SIZE)
    assert len(data) < crop.nbytes / 3
    decoded = codec.decode(data, SIZE)
    assert decoded.shape == crop.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - crop).mean() < 6


def test_address_locality():
    assert is_local_address("tcp://127.0.0.1:5555") and is_local_address("tcp://localhost:1")
    assert is_local_address("tcp://[::1]:5555") and is_local_address("ipc:///tmp/x") and is_local_address("tcp://127.0.0.1:*")
    for address in ("tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://192.168.1.5:5555", "tcp://gpu-box:5555", "tcp://[::]:1"):
        assert not is_local_address(address), address


# -- the worker against malformed input -------------------------------------------------------


def malformed_cases(stream: int, foreign_stream: int, crop: np.ndarray, jpeg: bytes) -> list[tuple[str, list[bytes], ErrorCode]]:
    """(name, message, expected ERROR code): one for each way a message can be wrong."""
    frame = dict(type="FRAME", seq=5, stream=stream, format="rgb24", width=SIZE, height=SIZE)
    pixels = crop.tobytes()
    start_of_frame = b"\xff\xc0\x00\x11\x08" + SIZE.to_bytes(2, "big") * 2  # baseline, 8 bit, height, width
    assert jpeg.count(start_of_frame) == 1
    huge_jpeg = jpeg.replace(start_of_frame, start_of_frame[:5] + (60000).to_bytes(2, "big") * 2)
    return [
        ("empty header", [b""], ErrorCode.BAD_MESSAGE),
        ("not utf-8", [b"\xff\xfe\x00{"], ErrorCode.BAD_MESSAGE),
        ("not json", [b"{type: FRAME"], ErrorCode.BAD_MESSAGE),
        ("json list", [b"[1, 2]"], ErrorCode.BAD_MESSAGE),
        ("deep json", [b"[" * 2000 + b"]" * 2000], ErrorCode.BAD_MESSAGE),
        ("long header", [header(type="PING", seq=1, pad="x" * MAX_HEADER_BYTES)], ErrorCode.TOO_LARGE),
        ("version 2", [json.dumps({"v": 2, "type": "PING", "seq": 1}).encode()], ErrorCode.UNSUPPORTED_VERSION),
        ("version as text", [json.dumps({"v": "1", "type": "PING", "seq": 1}).encode()], ErrorCode.UNSUPPORTED_VERSION),
        ("no version", [json.dumps({"type": "PING", "seq": 1}).encode()], ErrorCode.UNSUPPORTED_VERSION),
        ("unknown type", [header(type="EXPLODE", seq=1)], ErrorCode.BAD_MESSAGE),
        ("type not text", [header(type=7, seq=1)], ErrorCode.BAD_MESSAGE),
        ("reply type", [header(type="RESULT", seq=1, stream=stream)], ErrorCode.BAD_MESSAGE),
        ("no seq", [header(**{**frame, "seq": None}), pixels], ErrorCode.BAD_MESSAGE),
        ("negative seq", [header(**{**frame, "seq": -1}), pixels], ErrorCode.BAD_MESSAGE),
        ("float seq", [header(**{**frame, "seq": 1.5}), pixels], ErrorCode.BAD_MESSAGE),
        ("bool seq", [header(**{**frame, "seq": True}), pixels], ErrorCode.BAD_MESSAGE),
        ("seq too big", [header(**{**frame, "seq": 2**60}), pixels], ErrorCode.BAD_MESSAGE),
        ("no stream", [header(**{**frame, "stream": None}), pixels], ErrorCode.BAD_MESSAGE),
        ("unknown stream", [header(**{**frame, "stream": stream + 1}), pixels], ErrorCode.UNKNOWN_STREAM),
        ("another client's stream", [header(**{**frame, "stream": foreign_stream}), pixels], ErrorCode.UNKNOWN_STREAM),
        ("calibrate another's", [header(type="CALIBRATE", seq=1, stream=foreign_stream)], ErrorCode.UNKNOWN_STREAM),
        ("close another's", [header(type="CLOSE", seq=1, stream=foreign_stream)], ErrorCode.UNKNOWN_STREAM),
        ("frame without image", [header(**frame)], ErrorCode.BAD_MESSAGE),
        ("frame with two images", [header(**frame), pixels, pixels], ErrorCode.BAD_MESSAGE),
        ("nine parts", [header(**frame)] + [pixels] * 8, ErrorCode.BAD_MESSAGE),
        ("huge declared size", [header(**{**frame, "width": 2**31, "height": 2**31}), pixels], ErrorCode.BAD_IMAGE),
        ("wrong size", [header(**{**frame, "width": 32, "height": 32}), pixels[: 32 * 32 * 3]], ErrorCode.BAD_IMAGE),
        ("size as text", [header(**{**frame, "width": "64"}), pixels], ErrorCode.BAD_IMAGE),
        ("truncated pixels", [header(**frame), pixels[:-1]], ErrorCode.BAD_IMAGE),
        ("extra pixels", [header(**frame), pixels + b"\0"], ErrorCode.BAD_IMAGE),
        ("empty pixels", [header(**frame), b""], ErrorCode.BAD_IMAGE),
        ("unknown format", [header(**{**frame, "format": "bmp"}), pixels], ErrorCode.UNSUPPORTED_FORMAT),
        ("null format", [header(**{**frame, "format": None}), pixels], ErrorCode.UNSUPPORTED_FORMAT),
        ("garbage jpeg", [header(**{**frame, "format": "jpeg"}), b"\xff\xd8" + os.urandom(500)], ErrorCode.BAD_IMAGE),
        ("jpeg of 60000 px", [header(**{**frame, "format": "jpeg"}), bytes(huge_jpeg)], ErrorCode.BAD_IMAGE),
        (
            "open with three images",
            [header(type="OPEN", seq=1, format="rgb24", width=SIZE, height=SIZE)] + [pixels] * 3,
            ErrorCode.BAD_MESSAGE,
        ),
        (
            "open reply format",
            [header(type="OPEN", seq=1, format="rgb24", width=SIZE, height=SIZE, reply_format="gif"), pixels],
            ErrorCode.UNSUPPORTED_FORMAT,
        ),
        (
            "open jpeg quality",
            [header(type="OPEN", seq=1, format="rgb24", width=SIZE, height=SIZE, jpeg_quality=99), pixels],
            ErrorCode.BAD_MESSAGE,
        ),
        ("close with image", [header(type="CLOSE", seq=1, stream=stream), pixels], ErrorCode.BAD_MESSAGE),
    ]


def test_each_malformed_message_gets_its_error_code(lively_model):
    target, frame = crops(2, seed=1)
    jpeg = encode_image(smooth_crop(1), "jpeg", JpegCodec())
    with serving(new_worker(lively_model)) as worker, zmq.Context() as context:
        peer, other = RawPeer(context, worker.address), RawPeer(context, worker.address)
        stream, foreign = peer.open(target), other.open(target)
        for name, message, code in malformed_cases(stream, foreign, frame, jpeg):
            reply, payload = peer.request(message)
            assert reply["type"] == "ERROR" and reply["code"] == code, (name, reply)
            assert payload == []
        reply, payload = peer.request(
            [header(type="FRAME", seq=9, stream=stream, format="rgb24", width=SIZE, height=SIZE), frame.tobytes()]
        )
        assert reply["type"] == "RESULT" and reply["seq"] == 9 and len(payload[0]) == SIZE * SIZE * 3
        reply, _ = other.request([header(type="CLOSE", seq=2, stream=foreign)])
        assert reply["type"] == "CLOSED"


def test_oversized_message_is_refused(lively_model):
    target, frame = crops(2, seed=2)
    with serving(new_worker(lively_model, max_message_bytes=64 * 1024)) as worker, zmq.Context() as context:
        peer = RawPeer(context, worker.address)
        pixels = frame.tobytes() * 3  # 36 KiB per part, 72 KiB in all
        reply, _ = peer.request([header(type="OPEN", seq=1, format="rgb24", width=SIZE, height=SIZE), pixels, pixels])
        assert reply["code"] == ErrorCode.TOO_LARGE
        assert peer.open(target) > 0


def test_drain_keeps_the_first_parts_of_each_waiting_message_and_counts_them_all():
    from rt_dtgan.transport.serving import drain

    with zmq.Context() as context, context.socket(zmq.PAIR) as receiver, context.socket(zmq.PAIR) as sender:
        receiver.bind("inproc://drain")
        sender.connect("inproc://drain")
        for message in ([b"a"], [bytes([i]) for i in range(12)], [b"b", b"c"]):
            sender.send_multipart(message)
        assert receiver.poll(int(HANG_S * 1000))
        received = [([part.bytes for part in parts], count) for parts, count in drain(receiver, keep=3, most=2)]
        assert received == [([b"a"], 1), ([b"\0", b"\1", b"\2"], 12)]  # the rest of the second read and dropped
        assert [([part.bytes for part in parts], count) for parts, count in drain(receiver, keep=3, most=5)] == [([b"b", b"c"], 2)]
        assert list(drain(receiver, keep=3, most=5)) == []


def fuzz_round(peer: RawPeer, rng: np.random.Generator, valid: list[list[bytes]], messages: int, marker: int) -> int:
    """Send ``messages`` mutations in chunks, each followed by a PING; check every reply. Returns the ERROR count."""
    errors = 0
    for chunk in range(0, messages, 40):
        for _ in range(min(40, messages - chunk)):
            peer.socket.send_multipart(mutated(rng, valid))
        ping_seq = marker + chunk
        peer.socket.send_multipart([header(type="PING", seq=ping_seq)])
        while True:
            reply, _ = peer.receive(timeout_ms=10_000)
            assert reply["type"] in WORKER_REPLIES, reply
            errors += reply["type"] == "ERROR"
            if reply["type"] == "PONG" and reply["seq"] == ping_seq:
                break
    return errors


def test_fuzz_leaves_worker_serving_without_growing(lively_model):
    rng = np.random.default_rng(7)
    target, frame = crops(2, seed=3)
    jpeg = encode_image(smooth_crop(3), "jpeg", JpegCodec())
    with serving(new_worker(lively_model, max_message_bytes=256 * 1024)) as worker, zmq.Context() as context:
        peer = RawPeer(context, worker.address)
        stream = peer.open(target)
        image = dict(width=SIZE, height=SIZE)
        valid = [
            [header(type="FRAME", seq=3, stream=stream, format="rgb24", **image), frame.tobytes()],
            [header(type="FRAME", seq=4, stream=stream, format="jpeg", **image), jpeg],
            [header(type="CALIBRATE", seq=5, stream=stream, format="rgb24", **image), frame.tobytes()],
            [header(type="PING", seq=6)],
        ]
        errors_warmup = fuzz_round(peer, rng, valid, 1000, marker=10**9)
        tracemalloc.start()
        try:
            before_traced, before_rss = tracemalloc.get_traced_memory()[0], _rss_bytes()
            errors = fuzz_round(peer, rng, valid, 2000, marker=2 * 10**9)
            after_traced, after_rss = tracemalloc.get_traced_memory()[0], _rss_bytes()
        finally:
            tracemalloc.stop()
        assert errors > 1000 and errors_warmup > 500
        assert after_traced - before_traced < 1 * 2**20, "Python memory grew by more than 1 MiB"
        assert after_rss - before_rss < 64 * 2**20, "resident memory grew by more than 64 MiB"
        assert worker.stream_ids == {stream}
        with StreamClient(ClientConfig(address=worker.address, reply_timeout_s=5.0)) as client:
            client.open(target)
            result = client.process(frame)
            assert result.crop.shape == (SIZE, SIZE, 3)


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- streams ------------------------------------------------------------------------------------


def reference_outputs(model, target: np.ndarray, frames: list[np.ndarray]) -> list[np.ndarray]:
    engine = StreamEngine(TorchBackend(model))
    stream = engine.open(target)
    return [engine.step(stream, frame) for frame in frames]


def test_two_clients_are_isolated_and_batched(lively_model):
    target_a, target_b = crops(2, seed=4)
    frames_a, frames_b = crops(12, seed=5), crops(12, seed=6)
    with serving(new_worker(lively_model)) as worker:
        config = ClientConfig(address=worker.address, reply_timeout_s=5.0, max_in_flight=1)
        with StreamClient(config) as client_a, StreamClient(config) as client_b:
            client_a.open(target_a)
            client_b.open(target_b)
            outputs_a, outputs_b, batches = [], [], []
            for frame_a, frame_b in zip(frames_a, frames_b):
                client_a.submit(frame_a)
                client_b.submit(frame_b)
                time.sleep(0.002)
                for client, outputs in ((client_a, outputs_a), (client_b, outputs_b)):
                    result = client.poll(timeout_s=5.0)
                    assert result is not None
                    outputs.append(result.crop)
                    batches.append(result.batch)
    assert max(batches) == 2, "frames from two clients were never batched together"
    for outputs, target, frames in ((outputs_a, target_a, frames_a), (outputs_b, target_b, frames_b)):
        expected = reference_outputs(lively_model, target, frames)
        assert max(int(np.abs(o.astype(int) - e).max()) for o, e in zip(outputs, expected)) <= 1
    assert np.abs(outputs_a[-1].astype(int) - outputs_b[-1]).mean() > 10


def test_blocking_mode_gives_one_result_per_frame_in_order(lively_model):
    target = smooth_crop(8)
    frames = crops(6, seed=8)
    with serving(new_worker(lively_model)) as worker:
        config = ClientConfig(address=worker.address, frame_format="jpeg", result_format="jpeg", jpeg_quality=2, reply_timeout_s=5.0)
        with StreamClient(config) as client:
            assert client.connect() == SIZE
            client.open(target)
            captured = [time.time_ns() + i for i in range(len(frames))]
            results = [client.process(frame, ts_ns=ts_ns) for frame, ts_ns in zip(frames, captured)]
    assert [r.ts_ns for r in results] == captured
    assert [r.seq for r in results] == sorted(r.seq for r in results)
    assert all(set(r.timings) >= {"queue_ms", "engine_ms", "round_trip_ms"} for r in results)
    assert all(r.timings["round_trip_ms"] >= r.timings["engine_ms"] for r in results)


def test_stream_limit_and_idle_expiry(lively_model):
    target, frame, later_frame = crops(3, seed=9)
    with serving(new_worker(lively_model, max_streams=1, idle_timeout_s=2.0)) as worker:
        config = ClientConfig(address=worker.address, reply_timeout_s=5.0)
        with StreamClient(config) as first, StreamClient(config) as second:
            first.open(target)
            with pytest.raises(TransportError) as refused:
                second.open(target)
            assert refused.value.code == ErrorCode.STREAM_LIMIT
            first.process(frame)
            deadline = time.monotonic() + HANG_S
            while worker.stream_ids and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not worker.stream_ids, "idle stream did not expire"
            stream_before = first.stream_id
            reopened = first.process(later_frame, timeout_s=5)
            assert first.stream_id != stream_before and first.outages == 1
    engine = StreamEngine(TorchBackend(lively_model))
    stream = engine.open(target)
    engine.recalibrate(stream, frame)  # the stream was reopened with its first frame as the anchor
    assert np.array_equal(reopened.crop, engine.step(stream, later_frame))


# -- kill -9 and recovery ---------------------------------------------------------------------------

WORKER_SCRIPT = """
import sys
import torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from conftest import make_lively_model
from rt_dtgan.runtime.backends import TorchBackend
from rt_dtgan.runtime.engine import StreamEngine
from rt_dtgan.transport.serving import stop_on_signals
from rt_dtgan.transport.worker import Worker, WorkerConfig
worker = Worker(WorkerConfig(bind={address!r}), StreamEngine(TorchBackend(make_lively_model())))
print("ready", flush=True)
with stop_on_signals(worker):
    worker.serve_forever()
print("stopped", flush=True)
"""


class WorkerProcess:
    """A worker in a subprocess; ``ready_at`` is when it said it was serving."""

    def __init__(self, address: str) -> None:
        script = WORKER_SCRIPT.format(tests=str(Path(__file__).parent), address=address)
        self.process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[tuple[str, float]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put((line.strip(), time.monotonic()))

    def wait_for(self, word: str, timeout_s: float, while_waiting=lambda: None) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            while_waiting()
            try:
                line, at = self.lines.get(timeout=0.01)
            except queue.Empty:
                continue
            if line == word:
                return at
        raise AssertionError(f"worker did not print {word!r} within {timeout_s} s")


def free_tcp_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def test_client_recovers_after_kill_9(lively_model, record_property):
    address = free_tcp_address()
    target, *frames = crops(4, seed=10)
    first = WorkerProcess(address)
    second = None
    try:
        first.wait_for("ready", timeout_s=60)
        config = ClientConfig(address=address, reply_timeout_s=0.5, retry_interval_s=0.1)
        with StreamClient(config) as client:
            client.open(target)
            shown = []

            def live_step():
                client.submit(frames[len(shown) % len(frames)])
                result = client.poll(timeout_s=0.02)
                shown.append((time.monotonic(), client.status, result, client.latest))

            while sum(result is not None for _, _, result, _ in shown) < 5:
                live_step()
            last_good = client.latest
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=5)
            deadline = time.monotonic() + HANG_S
            while client.status != LinkStatus.OUTAGE and time.monotonic() < deadline:
                live_step()
            assert client.status == LinkStatus.OUTAGE and client.outages == 1
            second = WorkerProcess(address)
            outage_start = len(shown)
            returned_at = second.wait_for("ready", timeout_s=60, while_waiting=live_step)
            during = [entry for entry in shown[outage_start:] if entry[0] < returned_at]
            assert len(during) > 10
            assert all(status == LinkStatus.OUTAGE and result is None for _, status, result, _ in during)
            assert all(latest is last_good for *_, latest in during), "the last good frame is handed back during the outage"
            while client.status != LinkStatus.STREAMING or shown[-1][2] is None:
                live_step()
                assert time.monotonic() - returned_at < HANG_S, f"no recovery within {HANG_S} s of the worker's return"
            recovery_s = time.monotonic() - returned_at
            assert client.outage_s == 0.0 and shown[-1][2].seq > last_good.seq
        second.process.send_signal(signal.SIGTERM)
        second.wait_for("stopped", timeout_s=5)
        assert second.process.wait(timeout=5) == 0
        record_property("recovery_ms", round(recovery_s * 1000))
        seqs = [result.seq for _, _, result, _ in shown if result is not None]
        assert seqs == sorted(set(seqs)), "results were shown out of order"
    finally:
        for worker in (first, second):
            if worker is not None and worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


# -- security ---------------------------------------------------------------------------------------


def test_non_loopback_bind_needs_curve():
    for address in ("tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://10.1.2.3:5555"):
        with pytest.raises(SecurityError, match="CURVE"):
            WorkerConfig(bind=address)
        with pytest.raises(SecurityError, match="CURVE"):
            BrokerConfig(front=address, back="tcp://127.0.0.1:5556")
    with pytest.raises(SecurityError, match="CURVE"):
        ClientConfig(address="tcp://gpu-box:5555")


def test_curve_admits_only_authorised_clients(lively_model, tmp_path):
    server_dir, laptop_dir, stranger_dir = tmp_path / "server", tmp_path / "laptop", tmp_path / "stranger"
    server_public, _ = generate_keys(server_dir, "server")
    laptop_public, laptop_secret = generate_keys(laptop_dir, "laptop")
    _, stranger_secret = generate_keys(stranger_dir, "stranger")
    assert oct(laptop_secret.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(SecurityError, match="exists"):
        generate_keys(laptop_dir, "laptop")
    (server_dir / AUTHORIZED_CLIENTS_DIR).mkdir()
    (server_dir / AUTHORIZED_CLIENTS_DIR / "laptop.key").write_bytes(laptop_public.read_bytes())
    target, frame = crops(2, seed=11)
    with serving(new_worker(lively_model, bind="tcp://*:*", curve_dir=server_dir)) as worker:
        port = worker.address.rsplit(":", 1)[1]
        address = f"tcp://127.0.0.1:{port}"
        with StreamClient(ClientConfig(address=address, keys=ClientKeys(laptop_secret, server_public))) as laptop:
            laptop.open(target)
            assert laptop.process(frame, timeout_s=5).crop.shape == (SIZE, SIZE, 3)
        with StreamClient(ClientConfig(address=address, keys=ClientKeys(stranger_secret, server_public))) as stranger:
            with pytest.raises(TransportError, match="no PONG"):
                stranger.connect(timeout_s=1.0)
        with StreamClient(ClientConfig(address=address)) as plaintext:
            with pytest.raises(TransportError, match="no PONG"):
                plaintext.connect(timeout_s=1.0)
        assert len(worker.stream_ids) == 0


# -- broker -------------------------------------------------------------------------------------------


def test_broker_pins_streams_and_uses_both_workers(lively_model):
    frames = crops(5, seed=12)
    targets = crops(4, seed=13)
    with serving(Broker(BrokerConfig(front=LOOPBACK, back="tcp://127.0.0.1:*", worker_timeout_s=2.0))) as broker:
        workers = [new_worker(lively_model, bind=None, broker=broker.back_address, heartbeat_s=0.2, name=f"w{i}") for i in range(2)]
        with serving(workers[0]), serving(workers[1]):
            deadline = time.monotonic() + HANG_S
            while len(broker.workers) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(broker.workers) == 2
            clients = [StreamClient(ClientConfig(address=broker.front_address, reply_timeout_s=5.0)) for _ in targets]
            try:
                for client, target in zip(clients, targets):
                    client.open(target)
                outputs = [[client.process(frame).crop for frame in frames] for client in clients]
                owners = [[w.config.name for w in workers if client.stream_id in w.stream_ids] for client in clients]
            finally:
                for client in clients:
                    client.close()
    assert all(len(owner) == 1 for owner in owners), owners
    assert sorted(owner[0] for owner in owners) == ["w0", "w0", "w1", "w1"]
    for output, target in zip(outputs, targets):
        expected = reference_outputs(lively_model, target, frames)
        assert max(int(np.abs(o.astype(int) - e).max()) for o, e in zip(output, expected)) <= 1


def test_broker_refuses_bad_messages_and_unknown_streams():
    with serving(Broker(BrokerConfig(front=LOOPBACK, back="tcp://127.0.0.1:*"))) as broker, zmq.Context() as context:
        peer = RawPeer(context, broker.front_address)
        for message, code in (
            ([b"\xff"], ErrorCode.BAD_MESSAGE),
            ([header(type="PING", seq=1)], ErrorCode.UNAVAILABLE),
            ([header(type="FRAME", seq=1, stream=5), b"x"], ErrorCode.UNKNOWN_STREAM),
            ([header(type="NOPE", seq=1)], ErrorCode.BAD_MESSAGE),
        ):
            reply, _ = peer.request(message)
            assert reply["type"] == "ERROR" and reply["code"] == code, reply


def test_streams_move_to_another_worker_when_theirs_is_gone(lively_model):
    target, *frames = crops(4, seed=14)
    with serving(Broker(BrokerConfig(front=LOOPBACK, back="tcp://127.0.0.1:*", worker_timeout_s=5.0))) as broker:
        leaving = new_worker(lively_model, bind=None, broker=broker.back_address, heartbeat_s=0.1, name="leaving")
        staying = new_worker(lively_model, bind=None, broker=broker.back_address, heartbeat_s=0.1, name="staying")
        with serving(staying):
            with serving(leaving):
                deadline = time.monotonic() + HANG_S
                while len(broker.workers) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                clients = [StreamClient(ClientConfig(address=broker.front_address, reply_timeout_s=2.0)) for _ in range(2)]
                for client in clients:
                    client.open(target)
                    client.process(frames[0])
                assert len(leaving.stream_ids) == len(staying.stream_ids) == 1
            deadline = time.monotonic() + HANG_S
            while len(broker.workers) > 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(broker.workers) == 1, "the broker did not notice that a worker left"
            try:
                results = [client.process(frames[1], timeout_s=10) for client in clients]
                assert all(result.crop.shape == (SIZE, SIZE, 3) for result in results)
                assert len(staying.stream_ids) == 2 and sum(client.outages for client in clients) == 1
            finally:
                for client in clients:
                    client.close()


def test_reference_and_recalibration_set_the_anchor(lively_model):
    target, reference, *frames = crops(5, seed=15)
    engine = StreamEngine(TorchBackend(lively_model))
    stream = engine.open(target)
    engine.recalibrate(stream, reference)
    expected_first = engine.step(stream, frames[0])
    engine.recalibrate(stream)
    expected_anchor, expected_next = engine.step(stream, frames[1]), engine.step(stream, frames[2])
    with serving(new_worker(lively_model)) as worker, StreamClient(ClientConfig(address=worker.address, reply_timeout_s=5.0)) as client:
        client.open(target, reference_crop=reference)
        assert np.array_equal(client.process(frames[0]).crop, expected_first)
        client.recalibrate()
        assert np.array_equal(client.process(frames[1]).crop, expected_anchor)
        assert np.array_equal(client.process(frames[2]).crop, expected_next)
