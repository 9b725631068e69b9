"""Latency of the whole live path, stage by stage: decode, face tracking, align, engine,
paste back, sink; throughput unpaced; and, paced at the source rate, the latency from frame
arrival to sink and the frames dropped.

    python bench/latency.py --size 128 --backend onnxruntime --frames 600 [--source VIDEO] \
        --json bench/results/latency-cpu-128.json [--plot bench/results/latency-cpu-128.png]

Without --checkpoint the networks have fresh weights (speed does not depend on the values).
The source defaults to the real clip lp_d3.mp4 (512x512, 30 fps) where ../shared/data/real
exists, else to a synthetic face; a short source is played again until --frames are done.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, percentiles, print_table, write_json  # noqa: E402

from rt_dtgan.checkpoint import save_checkpoint  # noqa: E402
from rt_dtgan.commands.common import load_target_spec, synthetic_source_factory  # noqa: E402
from rt_dtgan.config import ModelConfig  # noqa: E402
from rt_dtgan.face import FaceTracker  # noqa: E402
from rt_dtgan.media import LatestFrameCapture, open_sink, open_source  # noqa: E402
from rt_dtgan.models import DynamicsTransferGAN  # noqa: E402
from rt_dtgan.pipeline import FaceTransfer, LocalDriver  # noqa: E402
from rt_dtgan.runtime.backends import open_backend  # noqa: E402
from rt_dtgan.runtime.engine import StreamEngine  # noqa: E402
from rt_dtgan.runtime.export import export_onnx  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
STAGES = ("decode", "track", "align", "engine", "paste", "sink")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, choices=(64, 128, 256))
    parser.add_argument("--backend", default="onnxruntime", choices=("torch", "onnxruntime"))
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--paced-frames", type=int, default=300, help="frames of the paced run")
    parser.add_argument("--source", help="video file or synthetic:SEED (default: lp_d3.mp4, else synthetic:1)")
    parser.add_argument("--target", help="portrait or synthetic:SEED (default: tpsmm_source.png, else synthetic:2)")
    parser.add_argument("--checkpoint", help="time this checkpoint instead of fresh weights")
    parser.add_argument("--threads", type=int, default=1, help="engine threads (the tracker uses the rest)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="write a PNG of the latency distributions here")
    return parser.parse_args()


def default_media(args: argparse.Namespace) -> tuple[str, str]:
    source = args.source or (str(REAL / "driving" / "lp_d3.mp4") if REAL.is_dir() else "synthetic:1")
    target = args.target or (str(REAL / "targets" / "tpsmm_source.png") if REAL.is_dir() else "synthetic:2")
    return source, target


def make_engine(args: argparse.Namespace, workdir: Path) -> tuple[StreamEngine, str]:
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = str(save_checkpoint(workdir / "fresh.safetensors", DynamicsTransferGAN(ModelConfig.for_size(args.size))))
    engines = None
    if args.backend == "onnxruntime":
        engines = workdir / "onnx"
        from rt_dtgan.checkpoint import load_checkpoint

        export_onnx(load_checkpoint(checkpoint), engines, checkpoint)
    backend, _ = open_backend(args.backend, checkpoint, engines, args.threads)
    return StreamEngine(backend), backend.describe()


class Looping:
    """Frames of a source, opened again at its end (timestamps keep increasing), with each
    read timed (decode)."""

    def __init__(self, spec: str, pace: bool) -> None:
        self.spec, self.pace = spec, pace
        self.source = self._open()
        self.offset_s, self.last_pts_s = 0.0, 0.0

    def _open(self):
        return open_source(self.spec, pace=self.pace, synthetic_factory=synthetic_source_factory(None))

    def read(self):
        began = time.perf_counter()
        try:
            frame = next(self.source)
        except StopIteration:
            self.source.close()
            self.source = self._open()
            self.offset_s = self.last_pts_s + 1.0 / self.source.fps
            frame = next(self.source)
        frame = dataclasses.replace(frame, pts_s=frame.pts_s + self.offset_s)
        self.last_pts_s = frame.pts_s
        return frame, time.perf_counter() - began


def unpaced_run(transfer: FaceTransfer, source: Looping, sink, frames: int) -> tuple[dict[str, list[float]], float, int]:
    """-> (seconds per stage, frames per second over the whole run, frames with a face)."""
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    found, began = 0, time.perf_counter()
    for _ in range(frames):
        frame, decode_s = source.read()
        image, report = transfer.process(frame)
        sink_began = time.perf_counter()
        sink.write(frame.with_image(image))
        stages["sink"].append(time.perf_counter() - sink_began)
        stages["decode"].append(decode_s)
        for name in ("track", "align", "engine", "paste"):
            stages[name].append(getattr(report, f"{name}_ms") / 1000)
        found += report.found
    return stages, frames / (time.perf_counter() - began), found


def paced_run(transfer: FaceTransfer, spec: str, sink, frames: int) -> tuple[list[float], int, float]:
    """-> (seconds from capture to sink per frame, frames dropped, source fps)."""
    latencies = []
    with open_source(spec, pace=True, synthetic_factory=synthetic_source_factory(None)) as source:
        with LatestFrameCapture(source) as capture:
            while len(latencies) < frames:
                frame = capture.get(timeout=2.0)
                if frame is None:
                    break
                image, _ = transfer.process(frame)
                sink.write(frame.with_image(image))
                latencies.append((time.monotonic_ns() - frame.capture_ns) / 1e9)
            dropped = capture.status.dropped
        return latencies, dropped, source.fps


def plot(path: str, stages: dict[str, list[float]], paced: list[float], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.boxplot([np.asarray(stages[s]) * 1000 for s in STAGES], tick_labels=list(STAGES), showfliers=False)
    left.set_ylabel("ms per frame")
    left.set_title("stages, unpaced")
    right.hist(np.asarray(paced) * 1000, bins=40)
    right.set_xlabel("ms from frame arrival to sink")
    right.set_title("paced at the source rate")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"wrote {path}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    source_spec, target_spec = default_media(args)
    with tempfile.TemporaryDirectory() as workdir:
        engine, described = make_engine(args, Path(workdir))
        config = engine.backend.config.preprocess
        target = load_target_spec(target_spec, config)
        height, width = target.image.shape[:2]
        source = Looping(source_spec, pace=False)
        with open_sink(str(Path(workdir) / "out.mp4"), width, height, source.source.fps) as sink:
            transfer = FaceTransfer(LocalDriver(engine, target.crop), target, FaceTracker(config))
            for _ in range(20):
                transfer.process(source.read()[0])
            stages, fps, found = unpaced_run(transfer, source, sink, args.frames)
            transfer.close()
            transfer = FaceTransfer(LocalDriver(engine, target.crop), target, FaceTracker(config))
            paced, dropped, source_fps = paced_run(transfer, source_spec, sink, args.paced_frames)
            transfer.close()
    rows = [{"stage": name, **percentiles(times)} for name, times in stages.items()]
    print_table(rows, ["stage", "p50_ms", "p95_ms", "p99_ms", "mean_ms"])
    paced_figures = percentiles(paced)
    print(f"unpaced: {fps:.1f} frames/s, face in {found}/{args.frames}")
    print(f"paced at {source_fps:g} fps: arrival-to-sink p50 {paced_figures['p50_ms']:.1f} ms, "
          f"p99 {paced_figures['p99_ms']:.1f} ms, dropped {dropped} of {len(paced) + dropped}")
    payload = {
        "benchmark": "live path latency",
        "environment": environment(),
        "backend": args.backend,
        "engine": described,
        "size": args.size,
        "threads": args.threads,
        "weights": args.checkpoint or "fresh",
        "source": Path(source_spec).name,
        "target": Path(target_spec).name,
        "frames": args.frames,
        "stages": {row.pop("stage"): row for row in rows},
        "unpaced_frames_per_s": fps,
        "face_found": found,
        "paced": {"source_fps": source_fps, "frames": len(paced), "dropped": dropped, **paced_figures},
    }
    write_json(args.json, payload)
    if args.plot:
        plot(args.plot, stages, paced, f"live path, {args.size} px, {args.backend}, {payload['environment']['device']}")


if __name__ == "__main__":
    main()
