"""The frame loop, written once for ``rt-dtgan transfer``, ``rt-dtgan live`` and the
benchmarks: source -> track -> render -> sinks.

Tracking runs on its own thread (``TrackingStage``), the engine on another
(``SteppingStage``); drawing the portrait and the hand-over to the sinks run on the
caller's thread, and each sink may write on its own (``ThreadedSink``).
After each frame the loop applies the requests its hooks bring (the preview window's
hotkeys, the control channel's commands) in order, then, at most every
STATUS_INTERVAL_S, lets them show a status line. numpy's BLAS runs on one thread meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from threadpoolctl import threadpool_limits

from rt_dtgan.media import Capture, CaptureEnded, Sink, WindowAction
from rt_dtgan.pipeline.hooks import FrameHooks
from rt_dtgan.pipeline.transfer import FaceTransfer, SteppingStage, TrackingStage

STATUS_INTERVAL_S = 0.5


def run_frames(
    transfer: FaceTransfer,
    capture: Capture,
    sink: Sink,
    hooks: FrameHooks | None = None,
    frames: int | None = None,
    wait_s: float | None = None,
) -> int:
    """Render every frame of ``capture`` into ``sink`` (each output the target's size) until
    ``frames`` are written, the source ends, a hook asks to quit or to stop waiting; ->
    frames written. Raises CaptureEnded when the source failed rather than ran out, and what
    tracking raised. ``wait_s``: how long to wait for a frame before asking ``hooks.waiting``
    (None: for ever). Closes neither the transfer nor the sink."""
    hooks = hooks or FrameHooks()
    written, last_status = 0, 0.0
    with single_threaded_blas():
        tracking = TrackingStage(transfer, capture)
        stepping = SteppingStage(transfer, tracking)
        try:
            while frames is None or written < frames:
                stepped = stepping.get(timeout=wait_s)
                if stepped is None:
                    if hooks.waiting():
                        continue
                    break
                image, report = transfer.draw(stepped)
                output = stepped.item.frame.with_image(image)
                sink.write(output)
                written += 1
                hooks.written(output, report)
                if _apply_requests(hooks.requests(), transfer, hooks):
                    break
                if time.monotonic() - last_status > STATUS_INTERVAL_S:
                    last_status = time.monotonic()
                    hooks.status(report)
        except CaptureEnded:
            if capture.status.error is not None:
                raise
        finally:
            stepping.close()
            tracking.close()
    return written


def single_threaded_blas() -> threadpool_limits:
    """numpy's BLAS on one thread while the loop runs (restored after). Its small per-frame
    products gain nothing from a second thread, whose spinning cost 14 ms of CPU a frame
    beside the tracker and the engine (bench/latency.py, docs/performance.md)."""
    return threadpool_limits(limits=1, user_api="blas")


def _apply_requests(requests: Sequence[str], transfer: FaceTransfer, hooks: FrameHooks) -> bool:
    """Apply ``requests`` in order, telling ``hooks`` of each; True at a 'quit' (those after it are dropped)."""
    for request in requests:
        if request == WindowAction.RECALIBRATE:
            transfer.recalibrate()
        elif request == WindowAction.MIRROR:
            transfer.set_mirror(not transfer.mirror)
        elif request != WindowAction.QUIT:
            raise ValueError(f"unknown request {request!r}; known: {[action.value for action in WindowAction]}")
        hooks.applied(request, transfer)
        if request == WindowAction.QUIT:
            return True
    return False
