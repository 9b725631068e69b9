"""A long stream on a real model: after N frames of synthetic free-form motion, do 60 frames
of the neutral calibration face bring the output back to the stream's first output?

    python bench/longrun.py [--checkpoint CKPT] [--device cuda] --frames 20000 --json bench/results/longrun-cpu-128.json

Prints and writes the PSNR of the output against the first output at its farthest during
the motion and after the neutral frames, and the peak memory (host, and on CUDA the GPU's)
after 2,000 frames and at the end. On CUDA the torch backend runs G in float16 and A in
float32. The faces are rendered crops, so the model must read pixels: the default is the
shipped paper model (the geometry model reads MediaPipe's mesh). (tests/test_longrun.py
checks the same on a deliberately sensitive fresh model.)
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_json  # noqa: E402

from rt_dtgan.models.checkpoint import load_checkpoint, resolve_checkpoint  # noqa: E402
from rt_dtgan.runtime.backends import TorchBackend  # noqa: E402
from rt_dtgan.runtime.engine import StreamEngine, to_tensor  # noqa: E402
from rt_dtgan.synth import Expression, Identity, render  # noqa: E402
from rt_dtgan.synth.sequences import freeform_sequence  # noqa: E402
from rt_dtgan.train.metrics import psnr  # noqa: E402

NEUTRAL_FRAMES = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="paper", help="a model that reads pixels (default: the shipped paper model)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--frames", type=int, default=20_000, help="frames of motion")
    parser.add_argument("--identity", type=int, default=1_000_021, help="synthetic identity of the source face")
    parser.add_argument("--target", type=int, default=1_000_022, help="synthetic identity of the target")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = resolve_checkpoint(args.checkpoint)
    model = load_checkpoint(checkpoint)
    size = model.config.image_size
    engine = StreamEngine(TorchBackend(model, device=args.device))
    identity = Identity.from_seed(args.identity)
    stream = engine.open(render(Identity.from_seed(args.target), Expression(), None, size))
    first = to_tensor(engine.step(stream, render(identity, Expression(), None, size)), size)
    farthest, rss_at_2000, gpu_at_2000, began = float("inf"), None, None, time.perf_counter()
    motion = freeform_sequence(5, args.frames, size, identity_seed=args.identity)
    for index, frame in enumerate(tqdm(motion, total=args.frames, desc="motion", unit="frame")):
        farthest = min(farthest, psnr(to_tensor(engine.step(stream, frame.image), size), first))
        if index == 2_000:
            rss_at_2000, gpu_at_2000 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, peak_gpu_mib(args.device)
    for index in range(NEUTRAL_FRAMES):
        output = engine.step(stream, render(identity, Expression(), None, size, noise_seed=index))
    back = psnr(to_tensor(output, size), first)
    rss_end, gpu_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, peak_gpu_mib(args.device)
    print(f"{args.frames} frames of motion: farthest {farthest:.1f} dB from the first output; "
          f"after {NEUTRAL_FRAMES} neutral frames: {back:.1f} dB; peak RSS {rss_at_2000} KiB at frame 2,000, {rss_end} KiB at the end; "
          f"peak GPU memory {gpu_at_2000} and {gpu_end} MiB")
    write_json(args.json, {
        "benchmark": "long stream return", "environment": environment(), "checkpoint": Path(checkpoint).name, "size": size,
        "stream_window": model.config.stream_window, "motion_frames": args.frames, "neutral_frames": NEUTRAL_FRAMES,
        "farthest_psnr_db": farthest, "return_psnr_db": back, "peak_rss_kib_at_2000": rss_at_2000,
        "peak_rss_kib_at_end": rss_end, "peak_gpu_mib_at_2000": gpu_at_2000, "peak_gpu_mib_at_end": gpu_end,
        "device": args.device, "backend": engine.backend.describe(), "seconds": time.perf_counter() - began,
    })


def peak_gpu_mib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


if __name__ == "__main__":
    main()
