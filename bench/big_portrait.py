"""A phone photo's size of portrait (8000x8000) through the live path's frame loop, brought to
the working size once, at load (`--portrait-size 1280`, the default), and kept whole (0):
seconds a frame, seconds to load, and the process's peak resident memory.

    python bench/big_portrait.py --frames 30 --json bench/results/big-portrait-cpu.json

Each case runs in a process of its own (this script with --case), so that each peak is its
own. The portrait is a real one (tpsmm_source.png in --real, else a synthetic face) upscaled
to --side; the driver is a synthetic face (a face in every frame); the output is discarded
(null), so that the figure is what the portrait's size costs the path (tracking, the
engine, the warp and the hold of the whole portrait), not an encoder's. The engine is the
shipped default model on the backend a plain `rt-dtgan live` runs (torch, one engine thread).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, source_state, write_json  # noqa: E402

from rt_dtgan.config import PORTRAIT_SIZE  # noqa: E402
from rt_dtgan.face import FaceTracker, load_target  # noqa: E402
from rt_dtgan.media import BlockingCapture, open_sink, open_source  # noqa: E402
from rt_dtgan.pipeline import FaceTransfer, FrameHooks, LocalDriver, run_frames, synthetic_source_factory  # noqa: E402
from rt_dtgan.runtime.engine import open_engine  # noqa: E402
from rt_dtgan.synth.dataset import synthetic_target  # noqa: E402

REAL_PORTRAIT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "targets" / "tpsmm_source.png"
WARMUP = 3  # frames before the timed ones (the first steps of the engine and the tracker)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=8000, help="the portrait's width and height in pixels")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per case")
    parser.add_argument("--sizes", default=f"{PORTRAIT_SIZE},0", help="--portrait-size of each case (0: the whole portrait)")
    parser.add_argument("--portrait", default=str(REAL_PORTRAIT), help="the face to upscale (default: a real one, else synthetic)")
    parser.add_argument("--case", nargs=2, metavar=("PORTRAIT", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


class Clock(FrameHooks):
    """When each frame was written."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def written(self, frame, report) -> None:
        self.times.append(time.perf_counter())


def run_case(portrait: str, portrait_size: int, frames: int) -> dict:
    """One case in this process -> its figures (peak memory: this process's)."""
    engine, _, _ = open_engine(None, threads=1)
    config = engine.backend.config.preprocess
    began = time.perf_counter()
    target = load_target(portrait, config, max_side=portrait_size or None)
    load_s = time.perf_counter() - began
    height, width = target.image.shape[:2]
    transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(config))
    source = open_source("synthetic:3", pace=False, synthetic_factory=synthetic_source_factory(WARMUP + frames))
    clock = Clock()
    with source, BlockingCapture(source) as capture, open_sink("null", width, height, source.fps) as sink:
        run_frames(transfer, capture, sink, clock)
    transfer.close()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "portrait_size": portrait_size,
        "working_size": f"{width}x{height}",
        "engine": engine.backend.describe(),
        "load_s": load_s,
        "s_per_frame": (clock.times[-1] - clock.times[WARMUP - 1]) / frames,
        "frames": frames,
        "peak_rss_mib": peak_mib,
    }


def write_portrait(path: Path, source: str, side: int) -> str:
    """The face at ``source`` (else a synthetic one), upscaled to ``side`` x ``side``, as a PNG."""
    image = cv2.imread(source) if Path(source).is_file() else cv2.cvtColor(synthetic_target(0, 256), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return "real (upscaled)" if Path(source).is_file() else "synthetic (upscaled)"


def main() -> None:
    args = parse_args()
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.frames)))
        return
    cases = []
    with tempfile.TemporaryDirectory() as workdir:
        portrait = Path(workdir) / "portrait.png"
        kind = write_portrait(portrait, args.portrait, args.side)
        for size in (int(size) for size in args.sizes.split(",")):
            command = [sys.executable, __file__, "--case", str(portrait), str(size), "--frames", str(args.frames)]
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            cases.append(json.loads(result.stdout.strip().splitlines()[-1]))
            case = cases[-1]
            print(f"--portrait-size {size}: {case['working_size']}, {case['s_per_frame']:.3f} s a frame, "
                  f"load {case['load_s']:.2f} s, peak {case['peak_rss_mib'] / 1024:.2f} GiB")
    write_json(args.json, {
        "benchmark": "big portrait",
        "environment": environment(),
        "commit": source_state(),
        "portrait": f"{args.side}x{args.side}, {kind}",
        "source": "synthetic:3",
        "sink": "null",
        "cases": cases,
    })


if __name__ == "__main__":
    main()
