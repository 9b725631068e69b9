"""A virtual camera (pyvirtualcam, the optional extra 'vcam') that video-call apps and OBS see:
``virtualcam`` for the first, ``virtualcam:DEVICE`` (e.g. /dev/video10) for one."""

from __future__ import annotations

import sys
from fractions import Fraction

from rt_dtgan.media.errors import SinkError
from rt_dtgan.media.frames import Frame
from rt_dtgan.media.sink import Sink, SinkKind
from rt_dtgan.optional import require


def backend_advice(platform: str = sys.platform) -> str:
    """One sentence: what to install for a virtual camera device on ``platform``."""
    if platform.startswith("linux"):
        return (
            "install v4l2loopback and load it: sudo apt install v4l2loopback-dkms && "
            "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=rt-dtgan"
        )
    if platform == "darwin":
        return (
            "install OBS Studio and click Start Virtual Camera, then Stop, once (on macOS 14 or newer pyvirtualcam "
            "cannot reach OBS's camera extension: send udp://127.0.0.1:5000 to an OBS Media Source instead)"
        )
    if platform == "win32":
        return "install OBS Studio 26 or newer, which provides the OBS Virtual Camera (or install Unity Capture)"
    return f"virtual cameras are not supported on {platform}"


class VirtualCameraSink(Sink):
    """Sends frames to a virtual camera; ``device`` picks one (e.g. /dev/video10) or None for the first."""

    def __init__(self, width: int, height: int, fps: float | Fraction, device: str | None = None) -> None:
        super().__init__(f"virtual camera {device or ''}".strip(), width, height, fps)
        pyvirtualcam = require("pyvirtualcam", "the virtual camera output")
        try:
            self._camera = pyvirtualcam.Camera(
                width, height, float(self.fps), fmt=pyvirtualcam.PixelFormat.RGB, device=device, print_fps=False
            )
        except RuntimeError as error:
            raise SinkError(f"no virtual camera is available ({error}): {backend_advice()}") from error
        self.device = self._camera.device

    def _write(self, frame: Frame) -> None:
        self._camera.send(frame.image)

    def _release(self) -> None:
        self._camera.close()


def _is_virtual_camera(spec: str) -> bool:
    return spec == "virtualcam" or spec.startswith("virtualcam:")


def _open_virtual_camera(spec: str, width: int, height: int, fps: float | Fraction) -> VirtualCameraSink:
    return VirtualCameraSink(width, height, fps, device=spec.partition(":")[2] or None)


VIRTUAL_CAMERA_OUTPUT = SinkKind("virtualcam[:DEVICE]", _is_virtual_camera, _open_virtual_camera)
