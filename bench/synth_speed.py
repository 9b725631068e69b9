"""Synthetic face renderer throughput on one CPU core.

Two figures per size: `cached` renders frames of one identity whose layers are cached
(the steady state inside a sequence); `sequences` renders onset sequences of fresh random
identities (10 to 60 frames each), so it includes building each identity's layers, which
is what on-the-fly training data costs. Frames/s are wall-clock; `cpu_fps` uses the
process CPU time, which is steadier on a shared machine.

    python bench/synth_speed.py --size 128 --frames 600 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _percentiles_ms(seconds: list[float]) -> dict[str, float]:
    values = np.array(seconds) * 1e3
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)}


def _bench_cached(size: int, frames: int, warmup: int) -> dict:
    from rt_dtgan.synth import Identity, render
    from rt_dtgan.synth.sequences import freeform_track

    identity = Identity.from_seed(12345)
    track = list(freeform_track(7, warmup + frames))
    for spec in track[:warmup]:
        render(identity, spec.expression, spec.pose, size, spec.noise_seed)
    times = []
    cpu_start = time.process_time()
    for spec in track[warmup:]:
        start = time.perf_counter()
        render(identity, spec.expression, spec.pose, size, spec.noise_seed)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu_start
    return {"fps": len(times) / sum(times), "cpu_fps": len(times) / cpu, "frame_ms": _percentiles_ms(times)}


def _bench_sequences(size: int, frames: int) -> dict:
    from rt_dtgan.synth.expression import BASIC_EXPRESSIONS
    from rt_dtgan.synth.sequences import onset_sequence

    rng = np.random.default_rng(0)
    rendered, identities = 0, 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while rendered < frames:
        seed = int(rng.integers(1_000_000, 2_000_000))
        name = str(rng.choice(BASIC_EXPRESSIONS))
        rendered += sum(1 for _ in onset_sequence(seed, name, seed=seed, size=size))
        identities += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"fps": rendered / elapsed, "cpu_fps": rendered / cpu, "frames": rendered, "identities": identities}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, action="append", choices=(64, 128, 256),
                        help="size to measure (repeatable; default 64, 128 and 256)")
    parser.add_argument("--frames", type=int, default=600, help="timed frames per size and mode")
    parser.add_argument("--warmup", type=int, default=30, help="untimed frames first")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    sizes = args.size or [64, 128, 256]
    results = []
    print(f"{'size':>5} {'cached fps':>11} {'(cpu)':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'sequences fps':>14} {'(cpu)':>6}")
    for size in sizes:
        cached = _bench_cached(size, args.frames, args.warmup)
        sequences = _bench_sequences(size, args.frames)
        ms = cached["frame_ms"]
        print(f"{size:>5} {cached['fps']:>11.0f} {cached['cpu_fps']:>6.0f} {ms['p50']:>7.2f} {ms['p95']:>7.2f} {ms['p99']:>7.2f}"
              f" {sequences['fps']:>14.0f} {sequences['cpu_fps']:>6.0f}")
        results.append({"size": size, "cached": cached, "sequences": sequences})
    report = {
        "benchmark": "synth_speed",
        "threads": 1,
        "frames": args.frames,
        "results": results,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cpu": _cpu_name(),
        "platform": platform.platform(),
    }
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
