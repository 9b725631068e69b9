"""Between aiortc's tracks and the frame loop: the browser's camera as a ``Capture``
(newest frame wins, as a live camera's) and the loop's output as a ``Sink`` feeding a
WebRTC video track. Frames cross from the event loop's thread to the loop's threads here."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from dataclasses import replace

import av
import numpy as np
from aiortc import MediaStreamTrack

from rt_dtgan.media import Capture, CaptureEnded, Frame, Sink
from rt_dtgan.media.capture import CaptureState, CaptureStatus

VIDEO_CLOCK_HZ = 90_000  # WebRTC's video RTP clock


class PushedCapture(Capture):
    """Frames pushed from another thread (``push``) into one slot; ``get`` takes the newest,
    an older unseen one is dropped and counted. ``end`` stops it: ``get`` then raises CaptureEnded."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._slot: av.VideoFrame | None = None
        self._slot_ns = 0
        self._status = CaptureStatus(CaptureState.CONNECTED)
        self._next_index = 0
        self._first_time_s: float | None = None

    @property
    def status(self) -> CaptureStatus:
        with self._condition:
            return self._status

    def push(self, frame: av.VideoFrame) -> None:
        """A decoded camera frame, as aiortc gives it; converted to RGB only when taken."""
        with self._condition:
            dropped = self._status.dropped + (self._slot is not None)
            self._slot, self._slot_ns = frame, time.monotonic_ns()
            self._status = replace(self._status, captured=self._status.captured + 1, dropped=dropped)
            self._condition.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        with self._condition:
            self._condition.wait_for(lambda: self._slot is not None or self._status.state is CaptureState.ENDED, timeout)
            if self._status.state is CaptureState.ENDED:
                raise CaptureEnded("the browser's camera stream ended")
            if self._slot is None:
                return None
            video_frame, arrived_ns, self._slot = self._slot, self._slot_ns, None
        return self._to_frame(video_frame, arrived_ns)

    def end(self) -> None:
        with self._condition:
            self._status = replace(self._status, state=CaptureState.ENDED)
            self._condition.notify_all()

    def close(self) -> None:
        self.end()

    def _to_frame(self, video_frame: av.VideoFrame, arrived_ns: int) -> Frame:
        """-> a Frame: (H, W, 3) uint8 RGB, its time from the first frame's (the tracker needs it increasing)."""
        time_s = video_frame.time if video_frame.time is not None else arrived_ns / 1e9
        if self._first_time_s is None:
            self._first_time_s = time_s
        image = video_frame.to_ndarray(format="rgb24")
        frame = Frame(image=image, index=self._next_index, capture_ns=arrived_ns, pts_s=time_s - self._first_time_s)
        self._next_index += 1
        return frame


class OutputTrack(MediaStreamTrack):
    """The animated portrait as a WebRTC video track: ``recv`` waits for the newest frame the
    sink hands over (from any thread), stamped on the 90 kHz clock from the track's start.
    ``sent_latency_ms``: camera frame's arrival to its output's hand-over to the encoder, last frame."""

    kind = "video"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._fresh = asyncio.Event()
        self._newest: tuple[np.ndarray, int] | None = None
        self._lock = threading.Lock()
        self._started_ns: int | None = None
        self.sent_latency_ms = float("nan")

    def offer(self, image: np.ndarray, capture_ns: int) -> None:
        """A new output image ((H, W, 3) uint8 RGB, sides multiples of 16) and its camera frame's arrival time."""
        with self._lock:
            self._newest = (image, capture_ns)
        self._loop.call_soon_threadsafe(self._fresh.set)

    async def recv(self) -> av.VideoFrame:
        while True:
            await self._fresh.wait()
            self._fresh.clear()
            with self._lock:
                newest, self._newest = self._newest, None
            if newest is not None:
                break
        image, capture_ns = newest
        now_ns = time.monotonic_ns()
        self._started_ns = self._started_ns or now_ns
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = (now_ns - self._started_ns) * VIDEO_CLOCK_HZ // 1_000_000_000
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
        self.sent_latency_ms = (now_ns - capture_ns) / 1e6
        return frame


class TrackSink(Sink):
    """The frame loop's sink for one browser: each output frame goes to ``track`` (no thread of
    its own: handing over is a reference and a wake-up)."""

    writes_on_own_thread = False

    def __init__(self, track: OutputTrack, width: int, height: int, fps: float = 30.0) -> None:
        super().__init__("the browser", width, height, fps)
        self.track = track

    def _write(self, frame: Frame) -> None:
        self.track.offer(frame.image, frame.capture_ns)

    def _release(self) -> None:
        self.track.stop()
