"""Latency of the whole live path, stage by stage: decode, face tracking, align, engine,
paste back, sink; throughput unpaced; and, paced at the source rate, the latency from frame
arrival to sink and the frames dropped.

The path is the one ``rt-dtgan live`` runs, the library's frame loop (pipeline.run_frames):
decoding and face tracking on one thread (TrackingStage), the engine on another
(SteppingStage), paste-back on the main thread, the sink writing on its own thread
(ThreadedSink); the latency ends when the sink has written the frame. The stages are timed by the loop's frame reports, the capture
(decode) and the sink.

    python bench/latency.py --backend onnxruntime --frames 600 --sink mp4|y4m|null [--source VIDEO] \
        --json bench/results/latency-cpu-128.json [--plot bench/results/latency-cpu-128.png]

The model is the shipped default unless --checkpoint names another, or --fresh times fresh
weights of a kind at --size (speed does not depend on the values, except that the geometry
model's refiner runs only while the mouth is open: a fresh geometry model takes the shipped
A and F, so that it opens when the driver's does). The source defaults to the real clip
lp_d3.mp4 (512x512, 30 fps) in --real, else to a synthetic face (said so on the terminal); a
short source is played again until --frames are done. The portrait is brought to the live
path's working size (config.PORTRAIT_SIZE). CPU time is counted per thread over the unpaced
run: the tracking thread (decode, track, align), the engine's, the main thread (paste back),
the sink's thread, and the threads of the native libraries.
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
from common import environment, percentiles, print_table, thread_cpu_s, write_json  # noqa: E402

from rt_dtgan.config import PORTRAIT_SIZE, POSE_MODES, ModelConfig  # noqa: E402
from rt_dtgan.face import FaceTracker  # noqa: E402
from rt_dtgan.face.gaze import GazeFollower  # noqa: E402
from rt_dtgan.face.head import HeadFollower  # noqa: E402
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
from rt_dtgan.models.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint  # noqa: E402
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
SINKS = {"mp4": "H.264 file", "y4m": "raw Y4M file (no encoding, as a virtual camera's copy)", "null": "frames discarded"}
STAGES = ("decode", "track", "align", "engine", "paste", "sink")
# Frames the tracking thread can be ahead of the written one (two queues and three hands).
TRACKED_AHEAD = 4
WAIT_S = 5.0  # a frame not tracked within this ends a run (a hung tracker), in seconds


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, choices=(64, 128, 256), help="crop size of --fresh weights")
    parser.add_argument("--backend", default="onnxruntime", choices=("torch", "onnxruntime"))
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--paced-frames", type=int, default=300, help="frames of the paced run")
    parser.add_argument("--source", help="video file or synthetic:SEED (default: lp_d3.mp4, else synthetic:1)")
    parser.add_argument("--target", help="portrait or synthetic:SEED (default: tpsmm_source.png, else synthetic:2)")
    parser.add_argument("--checkpoint", help="a checkpoint or a shipped name (default: the shipped default model)")
    parser.add_argument(
        "--fresh", choices=("geometry", "paper"), help="time fresh weights of this kind at --size instead (geometry: the shipped A and F)"
    )
    parser.add_argument("--real", default=str(REAL), help="the real clips and portraits (default: ../shared/data/real)")
    parser.add_argument("--threads", type=int, default=1, help="engine threads (the tracker uses the rest)")
    parser.add_argument("--pose", choices=POSE_MODES, default="follow", help="the head: follow the driver (as live) or lock")
    parser.add_argument(
        "--sink", default="mp4", choices=tuple(SINKS), help="; ".join(f"{name}: {what}" for name, what in SINKS.items())
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="write a PNG of the latency distributions here")
    return parser.parse_args()


def default_media(args: argparse.Namespace) -> tuple[str, str]:
    """-> (source, target) specs: those given, else the real clip and portrait in --real,
    else synthetic faces."""
    real = Path(args.real)
    if not real.is_dir() and not (args.source and args.target):
        print(f"no real clips in {real}: a synthetic face drives a synthetic portrait", file=sys.stderr)
    source = args.source or (str(real / "driving" / "lp_d3.mp4") if real.is_dir() else "synthetic:1")
    target = args.target or (str(real / "targets" / "tpsmm_source.png") if real.is_dir() else "synthetic:2")
    return source, target


def make_checkpoint(args: argparse.Namespace, workdir: Path) -> str:
    """The checkpoint to time: --checkpoint, fresh weights of --fresh, or the shipped default.
    A fresh geometry model takes A and F from the shipped one (they do not depend on the
    size), so that its keypoints move, and its refiner runs, as a trained model's do."""
    if args.fresh is None:
        return str(resolve_checkpoint(args.checkpoint))
    if args.fresh == "paper":
        return str(save_checkpoint(workdir / "fresh.safetensors", DynamicsTransferGAN(ModelConfig.for_size(args.size))))
    model, shipped = DynamicsTransferGAN(ModelConfig.geometry(args.size)), load_checkpoint(resolve_checkpoint("geometry"))
    for part in ("encoder", "embedder"):
        getattr(model, part).load_state_dict(getattr(shipped, part).state_dict())
    return str(save_checkpoint(workdir / "fresh.safetensors", model))


def make_engine(args: argparse.Namespace, workdir: Path) -> tuple[StreamEngine, str]:
    checkpoint = make_checkpoint(args, workdir)
    engines = None
    if args.backend == "onnxruntime":
        engines = workdir / "onnx"
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
    """The loop's report of each frame; a frame that takes over WAIT_S to track ends the run.
    The CPU time of every thread is sampled after the first frame and after the ``last``
    (while the loop's threads live): ``cpu`` holds what each spent between the two."""

    def __init__(self, last: int) -> None:
        self.reports, self.last = [], last
        self.cpu: dict[str, float] = {}
        self._first: dict[str, float] = {}

    def written(self, frame, report) -> None:
        self.reports.append(report)
        if len(self.reports) == 1:
            self._first = thread_cpu_s()
        elif len(self.reports) == self.last:
            now = thread_cpu_s()
            self.cpu = {name: seconds - self._first.get(name, 0.0) for name, seconds in now.items()}

    def waiting(self, stalled) -> bool:
        return False


def run_staged(transfer: FaceTransfer, capture: Capture, sink: Sink, frames: int) -> tuple[Reports, float]:
    """The library's frame loop over ``frames`` frames, then the sink closed -> (the hook, seconds)."""
    collected, began = Reports(frames), time.perf_counter()
    with sink:
        run_frames(transfer, capture, sink, collected, frames=frames, wait_s=WAIT_S)
    return collected, time.perf_counter() - began


def unpaced_run(transfer: FaceTransfer, capture: LoopingCapture, out: str, size: tuple[int, int], frames: int):
    """-> (seconds per stage, frames per second over the whole run, frames with a face, CPU
    ms per frame by thread)."""
    capture.allow(frames + TRACKED_AHEAD)  # the tracking thread lives until the last frame is written
    timed = TimedSink(open_sink(out, *size, capture.source.fps))
    collected, seconds = run_staged(transfer, capture, ThreadedSink(timed), frames)
    reports = collected.reports
    stages = {"decode": capture.decode_s[:frames]}
    for name in ("track", "align", "engine", "paste"):
        stages[name] = [getattr(report, f"{name}_ms") / 1000 for report in reports]
    stages["sink"] = timed.write_s
    cpu_ms = {thread_group(name): 0.0 for name in collected.cpu}
    for name, cpu_s in collected.cpu.items():
        cpu_ms[thread_group(name)] += 1000 * cpu_s / max(len(reports) - 1, 1)
    return stages, len(reports) / seconds, sum(report.found for report in reports), cpu_ms


def thread_group(name: str) -> str:
    """A thread's name -> the part of the path it serves: tracking (decode, track, align),
    engine, main (paste back), sink, or native (the libraries' own threads)."""
    for prefix, group in (("MainThread", "main"), ("face tracking", "tracking"), ("engine", "engine"), ("sink", "sink")):
        if name.startswith(prefix):
            return group
    return "native" if name == "native" else f"other ({name})"


def paced_run(transfer: FaceTransfer, spec: str, out: str, size: tuple[int, int], frames: int):
    """-> (seconds from capture to written by the sink, per frame; frames dropped; source fps)."""
    with open_source(spec, pace=True, synthetic_factory=synthetic_source_factory(None)) as source:
        with LatestFrameCapture(source) as capture:
            timed = TimedSink(open_sink(out, *size, source.fps))
            run_staged(transfer, capture, ThreadedSink(timed), frames)
            dropped = capture.status.dropped
        return timed.latency_s, dropped, source.fps


def output(sink: str, workdir: str, run: str) -> str:
    """The sink spec of one run: a file in ``workdir``, or null."""
    return sink if sink == "null" else str(Path(workdir) / f"{run}.{sink}")


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
        target = load_target_spec(target_spec, config, max_side=PORTRAIT_SIZE)
        height, width = target.image.shape[:2]
        size = (width, height)
        transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(config), head=HeadFollower(args.pose), gaze=GazeFollower())
        looping = LoopingCapture(source_spec)
        unpaced_run(transfer, looping, output(args.sink, workdir, "warmup"), size, 20)
        stages, fps, found, cpu_ms = unpaced_run(transfer, looping, output(args.sink, workdir, "unpaced"), size, args.frames)
        looping.close()
        transfer.close()
        transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(config), head=HeadFollower(args.pose), gaze=GazeFollower())
        paced, dropped, source_fps = paced_run(transfer, source_spec, output(args.sink, workdir, "paced"), size, args.paced_frames)
        transfer.close()
    rows = [{"stage": name, **percentiles(times)} for name, times in stages.items()]
    print_table(rows, ["stage", "p50_ms", "p95_ms", "p99_ms", "mean_ms"])
    paced_figures = percentiles(paced)
    print(f"unpaced: {fps:.1f} frames/s, face in {found}/{args.frames}")
    print("CPU ms per frame: " + ", ".join(f"{name} {ms:.1f}" for name, ms in cpu_ms.items()) + f"; all {sum(cpu_ms.values()):.1f}")
    print(f"paced at {source_fps:g} fps: arrival-to-sink p50 {paced_figures['p50_ms']:.1f} ms, "
          f"p99 {paced_figures['p99_ms']:.1f} ms, dropped {dropped} of {len(paced) + dropped}")
    payload = {
        "benchmark": "live path latency",
        "environment": environment(),
        "backend": args.backend,
        "engine": described,
        "size": config.size,
        "threads": args.threads,
        "sink": args.sink,
        "weights": f"fresh {args.fresh}" if args.fresh else args.checkpoint or "shipped default",
        "portrait": f"{width}x{height}",
        "source": Path(source_spec).name,
        "target": Path(target_spec).name,
        "frames": args.frames,
        "stages": {row.pop("stage"): row for row in rows},
        "unpaced_frames_per_s": fps,
        "cpu_ms_per_frame": {**cpu_ms, "all": sum(cpu_ms.values())},
        "face_found": found,
        "paced": {"source_fps": source_fps, "frames": len(paced), "dropped": dropped, **paced_figures},
    }
    write_json(args.json, payload)
    if args.plot:
        plot(args.plot, stages, paced, f"live path, {payload['size']} px, {args.backend}, {payload['environment']['device']}")


if __name__ == "__main__":
    main()
