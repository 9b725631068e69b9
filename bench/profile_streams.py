"""Where a batched engine call's time goes as streams are added, on a CUDA GPU: wall time
per call against the GPU's kernel time per call (torch.profiler), and the operators that
take the most of each. Kernel time near the wall time means the GPU is the limit; far
below it, the host is.

    python bench/profile_streams.py --size 256 --streams 8,32,64 --json profile-256.json

Fresh weights of the paper model (a U-Net G), torch backend (eager or --cuda-graphs),
--cudnn-benchmark lets cuDNN time its algorithms per shape first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_json  # noqa: E402
from fps import sample_faces  # noqa: E402

from rt_dtgan.config import ModelConfig  # noqa: E402
from rt_dtgan.models import DynamicsTransferGAN  # noqa: E402
from rt_dtgan.runtime.backends import TorchBackend  # noqa: E402
from rt_dtgan.runtime.engine import StreamEngine  # noqa: E402

TOP = 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--streams", default="8,32,64")
    parser.add_argument("--calls", type=int, default=20, help="profiled engine calls per case")
    parser.add_argument("--cuda-graphs", action="store_true")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


def top_operators(events, key: str) -> list[dict]:
    """The TOP operators by ``key`` (self_device_time_total or self_cpu_time_total), in ms per call."""
    ranked = sorted(events, key=lambda event: getattr(event, key), reverse=True)[:TOP]
    return [{"name": event.key, "ms": getattr(event, key) / 1000.0, "count": event.count} for event in ranked]


def profile_case(engine: StreamEngine, streams: int, calls: int) -> dict:
    faces = sample_faces(engine.size)
    ids = [engine.open(faces[i % 8]) for i in range(streams)]
    for step in range(5):
        engine.step_many([(s, faces[(step + s) % 8]) for s in ids])
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        began = time.perf_counter()
        for step in range(calls):
            engine.step_many([(s, faces[(step + s) % 8]) for s in ids])
        torch.cuda.synchronize()
        wall = (time.perf_counter() - began) / calls
    for stream in ids:
        engine.close(stream)
    events = profiler.key_averages()
    kernel_us = sum(event.self_device_time_total for event in events)
    scale = lambda rows: [row | {"ms": row["ms"] / calls} for row in rows]  # noqa: E731
    return {
        "streams": streams,
        "wall_ms_per_call": wall * 1000.0,
        "gpu_kernel_ms_per_call": kernel_us / 1000.0 / calls,
        "frames_per_s_profiled": streams / wall,
        "top_gpu": scale(top_operators(events, "self_device_time_total")),
        "top_cpu": scale(top_operators(events, "self_cpu_time_total")),
    }


def main() -> None:
    args = parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("profile_streams.py profiles a CUDA GPU; torch sees none")
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    model = DynamicsTransferGAN(ModelConfig.for_size(args.size)).eval()
    engine = StreamEngine(TorchBackend(model, device="cuda", cuda_graphs=args.cuda_graphs))
    results = []
    for streams in (int(n) for n in args.streams.split(",")):
        row = profile_case(engine, streams, args.calls)
        results.append(row)
        print(
            f"{args.size} px x{streams}: {row['wall_ms_per_call']:.2f} ms a call, GPU kernels {row['gpu_kernel_ms_per_call']:.2f} ms; "
            f"top GPU: {row['top_gpu'][0]['name']} {row['top_gpu'][0]['ms']:.2f} ms",
            flush=True,
        )
    settings = {"size": args.size, "cuda_graphs": args.cuda_graphs, "cudnn_benchmark": args.cudnn_benchmark, "calls": args.calls}
    write_json(args.json, {"benchmark": "engine call profile", "environment": environment(), "settings": settings, "results": results})


if __name__ == "__main__":
    main()
