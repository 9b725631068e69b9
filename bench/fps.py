"""Throughput of the StreamEngine alone, per backend, crop size and number of concurrent
streams (their frames batched into one engine call).

    python bench/fps.py --backends torch,onnxruntime --sizes 64,128,256 --streams 1,4,8 \
        --json bench/results/fps-cpu.json

Without --checkpoint the networks have fresh weights (speed does not depend on the values)
of the --kind given: "paper" (A on pixels, a U-Net G) or "geometry" (A on the face mesh, G
warping the portrait; its faces carry a synthetic face's mesh, bench/face_mesh.npy, moved
a little every frame). Backends: torch (float16 G on CUDA, float32 on the CPU),
torch-graphs (CUDA graph replay), torch-compile (torch.compile of the step graph; its
compilation happens in the warm-up) and onnxruntime (graphs exported to a temporary
directory first).

bench/face_mesh.npy is MediaPipe's mesh of synthetic face 0 at 128 px, in eye units
(``prepare_target(synthetic_target(0, 256), PreprocessConfig(size=128)).mesh``): stored so
that machines without MediaPipe time the geometry model too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, percentiles, print_table, write_json  # noqa: E402

from rt_dtgan.config import ModelConfig  # noqa: E402
from rt_dtgan.models import DynamicsTransferGAN  # noqa: E402
from rt_dtgan.models.checkpoint import load_checkpoint, resolve_checkpoint  # noqa: E402
from rt_dtgan.runtime.backends import OnnxRuntimeBackend, TorchBackend  # noqa: E402
from rt_dtgan.runtime.engine import Face, StreamEngine  # noqa: E402
from rt_dtgan.runtime.export import export_onnx  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--sizes", default="128", help="comma-separated crop sizes (ignored with --checkpoint)")
    parser.add_argument("--streams", default="1,4,8", help="comma-separated numbers of concurrent streams")
    parser.add_argument("--frames", type=int, default=300, help="timed engine calls per case")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and ONNX Runtime")
    parser.add_argument("--checkpoint", help="time this checkpoint instead of fresh weights")
    parser.add_argument("--kind", choices=("paper", "geometry"), default="paper", help="fresh weights of this model kind")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


FACE_MESH = Path(__file__).resolve().parent / "face_mesh.npy"


def make_backend(name: str, model: DynamicsTransferGAN, checkpoint: str | None, workdir: Path, threads: int):
    """One of the backends named in the module's docstring."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "torch":
        return TorchBackend(model, device=device)
    if name == "torch-graphs":
        return TorchBackend(model, device="cuda", cuda_graphs=True)
    if name == "torch-compile":
        return TorchBackend(model, device=device, compile_step=True)
    if name == "onnxruntime":
        engine_dir = workdir / f"onnx-{model.config.image_size}"
        export_onnx(model, engine_dir, checkpoint)
        return OnnxRuntimeBackend(engine_dir, checkpoint, threads=threads)
    raise SystemExit(f"unknown backend {name!r}; choose torch, torch-graphs (CUDA), torch-compile or onnxruntime")


def sample_faces(size: int, count: int = 8) -> list[Face]:
    """``count`` faces: random crops, each with the stored face mesh moved a little (eye
    units do not depend on the crop size)."""
    rng = np.random.default_rng(0)
    mesh = np.load(FACE_MESH)
    return [
        Face(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (mesh + rng.normal(0, 0.02, mesh.shape)).astype(np.float32))
        for _ in range(count)
    ]


def time_streams(engine: StreamEngine, streams: int, frames: int, warmup: int) -> dict:
    faces = sample_faces(engine.size)
    ids = [engine.open(faces[i % 8]) for i in range(streams)]
    for step in range(warmup):
        engine.step_many([(s, faces[(step + s) % 8]) for s in ids])
    seconds = []
    began = time.perf_counter()
    for step in range(frames):
        call_began = time.perf_counter()
        engine.step_many([(s, faces[(step + s) % 8]) for s in ids])
        seconds.append(time.perf_counter() - call_began)
    elapsed = time.perf_counter() - began
    for stream in ids:
        engine.close(stream)
    return {"streams": streams, "frames_per_s": streams * frames / elapsed, **percentiles(seconds)}


def preset(kind: str, size: int) -> ModelConfig:
    return ModelConfig.geometry(size) if kind == "geometry" else ModelConfig.for_size(size)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    stream_counts = [int(n) for n in args.streams.split(",")]
    results = []
    checkpoint = str(resolve_checkpoint(args.checkpoint)) if args.checkpoint else None
    with tempfile.TemporaryDirectory() as workdir:
        models = (
            [load_checkpoint(checkpoint)]
            if checkpoint
            else [DynamicsTransferGAN(preset(args.kind, int(s))).eval() for s in args.sizes.split(",")]
        )
        for model in models:
            for backend_name in args.backends.split(","):
                backend = make_backend(backend_name, model, checkpoint, Path(workdir), args.threads)
                engine = StreamEngine(backend)
                for streams in stream_counts:
                    kind = "geometry" if model.config.warps else "paper"
                    row = {"backend": backend_name, "kind": kind, "size": model.config.image_size, "detail": backend.describe()}
                    row |= time_streams(engine, streams, args.frames, args.warmup)
                    results.append(row)
                    print(f"{backend_name} {row['size']} px x{streams}: {row['frames_per_s']:.1f} frames/s", flush=True)
                    # Written after every case, so that a run stopped early keeps what it measured.
                    write_json(
                        args.json, {"benchmark": "engine fps", "environment": environment(), "threads": args.threads, "results": results}
                    )
    print()
    print_table(results, ["backend", "kind", "size", "streams", "frames_per_s", "p50_ms", "p95_ms", "p99_ms"])


if __name__ == "__main__":
    main()
