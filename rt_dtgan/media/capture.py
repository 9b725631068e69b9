"""Capture threads between a source and the pipeline.

Which one to use:

- ``LatestFrameCapture`` for live input: a camera, or a file or lavfi graph played in real
  time (pace=True). One slot: the newest frame wins, older unseen frames are dropped and
  counted, so a slow engine never builds up lag. A live source that fails or ends
  (a camera unplugged) is reopened with capped exponential backoff, and the stream resumes.
- ``BlockingCapture`` for files read as fast as possible (pace=False, ``--no-pace``): a
  bounded queue of one or two frames that blocks the reader when full, so every source frame
  reaches the pipeline exactly once (lossless), while decoding overlaps processing.

``open_capture(source)`` picks by that rule. Both own their source and close it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum

from rt_dtgan.media.errors import CaptureEnded, SourceError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.handoff import End, HandoffThread
from rt_dtgan.media.source import Source

# How long closing waits for the reading thread; one stalled in a read longer than this (a
# camera or stream that stopped sending) is left to end on its own, a daemon.
JOIN_TIMEOUT_S = 0.5


class CaptureState(Enum):
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


@dataclass(frozen=True)
class CaptureStatus:
    """state; attempt: reconnection attempts in the current outage (0 when connected);
    captured: frames read from the source; dropped: frames replaced before anyone took them;
    error: the last failure, or None."""

    state: CaptureState
    attempt: int = 0
    captured: int = 0
    dropped: int = 0
    error: str | None = None

    def describe(self) -> str:
        """One line for a status bar or a log."""
        if self.state is CaptureState.RECONNECTING:
            return f"reconnecting (attempt {self.attempt}): {self.error}"
        if self.state is CaptureState.ENDED and self.error:
            return f"ended: {self.error}"
        return self.state.value


@dataclass(frozen=True)
class Backoff:
    """Delay before reconnection attempt n (from 1): initial_s * factor**(n - 1), at most max_s;
    give up after max_attempts attempts (None: never)."""

    initial_s: float = 0.5
    max_s: float = 5.0
    factor: float = 2.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"Backoff needs 0 < initial_s <= max_s, got {self.initial_s} and {self.max_s}")
        if not self.factor >= 1:
            raise ValueError(f"Backoff factor must be >= 1, got {self.factor}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"Backoff max_attempts must be >= 1 or None, got {self.max_attempts}")

    def delay_s(self, attempt: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** (attempt - 1))


class Capture(ABC):
    """A thread reading a source; ``get()`` hands frames to the pipeline. Iterable, closeable."""

    @property
    @abstractmethod
    def status(self) -> CaptureStatus:
        """A snapshot of the capture's state and counters."""

    @abstractmethod
    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None after ``timeout`` seconds without one; CaptureEnded at the end."""

    @abstractmethod
    def close(self) -> None:
        """Stop the thread and close the source; safe to call more than once."""

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the end; raises CaptureEnded if the source failed for good."""
        while True:
            try:
                frame = self.get(timeout=0.5)
            except CaptureEnded:
                if self.status.error is not None:
                    raise
                return
            if frame is not None:
                yield frame

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LatestFrameCapture(Capture):
    """Reads ``source`` on a thread into one slot; ``get()`` returns the newest unseen frame.

    ``on_status`` is called on the capture thread at each state change (connected,
    reconnecting with its attempt number, ended).
    """

    def __init__(
        self,
        source: Source,
        backoff: Backoff = Backoff(),
        on_status: Callable[[CaptureStatus], None] | None = None,
    ) -> None:
        self._source = source
        self._backoff = backoff
        self._on_status = on_status
        self._condition = threading.Condition()
        self._slot: Frame | None = None
        self._status = CaptureStatus(CaptureState.CONNECTED)
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture {source.description}", daemon=True)
        self._thread.start()

    @property
    def status(self) -> CaptureStatus:
        with self._condition:
            return self._status

    def get(self, timeout: float | None = None) -> Frame | None:
        with self._condition:
            ready = self._condition.wait_for(
                lambda: self._slot is not None or self._status.state is CaptureState.ENDED, timeout
            )
            if self._slot is not None:
                frame, self._slot = self._slot, None
                return frame
            if ready:
                raise CaptureEnded(f"{self._source.description}: {self._status.describe()}") from self._failure
            return None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)
        self._update(state=CaptureState.ENDED, attempt=0)

    def _run(self) -> None:
        try:
            self._capture_until_stopped()
        except Exception as error:  # reported to the consumer by get(), never lost on this thread
            self._failure = error
            self._update(state=CaptureState.ENDED, error=f"{type(error).__name__}: {error}")
        finally:
            self._source.close()
            self._update(state=CaptureState.ENDED, attempt=0)

    def _capture_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                frame = next(self._source)
            except StopIteration:
                failure = None
            except SourceError as error:
                failure = str(error)
            else:
                self._publish(frame)
                continue
            if not self._source.live:
                self._update(state=CaptureState.ENDED, error=failure)
                return
            if not self._reconnect(failure or "the stream ended"):
                return

    def _publish(self, frame: Frame) -> None:
        with self._condition:
            dropped = self._status.dropped + (self._slot is not None)
            self._slot = frame
            self._status = replace(self._status, captured=self._status.captured + 1, dropped=dropped)
            self._condition.notify_all()

    def _reconnect(self, failure: str) -> bool:
        """Reopen the source with backoff; False when stopped or out of attempts."""
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            if self._backoff.max_attempts is not None and attempt > self._backoff.max_attempts:
                self._update(state=CaptureState.ENDED, error=f"gave up after {attempt - 1} attempts: {failure}")
                return False
            self._update(state=CaptureState.RECONNECTING, attempt=attempt, error=failure)
            if self._stop.wait(self._backoff.delay_s(attempt)):
                return False
            try:
                self._source.reopen()
            except SourceError as error:
                failure = str(error)
                continue
            self._update(state=CaptureState.CONNECTED, attempt=0, error=None)
            return True
        return False

    def _update(self, **changes: object) -> None:
        with self._condition:
            if self._status.state is CaptureState.ENDED:
                return
            self._status = replace(self._status, **changes)
            status = self._status
            self._condition.notify_all()
        if self._on_status is not None:
            self._on_status(status)


class BlockingCapture(Capture):
    """Reads ``source`` ahead into a queue of ``depth`` frames (1 or 2) and blocks when it is
    full: lossless and in order, for files read as fast as possible. No reconnection."""

    def __init__(self, source: Source, depth: int = 2) -> None:
        if depth not in (1, 2):
            raise ValueError(f"BlockingCapture depth must be 1 or 2, got {depth}")
        self._source = source
        self._lock = threading.Lock()
        self._status = CaptureStatus(CaptureState.CONNECTED)
        self._reader: HandoffThread[Frame] = HandoffThread(self._run, f"reader {source.description}", depth)
        self._reader.start()

    @property
    def status(self) -> CaptureStatus:
        with self._lock:
            return self._status

    def get(self, timeout: float | None = None) -> Frame | None:
        closed_before_the_end = self._reader.stopping and self._reader.ended is None
        item = End() if closed_before_the_end else self._reader.get(timeout)
        if not isinstance(item, End):
            return item
        with self._lock:
            error = None if item.error is None else f"{type(item.error).__name__}: {item.error}"
            self._status = replace(self._status, state=CaptureState.ENDED, error=error)
        raise CaptureEnded(f"{self._source.description}: {self.status.describe()}") from item.error

    def close(self) -> None:
        self._reader.stop(timeout=JOIN_TIMEOUT_S)
        with self._lock:
            self._status = replace(self._status, state=CaptureState.ENDED)

    def _run(self) -> None:
        end = End()
        try:
            for frame in self._source:
                if not self._reader.put(frame):
                    return
                with self._lock:
                    self._status = replace(self._status, captured=self._status.captured + 1)
        except Exception as error:  # handed to the consumer by get(), never lost on this thread
            end = End(error)
        finally:
            self._source.close()
        self._reader.put(end)


def open_capture(source: Source) -> Capture:
    """LatestFrameCapture for live or paced sources, BlockingCapture (lossless) otherwise."""
    if source.live or source.paced:
        return LatestFrameCapture(source)
    return BlockingCapture(source)
