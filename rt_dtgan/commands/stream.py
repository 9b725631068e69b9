"""`rt-dtgan transfer` (a whole video, offline) and `rt-dtgan live` (camera to outputs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rt_dtgan.commands.common import (
    UsageError,
    add_model_arguments,
    bind_address,
    camera,
    capture_size,
    connect_address,
    engine_from_arguments,
    existing_file,
    integer,
    number,
    output,
    portrait,
    source,
    strength,
)
from rt_dtgan.config import PORTRAIT_SIZE, POSE_MODES, POSE_STRENGTH_LIMITS
from rt_dtgan.pipeline.hooks import FrameHooks

SOURCE_WAIT_S = 1.0  # live says it waits for the source after this long without a frame
DEMO_NEXT_STEP = "next: rt-dtgan live --camera 0 --target your-photo.jpg  (or --source your-video.mp4)"
SYNTHETIC_DEMO_FRAMES = 150
DEMO_DRIVER, DEMO_PORTRAIT = "swiz3n.mp4", "lwbsza.jpg"  # in rt_dtgan/assets/grid, with ATTRIBUTION.md
MIN_PORTRAIT_SIZE = 64
MAX_FACES = 10
MAX_FPS = 1000.0


def add_parsers(commands) -> None:
    transfer = commands.add_parser(
        "transfer",
        help="drive a target portrait with a whole source video, offline",
        description="Every source frame gives exactly one output frame, at the source frame rate.",
    )
    transfer.add_argument("--source", required=True, type=source, help="video file, image folder or glob, or synthetic:SEED")
    transfer.add_argument("--target", required=True, type=portrait, help="portrait image, or synthetic:SEED")
    transfer.add_argument(
        "--out", required=True, type=output, help="output video (.mp4, .mkv, .mov, .y4m) or - for Y4M on stdout"
    )
    transfer.add_argument(
        "--reference", type=existing_file, help="neutral image of the source face (default: its first tracked frame)"
    )
    transfer.add_argument("--frames", type=integer(1), help="stop after this many source frames")
    add_face_arguments(transfer)
    add_model_arguments(transfer)
    transfer.set_defaults(handler=run_transfer, next_step=None)

    demo = commands.add_parser(
        "demo",
        help="write a short video of a real face driving a portrait of another person, side by side (no camera or files needed)",
        description="transfer of a GRID corpus speaker (shipped, CC BY 4.0) onto a frame of another, the driver on the "
        "left of the result: the first thing to run after installing.",
    )
    demo.add_argument("--out", type=output, default="rt-dtgan-demo.mp4", help="output video (default: %(default)s)")
    demo.add_argument(
        "--frames", type=integer(1), help=f"stop after this many frames (default: the whole clip; --synthetic: {SYNTHETIC_DEMO_FRAMES})"
    )
    demo.add_argument("--synthetic", action="store_true", help="a synthetic face driving a synthetic portrait instead")
    add_face_arguments(demo)
    add_model_arguments(demo)
    demo.set_defaults(handler=run_demo, reference=None, next_step=DEMO_NEXT_STEP)

    live = commands.add_parser(
        "live",
        help="camera (or any source) drives a portrait in real time, into a window, OBS or a virtual camera",
        description="Hotkeys in the preview window: c recalibrates (the next frame is the neutral face), "
        "m mirrors, q quits. Ctrl-C closes every device and file cleanly.",
    )
    where = live.add_mutually_exclusive_group(required=True)
    where.add_argument("--camera", type=camera, help="camera index or device path")
    where.add_argument("--source", type=source, help="video file, image folder or glob, lavfi:GRAPH, or synthetic:SEED")
    live.add_argument("--target", required=True, type=portrait, help="portrait image, or synthetic:SEED")
    live.add_argument(
        "--output", action="append", default=[], type=output,
        help="window, virtualcam, FILE.mp4, - (Y4M on stdout), udp://HOST:PORT, zmq://tcp://HOST:PORT, null (discard); repeatable "
        "(default: window)",
    )
    live.add_argument("--reference", type=existing_file, help="neutral image of the source face (default: the first tracked frame)")
    live.add_argument("--no-pace", action="store_true", help="files: as fast as possible, no frame dropped")
    live.add_argument("--mirror", action="store_true", help="mirror the source (as a selfie view)")
    live.add_argument("--size", type=capture_size, help="camera capture size, WxH")
    live.add_argument("--fps", type=number(0, MAX_FPS, above=True), help="camera capture rate")
    live.add_argument("--frames", type=integer(1), help="stop after this many source frames")
    live.add_argument(
        "--control", type=bind_address, help='accept {"command": "recalibrate" | "mirror" | "quit"} as JSON on this ZeroMQ REP address'
    )
    live.add_argument("--remote", type=connect_address, help="run the engine on a worker (rt-dtgan serve) at this address")
    live.add_argument("--compress", action="store_true", help="--remote: JPEG frames for slow links")
    live.add_argument(
        "--client-key", type=existing_file, help="--remote beyond loopback: this client's secret key file (rt-dtgan keys)"
    )
    live.add_argument("--server-key", type=existing_file, help="--remote beyond loopback: the worker's public key file")
    add_face_arguments(live)
    add_model_arguments(live)
    live.set_defaults(handler=run_live)


def add_face_arguments(parser: argparse.ArgumentParser, portrait_size: int = PORTRAIT_SIZE) -> None:
    parser.add_argument(
        "--portrait-size", type=integer(MIN_PORTRAIT_SIZE, also=0), default=portrait_size, metavar="PIXELS",
        help=f"longest side in pixels of the portrait (and --reference): a larger one is downscaled once, at load, "
        f"and the output has its size (default {portrait_size}; 0 keeps the portrait's own size)",
    )
    parser.add_argument(
        "--auto-reference", action="store_true",
        help="after the first 2 s (and after each recalibration), take the most neutral face seen as the reference",
    )
    parser.add_argument(
        "--strength", type=strength, default=1.0,
        help="expression strength of a model that warps the portrait: 0 still, 1 as the driver moves (default), up to 3",
    )
    parser.add_argument(
        "--pose", choices=POSE_MODES, default="follow",
        help="follow: the portrait's whole head turns, nods, tilts and moves with the driver's (default); "
        "lock: it stays where it is, only the face's expression moves",
    )
    parser.add_argument(
        "--pose-strength", type=number(*POSE_STRENGTH_LIMITS), default=1.0, metavar="S",
        help="how far the head follows: 0 still, 1 as the driver moves (default), up to 2",
    )
    parser.add_argument(
        "--faces", type=integer(1, MAX_FACES), default=1,
        help="faces to track, the largest drives (default 1: the first face found; 2 costs about 2 ms a frame)",
    )


def _open_transfer(args: argparse.Namespace, source_spec: str, pace: bool, size=None, fps=None):
    """-> (source, FaceTransfer) for the parsed arguments, on a local or a remote engine."""
    from rt_dtgan.face import load_target
    from rt_dtgan.media import open_source, parse_size
    from rt_dtgan.pipeline import load_target_spec, synthetic_source_factory

    if args.auto_reference and args.reference:
        raise UsageError("--reference and --auto-reference exclude each other")
    max_side = args.portrait_size or None
    config, make_driver = _remote_engine(args, blocking=not pace) if getattr(args, "remote", None) else _local_engine(args)
    target = load_target_spec(args.target, config, max_side=max_side)
    print(_portrait_line(target, args.portrait_size), file=sys.stderr)
    reference = load_target(args.reference, config, max_side=max_side) if args.reference else None
    capture_size = parse_size(size) if size else None
    source = open_source(source_spec, capture_size, fps, pace, synthetic_factory=synthetic_source_factory(args.frames))
    return source, face_transfer(args, config, make_driver(target, reference), target, getattr(args, "mirror", False))


def face_transfer(args: argparse.Namespace, config, driver, target, mirror: bool, pose: str | None = None):
    """A FaceTransfer of ``driver`` onto ``target`` with the tracker, neutral picker, head
    follower and gaze follower the face arguments ask (``pose``, where given, instead of --pose;
    the look follows with the expression's strength)."""
    from rt_dtgan.face import FaceTracker, NeutralPicker, TrackerConfig
    from rt_dtgan.face.gaze import GazeFollower
    from rt_dtgan.face.head import HeadFollower
    from rt_dtgan.pipeline import FaceTransfer

    tracker = FaceTracker(config, TrackerConfig(max_faces=args.faces))
    picker = NeutralPicker() if args.auto_reference else None
    head = HeadFollower(pose or args.pose, args.pose_strength)
    gaze = GazeFollower(args.strength)
    return FaceTransfer(driver, target, tracker, mirror=mirror, neutral_picker=picker, head=head, gaze=gaze)


def _portrait_line(target, portrait_size: int) -> str:
    """'portrait: 8000x6000 -> 1280x960 (--portrait-size 1280)' when brought to the working size, else 'portrait: 640x480'."""
    height, width = target.image.shape[:2]
    if target.original_size == (width, height):
        return f"portrait: {width}x{height}"
    original_width, original_height = target.original_size
    return f"portrait: {original_width}x{original_height} -> {width}x{height} (--portrait-size {portrait_size})"


def _local_engine(args: argparse.Namespace):
    """-> (the model's PreprocessConfig, make_driver(target, reference)), both aligned faces."""
    from rt_dtgan.pipeline import LocalDriver

    engine, _ = engine_from_arguments(args)
    return engine.backend.config.preprocess, lambda target, reference: LocalDriver(engine, target, reference, args.strength)


def _remote_engine(args: argparse.Namespace, blocking: bool):
    """As _local_engine, for a worker at --remote: crops aligned as its model says, sent with
    their meshes where it reads meshes or warps."""
    from rt_dtgan.transport import RemoteDriver

    client, config = connect_remote(args)

    def make_driver(target, reference):
        return RemoteDriver(client, target, reference, blocking, args.strength)

    return config, make_driver


def connect_remote(args: argparse.Namespace, quiet: bool = False):
    """A StreamClient connected to the worker at --remote (with --compress and the keys, where
    the command has them) -> (client, the PreprocessConfig its model aligns faces with)."""
    from rt_dtgan.transport import ClientConfig, ClientKeys, StreamClient

    client_key, server_key = getattr(args, "client_key", None), getattr(args, "server_key", None)
    if bool(client_key) != bool(server_key):
        raise UsageError("--client-key and --server-key go together (both made by `rt-dtgan keys`)")
    keys = ClientKeys(Path(client_key), Path(server_key)) if client_key else None
    image_format = "jpeg" if getattr(args, "compress", False) else "rgb24"
    client = StreamClient(ClientConfig(address=args.remote, frame_format=image_format, result_format=image_format, keys=keys))
    size = client.connect()
    if not quiet:
        faces = "crops and meshes" if client.model.needs_mesh else "crops"
        print(f"engine: remote worker at {args.remote}, {size} px {faces}, {image_format} frames", file=sys.stderr)
    return client, client.model.preprocess(size)


def run_demo(args: argparse.Namespace) -> int:
    """transfer of the shipped GRID speaker onto the shipped portrait, side by side, or with --synthetic the synthetic pair."""
    from importlib import resources

    if args.synthetic:
        args.source, args.target, args.beside = "synthetic:9", "synthetic:8", False
        args.frames = args.frames or SYNTHETIC_DEMO_FRAMES
    else:
        shipped = resources.files("rt_dtgan") / "assets" / "grid"
        args.source, args.target, args.beside = str(shipped / DEMO_DRIVER), str(shipped / DEMO_PORTRAIT), True
    return run_transfer(args)


def run_transfer(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rt_dtgan.media import BlockingCapture
    from rt_dtgan.pipeline import run_frames

    source, transfer = _open_transfer(args, args.source, pace=False)
    with source, BlockingCapture(source) as capture, _transfer_sink(args, transfer.target.image.shape[:2], source) as sink:
        known = [count for count in (args.frames, source.frame_count) if count]
        bar = tqdm(total=min(known) if known else None, desc="transfer", unit="frame", file=sys.stderr)
        progress = _Progress(bar)
        try:
            total = run_frames(transfer, capture, sink, progress, frames=args.frames)
        finally:
            bar.close()
            transfer.close()
    share = 100 * progress.found / max(total, 1)
    print(f"{total} frames to {args.out} at {source.fps:g} fps; face found in {progress.found} ({share:.1f}%)", file=sys.stderr)
    if args.next_step:
        print(args.next_step, file=sys.stderr)
    return 0


def run_live(args: argparse.Namespace) -> int:
    from rt_dtgan.media import open_capture, open_sinks
    from rt_dtgan.pipeline import run_frames
    from rt_dtgan.transport import ControlChannel

    source_spec = args.camera if args.camera is not None else args.source
    source, transfer = _open_transfer(args, source_spec, pace=not args.no_pace, size=args.size, fps=args.fps)
    control = ControlChannel(args.control) if args.control else None
    height, width = transfer.target.image.shape[:2]
    outputs = args.output or ["window"]
    with source, open_capture(source) as capture, open_sinks(outputs, width, height, source.fps) as sinks:
        hooks = _LiveStatus(capture, transfer, sinks.window, control)
        try:
            run_frames(transfer, capture, sinks, hooks, frames=args.frames, wait_s=SOURCE_WAIT_S)
        except KeyboardInterrupt:
            pass
        finally:
            transfer.close()
            if control is not None:
                control.close()
            print(file=sys.stderr)
    return 0


def _transfer_sink(args: argparse.Namespace, portrait_shape: tuple[int, int], source):
    """The output of ``transfer``, the portrait's size; for the demo (``args.beside``) with a second
    reader of the source on the left, brought to the portrait's height."""
    from rt_dtgan.media import open_sinks, open_source
    from rt_dtgan.media.side_by_side import SideBySideSink

    height, width = portrait_shape
    if not getattr(args, "beside", False):
        return open_sinks([args.out], width, height, source.fps)
    source_width, source_height = source.size
    driver_width = 2 * round(source_width * height / source_height / 2)
    driver = open_source(args.source, (driver_width, height), pace=False)
    return SideBySideSink(open_sinks([args.out], driver_width + width, height, source.fps), driver)


class _Progress(FrameHooks):
    """A progress bar, and the count of frames with a face."""

    def __init__(self, bar) -> None:
        self.bar, self.found = bar, 0

    def written(self, frame, report) -> None:
        self.found += report.found
        self.bar.update()


class _LiveStatus(FrameHooks):
    """The status line on stderr; requests from the preview window's hotkeys and the control
    channel, each said on its own line as it is applied."""

    def __init__(self, capture, transfer, window, control) -> None:
        from rt_dtgan.media import LatencyMeter, RateMeter

        self.capture, self.transfer, self.window, self.control = capture, transfer, window, control
        self.latency, self.rate = LatencyMeter(), RateMeter()

    def written(self, frame, report) -> None:
        self.latency.add(frame)
        self.rate.tick()

    def requests(self) -> list[str]:
        return (self.window.poll_keys() if self.window else []) + (self.control.poll() if self.control else [])

    def applied(self, request, transfer) -> None:
        if request == "recalibrate":
            _status("recalibrated: the next frame is the neutral face")
        elif request == "mirror":
            _status(f"mirror {'on' if transfer.mirror else 'off'}")
        else:
            _status("quit")  # live ends its line as it closes
            return
        print(file=sys.stderr)

    def status(self, report) -> None:
        _status(_status_line(self.rate.rate, self.latency.summary(), report, self.capture.status, self.transfer.driver))

    def waiting(self, stalled) -> bool:
        _status(_waiting_line(stalled, self.capture.status, self.transfer.driver))
        return True


def _status_line(fps: float, latency, report, capture_status, driver) -> str:
    face = "face" if report.found else f"no face ({report.reason})"
    remote = f"  remote {driver.link}" if driver.link is not None else ""
    return (
        f"{fps:5.1f} fps  latency p50 {latency.p50_ms:5.1f} ms p95 {latency.p95_ms:5.1f} ms  {face}  "
        f"track {report.track_ms:4.1f} ms engine {report.engine_ms:4.1f} ms  dropped {capture_status.dropped}{remote}"
    )


def _waiting_line(stalled: str, capture_status, driver) -> str:
    """'waiting for the source: connected', 'waiting for the engine: remote outage', ..."""
    if stalled == "source":
        return f"waiting for the source: {capture_status.describe()}"
    if stalled == "engine" and driver.link is not None:
        return f"waiting for the engine: remote {driver.link}"
    return f"waiting for the {stalled}"


def _status(text: str) -> None:
    print(f"\r{text:<110}", end="", file=sys.stderr, flush=True)
