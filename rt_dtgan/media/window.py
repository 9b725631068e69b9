"""A preview window (OpenCV highgui) with an FPS and latency overlay, and hotkeys.

Keys: ``c`` recalibrate, ``m`` mirror, ``q`` or Esc quit (closing the window also quits).
The window only reports them: ``poll_keys()`` returns the actions pressed since the last
call, and the caller acts on them.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from enum import Enum
from fractions import Fraction
from types import ModuleType

import numpy as np

from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.pacing import LatencyMeter, RateMeter
from rt_dtgan.media.sink import Sink, SinkKind


class WindowAction(str, Enum):
    """What a hotkey asks for; compares equal to its value ('recalibrate', 'mirror', 'quit')."""

    RECALIBRATE = "recalibrate"
    MIRROR = "mirror"
    QUIT = "quit"


ESCAPE_KEY = 27
KEY_ACTIONS = {
    ord("c"): WindowAction.RECALIBRATE,
    ord("m"): WindowAction.MIRROR,
    ord("q"): WindowAction.QUIT,
    ESCAPE_KEY: WindowAction.QUIT,
}
PENDING_ACTIONS_LIMIT = 16


def check_display(platform: str = sys.platform, environ: Mapping[str, str] = os.environ) -> None:
    """Raise SinkError when there is no display to open a window on (Linux without $DISPLAY)."""
    if platform.startswith("linux") and not environ.get("DISPLAY"):
        raise SinkError(
            "the preview window needs a display, and $DISPLAY is not set (no desktop session, or over ssh "
            "without -X); use another output, such as virtualcam, udp://127.0.0.1:5000 or out.mp4"
        )


def _import_cv2() -> ModuleType:
    import cv2

    return cv2


def draw_overlay(bgr: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Write ``lines`` at the top left of an (H, W, 3) uint8 BGR image, in place, white on a
    dark outline so it reads on any background; returns the image."""
    cv2 = _import_cv2()
    scale = max(0.4, bgr.shape[0] / 720)
    line_height = round(28 * scale)
    for number, text in enumerate(lines, start=1):
        origin = (round(10 * scale), number * line_height)
        cv2.putText(bgr, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(bgr, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return bgr


def render_preview(frame: Frame, fps: float, latency_ms: float) -> np.ndarray:
    """The frame as an (H, W, 3) uint8 BGR image with the FPS and latency overlay."""
    bgr = np.ascontiguousarray(frame.image[..., ::-1])
    return draw_overlay(bgr, [f"{fps:5.1f} fps", f"latency {latency_ms:4.0f} ms"])


class PreviewWindow(Sink):
    """Shows frames in a window titled ``title``; see ``poll_keys()`` for the hotkeys. Its GUI
    runs on the thread that writes, so open_sinks gives it no thread of its own."""

    writes_on_own_thread = False

    def __init__(self, width: int, height: int, fps: float | Fraction, title: str = "rt-dtgan") -> None:
        super().__init__(f"preview window {title!r}", width, height, fps)
        check_display()
        self._cv2 = _import_cv2()
        self._title = title
        self._rate = RateMeter()
        self._latency = LatencyMeter(window=30)
        self._actions: collections.deque[WindowAction] = collections.deque(maxlen=PENDING_ACTIONS_LIMIT)
        try:
            self._cv2.namedWindow(title, self._cv2.WINDOW_NORMAL | self._cv2.WINDOW_KEEPRATIO)
            self._cv2.resizeWindow(title, width, height)
        except self._cv2.error as error:
            raise SinkError(f"cannot open the {self.description}: {error}") from error

    def poll_keys(self) -> list[WindowAction]:
        """The actions asked for since the last call, oldest first (processes window events)."""
        if not self._closed:
            self._process_events()
        actions = list(self._actions)
        self._actions.clear()
        return actions

    def _write(self, frame: Frame) -> None:
        self._rate.tick()
        self._latency.add(frame)
        preview = render_preview(frame, self._rate.rate, self._latency.summary().p50_ms)
        self._cv2.imshow(self._title, preview)
        self._process_events()

    def _process_events(self) -> None:
        key = self._cv2.waitKey(1)
        if key >= 0 and (key & 0xFF) in KEY_ACTIONS:
            self._actions.append(KEY_ACTIONS[key & 0xFF])
        if self._cv2.getWindowProperty(self._title, self._cv2.WND_PROP_VISIBLE) < 1:
            self._actions.append(WindowAction.QUIT)

    def _release(self) -> None:
        with contextlib.suppress(self._cv2.error):  # the user may have closed it already
            self._cv2.destroyWindow(self._title)
        self._cv2.waitKey(1)


def _open_window(spec: str, width: int, height: int, fps: float | Fraction) -> PreviewWindow:
    return PreviewWindow(width, height, fps)


WINDOW_OUTPUT = SinkKind("window", lambda spec: spec == "window", _open_window)
