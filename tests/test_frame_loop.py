"""The one frame loop (pipeline.run_frames): frames in order into the sinks, requests applied
between frames, the mirror handed to the tracking thread, the end of a source told from its
failure; and the preview window found among the outputs by its type."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from rt_dtgan.media import (
    BlockingCapture,
    Capture,
    CaptureEnded,
    CaptureState,
    CaptureStatus,
    GeneratedSource,
    MultiSink,
    PreviewWindow,
    Sink,
)
from rt_dtgan.pipeline import FaceTransfer, FrameHooks, run_frames

SIZE, FPS = 32, 30
NO_FACE = SimpleNamespace(found=False, reason="no face")


def source_image(index: int) -> np.ndarray:
    """A frame whose left half is bright and whose top-left pixel carries its index."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[:, : SIZE // 2] = 200
    image[0, 0, 0] = index
    return image


class SeeingTracker:
    """Finds no face, and remembers whether each frame it saw was mirrored."""

    def __init__(self) -> None:
        self.mirrored: list[bool] = []

    def locate(self, image: np.ndarray, pts_s: float):
        self.mirrored.append(bool(image[0, -1, 1] == 200))
        return NO_FACE

    def close(self) -> None:
        pass


class RecordingDriver:
    def __init__(self) -> None:
        self.recalibrations = 0

    def recalibrate(self, reference=None) -> None:
        self.recalibrations += 1

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


class RecordingSink(Sink):
    def __init__(self) -> None:
        super().__init__("recording", SIZE, SIZE, FPS)
        self.indexes: list[int] = []

    def _write(self, frame) -> None:
        self.indexes.append(frame.index)

    def _release(self) -> None:
        pass


class Scripted(FrameHooks):
    """Gives ``script[n]`` as the requests after the n-th frame written; records what the loop tells."""

    def __init__(self, script: dict[int, list[str]] | None = None, wait: bool = True) -> None:
        self.script, self.wait = script or {}, wait
        self.written_count, self.told, self.statuses, self.waits = 0, [], 0, 0

    def written(self, frame, report) -> None:
        self.written_count += 1

    def requests(self) -> list[str]:
        return self.script.pop(self.written_count, [])

    def applied(self, request, transfer) -> None:
        self.told.append((request, transfer.mirror))

    def status(self, report) -> None:
        self.statuses += 1

    def waiting(self, stalled) -> bool:
        self.waits += 1
        return self.wait


def make_transfer() -> FaceTransfer:
    return FaceTransfer(RecordingDriver(), SimpleNamespace(image=np.zeros((SIZE, SIZE, 3), np.uint8)), SeeingTracker())


def transfer_and_capture(frames: int | None):
    """A transfer that finds no face, and a lossless capture of ``frames`` frames (None: endless)."""
    return make_transfer(), BlockingCapture(GeneratedSource(source_image, FPS, frame_count=frames, pace=False))


def test_every_frame_goes_to_the_sink_in_order_until_the_source_ends():
    transfer, capture = transfer_and_capture(12)
    sink, hooks = RecordingSink(), Scripted()
    with capture:
        assert run_frames(transfer, capture, sink, hooks) == 12
    assert sink.indexes == list(range(12)) and hooks.written_count == 12
    assert hooks.statuses >= 1, "the first frame brings a status line"


def test_the_loop_stops_after_the_frames_asked_for():
    transfer, capture = transfer_and_capture(None)
    sink = RecordingSink()
    with capture:
        assert run_frames(transfer, capture, sink, frames=5) == 5
    assert sink.indexes == list(range(5))


def test_requests_are_applied_in_order_and_a_quit_drops_the_rest():
    transfer, capture = transfer_and_capture(None)
    hooks = Scripted({2: ["recalibrate", "mirror"], 4: ["mirror", "quit", "recalibrate"]})
    with capture:
        assert run_frames(transfer, capture, RecordingSink(), hooks) == 4
    assert hooks.told == [("recalibrate", False), ("mirror", True), ("mirror", False), ("quit", False)]
    assert transfer.driver.recalibrations == 1


def test_a_mirror_request_reaches_the_tracking_thread_from_a_later_frame_on():
    transfer, capture = transfer_and_capture(40)
    with capture:
        run_frames(transfer, capture, RecordingSink(), Scripted({3: ["mirror"]}))
    seen = transfer.tracker.mirrored
    assert seen[:3] == [False] * 3 and seen[-1]
    assert seen == sorted(seen), "once mirrored, every later frame is"


def test_an_unknown_request_is_an_error():
    transfer, capture = transfer_and_capture(None)
    with capture, pytest.raises(ValueError, match="unknown request 'dance'"):
        run_frames(transfer, capture, RecordingSink(), Scripted({1: ["dance"]}))


class StalledCapture(Capture):
    """Never gives a frame; fails with ``error`` at its end, or ends cleanly without one."""

    def __init__(self, error: str | None = None) -> None:
        self.error = error

    @property
    def status(self) -> CaptureStatus:
        return CaptureStatus(CaptureState.ENDED, error=self.error)

    def get(self, timeout: float | None = None):
        if self.error is not None:
            raise CaptureEnded(self.error)
        time.sleep(timeout or 0.0)
        return None

    def close(self) -> None:
        pass


def test_a_hook_that_stops_waiting_ends_the_loop():
    hooks = Scripted(wait=False)
    assert run_frames(make_transfer(), StalledCapture(), RecordingSink(), hooks, wait_s=0.01) == 0
    assert hooks.waits == 1


def test_a_failed_source_is_raised():
    with pytest.raises(CaptureEnded, match="camera unplugged"):
        run_frames(make_transfer(), StalledCapture("camera unplugged"), RecordingSink())


class QuietWindow(PreviewWindow):
    """A PreviewWindow that opens nothing (no display needed)."""

    def __init__(self) -> None:
        Sink.__init__(self, "quiet window", SIZE, SIZE, FPS)

    def _release(self) -> None:
        pass


def test_the_sink_set_names_its_preview_window():
    window = QuietWindow()
    assert MultiSink([RecordingSink(), window]).window is window
    assert MultiSink([RecordingSink()]).window is None


def test_importing_the_command_line_leaves_torch_out():
    probe = "import sys, rt_dtgan.cli; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_numpys_blas_runs_on_one_thread_during_the_loop_and_as_before_after_it():
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    class Counting(Scripted):
        def written(self, frame, report) -> None:
            super().written(frame, report)
            self.during = blas_threads()

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        assert before and max(before) == 2, "numpy's BLAS must be found, and on two threads, for this to mean anything"
        transfer, capture = transfer_and_capture(3)
        hooks = Counting()
        with capture:
            run_frames(transfer, capture, RecordingSink(), hooks)
        assert hooks.during == [1] * len(before) and blas_threads() == before


def test_the_live_status_line_names_a_remote_links_state_and_nothing_in_process():
    from rt_dtgan.commands.stream import _status_line
    from rt_dtgan.media import LatencyMeter

    report = SimpleNamespace(found=True, reason=None, track_ms=4.0, engine_ms=8.0)
    capture = SimpleNamespace(dropped=0)
    latency = LatencyMeter().summary()
    local, remote = SimpleNamespace(link=None), SimpleNamespace(link="outage")
    assert "remote" not in _status_line(30.0, latency, report, capture, local)
    assert _status_line(30.0, latency, report, capture, remote).endswith("remote outage")
