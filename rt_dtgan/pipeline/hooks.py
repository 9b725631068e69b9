"""What a caller adds to the frame loop (``pipeline.loop``): a light module, so that the
commands can define their hooks without importing the pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rt_dtgan.media import Frame
    from rt_dtgan.pipeline.transfer import FaceTransfer, FrameReport


class FrameHooks:
    """What a caller adds to the frame loop; every default does nothing. A request is a
    WindowAction or its value: 'recalibrate', 'mirror' or 'quit'."""

    def written(self, frame: Frame, report: FrameReport) -> None:
        """``frame``, the output with its source frame's index and times, went to the sinks."""

    def requests(self) -> Sequence[str]:
        """The requests that came since the last call, oldest first."""
        return ()

    def applied(self, request: str, transfer: FaceTransfer) -> None:
        """``request`` was applied to ``transfer`` ('quit': the loop ends after this frame)."""

    def status(self, report: FrameReport) -> None:
        """Time for a status line; ``report`` is the last frame's."""

    def waiting(self, stalled: str) -> bool:
        """No frame came within the loop's ``wait_s``; ``stalled`` is what it waits on: 'source',
        'face tracking' or 'engine'. True waits on, False ends the loop."""
        return True
