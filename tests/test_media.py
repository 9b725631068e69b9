"""Media layer: sources, capture threads, pacing and every output, read back with PyAV.

No camera and no display are needed: clips and images are generated here, lavfi stands in
for a camera, and network outputs go over loopback. Real clips are checked where
../shared/data/real exists.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import types
import weakref
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import zmq
from conftest import HANG_S

from rt_dtgan.media import (
    SINK_KINDS,
    SOURCE_KINDS,
    AVSource,
    Backoff,
    BlockingCapture,
    CaptureEnded,
    CaptureState,
    Frame,
    GeneratedSource,
    LatencyMeter,
    LatestFrameCapture,
    MultiSink,
    NullSink,
    Pacer,
    RateMeter,
    Sink,
    SinkError,
    SinkKind,
    Source,
    SourceError,
    ThreadedSink,
    WindowAction,
    Y4MSink,
    encoded,
    latency_ms,
    open_capture,
    open_sink,
    open_sinks,
    open_source,
    parse_size,
    sink_kinds,
)
from rt_dtgan.media.av_source import CAMERA_SOURCE, LAVFI_SOURCE, VIDEO_FILE_SOURCE
from rt_dtgan.media.encoded import UDP_OUTPUT, VIDEO_FILE_OUTPUT
from rt_dtgan.media.generated import SYNTHETIC_SOURCE
from rt_dtgan.media.handoff import End, HandoffThread
from rt_dtgan.media.image_sequence import IMAGE_FOLDER_SOURCE, IMAGE_GLOB_SOURCE
from rt_dtgan.media.null import NULL_OUTPUT
from rt_dtgan.media.virtualcam import VIRTUAL_CAMERA_OUTPUT, backend_advice
from rt_dtgan.media.window import KEY_ACTIONS, WINDOW_OUTPUT, check_display, render_preview
from rt_dtgan.media.y4m import Y4M_FILE_OUTPUT, Y4M_PIPE_OUTPUT
from rt_dtgan.media.zmq_pub import ZMQ_OUTPUT
from rt_dtgan.optional import MissingExtraError

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
WIDTH, HEIGHT, FPS, FRAME_COUNT = 64, 48, 25, 30
SQUARE = 8


def moving_square(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a dark gradient with a white square moving right one pixel per frame."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 2] = np.linspace(20, 80, width, dtype=np.uint8)[None, :]
    left = index % (width - SQUARE)
    image[height // 2 - SQUARE // 2 : height // 2 + SQUARE // 2, left : left + SQUARE] = 255
    return image


def square_left_edge(image: np.ndarray) -> int:
    """Column where the bright square starts, found on the middle row."""
    row = image[image.shape[0] // 2, :, 0].astype(int)
    return int(np.argmax(row > 160))


def frame_of(index: int, width: int = WIDTH, height: int = HEIGHT) -> Frame:
    return Frame(moving_square(index, width, height), index, time.monotonic_ns(), index / FPS)


def write_clip(path: Path, frame_count: int = FRAME_COUNT, fps: int = FPS) -> Path:
    """A test clip written with PyAV directly (independent of the sinks under test)."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(frame_count):
            frame = av.VideoFrame.from_ndarray(moving_square(index), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode_all(
    path_or_file: str | io.BytesIO, container_format: str | None = None
) -> tuple[list[np.ndarray], Fraction]:
    """Every frame of a file as RGB arrays, and the stream's average rate."""
    with av.open(path_or_file, format=container_format) as container:
        stream = container.streams.video[0]
        images = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return images, stream.average_rate


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "square.mp4")


def needs_lavfi() -> None:
    if "lavfi" not in av.formats_available:
        pytest.skip("PyAV's FFmpeg has no lavfi input")


# ----------------------------------------------------------------------------- frames


def test_frame_rejects_images_that_are_not_uint8_rgb() -> None:
    with pytest.raises(ValueError, match="uint8"):
        Frame(np.zeros((4, 4, 3), np.float32), 0, 0, 0.0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        Frame(np.zeros((4, 4), np.uint8), 0, 0, 0.0)
    frame = Frame(np.zeros((4, 6, 3), np.uint8), 3, 7, 0.1)
    assert frame.size == (6, 4)
    assert frame.with_image(np.ones((2, 2, 3), np.uint8)).capture_ns == 7


def test_latency_is_sink_time_minus_capture_time() -> None:
    frame = Frame(np.zeros((2, 2, 3), np.uint8), 0, capture_ns=1_000_000_000, pts_s=0.0)
    assert latency_ms(frame, now_ns=1_012_500_000) == pytest.approx(12.5)
    meter = LatencyMeter(window=3)
    for now_ms in (1010, 1020, 1030, 1040):
        meter.add(frame, now_ns=now_ms * 1_000_000)
    summary = meter.summary()
    assert summary.count == 3
    assert summary.p50_ms == pytest.approx(30.0)


# ----------------------------------------------------------------------------- sources


def test_file_source_yields_every_frame_with_size_rate_and_timestamps(clip: Path) -> None:
    with open_source(str(clip), pace=False) as source:
        assert isinstance(source, AVSource)
        assert (source.size, source.fps, source.live, source.paced) == ((WIDTH, HEIGHT), 25.0, False, False)
        frames = list(source)
    assert [frame.index for frame in frames] == list(range(FRAME_COUNT))
    assert [frame.pts_s for frame in frames] == pytest.approx([i / FPS for i in range(FRAME_COUNT)])
    assert all(frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8 for frame in frames)
    assert [square_left_edge(frame.image) for frame in frames] == [i % (WIDTH - SQUARE) for i in range(FRAME_COUNT)]
    capture_times = [frame.capture_ns for frame in frames]
    assert capture_times == sorted(capture_times)


def test_paced_file_takes_its_duration_and_unpaced_is_much_faster(clip: Path) -> None:
    span_s = (FRAME_COUNT - 1) / FPS
    started = time.perf_counter()
    with open_source(str(clip), pace=True) as source:
        assert source.paced
        assert sum(1 for _ in source) == FRAME_COUNT
    paced_s = time.perf_counter() - started
    started = time.perf_counter()
    with open_source(str(clip), pace=False) as source:
        assert sum(1 for _ in source) == FRAME_COUNT
    unpaced_s = time.perf_counter() - started
    assert paced_s >= 0.8 * span_s
    assert unpaced_s < paced_s / 2


def test_file_source_resizes_and_retimes(clip: Path) -> None:
    with open_source(str(clip), size=(32, 24), fps=50, pace=False) as source:
        assert (source.size, source.fps) == ((32, 24), 50.0)
        frames = list(source)
    assert len(frames) == FRAME_COUNT
    assert frames[0].image.shape == (24, 32, 3)
    assert frames[10].pts_s == pytest.approx(10 / 50)


def write_ppm(path: Path, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    path.write_bytes(f"P6\n{width} {height}\n255\n".encode() + image.tobytes())


def test_image_sequence_from_folder_and_glob_in_natural_order(tmp_path: Path) -> None:
    for index in (1, 2, 10, 3):
        write_ppm(tmp_path / f"frame_{index}.ppm", np.full((6, 8, 3), index * 20, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(str(tmp_path), pace=False) as source:
        assert (source.size, source.fps, len(source)) == ((8, 6), 25.0, 4)
        frames = list(source)
    assert [int(frame.image[0, 0, 0]) for frame in frames] == [20, 40, 60, 200]
    assert [frame.pts_s for frame in frames] == pytest.approx([0.0, 0.04, 0.08, 0.12])
    with open_source(str(tmp_path / "frame_1*.ppm"), fps=10, size=(4, 3), pace=False) as source:
        frames = list(source)
    assert [int(frame.image[0, 0, 0]) for frame in frames] == [20, 200]
    assert frames[1].pts_s == pytest.approx(0.1)
    assert frames[1].image.shape == (3, 4, 3)


def test_lavfi_graph_goes_through_the_camera_path() -> None:
    needs_lavfi()
    with open_source("lavfi:testsrc=size=320x240:rate=30", pace=False) as source:
        assert isinstance(source, AVSource)
        assert (source.live, source.size, source.fps) == (True, (320, 240), 30.0)
        frames = [next(source) for _ in range(5)]
    assert all(frame.image.shape == (240, 320, 3) for frame in frames)
    assert [frame.index for frame in frames] == list(range(5))
    assert frames[0].image.std() > 10, "testsrc draws a colourful pattern, not a flat picture"
    started = time.perf_counter()
    with open_source("lavfi:testsrc=size=320x240:rate=30", size=(160, 120), pace=True) as source:
        frames = [next(source) for _ in range(10)]
    assert time.perf_counter() - started >= 0.8 * 9 / 30
    assert frames[-1].image.shape == (120, 160, 3)


def test_source_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder: .*missing.mp4"):
        open_source(str(tmp_path / "missing.mp4"))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(SourceError, match="cannot open video file .*garbage.mp4"):
        open_source(str(garbage))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="empty source spec"):
        open_source("  ")
    with pytest.raises(SourceError, match="synthetic_factory"):
        open_source("synthetic:3")
    with pytest.raises(SourceError, match="size must be"):
        open_source(str(garbage), size=(0, 10))
    with pytest.raises(SourceError, match="WIDTHxHEIGHT"):
        parse_size("640by480")
    assert parse_size("640x480") == (640, 480)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="device paths are Linux (v4l2) only")
def test_unknown_camera_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="no camera at /dev/video99"):
        open_source("99")
    with pytest.raises(SourceError, match="no camera at /dev/video98"):
        open_source("/dev/video98")


def test_bad_lavfi_graph_is_a_source_error() -> None:
    needs_lavfi()
    with pytest.raises(SourceError, match="cannot open lavfi graph"):
        open_source("lavfi:nosuchfilter=1")


def test_synthetic_spec_is_handed_to_the_factory() -> None:
    calls = []

    def factory(argument: str, options: object) -> Source:
        calls.append((argument, options))
        return GeneratedSource(moving_square, fps=options.fps or 30, frame_count=3, pace=options.pace)

    with open_source("synthetic:42", fps=12, pace=False, synthetic_factory=factory) as source:
        frames = list(source)
    assert calls[0][0] == "42" and calls[0][1].fps == 12
    assert len(frames) == 3 and frames[2].pts_s == pytest.approx(2 / 12)


def first_claimant(kinds: tuple, spec: str):
    """The kind that open_source or open_sink would open ``spec`` with, or None."""
    return next((kind for kind in kinds if kind.claims(spec)), None)


def test_each_source_spec_is_claimed_by_its_kind(clip: Path, tmp_path: Path) -> None:
    expected = {
        "0": CAMERA_SOURCE,
        "/dev/video0": CAMERA_SOURCE if sys.platform.startswith("linux") else None,
        "lavfi:[in]testsrc": LAVFI_SOURCE,
        "synthetic:3": SYNTHETIC_SOURCE,
        str(tmp_path / "*.png"): IMAGE_GLOB_SOURCE,
        str(tmp_path): IMAGE_FOLDER_SOURCE,
        str(clip): VIDEO_FILE_SOURCE,
        str(tmp_path / "missing.mp4"): None,
    }
    assert {spec: first_claimant(SOURCE_KINDS, spec) for spec in expected} == expected
    with pytest.raises(SourceError) as raised:
        open_source(str(tmp_path / "missing.mp4"))
    assert all(kind.help in str(raised.value) for kind in SOURCE_KINDS), "the error lists every kind of source"


def test_sources_close_idempotently_and_stop_iterating(clip: Path) -> None:
    source = open_source(str(clip), pace=False)
    next(source)
    source.close()
    source.close()
    assert source.closed
    assert list(source) == []


# ----------------------------------------------------------------------------- pacing


class FakeClock:
    """A monotonic clock that only moves when slept on or advanced."""

    def __init__(self) -> None:
        self.now_ns = 0
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_ns += round(seconds * 1e9)

    def advance(self, seconds: float) -> None:
        self.now_ns += round(seconds * 1e9)


def test_pacer_sleeps_until_each_timestamp() -> None:
    clock = FakeClock()
    pacer = Pacer(25, clock_ns=clock, sleep=clock.sleep)
    assert pacer.wait(0.0) == 0.0
    clock.advance(0.01)
    assert pacer.wait(0.04) == 0.0
    assert clock.sleeps == [pytest.approx(0.03)]
    assert pacer.stats.late == 0


def test_pacer_resets_its_schedule_instead_of_bursting() -> None:
    clock = FakeClock()
    pacer = Pacer(25, max_lag_frames=2, clock_ns=clock, sleep=clock.sleep)
    pacer.wait(0.0)
    clock.advance(0.5)
    assert pacer.wait(0.04) == pytest.approx(0.46)
    pacer.wait(0.08)
    assert clock.sleeps == [pytest.approx(0.04)], "the next frame keeps the frame period after the reset"
    assert (pacer.stats.late, pacer.stats.resets, pacer.stats.frames) == (1, 1, 3)


def test_pacer_counts_a_slightly_late_frame_and_keeps_its_schedule() -> None:
    clock = FakeClock()
    pacer = Pacer(25, clock_ns=clock, sleep=clock.sleep)
    pacer.wait()
    clock.advance(0.07)
    assert pacer.wait() == pytest.approx(0.03)
    pacer.wait()
    assert clock.sleeps == [pytest.approx(0.01)], "frame 2 is still due at 0.08 s"
    assert (pacer.stats.late, pacer.stats.resets) == (1, 0)


def test_rate_meter_measures_events_per_second() -> None:
    clock = FakeClock()
    meter = RateMeter(window_s=1.0, clock_ns=clock)
    for _ in range(20):
        meter.tick()
        clock.advance(0.04)
    assert meter.rate == pytest.approx(25.0)
    clock.advance(2.0)
    assert meter.rate == 0.0


# ----------------------------------------------------------------------------- capture


class FlakyCamera(Source):
    """A live fake camera: 3 frames, then it is unplugged; reopening fails ``failed_reopens``
    times, then frames flow again without end (one every ``period_s``)."""

    def __init__(self, failed_reopens: int, period_s: float = 0.002) -> None:
        super().__init__("flaky camera", pace_fps=None)
        self.failed_reopens = failed_reopens
        self.period_s = period_s
        self.reopen_times: list[float] = []
        self.frames_before_unplug = 3
        self.released = False

    fps = 30.0
    size = (8, 6)
    live = True

    def reopen(self) -> None:
        self.reopen_times.append(time.monotonic())
        if len(self.reopen_times) <= self.failed_reopens:
            raise SourceError("no camera at /dev/video0")
        self.frames_before_unplug = -1

    def _read(self) -> tuple[np.ndarray, float]:
        if self.frames_before_unplug == 0:
            raise SourceError("camera read failed: No such device")
        self.frames_before_unplug -= 1
        time.sleep(self.period_s)
        return np.full((6, 8, 3), self._next_index, np.uint8), self._next_index / self.fps

    def _release(self) -> None:
        self.released = True


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial_s=0.5, max_s=5.0)
    assert [backoff.delay_s(attempt) for attempt in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    with pytest.raises(ValueError):
        Backoff(initial_s=2.0, max_s=1.0)


def test_latest_frame_capture_returns_only_the_newest_and_counts_drops() -> None:
    source = GeneratedSource(moving_square, fps=200, frame_count=60, pace=True)
    taken = []
    with LatestFrameCapture(source) as capture:
        for frame in capture:
            taken.append(frame.index)
            time.sleep(0.02)
        status = capture.status
    assert source.closed
    assert taken == sorted(set(taken)), "frames come newest-first, never repeated or reordered"
    assert taken[-1] == 59, "the last frame of the source is the one left in the slot"
    assert status.captured == 60
    assert status.dropped > 0
    assert len(taken) + status.dropped == status.captured
    assert (status.state, status.error) == (CaptureState.ENDED, None)


def test_capture_reconnects_a_lost_camera_with_backoff_and_resumes() -> None:
    camera = FlakyCamera(failed_reopens=2)
    statuses = []
    backoff = Backoff(initial_s=0.05, max_s=0.1)
    with LatestFrameCapture(camera, backoff=backoff, on_status=statuses.append) as capture:
        indexes = []
        deadline = time.monotonic() + HANG_S
        while (not indexes or indexes[-1] < 10) and time.monotonic() < deadline:
            frame = capture.get(timeout=0.5)
            if frame is not None:
                indexes.append(frame.index)
        assert capture.status.state is CaptureState.CONNECTED
    assert indexes[-1] >= 10, "frames flow again after the camera came back"
    assert [(s.state, s.attempt) for s in statuses[:4]] == [
        (CaptureState.RECONNECTING, 1),
        (CaptureState.RECONNECTING, 2),
        (CaptureState.RECONNECTING, 3),
        (CaptureState.CONNECTED, 0),
    ]
    assert "No such device" in statuses[0].error and "no camera" in statuses[1].error
    assert statuses[1].describe().startswith("reconnecting (attempt 2)")
    gaps = np.diff(camera.reopen_times)
    assert gaps[0] >= 0.9 * 0.1 and gaps[1] >= 0.9 * 0.1, "the second and third attempts wait the capped delay"
    assert statuses[-1].state is CaptureState.ENDED
    assert camera.released


def test_capture_gives_up_after_max_attempts() -> None:
    camera = FlakyCamera(failed_reopens=100)
    capture = LatestFrameCapture(camera, backoff=Backoff(initial_s=0.01, max_s=0.01, max_attempts=2))
    with pytest.raises(CaptureEnded, match="gave up after 2 attempts"):
        for _ in capture:
            pass
    assert len(camera.reopen_times) == 2
    capture.close()
    capture.close()


def test_lavfi_stream_end_is_a_disconnect_that_capture_recovers_from() -> None:
    needs_lavfi()
    source = open_source("lavfi:testsrc=size=64x48:rate=50:duration=0.1", pace=True)
    statuses = []
    with LatestFrameCapture(source, backoff=Backoff(initial_s=0.05, max_s=0.05), on_status=statuses.append) as capture:
        pts = []
        deadline = time.monotonic() + HANG_S
        while len(pts) < 8 and time.monotonic() < deadline:
            frame = capture.get(timeout=0.5)
            if frame is not None:
                pts.append(frame.pts_s)
    assert (CaptureState.RECONNECTING, 1) in [(s.state, s.attempt) for s in statuses]
    assert CaptureState.CONNECTED in [s.state for s in statuses]
    assert len(pts) == 8, "a 5-frame graph gave more frames: it was reopened"
    assert pts == sorted(pts), "presentation times stay monotonic across the reconnection"


def test_blocking_capture_is_lossless_in_order_and_backpressured() -> None:
    source = GeneratedSource(moving_square, fps=25, frame_count=40, pace=False)
    with BlockingCapture(source, depth=2) as capture:
        first = capture.get(timeout=HANG_S)
        time.sleep(0.1)
        assert capture.status.captured <= 3, "the reader waits for the consumer once the queue is full"
        indexes = [first.index] + [frame.index for frame in capture]
        status = capture.status
    assert indexes == list(range(40))
    assert (status.captured, status.dropped, status.state) == (40, 0, CaptureState.ENDED)


def test_blocking_capture_hands_source_errors_to_the_consumer() -> None:
    def render(index: int) -> np.ndarray:
        if index == 5:
            raise SourceError("decoder failed at frame 5")
        return moving_square(index)

    with BlockingCapture(GeneratedSource(render, fps=25, pace=False)) as capture:
        received = []
        with pytest.raises(CaptureEnded, match="decoder failed at frame 5") as raised:
            for frame in capture:
                received.append(frame.index)
    assert received == [0, 1, 2, 3, 4]
    assert isinstance(raised.value.__cause__, SourceError)


def test_open_capture_picks_lossless_only_for_unpaced_files(clip: Path) -> None:
    with open_capture(open_source(str(clip), pace=False)) as capture:
        assert isinstance(capture, BlockingCapture)
        assert sum(1 for _ in capture) == FRAME_COUNT
    with open_capture(open_source(str(clip), pace=True)) as capture:
        assert isinstance(capture, LatestFrameCapture)


# ----------------------------------------------------------------------------- encoded outputs


@pytest.mark.parametrize("extension", [".mp4", ".mkv", ".mov"])
def test_video_file_has_exactly_one_frame_per_write_at_the_rate(tmp_path: Path, extension: str) -> None:
    path = tmp_path / f"out{extension}"
    with open_sink(str(path), WIDTH, HEIGHT, FPS) as sink:
        for index in range(FRAME_COUNT):
            sink.write(frame_of(index))
    images, rate = decode_all(str(path))
    assert len(images) == FRAME_COUNT
    assert images[0].shape == (HEIGHT, WIDTH, 3)
    assert rate == FPS
    assert [square_left_edge(image) for image in images] == [i % (WIDTH - SQUARE) for i in range(FRAME_COUNT)]


def test_video_file_falls_back_to_mpeg4_without_libx264(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoded, "h264_codec_name", lambda: "mpeg4")
    path = tmp_path / "fallback.mp4"
    with open_sink(str(path), WIDTH, HEIGHT, FPS) as sink:
        assert sink.codec_name == "mpeg4"
        for index in range(FRAME_COUNT):
            sink.write(frame_of(index))
    images, rate = decode_all(str(path))
    assert (len(images), rate) == (FRAME_COUNT, FPS)
    assert square_left_edge(images[7]) == 7


def test_video_file_pads_odd_sizes_and_rejects_wrong_frames(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    sink = open_sink(str(path), 65, 47, 30)
    with pytest.raises(SinkError, match="opened for 65x47, got a 64x48 frame"):
        sink.write(frame_of(0))
    for index in range(5):
        sink.write(frame_of(index, 65, 47))
    sink.close()
    sink.close()
    with pytest.raises(SinkError, match="closed"):
        sink.write(frame_of(0, 65, 47))
    images, rate = decode_all(str(path))
    assert (len(images), images[0].shape, rate) == (5, (48, 66, 3), 30)


def test_interrupted_recording_is_still_playable(tmp_path: Path) -> None:
    path = tmp_path / "interrupted.mp4"
    with pytest.raises(KeyboardInterrupt):
        with open_sink(str(path), WIDTH, HEIGHT, FPS) as sink:
            for index in range(12):
                sink.write(frame_of(index))
            raise KeyboardInterrupt
    images, _ = decode_all(str(path))
    assert len(images) == 12


def test_udp_mpegts_stream_arrives_and_decodes() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(1.0)
    port = receiver.getsockname()[1]
    received = bytearray()
    datagram_sizes = []

    def receive() -> None:
        while True:
            try:
                datagram = receiver.recv(65536)
            except TimeoutError:
                return
            datagram_sizes.append(len(datagram))
            received.extend(datagram)

    thread = threading.Thread(target=receive)
    thread.start()
    with open_sink(f"udp://127.0.0.1:{port}", WIDTH, HEIGHT, FPS) as sink:
        for index in range(FRAME_COUNT):
            sink.write(frame_of(index))
    thread.join()
    receiver.close()
    assert max(datagram_sizes) <= 1316 and len(received) % 188 == 0, "whole 188-byte TS packets"
    images, rate = decode_all(io.BytesIO(bytes(received)), container_format="mpegts")
    assert len(images) == FRAME_COUNT
    assert images[0].shape == (HEIGHT, WIDTH, 3)
    assert rate == FPS


# ----------------------------------------------------------------------------- Y4M


def parse_y4m(data: bytes) -> tuple[dict[str, str], list[bytes]]:
    """Header parameters (by their letter) and the raw frame payloads."""
    header_line, _, body = data.partition(b"\n")
    magic, *fields = header_line.decode("ascii").split(" ")
    assert magic == "YUV4MPEG2"
    params = {field[0]: field[1:] for field in fields}
    width, height = int(params["W"]), int(params["H"])
    chroma_w, chroma_h = (width, height) if params["C"] == "444" else ((width + 1) // 2, (height + 1) // 2)
    frame_bytes = width * height + 2 * chroma_w * chroma_h
    frames = []
    while body:
        marker, _, body = body.partition(b"\n")
        assert marker == b"FRAME"
        frames.append(body[:frame_bytes])
        assert len(frames[-1]) == frame_bytes
        body = body[frame_bytes:]
    return params, frames


@pytest.mark.parametrize(("chroma", "width", "height"), [("420jpeg", 64, 48), ("444", 64, 48), ("420jpeg", 65, 47)])
def test_y4m_output_parses_and_decodes(chroma: str, width: int, height: int) -> None:
    buffer = io.BytesIO()
    with Y4MSink(width, height, 25, stream=buffer, chroma=chroma) as sink:
        for index in range(10):
            sink.write(frame_of(index, width, height))
    data = buffer.getvalue()
    params, frames = parse_y4m(data)
    assert (params["W"], params["H"], params["F"], params["C"]) == (str(width), str(height), "25:1", chroma)
    assert len(frames) == 10
    images, rate = decode_all(io.BytesIO(data), container_format="yuv4mpegpipe")
    assert (len(images), images[0].shape, rate) == (10, (height, width, 3), 25)
    original = moving_square(3, width, height).astype(int)
    assert np.abs(images[3].astype(int) - original).mean() < 6, "colours survive the round trip (range and matrix)"


def test_y4m_uses_bt601_limited_range() -> None:
    buffer = io.BytesIO()
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    with Y4MSink(2, 2, 30, stream=buffer) as sink:
        sink.write(Frame(red, 0, 0, 0.0))
    _, frames = parse_y4m(buffer.getvalue())
    assert list(frames[0]) == [81] * 4 + [90, 240]


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="no ffprobe binary on this machine")
def test_ffprobe_reads_the_y4m_output(tmp_path: Path) -> None:
    path = tmp_path / "out.y4m"
    with open_sink(str(path), WIDTH, HEIGHT, FPS) as sink:
        for index in range(7):
            sink.write(frame_of(index))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["width"], stream["height"], stream["r_frame_rate"], stream["nb_read_frames"]) == (
        WIDTH, HEIGHT, "25/1", "7",
    )


def test_dash_writes_y4m_to_standard_output(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", stdout)
    with open_sink("-", WIDTH, HEIGHT, FPS) as sink:
        sink.write(frame_of(0))
    assert stdout.buffer.getvalue().startswith(b"YUV4MPEG2 W64 H48 F25:1")


BROKEN_PIPE_SCRIPT = """
import sys, time, numpy as np
from rt_dtgan.media import Frame, PipeClosedError, open_sink
with open_sink("-", 64, 48, 25) as sink:
    try:
        for index in range(100000):
            sink.write(Frame(np.zeros((48, 64, 3), np.uint8), index, time.monotonic_ns(), index / 25))
    except PipeClosedError as error:
        print(error, file=sys.stderr)
        sys.exit(3)
"""


def test_closed_viewer_stops_the_pipe_with_one_message_and_no_traceback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", BROKEN_PIPE_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout.read(10_000).startswith(b"YUV4MPEG2")
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=30) == 3
    assert "the reader closed the pipe" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


# ----------------------------------------------------------------------------- ZeroMQ


def test_zmq_publisher_sends_a_json_header_and_the_pixels() -> None:
    sink = open_sink("zmq+tcp://127.0.0.1:*", WIDTH, HEIGHT, FPS)
    assert sink.endpoint.startswith("tcp://127.0.0.1:")
    context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    subscriber.setsockopt(zmq.LINGER, 0)
    subscriber.connect(sink.endpoint)
    try:
        messages = []
        index = 0
        deadline = time.monotonic() + HANG_S
        while len(messages) < 3 and time.monotonic() < deadline:
            sink.write(frame_of(index))
            index += 1
            if subscriber.poll(20):
                messages.append(subscriber.recv_multipart())
    finally:
        sink.close()
        subscriber.close()
        context.term()
    assert len(messages) == 3, "a subscriber that joined receives the frames published after it"
    header_bytes, pixels = messages[0]
    header = json.loads(header_bytes)
    assert {key: header[key] for key in ("version", "type", "width", "height", "format")} == {
        "version": 1, "type": "frame", "width": WIDTH, "height": HEIGHT, "format": "rgb24",
    }
    image = np.frombuffer(pixels, np.uint8).reshape(HEIGHT, WIDTH, 3)
    assert np.array_equal(image, moving_square(header["index"]))
    assert isinstance(header["capture_ns"], int)
    assert [json.loads(message[0])["index"] for message in messages] == sorted(
        json.loads(message[0])["index"] for message in messages
    )


def test_zmq_bind_failure_is_a_sink_error() -> None:
    with open_sink("zmq://tcp://127.0.0.1:*", WIDTH, HEIGHT, FPS) as first:
        with pytest.raises(SinkError, match="cannot bind"):
            open_sink(f"zmq://{first.endpoint}", WIDTH, HEIGHT, FPS)


# ----------------------------------------------------------------------------- virtual camera and window


@pytest.mark.skipif(importlib.util.find_spec("pyvirtualcam") is not None, reason="pyvirtualcam is installed")
def test_virtualcam_without_pyvirtualcam_names_the_extra() -> None:
    with pytest.raises(MissingExtraError) as raised:
        open_sink("virtualcam", WIDTH, HEIGHT, FPS)
    message = str(raised.value)
    assert "pip install 'rt-dtgan[vcam]'" in message and "virtual camera" in message
    assert message.count(". ") == 0, "one sentence"


def fake_pyvirtualcam(available: bool, sent: list[np.ndarray]) -> types.ModuleType:
    class Camera:
        def __init__(self, width, height, fps, fmt, device, print_fps):  # noqa: ANN001 - mirrors pyvirtualcam
            if not available:
                raise RuntimeError("'v4l2loopback' backend: no v4l2 loopback device found")
            self.device = device or "/dev/video10"

        def send(self, image: np.ndarray) -> None:
            sent.append(image)

        def close(self) -> None:
            sent.append(None)

    return types.SimpleNamespace(Camera=Camera, PixelFormat=types.SimpleNamespace(RGB="RGB"))


def test_virtualcam_without_a_backend_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam(available=False, sent=[]))
    with pytest.raises(SinkError, match="no virtual camera is available .*: install") as raised:
        open_sink("virtualcam", WIDTH, HEIGHT, FPS)
    assert backend_advice() in str(raised.value)
    assert "v4l2loopback" in backend_advice("linux")
    assert "OBS" in backend_advice("darwin") and "OBS Virtual Camera" in backend_advice("win32")


def test_virtualcam_sends_frames_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[np.ndarray | None] = []
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam(available=True, sent=sent))
    with open_sink("virtualcam:/dev/video7", WIDTH, HEIGHT, FPS) as sink:
        assert sink.device == "/dev/video7"
        sink.write(frame_of(4))
    assert np.array_equal(sent[0], moving_square(4)) and sent[1] is None


def test_window_without_a_display_says_so() -> None:
    with pytest.raises(SinkError, match=r"needs a display, and \$DISPLAY is not set"):
        check_display("linux", {})
    check_display("linux", {"DISPLAY": ":0"})
    check_display("win32", {})


def test_preview_overlay_draws_text_on_a_bgr_copy() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    image[..., 0] = 200
    frame = Frame(image, 0, 0, 0.0)
    preview = render_preview(frame, fps=29.7, latency_ms=41.0)
    assert preview.shape == image.shape and frame.image[0, 0, 0] == 200, "the frame itself is untouched"
    assert (preview[200:, :, 2] == 200).all() and (preview[200:, :, 0] == 0).all(), "RGB became BGR"
    text_area = preview[:60, :150]
    assert (text_area.min(axis=2) > 200).any() and (text_area.max(axis=2) < 30).any(), "white text, dark outline"
    assert {KEY_ACTIONS[ord(key)] for key in "cmq"} == {"recalibrate", "mirror", "quit"}
    assert KEY_ACTIONS[27] is WindowAction.QUIT


class ScriptedHighgui:
    """OpenCV with its window calls recorded and its key presses scripted (drawing is the real
    OpenCV's): what a PreviewWindow shows and reads, without a display."""

    def __init__(self, keys: list[int]) -> None:
        import cv2

        self._cv2 = cv2
        self.keys = keys
        self.shown: list[tuple[str, np.ndarray]] = []
        self.destroyed: list[str] = []
        self.visible = True

    def __getattr__(self, name: str):
        return getattr(self._cv2, name)

    def namedWindow(self, title: str, flags: int) -> None:
        pass

    def resizeWindow(self, title: str, width: int, height: int) -> None:
        pass

    def imshow(self, title: str, image: np.ndarray) -> None:
        self.shown.append((title, image.copy()))

    def waitKey(self, delay_ms: int) -> int:
        return self.keys.pop(0) if self.keys else -1

    def getWindowProperty(self, title: str, prop: int) -> float:
        return 1.0 if self.visible else 0.0

    def destroyWindow(self, title: str) -> None:
        self.destroyed.append(title)


def test_window_shows_frames_and_reports_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # One key is read per frame shown and per poll: c, then x (no hotkey), then m with a modifier bit, then q.
    highgui = ScriptedHighgui(keys=[ord("c"), ord("x"), 0x100000 | ord("m"), ord("q")])
    monkeypatch.setattr("rt_dtgan.media.window._import_cv2", lambda: highgui)
    monkeypatch.setenv("DISPLAY", ":0")
    frames = [frame_of(index, 320, 240) for index in range(2)]
    with open_sink("window", 320, 240, FPS) as window:
        for frame in frames:
            window.write(frame)
        assert window.poll_keys() == [WindowAction.RECALIBRATE, WindowAction.MIRROR]
        assert window.poll_keys() == [WindowAction.QUIT]
        assert window.poll_keys() == [], "each action is reported once"
        highgui.visible = False
        assert window.poll_keys() == [WindowAction.QUIT], "closing the window asks to quit"
    assert highgui.destroyed == ["rt-dtgan"]
    assert [title for title, _ in highgui.shown] == ["rt-dtgan", "rt-dtgan"]
    for (_, shown), frame in zip(highgui.shown, frames):
        bgr = frame.image[..., ::-1]
        assert np.array_equal(shown[40:], bgr[40:]), "each frame is shown, in order, as BGR below the overlay"
        assert not np.array_equal(shown[:40], bgr[:40]), "the FPS and latency overlay is drawn on it"


# ----------------------------------------------------------------------------- several outputs


class RecordingSink(Sink):
    def __init__(self, fail_on_write: bool = False, fail_on_close: bool = False) -> None:
        super().__init__("recording", WIDTH, HEIGHT, FPS)
        self.fail_on_write, self.fail_on_close = fail_on_write, fail_on_close
        self.written: list[int] = []
        self.released = False

    def _write(self, frame: Frame) -> None:
        if self.fail_on_write:
            raise SinkError("write failed")
        self.written.append(frame.index)

    def _release(self) -> None:
        self.released = True
        if self.fail_on_close:
            raise SinkError("close failed")


def test_multisink_writes_to_all_and_closes_all_even_when_one_fails(tmp_path: Path) -> None:
    failing, healthy = RecordingSink(fail_on_write=True, fail_on_close=True), RecordingSink()
    path = tmp_path / "both.mp4"
    with pytest.raises(SinkError, match="close failed"):
        with MultiSink([failing, open_sink(str(path), WIDTH, HEIGHT, FPS), healthy]) as sinks:
            with pytest.raises(SinkError, match="write failed"):
                sinks.write(frame_of(0))
            failing.fail_on_write = False
            sinks.write(frame_of(1))
    assert healthy.written == [0, 1] and failing.written == [1]
    assert failing.released and healthy.released
    assert len(decode_all(str(path))[0]) == 2


def test_open_sinks_writes_everywhere_and_closes_what_it_opened_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_sinks([str(tmp_path / "a.mp4"), str(tmp_path / "a.y4m")], WIDTH, HEIGHT, FPS) as both:
        for index in range(4):
            both.write(frame_of(index))
    assert len(decode_all(str(tmp_path / "a.mp4"))[0]) == 4
    assert len(parse_y4m((tmp_path / "a.y4m").read_bytes())[1]) == 4
    opened = []

    def open_recording_or_fail(spec: str, width: int, height: int, fps: float) -> Sink:
        if spec == "bad":
            raise SinkError("unknown output 'bad'")
        opened.append(RecordingSink())
        return opened[-1]

    monkeypatch.setattr(sink_kinds, "open_sink", open_recording_or_fail)
    with pytest.raises(SinkError, match="unknown output 'bad'"):
        open_sinks(["one", "two", "bad"], WIDTH, HEIGHT, FPS)
    assert len(opened) == 2 and all(sink.released for sink in opened)


class SlowSink(RecordingSink):
    """Takes its time over each frame, so that writes pile up in the ThreadedSink's queue."""

    def _write(self, frame: Frame) -> None:
        time.sleep(0.005)
        super()._write(frame)


def test_threaded_sink_writes_every_frame_in_order_and_closes_the_sink() -> None:
    inner = SlowSink()
    with ThreadedSink(inner, depth=2) as sink:
        for index in range(20):
            sink.write(frame_of(index))
    assert inner.written == list(range(20)) and inner.released


def test_threaded_sink_raises_the_sinks_error_on_later_writes_and_on_close() -> None:
    inner = RecordingSink(fail_on_write=True)
    sink = ThreadedSink(inner)
    sink.write(frame_of(0))
    deadline = time.monotonic() + HANG_S
    with pytest.raises(SinkError, match="write failed"):
        index = 1
        while time.monotonic() < deadline:  # until the writing thread's failure reaches the writer
            sink.write(frame_of(index))
            index += 1
            time.sleep(0.01)
    with pytest.raises(SinkError, match="write failed"):
        sink.close()
    assert inner.released


def test_a_handoff_gives_its_items_in_order_then_its_end_at_every_call() -> None:
    def count_then_fail() -> None:
        for index in range(3):
            handoff.put(index)
        handoff.put(End(ValueError("source broke")))

    handoff: HandoffThread[int] = HandoffThread(count_then_fail, "counting", depth=1)
    handoff.start()
    items = [handoff.get(timeout=HANG_S) for _ in range(5)]
    assert items[:3] == [0, 1, 2]
    assert items[3] is items[4] and str(items[3].error) == "source broke"
    handoff.join()


def test_stopping_a_handoff_frees_a_thread_waiting_on_a_full_queue() -> None:
    refused = []

    def put_for_ever() -> None:
        while handoff.put("item"):
            pass
        refused.append(True)

    handoff: HandoffThread[str] = HandoffThread(put_for_ever, "putting", depth=1)
    handoff.start()
    assert handoff.get(timeout=HANG_S) == "item"
    handoff.stop(timeout=HANG_S)
    assert refused == [True], "put gave up once stopped, and the thread ended"


def test_each_output_spec_is_claimed_by_its_kind() -> None:
    expected = {
        "-": Y4M_PIPE_OUTPUT,
        "udp://127.0.0.1:5000/out.mp4": UDP_OUTPUT,
        "zmq": ZMQ_OUTPUT,
        "zmq+ipc:///tmp/out.y4m": ZMQ_OUTPUT,
        "virtualcam:/dev/video7.mov": VIRTUAL_CAMERA_OUTPUT,
        "window": WINDOW_OUTPUT,
        "null": NULL_OUTPUT,
        "out.MKV": VIDEO_FILE_OUTPUT,
        "out.y4m": Y4M_FILE_OUTPUT,
        "out.avi": None,
        "windows": None,
    }
    assert {spec: first_claimant(SINK_KINDS, spec) for spec in expected} == expected
    with pytest.raises(SinkError) as raised:
        open_sink("out.avi", WIDTH, HEIGHT, FPS)
    assert all(kind.help in str(raised.value) for kind in SINK_KINDS), "the error lists every kind of output"


def test_a_new_kind_of_output_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    recording = SinkKind("recording", lambda spec: spec == "recording", lambda spec, width, height, fps: RecordingSink())
    monkeypatch.setattr(sink_kinds, "SINK_KINDS", (*SINK_KINDS, recording))
    with open_sinks(["recording", "null"], WIDTH, HEIGHT, FPS) as outputs:
        outputs.write(frame_of(0))
    threaded, _ = outputs.sinks
    assert isinstance(threaded, ThreadedSink) and threaded.sink.written == [0] and threaded.sink.released


def test_null_output_discards_frames_on_the_calling_thread() -> None:
    with open_sinks(["null"], WIDTH, HEIGHT, FPS) as outputs:
        (null,) = outputs.sinks
        assert isinstance(null, NullSink), "no writing thread: a dropped frame has nothing to overlap"
        frame = frame_of(0)
        written = weakref.ref(frame)
        outputs.write(frame)
        del frame
        assert written() is None, "the frame is dropped, not kept or queued"
        with pytest.raises(SinkError, match="opened for 64x48"):
            null.write(frame_of(1, width=WIDTH + 2))
    assert null.closed


def test_sink_specs_and_sizes_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="unknown output 'out.avi'"):
        open_sink("out.avi", WIDTH, HEIGHT, FPS)
    with pytest.raises(SinkError, match="positive integers"):
        open_sink(str(tmp_path / "x.mp4"), 0, HEIGHT, FPS)
    small = RecordingSink()
    small.width = 32
    with pytest.raises(SinkError, match="one size"):
        MultiSink([RecordingSink(), small])


# ----------------------------------------------------------------------------- real clips

REAL_CLIPS = [
    ("lp_d3.mp4", (512, 512), 30, 354),
    ("lp_d11.mp4", (512, 512), 25, 225),
    ("lp_d18.mp4", (480, 480), 30, 216),
    ("lp_d19.mp4", (480, 480), 30, 250),
    ("tpsmm_driving.mp4", (410, 412), 25, 169),
]


@pytest.mark.heavy
@pytest.mark.parametrize(("name", "size", "fps", "frame_count"), REAL_CLIPS)
def test_real_driving_clips_open_with_their_size_rate_and_length(
    name: str, size: tuple[int, int], fps: int, frame_count: int
) -> None:
    path = REAL_DATA / "driving" / name
    if not path.exists():
        pytest.skip(f"real clips not found at {path.parent} (../shared/data/real is absent)")
    with open_source(str(path), pace=False) as source:
        assert (source.size, source.fps) == (size, fps)
        shapes = [frame.image.shape for frame in source]
    assert len(shapes) == frame_count and set(shapes) == {(size[1], size[0], 3)}


def test_the_zmq_output_default_leaves_the_workers_and_the_brokers_ports_free():
    from rt_dtgan.endpoints import port_of
    from rt_dtgan.media.zmq_pub import DEFAULT_ZMQ_ENDPOINT
    from rt_dtgan.transport.addresses import DEFAULT_ADDRESS, DEFAULT_BROKER_BACK

    # Ports, not address strings: tcp://*:5556 differs from tcp://127.0.0.1:5556 and takes its port.
    ports = [port_of(address) for address in (DEFAULT_ZMQ_ENDPOINT, DEFAULT_ADDRESS, DEFAULT_BROKER_BACK)]
    assert None not in ports and len(set(ports)) == 3, ports


def test_an_output_or_source_that_cannot_work_is_refused_before_anything_opens():
    from rt_dtgan.endpoints import parse_endpoint
    from rt_dtgan.media.sink_kinds import check_sink_spec
    from rt_dtgan.media.source_kinds import check_source_spec

    for spec in ("udp://127.0.0.1:5000?pkt_size=1316", "zmq", "zmq://tcp://*:5557", "zmq+ipc:///tmp/frames", "null", "o.mp4"):
        check_sink_spec(spec)
    for spec in ("udp://127.0.0.1:99999", "udp://:5000", "udp://127.0.0.1", "zmq://tcp://127.0.0.1:0", "zmq+tcp://h:x", "o.xyz", ""):
        with pytest.raises(SinkError):
            check_sink_spec(spec)
    with pytest.raises(SinkError, match="must be a number from 1 to 65535"):
        open_sink("udp://127.0.0.1:99999", 64, 64, 30)  # the library refuses it too, not only the command line
    check_source_spec("synthetic:3")
    for spec in ("synthetic:x", "lavfi:", "no/such/video.mp4", " "):
        with pytest.raises(SourceError):
            check_source_spec(spec)
    assert parse_endpoint("tcp://[::1]:5555").host == "::1" and parse_endpoint("ipc:///tmp/x").path == "/tmp/x"
    assert parse_endpoint("tcp://127.0.0.1:*").port is None
    with pytest.raises(ValueError, match="must be a number from 1 to 65535$"):
        parse_endpoint("tcp://127.0.0.1:*", any_port=False)
