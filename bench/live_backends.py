"""The live path's unpaced rate on each engine backend, in alternating rounds of one run, as
ratios: torch, what a plain `rt-dtgan live` runs ("no engines given", one engine thread),
beside ONNX Runtime on the graphs `rt-dtgan export` writes, which bench/latency.py times.

    python bench/live_backends.py --rounds 4 --frames 300 --sink mp4 --json bench/results/live-backends-cpu-128.json

The path, the media and the model are bench/latency.py's (its unpaced run: the real clip
lp_d3.mp4 onto tpsmm_source.png where ../shared/data/real has them, the shipped default
model). Each round runs every backend once, in turn, the order reversed every other round,
so that a shared machine's changing load falls on both; the ratio is taken per round.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from statistics import median

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, source_state, write_json  # noqa: E402
from latency import REAL, SINKS, LoopingCapture, default_media, make_engine, output, unpaced_run  # noqa: E402

from rt_dtgan.config import PORTRAIT_SIZE  # noqa: E402
from rt_dtgan.face import FaceTracker  # noqa: E402
from rt_dtgan.pipeline import FaceTransfer, LocalDriver, load_target_spec  # noqa: E402

BACKENDS = ("torch", "onnxruntime")
WARMUP = 20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--frames", type=int, default=300, help="frames of each backend's run in each round")
    parser.add_argument("--sink", default="mp4", choices=tuple(SINKS))
    parser.add_argument("--real", default=str(REAL), help="the real clips and portraits (default: ../shared/data/real)")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


def open_path(backend: str, workdir: Path, source: str, target_spec: str):
    """-> (transfer, looping capture, output size, engine description) for ``backend``."""
    options = argparse.Namespace(backend=backend, threads=1, checkpoint=None, fresh=None, size=128)
    engine, described = make_engine(options, workdir / backend)
    config = engine.backend.config.preprocess
    target = load_target_spec(target_spec, config, max_side=PORTRAIT_SIZE)
    height, width = target.image.shape[:2]
    transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(config))
    return transfer, LoopingCapture(source), (width, height), described


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    source, target = default_media(argparse.Namespace(real=args.real, source=None, target=None))
    rates: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    cpu: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    with tempfile.TemporaryDirectory() as workdir:
        paths = {backend: open_path(backend, Path(workdir), source, target) for backend in BACKENDS}
        for backend, (transfer, capture, size, _) in paths.items():
            unpaced_run(transfer, capture, output(args.sink, workdir, f"warmup-{backend}"), size, WARMUP)
        for round_index in range(args.rounds):
            order = BACKENDS if round_index % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                transfer, capture, size, _ = paths[backend]
                _, fps, _, cpu_ms = unpaced_run(transfer, capture, output(args.sink, workdir, backend), size, args.frames)
                rates[backend].append(fps)
                cpu[backend].append(sum(cpu_ms.values()))
            print(f"round {round_index + 1}: " + ", ".join(f"{b} {rates[b][-1]:.1f} frames/s" for b in BACKENDS))
        for transfer, capture, _, _ in paths.values():
            capture.close()
            transfer.close()
    ratios = [torch_fps / onnx_fps for torch_fps, onnx_fps in zip(rates["torch"], rates["onnxruntime"])]
    print(f"torch / onnxruntime, median of {args.rounds} rounds: {median(ratios):.2f}")
    write_json(args.json, {
        "benchmark": "live path, unpaced, per backend",
        "environment": environment(),
        "commit": source_state(),
        "source": Path(source).name,
        "target": Path(target).name,
        "sink": args.sink,
        "frames_per_round": args.frames,
        "engines": {backend: paths[backend][3] for backend in BACKENDS},
        "frames_per_s": rates,
        "cpu_ms_per_frame": cpu,
        "median_frames_per_s": {backend: median(values) for backend, values in rates.items()},
        "torch_over_onnxruntime": ratios,
        "median_torch_over_onnxruntime": median(ratios),
    })


if __name__ == "__main__":
    main()
