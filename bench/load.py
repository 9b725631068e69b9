"""Load on one worker: N concurrent clients on loopback, throughput and latency against N.

    python bench/load.py --clients 1,2,4,8 --frames 200 --size 64 --json bench/results/load-cpu.json

The worker runs in its own process (fresh weights: speed does not depend on the values);
each client is a thread with its own StreamClient in blocking mode (one frame in flight,
every frame answered), so the worker batches whatever frames arrive together. Latency is
the client's round trip (send to decoded result). Also measured: the bytes of one crop on
the wire, raw (rgb24) and as JPEG, on frames of a real clip when --clip is given.

``--targets worker,ray`` runs every case against the plain worker and then against the Ray edge
(``rt-dtgan serve --ray local``: the same Worker, its engine one replica on a local Ray cluster
started in the edge's process), one after the other in one run, so that their ratio is the
edge's overhead.

``--beside none,reading:2,silent:2`` runs every case once per entry: alone, beside 2 clients
that send a frame every 1/30 s and read their replies, beside 2 that send alike and never
read one (slow readers). Reading against silent neighbours isolates what not reading costs
the others (latency) and the worker (its resident memory at the end of each case).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, percentiles, print_table, write_json  # noqa: E402

from rt_dtgan.runtime.doctor import resident_mib  # noqa: E402
from rt_dtgan.transport import ClientConfig, StreamClient  # noqa: E402
from rt_dtgan.transport.addresses import free_address  # noqa: E402
from rt_dtgan.transport.protocol import JpegCodec, decode_image, encode_image  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,2,4,8", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--frames", type=int, default=200, help="timed frames per client")
    parser.add_argument("--warmup", type=int, default=20, help="untimed frames per client first")
    parser.add_argument("--size", type=int, default=64, choices=(64, 128, 256))
    parser.add_argument("--formats", default="rgb24,jpeg", help="frame formats to run: rgb24, jpeg")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads in the worker")
    parser.add_argument("--clip", help="a video whose frames measure the JPEG size (default: synthetic crops)")
    parser.add_argument("--beside", default="none", help="neighbours per run: none, reading:N or silent:N, comma-separated")
    parser.add_argument("--targets", default="worker", help="servers to run against: worker, ray, comma-separated")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


def serve(address: str, size: int, threads: int, target: str) -> None:
    """The server process, until SIGTERM: a fresh-weights model behind a Worker, or behind the
    Ray edge as its one replica."""
    import torch

    from rt_dtgan.config import ModelConfig
    from rt_dtgan.models import DynamicsTransferGAN
    from rt_dtgan.runtime.backends import TorchBackend
    from rt_dtgan.runtime.engine import StreamEngine
    from rt_dtgan.transport.worker import WorkerConfig, run_worker

    model = DynamicsTransferGAN(ModelConfig.for_size(size)).eval()
    config = WorkerConfig(bind=address, max_streams=64)
    if target == "ray":
        from rt_dtgan.transport.cluster import ClusterConfig, run_edge
        from rt_dtgan.transport.replica import ModelRecipe

        run_edge(config, ClusterConfig(min_replicas=1, max_replicas=1), ModelRecipe(model, threads))
        return
    torch.set_num_threads(threads)
    run_worker(config, StreamEngine(TorchBackend(model)))


def run_client(address: str, image_format: str, crops: list[np.ndarray], warmup: int, frames: int,
               barrier: threading.Barrier, out: dict) -> None:
    config = ClientConfig(address=address, frame_format=image_format, result_format=image_format, reply_timeout_s=30.0)
    with StreamClient(config) as client:
        client.open(crops[0])
        for i in range(warmup):
            client.process(crops[i % len(crops)])
        barrier.wait()
        began = time.perf_counter()
        results = [client.process(crops[i % len(crops)]) for i in range(frames)]
        out["elapsed"] = time.perf_counter() - began
        out["results"] = results


class Neighbour(threading.Thread):
    """A client that opens a stream, then sends a frame every 1/30 s; it reads its replies
    unless ``silent`` (a slow reader that never reads again)."""

    def __init__(self, address: str, crop: np.ndarray, silent: bool) -> None:
        super().__init__(daemon=True)
        self.address, self.crop, self.silent, self.stop = address, crop, silent, threading.Event()

    def run(self) -> None:
        import json

        size = self.crop.shape[0]
        image = {"format": "rgb24", "width": size, "height": size}
        with zmq.Context() as context, context.socket(zmq.DEALER) as socket:
            socket.linger = 0
            socket.connect(self.address)
            socket.send_multipart([json.dumps({"v": 1, "type": "OPEN", "seq": 1, **image}).encode(), self.crop.tobytes()])
            stream = json.loads(socket.recv_multipart()[0])["stream"]
            seq = 2
            while not self.stop.wait(1 / 30):
                header = {"v": 1, "type": "FRAME", "seq": seq, "stream": stream, **image}
                socket.send_multipart([json.dumps(header).encode(), self.crop.tobytes()], flags=zmq.NOBLOCK)
                seq += 1
                while not self.silent and socket.poll(0):
                    socket.recv_multipart()


def time_clients(address: str, image_format: str, clients: int, crops: list[np.ndarray], warmup: int, frames: int) -> dict:
    barrier = threading.Barrier(clients)
    outs = [{} for _ in range(clients)]
    threads = [
        threading.Thread(
            target=run_client, args=(address, image_format, crops[i:] + crops[:i], warmup, frames, barrier, outs[i])
        )
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if any("results" not in out for out in outs):
        raise SystemExit("a client failed; see the traceback above")
    results = [r for out in outs for r in out["results"]]
    elapsed = max(out["elapsed"] for out in outs)
    stage = {name: float(np.median([r.timings[name] for r in results])) for name in ("queue_ms", "engine_ms")}
    return {
        "format": image_format,
        "clients": clients,
        "frames_per_s": len(results) / elapsed,
        "per_client_fps": len(results) / elapsed / clients,
        **percentiles([r.timings["round_trip_ms"] / 1e3 for r in results]),
        "queue_p50_ms": stage["queue_ms"],
        "engine_p50_ms": stage["engine_ms"],
        "mean_batch": float(np.mean([r.batch for r in results])),
    }


def sample_crops(size: int, count: int, clip: str | None) -> list[np.ndarray]:
    """``count`` uint8 (size, size, 3) crops: centre squares of a clip's frames, or smooth synthetic images."""
    if clip:
        import av

        crops = []
        with av.open(clip) as container:
            for frame in container.decode(video=0):
                side = min(frame.width, frame.height)
                image = frame.to_ndarray(format="rgb24")
                top, left = (frame.height - side) // 2, (frame.width - side) // 2
                centre = np.ascontiguousarray(image[top : top + side, left : left + side])
                square = av.VideoFrame.from_ndarray(centre, format="rgb24")
                crops.append(square.reformat(width=size, height=size).to_ndarray(format="rgb24"))
                if len(crops) == count:
                    return crops
        return crops
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size

    def smooth() -> np.ndarray:
        waves = [np.sin(7 * x * rng.uniform(0.5, 2) + 5 * y * rng.uniform(0.5, 2) + rng.uniform(0, 6)) for _ in range(3)]
        return ((np.stack(waves, -1) + 1) * 127.5).astype(np.uint8)

    return [smooth() for _ in range(count)]


def payload_sizes(clip: str | None) -> list[dict]:
    """Bytes of one crop on the wire, raw and as JPEG, with the JPEG's error and codec time."""
    codec = JpegCodec()
    rows = []
    for size in (64, 128, 256):
        crops = sample_crops(size, 30, clip)
        for quality in (2, 4, 8):
            encoded, errors, encode_s, decode_s = [], [], [], []
            for crop in crops:
                began = time.perf_counter()
                data = encode_image(crop, "jpeg", codec, quality)
                encode_s.append(time.perf_counter() - began)
                began = time.perf_counter()
                decoded = decode_image(data, "jpeg", size, codec)
                decode_s.append(time.perf_counter() - began)
                encoded.append(len(data))
                errors.append(np.abs(decoded.astype(np.int16) - crop).mean())
            rows.append({
                "size": size,
                "rgb24_bytes": size * size * 3,
                "jpeg_quality": quality,
                "jpeg_bytes_mean": float(np.mean(encoded)),
                "ratio": size * size * 3 / float(np.mean(encoded)),
                "jpeg_mean_abs_error": float(np.mean(errors)),
                "encode_ms": float(np.median(encode_s) * 1e3),
                "decode_ms": float(np.median(decode_s) * 1e3),
            })
    return rows


def run_target(target: str, args: argparse.Namespace, crops: list[np.ndarray]) -> list[dict]:
    """Every case of ``args`` against one server (``worker`` or ``ray``) in a process of its own."""
    counts = [int(n) for n in args.clients.split(",")]
    address = free_address()
    worker = multiprocessing.get_context("spawn").Process(target=serve, args=(address, args.size, args.threads, target))
    worker.start()
    rows = []
    try:
        with StreamClient(ClientConfig(address=address)) as probe:
            probe.connect(timeout_s=120)
        for beside in args.beside.split(","):
            kind, _, count = beside.partition(":")
            neighbours = [Neighbour(address, crops[i % len(crops)], kind == "silent") for i in range(int(count or 0))]
            for neighbour in neighbours:
                neighbour.start()
            for image_format in args.formats.split(","):
                for n in counts:
                    row = time_clients(address, image_format, n, crops, args.warmup, args.frames)
                    rows.append({"target": target} | row | {"beside": beside, "worker_rss_mib": resident_mib(worker.pid)})
            for neighbour in neighbours:
                neighbour.stop.set()
                neighbour.join()
    finally:
        worker.terminate()
        worker.join(timeout=30)
    return rows


def main() -> None:
    args = parse_args()
    crops = sample_crops(args.size, 16, args.clip)
    rows = [row for target in args.targets.split(",") for row in run_target(target, args, crops)]
    sizes = payload_sizes(args.clip)
    print_table(rows, ["target", "beside", "format", "clients", "frames_per_s", "per_client_fps", "p50_ms", "p99_ms",
                       "queue_p50_ms", "engine_p50_ms", "mean_batch", "worker_rss_mib"])
    print()
    print_table(sizes, ["size", "rgb24_bytes", "jpeg_quality", "jpeg_bytes_mean", "ratio", "jpeg_mean_abs_error",
                        "encode_ms", "decode_ms"])
    write_json(args.json, {
        "benchmark": "load",
        "size": args.size,
        "frames_per_client": args.frames,
        "warmup": args.warmup,
        "worker_threads": args.threads,
        "transport": "tcp loopback, one server process (a worker, or the Ray edge with one replica), clients as threads "
                     "in blocking mode",
        "weights": "fresh",
        "environment": {**environment(), "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version()},
        "size_sample": Path(args.clip).name if args.clip else "synthetic smooth crops",
        "results": rows,
        "payload": sizes,
    })


if __name__ == "__main__":
    main()
