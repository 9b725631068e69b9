"""A worker killed with -9 behind a broker: how long its stream waits for its next result,
served by another worker. Defaults throughout (the broker's, the worker's, the client's:
``reply_timeout_s`` 2 s), live (a frame every 1/30 s, submit and poll) and offline (process,
one frame in flight).

    python bench/failover.py --kills 5 --json bench/results/failover-broker.json

The broker runs in this process; two workers (fresh 64 px weights: the figure is the
transport's) in processes of their own behind it. Each kill: a client opens a stream and
runs for --run-s; the worker its stream is pinned to is killed with SIGKILL and the client
runs on until a result comes again; the time from the kill to that result is the stall.
A new worker then takes the killed one's place.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from statistics import median

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, source_state, write_json  # noqa: E402

from rt_dtgan.transport import Broker, BrokerConfig, ClientConfig, StreamClient  # noqa: E402

SIZE = 64
FRAME_S = 1 / 30
HANG_S = 30.0  # a step that takes longer than this ends the benchmark


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5, help="kills per mode")
    parser.add_argument("--run-s", type=float, default=1.0, help="seconds of streaming before each kill")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "BACK"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


def serve(name: str, back: str) -> None:
    """A worker process behind the broker at ``back``, until SIGTERM or SIGKILL."""
    import torch

    from rt_dtgan.config import ModelConfig
    from rt_dtgan.models import DynamicsTransferGAN
    from rt_dtgan.runtime.backends import TorchBackend
    from rt_dtgan.runtime.engine import StreamEngine
    from rt_dtgan.transport.worker import WorkerConfig, run_worker

    torch.set_num_threads(1)
    model = DynamicsTransferGAN(ModelConfig.for_size(SIZE)).eval()
    run_worker(WorkerConfig(bind=None, broker=back, name=name), StreamEngine(TorchBackend(model)))


def start_worker(name: str, broker: Broker) -> subprocess.Popen:
    """A worker process named ``name``, once the broker has it."""
    process = subprocess.Popen([sys.executable, __file__, "--worker", name, broker.back_address], stderr=subprocess.DEVNULL)
    wait_until(lambda: any(info.name == name for info in broker.workers.values()), f"worker {name} joining")
    return process


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + HANG_S
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} within {HANG_S} s")
        time.sleep(0.01)


def pinned_worker(broker: Broker) -> str:
    """The name of the worker the one stream is pinned to."""
    wait_until(lambda: len(broker.pins) == 1, "pinned stream")
    return broker.workers[next(iter(broker.pins.values())).worker].name


def step(client: StreamClient, crop: np.ndarray, mode: str) -> bool:
    """One frame of ``mode``; whether a result came."""
    if mode == "offline":
        client.process(crop)
        return True
    client.submit(crop)
    return client.poll(timeout_s=FRAME_S) is not None


def one_kill(broker: Broker, workers: dict[str, subprocess.Popen], mode: str, run_s: float, crop: np.ndarray) -> dict:
    """Stream, kill the stream's worker, stream until a result comes -> the stall and the outage."""
    with StreamClient(ClientConfig(address=broker.front_address)) as client:
        client.open(crop)
        began = time.monotonic()
        while time.monotonic() - began < run_s:
            step(client, crop, mode)
        victim = pinned_worker(broker)
        workers[victim].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        workers[victim].wait()
        while not step(client, crop, mode):
            if time.monotonic() - killed_at > HANG_S:
                raise SystemExit(f"no result within {HANG_S} s of the kill")
        stall_s = time.monotonic() - killed_at
        outages = client.outages
    workers[victim] = start_worker(victim, broker)
    return {"stall_s": stall_s, "outages": outages}


def main() -> None:
    args = parse_args()
    if args.worker:
        serve(*args.worker)
        return
    broker = Broker(BrokerConfig(front="tcp://127.0.0.1:*", back="tcp://127.0.0.1:*"))
    thread = threading.Thread(target=broker.serve_forever, daemon=True)
    thread.start()
    crop = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    workers = {name: start_worker(name, broker) for name in ("first", "second")}
    results: dict[str, list[dict]] = {"live": [], "offline": []}
    try:
        for _ in range(args.kills):
            for mode, kills in results.items():
                kills.append(one_kill(broker, workers, mode, args.run_s, crop))
                print(f"{mode}: {kills[-1]['stall_s']:.3f} s from the kill to the next result")
    finally:
        for process in workers.values():
            process.terminate()
            process.wait()
        broker.stop()
        thread.join()
    figures = {
        mode: {"median_s": median(k["stall_s"] for k in kills), "min_s": min(k["stall_s"] for k in kills),
               "max_s": max(k["stall_s"] for k in kills), "kills": kills}
        for mode, kills in results.items()
    }
    for mode, figure in figures.items():
        print(f"{mode}: stall {figure['min_s']:.2f} to {figure['max_s']:.2f} s, median {figure['median_s']:.2f} s")
    write_json(args.json, {
        "benchmark": "broker failover after kill -9",
        "environment": environment(),
        "commit": source_state(),
        "reply_timeout_s": ClientConfig().reply_timeout_s,
        "worker_timeout_s": BrokerConfig().worker_timeout_s,
        "stall": figures,
    })


if __name__ == "__main__":
    main()
