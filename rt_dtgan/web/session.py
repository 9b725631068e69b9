"""One browser's stream: its camera frames through ``pipeline.run_frames`` (the loop of
``rt-dtgan live``) on a thread of its own, the outputs to its WebRTC track, the page's
controls applied between frames, its figures for the page's status line."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from rt_dtgan.face import Target
from rt_dtgan.face.head import check_pose_settings
from rt_dtgan.media import LatencyMeter, RateMeter, WindowAction
from rt_dtgan.pipeline import FaceTransfer, FrameHooks, run_frames
from rt_dtgan.web.bridge import OutputTrack, PushedCapture, TrackSink

WAIT_S = 1.0  # the loop asks whether to keep waiting after this long without a camera frame
CAMERA_GONE_S = 20.0  # the stream ends after this long without a camera frame (a browser gone without a word)
CLOSE_WAIT_S = 2.0  # closing waits this long for the loop's thread (it ends within 2 s: pipeline.loop)
STRENGTH_RANGE = (0.0, 3.0)


class ControlRefused(ValueError):
    """A control message the session cannot apply; the message says why."""


@dataclass(frozen=True)
class SessionSettings:
    """What the page asks at start: mirror the camera, expression ``strength`` (0..3), head
    ``pose`` 'follow' or 'lock' and ``pose_strength`` (0..2)."""

    mirror: bool = False
    strength: float = 1.0
    pose: str = "follow"
    pose_strength: float = 1.0

    @classmethod
    def from_page(cls, given: dict) -> SessionSettings:
        """The page's JSON object -> checked settings; raises ControlRefused."""
        settings = cls(
            mirror=bool(given.get("mirror", False)),
            strength=_number(given.get("strength", 1.0), STRENGTH_RANGE, "expression strength"),
            pose=str(given.get("pose", "follow")),
            pose_strength=_number(given.get("pose_strength", 1.0), (0.0, 2.0), "pose strength"),
        )
        try:
            check_pose_settings(settings.pose, settings.pose_strength)
        except ValueError as error:
            raise ControlRefused(str(error)) from None
        return settings


# (target, settings) -> an open FaceTransfer: the command's engine, tracker and head follower.
TransferOpener = Callable[[Target, SessionSettings], FaceTransfer]


class WebSession:
    """``transfer`` driven by ``capture``'s frames into ``output`` until ``close`` or the
    camera's end; ``ended`` is set once the loop's thread has closed the transfer."""

    def __init__(self, transfer: FaceTransfer, output: OutputTrack) -> None:
        height, width = transfer.target.image.shape[:2]
        self.transfer, self.output = transfer, output
        self.capture = PushedCapture()
        self.sink = TrackSink(output, width, height)
        self.hooks = _SessionHooks()
        self.error: str | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web session", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def control(self, message: dict) -> str:
        """Apply one control of the page -> what was done, in words; raises ControlRefused."""
        kind = message.get("type")
        if kind == "recalibrate":
            self.transfer.recalibrate()
            return "recalibrated: the next frame is the neutral face"
        if kind == "mirror":
            self.transfer.set_mirror(bool(message.get("on")))
            return f"mirror {'on' if self.transfer.mirror else 'off'}"
        if kind == "strength":
            return self._set_strength(_number(message.get("value"), STRENGTH_RANGE, "expression strength"))
        if kind == "pose":
            return self._set_pose(str(message.get("mode")))
        raise ControlRefused(f"unknown control {kind!r}: recalibrate, mirror, strength or pose")

    def figures(self) -> dict:
        """For the page's status: frames shown, frames/s, server latency (camera frame's
        arrival to the output's hand-over, median ms), whether a face is found and why not."""
        return self.hooks.figures() | {"dropped": self.capture.status.dropped, "error": self.error}

    def close(self) -> None:
        """End the stream and wait, at most CLOSE_WAIT_S, for the loop to close the transfer."""
        self.hooks.quit.set()
        self.capture.end()
        if self._thread.is_alive():
            self._thread.join(CLOSE_WAIT_S)
        elif not self.ended.is_set():
            self._close_parts()

    def _run(self) -> None:
        try:
            run_frames(self.transfer, self.capture, self.sink, self.hooks, wait_s=WAIT_S)
        except Exception as error:  # the page is told; the server goes on
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self._close_parts()

    def _close_parts(self) -> None:
        self.sink.close()
        self.transfer.close()
        self.ended.set()

    def _set_strength(self, strength: float) -> str:
        set_strength = getattr(self.transfer.driver, "set_strength", None)
        if set_strength is None:
            raise ControlRefused("this engine takes the expression strength only at start: press Start again")
        try:
            set_strength(strength)
        except ValueError as error:  # a model that redraws the crop has no strength
            raise ControlRefused(str(error)) from None
        if self.transfer.gaze is not None:  # the look follows with the expression's strength, as in live
            self.transfer.gaze.strength = strength
        return f"expression strength {strength:g}"

    def _set_pose(self, mode: str) -> str:
        head = self.transfer.head
        try:
            check_pose_settings(mode, head.strength)
        except ValueError as error:
            raise ControlRefused(str(error)) from None
        head.mode = mode
        return f"pose {mode}"


class _SessionHooks(FrameHooks):
    """Counts and times the frames written; ends the loop once ``quit`` is set, or after
    CAMERA_GONE_S without a camera frame."""

    def __init__(self) -> None:
        self.quit = threading.Event()
        self.latency, self.rate = LatencyMeter(window=60), RateMeter()
        self.frames, self.found, self.reason = 0, False, "waiting for the camera"
        self.waits_for_the_camera = 0

    def written(self, frame, report) -> None:
        self.waits_for_the_camera = 0
        self.latency.add(frame)
        self.rate.tick()
        self.frames += 1
        self.found, self.reason = report.found, report.reason

    def requests(self) -> list[str]:
        return [WindowAction.QUIT.value] if self.quit.is_set() else []

    def waiting(self, stalled: str) -> bool:
        self.reason = f"waiting for the {stalled}"
        self.waits_for_the_camera = self.waits_for_the_camera + 1 if stalled == "source" else 0
        return not self.quit.is_set() and self.waits_for_the_camera * WAIT_S < CAMERA_GONE_S

    def figures(self) -> dict:
        return {
            "frames": self.frames,
            "fps": round(self.rate.rate, 1),
            "server_ms": round(self.latency.summary().p50_ms, 1) if self.frames else None,
            "face": self.found,
            "reason": None if self.found else self.reason,
        }


def _number(value, limits: tuple[float, float], what: str) -> float:
    low, high = limits
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ControlRefused(f"{what} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)
