"""A sink that shows each output beside the frame that drove it (``rt-dtgan demo``)."""

from __future__ import annotations

import numpy as np

from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.sink import Sink
from rt_dtgan.media.source import Source


class SideBySideSink(Sink):
    """Writes into ``sink`` the next frame of ``driver`` (its own reader of the source, every
    frame in order, at ``sink``'s height) on the left of each output frame: the pairs match
    where the loop gives one output per source frame (``transfer``). Closes both."""

    def __init__(self, sink: Sink, driver: Source) -> None:
        driver_width, driver_height = driver.size
        if driver_height != sink.height or driver_width >= sink.width:
            raise SinkError(f"the driver's frames ({driver_width}x{driver_height}) do not fit beside {sink.description}")
        super().__init__(sink.description, sink.width - driver_width, sink.height, sink.fps)
        self.sink, self.driver = sink, driver

    def _write(self, frame: Frame) -> None:
        driver_frame = next(self.driver, None)
        if driver_frame is None:
            raise SinkError(f"{self.driver.description} ended before the output")
        self.sink.write(frame.with_image(np.hstack([driver_frame.image, frame.image])))

    def _release(self) -> None:
        self.driver.close()
        self.sink.close()
