"""Pacing frames at their presentation times, and measuring rate and latency.

The pacer sleeps until each frame is due. When the caller falls behind by more than
``max_lag_frames`` frame periods (a slow step, a hiccup), it resets its schedule to "now"
instead of bursting the backlog out as fast as possible, and counts the reset.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rt_dtgan.media.frames import Frame, latency_ms


@dataclass(frozen=True)
class PacerStats:
    """frames: waits so far; late: frames due more than half a period before they were asked
    for; resets: schedule resets (late by more than max_lag_frames periods)."""

    frames: int
    late: int
    resets: int


class Pacer:
    """Sleeps so that frames leave at the source rate, with drift reset.

    ``wait(pts_s)`` follows the source's own timestamps (seconds from its first frame);
    ``wait()`` follows a fixed rate of ``fps`` frames per second.
    """

    def __init__(
        self,
        fps: float,
        max_lag_frames: float = 2.0,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"Pacer fps must be > 0, got {fps}")
        if not max_lag_frames > 0:
            raise ValueError(f"max_lag_frames must be > 0, got {max_lag_frames}")
        self.period_s = 1.0 / fps
        self.max_lag_s = max_lag_frames * self.period_s
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._anchor_ns: int | None = None
        self._last_pts_s = 0.0
        self._frames = 0
        self._late = 0
        self._resets = 0

    @property
    def stats(self) -> PacerStats:
        return PacerStats(frames=self._frames, late=self._late, resets=self._resets)

    def reset(self) -> None:
        """Forget the schedule: the next frame is due at once (after a reopen or a seek)."""
        self._anchor_ns = None

    def wait(self, pts_s: float | None = None) -> float:
        """Sleep until the frame at ``pts_s`` (default: the next fixed-rate slot) is due.

        Returns how late the frame was, in seconds (0.0 when it was early or on time).
        """
        if pts_s is None:
            pts_s = self._frames * self.period_s
        self._frames += 1
        now_ns = self._clock_ns()
        if self._anchor_ns is None or pts_s < self._last_pts_s:
            self._anchor(now_ns, pts_s)
            return 0.0
        self._last_pts_s = pts_s
        due_ns = self._anchor_ns + round(pts_s * 1e9)
        if now_ns <= due_ns:
            self._sleep((due_ns - now_ns) / 1e9)
            return 0.0
        lateness_s = (now_ns - due_ns) / 1e9
        if lateness_s > self.period_s / 2:
            self._late += 1
        if lateness_s > self.max_lag_s:
            self._resets += 1
            self._anchor(now_ns, pts_s)
        return lateness_s

    def _anchor(self, now_ns: int, pts_s: float) -> None:
        self._anchor_ns = now_ns - round(pts_s * 1e9)
        self._last_pts_s = pts_s


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in milliseconds over the last ``count`` frames (NaN when empty)."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


class LatencyMeter:
    """Capture-to-sink latency of the last ``window`` frames."""

    def __init__(self, window: int = 300) -> None:
        if window < 1:
            raise ValueError(f"LatencyMeter window must be >= 1, got {window}")
        self._latencies_ms: collections.deque[float] = collections.deque(maxlen=window)

    def add(self, frame: Frame, now_ns: int | None = None) -> float:
        """Record and return the frame's latency in ms (now - frame.capture_ns)."""
        latency = latency_ms(frame, now_ns)
        self._latencies_ms.append(latency)
        return latency

    def summary(self) -> LatencySummary:
        if not self._latencies_ms:
            return LatencySummary(count=0, p50_ms=float("nan"), p95_ms=float("nan"), p99_ms=float("nan"))
        p50, p95, p99 = np.percentile(np.fromiter(self._latencies_ms, dtype=np.float64), [50, 95, 99])
        return LatencySummary(count=len(self._latencies_ms), p50_ms=float(p50), p95_ms=float(p95), p99_ms=float(p99))


class RateMeter:
    """Events per second over the last ``window_s`` seconds (frames shown, frames captured)."""

    def __init__(self, window_s: float = 1.0, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        if not window_s > 0:
            raise ValueError(f"RateMeter window_s must be > 0, got {window_s}")
        self._window_ns = round(window_s * 1e9)
        self._clock_ns = clock_ns
        self._times_ns: collections.deque[int] = collections.deque(maxlen=4096)

    def tick(self) -> None:
        now_ns = self._clock_ns()
        self._times_ns.append(now_ns)
        self._forget_before(now_ns - self._window_ns)

    @property
    def rate(self) -> float:
        """Events per second over the window; 0.0 until two events have been seen."""
        self._forget_before(self._clock_ns() - self._window_ns)
        if len(self._times_ns) < 2:
            return 0.0
        span_ns = self._times_ns[-1] - self._times_ns[0]
        return (len(self._times_ns) - 1) * 1e9 / span_ns if span_ns > 0 else 0.0

    def _forget_before(self, oldest_ns: int) -> None:
        while self._times_ns and self._times_ns[0] < oldest_ns:
            self._times_ns.popleft()
