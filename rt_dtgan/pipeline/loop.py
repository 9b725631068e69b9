"""The frame loop, written once for ``rt-dtgan transfer``, ``rt-dtgan live`` and the
benchmarks: source -> track -> render -> sinks.

Tracking runs on its own thread (``TrackingStage``), the engine on another
(``SteppingStage``); drawing the portrait and the hand-over to the sinks run on the
caller's thread, and each sink may write on its own (``ThreadedSink``).
After each frame, and every REQUEST_POLL_S while none comes, the loop applies the requests
its hooks bring (the preview window's hotkeys, the control channel's commands) in order;
after each frame, at most every STATUS_INTERVAL_S, it lets them show a status line, and
while none comes, tells them what is stalled. Closing, it interrupts a step waiting on a
remote engine and waits a bounded time for each thread, so that a quit (or Ctrl-C) ends it
whatever is stalled. numpy's BLAS runs on one thread meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from threadpoolctl import threadpool_limits

from rt_dtgan.media import Capture, CaptureEnded, Sink, WindowAction
from rt_dtgan.pipeline.hooks import FrameHooks
from rt_dtgan.pipeline.transfer import FaceTransfer, SteppedFrame, SteppingStage, TrackingStage

STATUS_INTERVAL_S = 0.5
REQUEST_POLL_S = 0.1


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
    tracking raised. ``wait_s``: how long to wait for a frame before asking ``hooks.waiting``,
    and again after each such wait (None: for ever). Closes neither the transfer nor the sink
    (but interrupts its driver: a remote one can then only be closed)."""
    hooks = hooks or FrameHooks()
    written, last_status = 0, 0.0
    with single_threaded_blas():
        tracking = TrackingStage(transfer, capture)
        stepping = SteppingStage(transfer, tracking)
        try:
            while frames is None or written < frames:
                stepped = _next_frame(tracking, stepping, transfer, hooks, wait_s)
                if stepped is None:
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
            # Both cued at once, so that their waits overlap rather than add up.
            stepping.ask_to_stop()
            tracking.ask_to_stop()
            stepping.close()
            tracking.close()
    return written


def _next_frame(
    tracking: TrackingStage, stepping: SteppingStage, transfer: FaceTransfer, hooks: FrameHooks, wait_s: float | None
) -> SteppedFrame | None:
    """The next stepped frame, applying the hooks' requests every REQUEST_POLL_S while none
    comes, and telling ``hooks.waiting`` what is stalled after each ``wait_s`` without one;
    None when a request or ``hooks.waiting`` ends the loop."""
    since = time.monotonic()
    while (stepped := stepping.get(timeout=REQUEST_POLL_S)) is None:
        if _apply_requests(hooks.requests(), transfer, hooks):
            return None
        if wait_s is not None and time.monotonic() - since >= wait_s:
            if not hooks.waiting(_stalled(tracking, stepping)):
                return None
            since = time.monotonic()
    return stepped


def _stalled(tracking: TrackingStage, stepping: SteppingStage) -> str:
    """What keeps the next frame: 'engine' or 'face tracking' while busy with one, else 'source'."""
    busy = [stage.name for stage in (stepping, tracking) if stage.working]
    return busy[0] if busy else "source"


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
