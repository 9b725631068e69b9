"""The worker stays available: slots follow connections, clients have quotas, idle slots are
reclaimed before anyone is refused, and behind a broker a killed worker loses only its own
streams. Workers and clients that get killed run in subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from conftest import HANG_S, LOOPBACK, header, new_worker, serving

from rt_dtgan.transport import (
    Broker,
    BrokerConfig,
    ClientConfig,
    ClientKeys,
    ClientLimits,
    ErrorCode,
    StreamClient,
    TransportError,
    generate_keys,
)
from rt_dtgan.transport.security import AUTHORIZED_CLIENTS_DIR

SIZE = 64
TESTS = str(Path(__file__).parent)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLIENT_SCRIPT = """
import time
import numpy as np
from rt_dtgan.transport import ClientConfig, StreamClient
client = StreamClient(ClientConfig(address={address!r}, reply_timeout_s=10.0))
client.open(np.full(({size}, {size}, 3), 128, np.uint8))
print("open", flush=True)
time.sleep(120)
"""

BROKER_WORKER_SCRIPT = """
import sys
import torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from conftest import make_lively_model
from rt_dtgan.runtime.backends import TorchBackend
from rt_dtgan.runtime.engine import StreamEngine
from rt_dtgan.transport.worker import Worker, WorkerConfig
worker = Worker(WorkerConfig(bind=None, broker={broker!r}, heartbeat_s=0.2, name={name!r}), StreamEngine(TorchBackend(make_lively_model())))
worker.serve_forever()
"""


def crop(value: int) -> np.ndarray:
    return np.random.default_rng(value).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def wait_until(condition, timeout_s: float, step_s: float = 0.005) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s``."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout_s, f"not within {timeout_s} s"
        time.sleep(step_s)
    return time.monotonic() - began


def spawn(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def open_message(seq: int) -> list[bytes]:
    return [header(type="OPEN", seq=seq, format="rgb24", width=SIZE, height=SIZE), crop(seq).tobytes()]


def replies(socket: zmq.Socket, count: int, timeout_ms: int = 5000) -> list[dict]:
    import json

    out = []
    while len(out) < count and socket.poll(timeout_ms):
        out.append(json.loads(socket.recv_multipart()[0]))
    return out


def test_a_killed_clients_stream_is_closed(lively_model, record_property):
    with serving(new_worker(lively_model)) as worker:
        client = spawn(CLIENT_SCRIPT.format(address=worker.address, size=SIZE))
        try:
            assert client.stdout.readline().strip() == "open"
            assert len(worker.stream_ids) == 1
            client.kill()
            client.wait(timeout=5)
            freed_s = wait_until(lambda: not worker.stream_ids, timeout_s=HANG_S)
        finally:
            client.kill()
    record_property("slot_freed_ms", round(freed_s * 1000))


def test_a_client_flooding_opens_does_not_lock_out_another(lively_model):
    limits = ClientLimits(streams_per_client=3, opens_per_s=5.0, open_burst=6)
    with serving(new_worker(lively_model, max_streams=16, limits=limits)) as worker, zmq.Context() as context:
        flood = context.socket(zmq.DEALER)
        flood.linger = 0
        flood.connect(worker.address)
        answers = []
        for first in range(1, 201, 40):  # as fast as the worker's send queue lets a reader keep up: it drops beyond
            for seq in range(first, first + 40):
                flood.send_multipart(open_message(seq))
            answers += replies(flood, 40)
        opened = [a for a in answers if a["type"] == "OPENED"]
        refused = [a for a in answers if a["type"] == "ERROR"]
        assert len(opened) == 3 and len(refused) == 197
        assert all(a["code"] == ErrorCode.STREAM_LIMIT for a in refused)
        messages = {a["message"] for a in refused}
        assert "at most 3 streams per connection" in messages
        assert any("OPENs per second per connection" in m for m in messages)
        with StreamClient(ClientConfig(address=worker.address, reply_timeout_s=5.0)) as other:
            other.open(crop(1))
            assert other.process(crop(2)).crop.shape == (SIZE, SIZE, 3)
            assert len(worker.stream_ids) == 4
        wait_until(lambda: len(worker.stream_ids) == 3, timeout_s=HANG_S)  # the other's CLOSE, or its gone connection


def test_an_idle_stream_gives_its_slot_before_anyone_is_refused(lively_model):
    reclaim_idle_s = 2.0  # long enough that three OPENs in a row fall within it on a loaded machine
    with serving(new_worker(lively_model, max_streams=2, reclaim_idle_s=reclaim_idle_s)) as worker:
        config = ClientConfig(address=worker.address, reply_timeout_s=5.0)
        with StreamClient(config) as active, StreamClient(config) as idle, StreamClient(config) as late:
            active.open(crop(1))
            idle.open(crop(2))
            with pytest.raises(TransportError) as refused:
                late.open(crop(3))
            assert refused.value.code == ErrorCode.STREAM_LIMIT and "all active" in str(refused.value)
            began = time.monotonic()
            while time.monotonic() - began < 1.5 * reclaim_idle_s:
                active.process(crop(4))
            late.open(crop(3))
            assert late.process(crop(5)).crop.shape == (SIZE, SIZE, 3)
            assert active.stream_id in worker.stream_ids and idle.stream_id not in worker.stream_ids


def test_streams_per_curve_key_are_counted_across_connections(lively_model, tmp_path):
    server_public, _ = generate_keys(tmp_path / "server", "server")
    laptop_public, laptop_secret = generate_keys(tmp_path / "laptop", "laptop")
    (tmp_path / "server" / AUTHORIZED_CLIENTS_DIR).mkdir()
    (tmp_path / "server" / AUTHORIZED_CLIENTS_DIR / "laptop.key").write_bytes(laptop_public.read_bytes())
    limits = ClientLimits(streams_per_client=4, streams_per_key=2)
    with serving(new_worker(lively_model, bind="tcp://*:*", curve_dir=tmp_path / "server", limits=limits)) as worker:
        address = f"tcp://127.0.0.1:{worker.address.rsplit(':', 1)[1]}"
        config = ClientConfig(address=address, keys=ClientKeys(laptop_secret, server_public), reply_timeout_s=5.0)
        with StreamClient(config) as first, StreamClient(config) as second, StreamClient(config) as third:
            first.open(crop(1))
            second.open(crop(2))
            with pytest.raises(TransportError, match="at most 2 streams per client key"):
                third.open(crop(3))


def test_behind_a_broker_a_gone_client_frees_its_slot_and_a_killed_worker_only_its_streams(lively_model):
    config = BrokerConfig(front=LOOPBACK, back="tcp://127.0.0.1:*", worker_timeout_s=30.0)
    with serving(Broker(config)) as broker:
        workers = [spawn(BROKER_WORKER_SCRIPT.format(tests=TESTS, broker=broker.back_address, name=n)) for n in ("a", "b")]
        try:
            wait_until(lambda: len(broker.workers) == 2, timeout_s=60, step_s=0.05)
            with zmq.Context() as context:
                leaving = context.socket(zmq.DEALER)
                leaving.connect(broker.front_address)
                leaving.send_multipart(open_message(1))
                assert replies(leaving, 1)[0]["type"] == "OPENED"
                wait_until(lambda: sum(info.streams for info in broker.workers.values()) == 1, timeout_s=HANG_S)
                leaving.close(linger=0)  # gone without CLOSE, as a crashed client is
                wait_until(lambda: not broker.pins, timeout_s=HANG_S)
                wait_until(lambda: sum(info.streams for info in broker.workers.values()) == 0, timeout_s=HANG_S)
            client_config = ClientConfig(address=broker.front_address, reply_timeout_s=5.0, retry_interval_s=0.05)
            clients = [StreamClient(client_config) for _ in range(2)]
            for client in clients:
                client.open(crop(2))
                client.process(crop(3))
            by_worker = {pin.worker for pin in broker.pins.values()}
            assert len(by_worker) == 2, "the two streams did not go to the two workers"
            victim = next(w for w, info in broker.workers.items() if info.name == "a")
            workers[0].kill()
            wait_until(lambda: victim not in broker.workers, timeout_s=HANG_S)
            for client in clients:
                client.process(crop(4), timeout_s=HANG_S)
            assert sum(client.outages for client in clients) == 1, "only the killed worker's stream was reopened"
            for client in clients:
                client.close()
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()


@pytest.mark.heavy
def test_after_10000_hostile_messages_a_real_client_is_served_at_once():
    from rt_dtgan.transport.fuzz import failures, fuzz_worker

    result = fuzz_worker(messages=10000, connections=8, seed=11)
    assert failures(result) == []
    assert result["replies"]["429"] > 100, "the OPEN flood met no limit"
    assert sum(result["replies"].values()) > 10_000
