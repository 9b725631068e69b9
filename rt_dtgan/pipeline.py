"""One source stream driving one target portrait: track the face, step the engine, paste
the generated face back into the whole portrait.

The same ``FaceTransfer.process`` runs live (``rt-dtgan live``) and offline
(``rt-dtgan transfer``), so both give the same frames for the same input. When the face is
lost, the output holds the last good frame (the target itself before the first one) and
the engine is not stepped, so its LSTM state never sees a frame without a face.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import zmq

from rt_dtgan.face import FaceTracker, NeutralPicker, Target, TrackResult, paste_back
from rt_dtgan.face.render import WarpPlan
from rt_dtgan.media import Capture, Frame
from rt_dtgan.runtime.engine import AlignedFace, Generated, StreamEngine
from rt_dtgan.runtime.warping import KeypointMotion

# How often a waiting pipeline thread looks whether it is asked to stop, in seconds.
STAGE_POLL_S = 0.1


class StreamDriver(Protocol):
    """Makes generated frames for one stream, in-process or on a remote worker."""

    def step(self, face: AlignedFace) -> Generated | None:
        """An aligned face -> a generated crop or keypoint motion, or None when none is available yet."""

    def recalibrate(self, reference: AlignedFace | None = None) -> None:
        """Make the ``reference`` face the neutral anchor now, or, without one, the next frame."""

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


class FaceTransfer:
    """Source frames in, whole-portrait frames out (the target image's size).

    ``process(frame)`` is ``render(track(frame))``; the two halves may run on two threads
    (``TrackingStage``), the frames passing between them in order. With a ``neutral_picker``
    the anchor y0 becomes the most neutral face of its window once the window closes."""

    def __init__(
        self,
        driver: StreamDriver,
        target: Target,
        tracker: FaceTracker,
        mirror: bool = False,
        neutral_picker: NeutralPicker | None = None,
    ) -> None:
        self.driver, self.target, self.tracker = driver, target, tracker
        self.mirror = mirror
        self.neutral_picker = neutral_picker
        self.last_output = target.image
        self._warp_plan: WarpPlan | None = None

    def process(self, frame: Frame) -> tuple[np.ndarray, FrameReport]:
        """frame (source image, any size) -> (output (H, W, 3) uint8 of the target's size, report)."""
        return self.render(self.track(frame))

    def track(self, frame: Frame) -> TrackedFrame:
        """Find the face in the (mirrored when ``mirror``) frame and align its crop."""
        began = time.perf_counter()
        image = np.ascontiguousarray(frame.image[:, ::-1]) if self.mirror else frame.image
        located = self.tracker.locate(image, frame.pts_s)
        located_at = time.perf_counter()
        if not located.found:
            return TrackedFrame(frame, located, _ms(began, located_at), 0.0)
        tracked = self.tracker.align(image, located)
        return TrackedFrame(frame, tracked, _ms(began, located_at), _ms(located_at, time.perf_counter()))

    def render(self, item: TrackedFrame) -> tuple[np.ndarray, FrameReport]:
        """Step the engine on the tracked crop and paste the result into the portrait; without
        a face, hold the last output and leave the engine untouched."""
        tracked = item.tracked
        if not tracked.found:
            return self.last_output, FrameReport(False, tracked.reason, item.track_ms, 0.0, 0.0, 0.0)
        began = time.perf_counter()
        if self.neutral_picker is not None and (neutral := self.neutral_picker.offer(tracked)) is not None:
            self.driver.recalibrate(neutral)
        generated = self.driver.step(tracked)
        stepped_at = time.perf_counter()
        if generated is not None:
            self.last_output = self._draw(generated)
        timings = (item.track_ms, item.align_ms, _ms(began, stepped_at), _ms(stepped_at, time.perf_counter()))
        return self.last_output, FrameReport(True, None, *timings)

    def _draw(self, generated: Generated) -> np.ndarray:
        """The whole portrait for a generated crop (pasted back) or keypoint motion (warped)."""
        if not isinstance(generated, KeypointMotion):
            return paste_back(self.target, generated)
        if generated.still:
            return self.target.image.copy()
        grid_side = generated.grid.shape[0]
        if self._warp_plan is None or self._warp_plan.grid_side != grid_side:
            self._warp_plan = WarpPlan.build(self.target, grid_side)
        return self._warp_plan.render(generated.grid, generated.mask, generated.colour)

    def recalibrate(self, reference: AlignedFace | None = None) -> None:
        """The given face, else the next frame, is y0; with a neutral picker, a new window
        then looks for a more neutral one."""
        self.driver.recalibrate(reference)
        if self.neutral_picker is not None and reference is None:
            self.neutral_picker.restart()

    def close(self) -> None:
        self.driver.close()
        self.tracker.close()


class TrackingStage:
    """Runs ``transfer.track`` on its own thread over the frames of ``capture`` and hands
    them on, in order, through a queue of ``depth`` frames; the caller renders them. When
    the queue is full the stage waits, so a lossless capture loses nothing, and a live
    capture drops at its newest-frame slot (where it is counted). Close it before the
    transfer (the tracker belongs to this thread while it runs)."""

    def __init__(self, transfer: FaceTransfer, capture: Capture, depth: int = 1) -> None:
        self.transfer, self.capture = transfer, capture
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="face tracking", daemon=True)
        self._thread.start()

    def get(self, timeout: float | None = None) -> TrackedFrame | None:
        """The next tracked frame; None after ``timeout`` seconds without one. Raises what
        stopped the stage: CaptureEnded at the end of the source, or the tracker's error."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            self._queue.put(item)  # every later call raises it too
            raise item
        return item

    def close(self) -> None:
        """Stop the thread and wait for it; safe to call more than once."""
        self._stopping.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(timeout=0.05)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                frame = self.capture.get(timeout=STAGE_POLL_S)
                if frame is not None:
                    self._put(self.transfer.track(frame))
        except Exception as error:  # handed to the rendering thread by get()
            self._put(error)

    def _put(self, item: TrackedFrame | Exception) -> None:
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=STAGE_POLL_S)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()


def _ms(start: float, end: float) -> float:
    return 1000.0 * (end - start)


class RemoteDriver:
    """A stream on a remote worker (a connected StreamClient). Live (``blocking`` False):
    submit the newest face and take the newest result, or None while none has arrived.
    Offline (``blocking`` True): exactly one result per face. Faces go with their mesh where
    the worker's model reads meshes or warps; results are what LocalDriver gives: a crop or
    a KeypointMotion, ``strength`` scaling a warping model's motion."""

    def __init__(
        self, client, target: AlignedFace, reference: AlignedFace | None, blocking: bool, strength: float = 1.0
    ) -> None:
        self.client, self.blocking = client, blocking
        reference_crop, reference_mesh = (None, None) if reference is None else (reference.crop, self._mesh(reference))
        client.open(
            target.crop, reference_crop, target_mesh=self._mesh(target), reference_mesh=reference_mesh, strength=strength
        )

    def step(self, face: AlignedFace) -> Generated | None:
        if self.blocking:
            return self.client.process(face.crop, mesh=self._mesh(face)).generated
        self.client.submit(face.crop, mesh=self._mesh(face))
        result = self.client.poll()
        return None if result is None else result.generated

    def recalibrate(self, reference: AlignedFace | None = None) -> None:
        if reference is None:
            self.client.recalibrate()
        else:
            self.client.recalibrate(reference.crop, reference_mesh=self._mesh(reference))

    def close(self) -> None:
        self.client.close()

    def _mesh(self, face: AlignedFace) -> np.ndarray | None:
        """The face's mesh where the worker's model needs it, else None."""
        return face.mesh if self.client.model.needs_mesh else None


CONTROL_COMMANDS = ("recalibrate", "mirror", "quit")


class ControlChannel:
    """Commands for a running ``live`` from other programs (a hotkey tool, a stream deck):
    a ZeroMQ REP socket on loopback taking JSON ``{"command": "recalibrate" | "mirror" |
    "quit"}`` and answering ``{"ok": true}`` or ``{"ok": false, "error": "..."}``."""

    def __init__(self, address: str) -> None:
        from rt_dtgan.transport.security import SecurityError, is_local_address

        if not is_local_address(address):
            raise SecurityError(f"the control channel binds to this machine only (tcp://127.0.0.1:PORT or ipc://PATH), not {address}")
        self.socket = zmq.Context.instance().socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, 4096)
        self.socket.bind(address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def poll(self) -> list[str]:
        """The commands received since the last call, without waiting (called every frame)."""
        commands = []
        while self.socket.poll(0, zmq.POLLIN):
            try:
                command = json.loads(self.socket.recv())["command"]
                if command not in CONTROL_COMMANDS:
                    raise ValueError(f"unknown command {command!r}; known: {list(CONTROL_COMMANDS)}")
            except (ValueError, KeyError, TypeError) as error:
                self.socket.send_json({"ok": False, "error": str(error)})
                continue
            commands.append(command)
            self.socket.send_json({"ok": True})
        return commands

    def close(self) -> None:
        self.socket.close()
