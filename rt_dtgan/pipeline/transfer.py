"""One source stream driving one target portrait: track the face, step the engine, paste
the generated face back into the whole portrait, each on its own thread in the frame loop
(``TrackingStage``, ``SteppingStage``, the loop's own thread for drawing).

The same ``FaceTransfer.process`` runs live (``rt-dtgan live``) and offline
(``rt-dtgan transfer``), so both give the same frames for the same input. When the face is
lost, the output holds the last good frame (the target itself before the first one) and
the engine is not stepped, so its LSTM state never sees a frame without a face.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from rt_dtgan.face import FaceTracker, NeutralPicker, Target, TrackResult, paste_back
from rt_dtgan.face.gaze import GazeFollower, GazeRig, GazeShift, iris_places
from rt_dtgan.face.head import HeadFollower, HeadRig, HeadSampling
from rt_dtgan.face.render import WarpPlan
from rt_dtgan.media import Capture, Frame
from rt_dtgan.media.handoff import STOP_POLL_S, End, HandoffThread
from rt_dtgan.runtime.engine import AlignedFace, Generated, StreamEngine
from rt_dtgan.runtime.warping import KeypointMotion

# The grid a WarpPlan is first built for when only the head moves (the next grid rebuilds it).
STILL_GRID_SIDE = 64
# How long closing a stage waits for its thread; one still busy after that (a step that
# cannot be interrupted) is left to end on its own, a daemon.
STAGE_STOP_S = 0.5


class StreamDriver(Protocol):
    """Makes generated frames for one stream, in-process or on a remote worker."""

    def step(self, face: AlignedFace) -> Generated | None:
        """An aligned face -> a generated crop or keypoint motion, or None when none is available yet."""

    def recalibrate(self, reference: AlignedFace | None = None) -> None:
        """Make the ``reference`` face the neutral anchor now, or, without one, the next frame."""

    def interrupt(self) -> None:
        """Make a step or recalibration waiting on a remote engine give up now, and every later
        one: the driver is closing. Safe from any thread."""

    @property
    def link(self) -> str | None:
        """The state of the link to a remote engine, for the status line; None in-process."""

    def close(self) -> None: ...


class LocalDriver:
    """A stream on an in-process StreamEngine; ``strength`` scales a warping model's motion."""

    def __init__(
        self, engine: StreamEngine, target: AlignedFace, reference: AlignedFace | None = None, strength: float = 1.0
    ) -> None:
        self.engine = engine
        self.stream = engine.open(target, strength)
        if reference is not None:
            engine.recalibrate(self.stream, reference)

    def step(self, face: AlignedFace) -> Generated:
        return self.engine.step(self.stream, face)

    def recalibrate(self, reference: AlignedFace | None = None) -> None:
        self.engine.recalibrate(self.stream, reference)

    def interrupt(self) -> None:
        """Nothing to do: an in-process step waits on nothing."""

    @property
    def link(self) -> None:
        return None

    def close(self) -> None:
        self.engine.close(self.stream)


@dataclass(frozen=True)
class FrameReport:
    """What happened to one frame: the face found (or why not) and each stage's time."""

    found: bool
    reason: str | None
    track_ms: float
    align_ms: float
    engine_ms: float
    paste_ms: float


@dataclass(frozen=True, eq=False)
class TrackedFrame:
    """A source frame after face tracking: ``tracked.crop`` is the aligned face when
    ``tracked.found``; the times of locating and aligning it."""

    frame: Frame
    tracked: TrackResult
    track_ms: float
    align_ms: float


@dataclass(frozen=True, eq=False)
class SteppedFrame:
    """A tracked frame after the engine: ``generated`` its crop or keypoint motion (None
    without a face, or while a remote result is not in yet), the engine's time, and
    ``head``, the portrait's whole head moved as the driver's, and ``gaze``, its eyes' look
    (None: they stay)."""

    item: TrackedFrame
    generated: Generated | None
    engine_ms: float
    head: HeadSampling | None = None
    gaze: GazeShift | None = None


class FaceTransfer:
    """Source frames in, whole-portrait frames out (the target image's size).

    ``process(frame)`` is ``draw(step(track(frame)))``; the three may run on three threads
    (``TrackingStage``, ``SteppingStage``, the caller's), the frames passing between them in
    order. With a ``neutral_picker`` the anchor y0 becomes the most neutral face of its
    window once the window closes. With a ``head`` follower the portrait's whole head turns,
    nods, tilts and moves as the driver's relative to the same anchor, and with a ``gaze``
    follower its eyes look as the driver's (a model that warps the portrait; one that redraws
    the crop keeps both still). Two requests may come from
    any thread: ``set_mirror``, which ``track`` reads once per frame at the frame's start,
    and ``recalibrate``, which ``step`` applies before its next frame."""

    def __init__(
        self,
        driver: StreamDriver,
        target: Target,
        tracker: FaceTracker,
        mirror: bool = False,
        neutral_picker: NeutralPicker | None = None,
        head: HeadFollower | None = None,
        gaze: GazeFollower | None = None,
    ) -> None:
        self.driver, self.target, self.tracker = driver, target, tracker
        self.head, self.gaze = head, gaze
        self._mirrored = threading.Event()
        self.set_mirror(mirror)
        self.neutral_picker = neutral_picker
        self.last_output = target.image
        self._warp_plan: WarpPlan | None = None
        self._requests = threading.Lock()
        self._recalibration: tuple[AlignedFace | None] | None = None  # (reference,) when asked

    @property
    def mirror(self) -> bool:
        """Whether source frames are mirrored (a selfie view) before tracking."""
        return self._mirrored.is_set()

    def set_mirror(self, mirrored: bool) -> None:
        """Mirror the source, or stop, from the next frame ``track`` takes on; safe from any thread."""
        if mirrored:
            self._mirrored.set()
        else:
            self._mirrored.clear()

    def process(self, frame: Frame) -> tuple[np.ndarray, FrameReport]:
        """frame (source image, any size) -> (output (H, W, 3) uint8 of the target's size, report)."""
        return self.draw(self.step(self.track(frame)))

    def track(self, frame: Frame) -> TrackedFrame:
        """Find the face in the (mirrored when ``mirror``) frame and align its crop."""
        began = time.perf_counter()
        image = np.ascontiguousarray(frame.image[:, ::-1]) if self._mirrored.is_set() else frame.image
        located = self.tracker.locate(image, frame.pts_s)
        located_at = time.perf_counter()
        if not located.found:
            return TrackedFrame(frame, located, _ms(began, located_at), 0.0)
        tracked = self.tracker.align(image, located)
        return TrackedFrame(frame, tracked, _ms(began, located_at), _ms(located_at, time.perf_counter()))

    def step(self, item: TrackedFrame) -> SteppedFrame:
        """Apply a pending recalibration, then step the engine on the tracked crop; without a
        face, leave the engine untouched."""
        self._apply_recalibration()
        tracked = item.tracked
        if not tracked.found:
            return SteppedFrame(item, None, 0.0)
        began = time.perf_counter()
        if self.neutral_picker is not None and (neutral := self.neutral_picker.offer(tracked)) is not None:
            self._anchor(neutral)
        generated = self.driver.step(tracked)
        moving_parts = self._head_motion(tracked), self._look(tracked, generated)
        return SteppedFrame(item, generated, _ms(began, time.perf_counter()), *moving_parts)

    def _head_motion(self, tracked: TrackResult) -> HeadSampling | None:
        """Where the portrait's head samples itself for the driver's pose, or None (it stays)."""
        if self.head is None or tracked.pose is None:
            return None
        motion = self.head.follow(tracked.pose, tracked.timestamp)
        if motion is None:
            return None
        return self._head_rig.sampling(motion)

    def _look(self, tracked: TrackResult, generated: Generated | None) -> GazeShift | None:
        """Where the portrait's eyes sample themselves for the driver's look, or None (they
        stay: no follower, no irises, or a model that redraws the crop)."""
        if self.gaze is None or not isinstance(generated, KeypointMotion):
            return None
        look = self.gaze.follow(iris_places(tracked.landmarks.points), tracked.timestamp)
        if look is None:
            return None
        return self._gaze_rig.shift(look)

    @cached_property
    def _head_rig(self) -> HeadRig:
        """The portrait's head, built at its first motion."""
        height, width = self.target.image.shape[:2]
        return HeadRig.build(self.target.landmarks.points, (width, height))

    @cached_property
    def _gaze_rig(self) -> GazeRig:
        """The portrait's eyes, built at their first look."""
        height, width = self.target.image.shape[:2]
        return GazeRig.build(self.target.landmarks.points, (width, height))

    def _anchor(self, reference: AlignedFace | None) -> None:
        """The engine's anchor, the head's and the look's: ``reference``, or the next frame stepped."""
        self.driver.recalibrate(reference)
        if self.head is not None:
            self.head.anchor(getattr(reference, "pose", None))
        if self.gaze is not None:
            landmarks = getattr(reference, "landmarks", None)
            self.gaze.anchor(None if landmarks is None else iris_places(landmarks.points))

    def draw(self, stepped: SteppedFrame) -> tuple[np.ndarray, FrameReport]:
        """Paste the generated result into the portrait; without one, hold the last output."""
        item, began = stepped.item, time.perf_counter()
        if not item.tracked.found:
            return self.last_output, FrameReport(False, item.tracked.reason, item.track_ms, 0.0, 0.0, 0.0)
        if stepped.generated is not None:
            self.last_output = self._draw(stepped.generated, stepped.head, stepped.gaze)
        timings = (item.track_ms, item.align_ms, stepped.engine_ms, _ms(began, time.perf_counter()))
        return self.last_output, FrameReport(True, None, *timings)

    def _draw(self, generated: Generated, head: HeadSampling | None, gaze: GazeShift | None) -> np.ndarray:
        """The whole portrait for a generated crop (pasted back) or keypoint motion (warped,
        the head moved by ``head``, the eyes by ``gaze``)."""
        if not isinstance(generated, KeypointMotion):
            return paste_back(self.target, generated)
        if generated.still and head is None and gaze is None:
            return self.target.image.copy()
        plan = self._plan(None if generated.still else generated.grid.shape[0])
        return plan.render(generated.grid, generated.mask, generated.colour, head, gaze)

    def _plan(self, grid_side: int | None) -> WarpPlan:
        """The portrait's WarpPlan for a grid of ``grid_side`` (None: any, no grid comes)."""
        if self._warp_plan is None or grid_side not in (None, self._warp_plan.grid_side):
            self._warp_plan = WarpPlan.build(self.target, grid_side or STILL_GRID_SIDE)
        return self._warp_plan

    def recalibrate(self, reference: AlignedFace | None = None) -> None:
        """The given face, else the next frame stepped, is y0; with a neutral picker, a new
        window then looks for a more neutral one. Safe from any thread: ``step`` applies it
        before its next frame."""
        with self._requests:
            self._recalibration = (reference,)

    def _apply_recalibration(self) -> None:
        with self._requests:
            asked, self._recalibration = self._recalibration, None
        if asked is None:
            return
        (reference,) = asked
        self._anchor(reference)
        if self.neutral_picker is not None and reference is None:
            self.neutral_picker.restart()

    def interrupt(self) -> None:
        """A step waiting on a remote engine gives up now, and every later one: the transfer
        is closing. Safe from any thread."""
        self.driver.interrupt()

    def close(self) -> None:
        self.driver.close()
        self.tracker.close()


class ThreadStage:
    """Runs ``work`` on its own thread, named ``name``, over the items ``upstream.get`` gives
    (None: none yet), and hands the results on, in order, through a queue of ``depth``.
    When the queue is full the stage waits, so nothing is dropped here. What stops
    ``upstream`` or ``work`` (an exception) is raised by ``get``, at that call and every later
    one. ``working``: whether ``work`` is running now (what a stalled loop waits on)."""

    def __init__(self, work: Callable, upstream, name: str, depth: int = 1) -> None:
        self.work, self.upstream, self.name = work, upstream, name
        self.working = False
        self._thread: HandoffThread = HandoffThread(self._run, name, depth)
        self._thread.start()

    def get(self, timeout: float | None = None):
        """The next result; None after ``timeout`` seconds without one."""
        item = self._thread.get(timeout)
        if isinstance(item, End):
            raise item.error
        return item

    def ask_to_stop(self) -> None:
        """Cue the thread to finish, without waiting (``close`` then waits for it)."""
        self._thread.ask_to_stop()

    def close(self) -> None:
        """Stop the thread and wait for it, at most STAGE_STOP_S; safe to call more than once."""
        self._thread.stop(timeout=STAGE_STOP_S)

    def _run(self) -> None:
        try:
            while not self._thread.stopping:
                item = self.upstream.get(timeout=STOP_POLL_S)
                if item is not None:
                    self._thread.put(self._work_on(item))
        except Exception as error:  # handed to the next stage by get()
            self._thread.put(End(error))

    def _work_on(self, item):
        self.working = True
        try:
            return self.work(item)
        finally:
            self.working = False


class TrackingStage(ThreadStage):
    """``transfer.track`` on its own thread over the frames of ``capture`` -> TrackedFrames;
    ``get`` raises CaptureEnded at the end of the source. A live capture drops at its
    newest-frame slot (where it is counted). Close it before the transfer (the tracker
    belongs to this thread while it runs)."""

    def __init__(self, transfer: FaceTransfer, capture: Capture, depth: int = 1) -> None:
        super().__init__(transfer.track, capture, "face tracking", depth)


class SteppingStage(ThreadStage):
    """``transfer.step`` on its own thread over what ``tracking`` hands on -> SteppedFrames,
    which the caller draws. Close it before ``tracking`` (the driver belongs to this thread
    while it runs); closing interrupts the driver, which can then only be closed."""

    def __init__(self, transfer: FaceTransfer, tracking: TrackingStage, depth: int = 1) -> None:
        super().__init__(transfer.step, tracking, "engine", depth)
        self.transfer = transfer

    def ask_to_stop(self) -> None:
        """Interrupt a step waiting on a remote engine and cue the thread to finish, without waiting."""
        self.transfer.interrupt()
        super().ask_to_stop()

    def close(self) -> None:
        """Interrupt a step waiting on a remote engine, then stop the thread."""
        self.ask_to_stop()
        super().close()


def _ms(start: float, end: float) -> float:
    return 1000.0 * (end - start)

