"""A soak of the live path: many frames of a synthetic driver through the library's frame loop
(pipeline.run_frames), unpaced as `rt-dtgan live --no-pace` runs a file, into the null
output; the memory and the latency at the start and at the end.

    python bench/soak.py --frames 100000 --json bench/results/soak-cpu-128.json

The engine is the shipped default model on the backend `live` picks by default (one engine
thread). Latency is from a frame's capture to its hand-over to the sink, so it includes the
time the frame waits in the loop's queues. The resident memory is read every --every frames;
the start is taken after the first --every frames (the caches warm), the end at the last.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, percentiles, write_json  # noqa: E402

from rt_dtgan.config import PORTRAIT_SIZE  # noqa: E402
from rt_dtgan.face import FaceTracker  # noqa: E402
from rt_dtgan.media import BlockingCapture, open_sink, open_source  # noqa: E402
from rt_dtgan.pipeline import FaceTransfer, FrameHooks, LocalDriver, load_target_spec, run_frames, synthetic_source_factory  # noqa: E402
from rt_dtgan.runtime.doctor import resident_mib  # noqa: E402
from rt_dtgan.runtime.engine import open_engine  # noqa: E402


class SoakMeter(FrameHooks):
    """Per frame: the latency from capture to the sink, and whether a face was found; every
    ``every`` frames: the resident memory and the time."""

    def __init__(self, total: int, every: int) -> None:
        self.every = every
        self.latency_s: list[float] = []
        self.found = 0
        self.samples: list[dict] = []
        self.bar = tqdm(total=total, desc="soak", unit="frame")

    def written(self, frame, report) -> None:
        self.latency_s.append((time.monotonic_ns() - frame.capture_ns) / 1e9)
        self.found += report.found
        self.bar.update()
        if len(self.latency_s) % self.every == 0:
            self.samples.append({"frame": len(self.latency_s), "time_s": time.perf_counter(), "rss_mib": resident_mib(os.getpid())})


def window_figures(meter: SoakMeter, start: int, end: int) -> dict:
    """Latency percentiles and the rate over frames [start, end) (multiples of ``every``)."""
    by_frame = {sample["frame"]: sample for sample in meter.samples}
    first, last = by_frame[start], by_frame[end]
    rate = (end - start) / (last["time_s"] - first["time_s"])
    return {"frames": [start, end], "frames_per_s": rate, "rss_mib": last["rss_mib"], **percentiles(meter.latency_s[start:end])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1000, help="frames between memory readings, and in each window")
    parser.add_argument("--source", default="synthetic:1", help="the driver (default: a synthetic face)")
    parser.add_argument("--target", default="synthetic:2", help="the portrait (default: a synthetic face)")
    parser.add_argument("--checkpoint", help="a checkpoint or a shipped name (default: the shipped default model)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.frames < 3 * args.every:
        raise SystemExit("--frames must be at least three times --every (a start window, then an end window)")
    engine, checkpoint, why = open_engine(args.checkpoint, threads=1)
    config = engine.backend.config.preprocess
    target = load_target_spec(args.target, config, max_side=PORTRAIT_SIZE)
    height, width = target.image.shape[:2]
    transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(config))
    meter = SoakMeter(args.frames, args.every)
    source = open_source(args.source, pace=False, synthetic_factory=synthetic_source_factory(args.frames))
    began = time.perf_counter()
    with source, BlockingCapture(source) as capture, open_sink("null", width, height, source.fps) as sink:
        written = run_frames(transfer, capture, sink, meter, frames=args.frames)
    seconds = time.perf_counter() - began
    meter.bar.close()
    transfer.close()
    end = written - written % args.every
    start_window = window_figures(meter, args.every, 2 * args.every)
    end_window = window_figures(meter, end - args.every, end)
    for name, figures in (("start", start_window), ("end", end_window)):
        print(
            f"{name}: frames {figures['frames'][0]}-{figures['frames'][1]}, {figures['frames_per_s']:.1f} frames/s, "
            f"latency p50 {figures['p50_ms']:.1f} ms p99 {figures['p99_ms']:.1f} ms, resident {figures['rss_mib']:.0f} MiB"
        )
    print(f"{written} frames in {seconds / 60:.1f} min, face found in {meter.found}")
    write_json(args.json, {
        "benchmark": "live path soak",
        "environment": environment(),
        "engine": f"{engine.backend.describe()} ({why})",
        "weights": args.checkpoint or "shipped default",
        "source": args.source,
        "target": args.target,
        "portrait": f"{width}x{height}",
        "frames": written,
        "minutes": seconds / 60,
        "face_found": meter.found,
        "start": start_window,
        "end": end_window,
        "memory": [{"frame": sample["frame"], "rss_mib": sample["rss_mib"]} for sample in meter.samples],
    })


if __name__ == "__main__":
    main()
