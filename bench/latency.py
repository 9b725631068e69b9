"""Latency of the whole live path, stage by stage: decode, face tracking, align, engine,
paste back, sink; throughput unpaced; and, paced at the source rate, the latency from frame
arrival to sink and the frames dropped.

The path is the one ``rt-dtgan live`` runs, the library's frame loop (pipeline.run_frames):
decoding and face tracking on one thread (TrackingStage), the engine and paste-back on the
main thread, the sink writing on its own thread (ThreadedSink); the latency ends when the
sink has written the frame. The stages are timed by the loop's frame reports, the capture
(decode) and the sink.

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

from rt_dtgan.checkpoint import resolve_checkpoint, save_checkpoint  # noqa: E402
from rt_dtgan.config import ModelConfig  # noqa: E402
from rt_dtgan.face import FaceTracker  # noqa: E402
from rt_dtgan.media import (  # noqa: E402
    Capture,
    CaptureEnded,
    CaptureState,
    CaptureStatus,
    LatestFrameCapture,
    Sink,
    ThreadedSink,
    open_sink,
    open_source,
)
from rt_dtgan.models import DynamicsTransferGAN  # noqa: E402
from rt_dtgan.pipeline import (  # noqa: E402
    FaceTransfer,
    FrameHooks,
    LocalDriver,
    load_target_spec,
    run_frames,
    synthetic_source_factory,
)
from rt_dtgan.runtime.backends import open_backend  # noqa: E402
from rt_dtgan.runtime.engine import StreamEngine  # noqa: E402
from rt_dtgan.runtime.export import export_onnx  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
STAGES = ("decode", "track", "align", "engine", "paste", "sink")
WAIT_S = 5.0  # a frame not tracked within this ends a run (a hung tracker), in seconds


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
    parser.add_argument(
        "--sink", default="mp4", choices=("mp4", "y4m"),
        help="mp4: H.264 file; y4m: raw Y4M file (no encoding, as a virtual camera's copy)",
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="write a PNG of the latency distributions here")
    return parser.parse_args()


def default_media(args: argparse.Namespace) -> tuple[str, str]:
    source = args.source or (str(REAL / "driving" / "lp_d3.mp4") if REAL.is_dir() else "synthetic:1")
    target = args.target or (str(REAL / "targets" / "tpsmm_source.png") if REAL.is_dir() else "synthetic:2")
    return source, target


def make_engine(args: argparse.Namespace, workdir: Path) -> tuple[StreamEngine, str]:
    checkpoint = str(resolve_checkpoint(args.checkpoint)) if args.checkpoint else None
    if checkpoint is None:
        checkpoint = str(save_checkpoint(workdir / "fresh.safetensors", DynamicsTransferGAN(ModelConfig.for_size(args.size))))
    engines = None
    if args.backend == "onnxruntime":
        engines = workdir / "onnx"
        from rt_dtgan.checkpoint import load_checkpoint

        export_onnx(load_checkpoint(checkpoint), engines, checkpoint)
    backend, _ = open_backend(args.backend, checkpoint, engines, args.threads)
    return StreamEngine(backend), backend.describe()


class LoopingCapture(Capture):
    """The frames of a source, opened again at its end (timestamps keep increasing), each
    read timed (decode), ``remaining`` at a time, then CaptureEnded (``allow`` gives more).
    It decodes on the thread that calls ``get`` (the tracking thread)."""

    def __init__(self, spec: str) -> None:
        self.spec, self.remaining = spec, 0
        self.source = self._open()
        self.offset_s, self.last_pts_s = 0.0, 0.0
        self.decode_s: list[float] = []

    def allow(self, frames: int) -> None:
        """Deliver ``frames`` more frames, with fresh decode timings."""
        self.remaining, self.decode_s = frames, []

    def _open(self):
        return open_source(self.spec, pace=False, synthetic_factory=synthetic_source_factory(None))

    @property
    def status(self) -> CaptureStatus:
        """Ended, without an error, once the frames allowed are delivered."""
        return CaptureStatus(CaptureState.ENDED if self.remaining == 0 else CaptureState.CONNECTED)

    def close(self) -> None:
        self.source.close()

    def get(self, timeout: float | None = None):
        if self.remaining == 0:
            raise CaptureEnded("done")
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
        self.decode_s.append(time.perf_counter() - began)
        self.remaining -= 1
        return frame


class TimedSink(Sink):
    """Passes frames to ``sink``, recording each write's time and, once written, the
    latency since the frame's capture."""

    def __init__(self, sink: Sink) -> None:
        super().__init__(sink.description, sink.width, sink.height, sink.fps)
        self.sink = sink
        self.write_s: list[float] = []
        self.latency_s: list[float] = []

    def _write(self, frame) -> None:
        began = time.perf_counter()
        self.sink.write(frame)
        self.write_s.append(time.perf_counter() - began)
        self.latency_s.append((time.monotonic_ns() - frame.capture_ns) / 1e9)

    def _release(self) -> None:
        self.sink.close()


class Reports(FrameHooks):
    """The loop's report of each frame; a frame that takes over WAIT_S to track ends the run."""

    def __init__(self) -> None:
        self.reports = []

    def written(self, frame, report) -> None:
        self.reports.append(report)

    def waiting(self) -> bool:
        return False


def run_staged(transfer: FaceTransfer, capture: Capture, sink: Sink, frames: int):
    """The library's frame loop over ``frames`` frames, then the sink closed -> (reports, seconds)."""
    collected, began = Reports(), time.perf_counter()
    with sink:
        run_frames(transfer, capture, sink, collected, frames=frames, wait_s=WAIT_S)
    return collected.reports, time.perf_counter() - began


def unpaced_run(transfer: FaceTransfer, capture: LoopingCapture, out: Path, size: tuple[int, int], frames: int):
    """-> (seconds per stage, frames per second over the whole run, frames with a face)."""
    capture.allow(frames)
    timed = TimedSink(open_sink(str(out), *size, capture.source.fps))
    reports, seconds = run_staged(transfer, capture, ThreadedSink(timed), frames)
    stages = {"decode": capture.decode_s}
    for name in ("track", "align", "engine", "paste"):
        stages[name] = [getattr(report, f"{name}_ms") / 1000 for report in reports]
    stages["sink"] = timed.write_s
    return stages, len(reports) / seconds, sum(report.found for report in reports)


def paced_run(transfer: FaceTransfer, spec: str, out: Path, size: tuple[int, int], frames: int):
    """-> (seconds from capture to written by the sink, per frame; frames dropped; source fps)."""
    with open_source(spec, pace=True, synthetic_factory=synthetic_source_factory(None)) as source:
        with LatestFrameCapture(source) as capture:
            timed = TimedSink(open_sink(str(out), *size, source.fps))
            run_staged(transfer, capture, ThreadedSink(timed), frames)
            dropped = capture.status.dropped
        return timed.latency_s, dropped, source.fps


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
        size = (width, height)
        transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(config))
        looping = LoopingCapture(source_spec)
        unpaced_run(transfer, looping, Path(workdir) / f"warmup.{args.sink}", size, 20)
        stages, fps, found = unpaced_run(transfer, looping, Path(workdir) / f"unpaced.{args.sink}", size, args.frames)
        looping.close()
        transfer.close()
        transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(config))
        paced, dropped, source_fps = paced_run(transfer, source_spec, Path(workdir) / f"paced.{args.sink}", size, args.paced_frames)
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
        "sink": args.sink,
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
