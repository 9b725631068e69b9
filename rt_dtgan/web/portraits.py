"""Portraits sent by the page: checked (size, an image, a face) and prepared once, then kept
under a random id for the stream that starts with it. Every refusal is a PortraitRefused
whose message the page shows as it is."""

from __future__ import annotations

import secrets
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import av
import numpy as np

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face import Target
from rt_dtgan.face.errors import FaceError, FaceNotFoundError
from rt_dtgan.face.images import fit_image, load_image_and_size
from rt_dtgan.face.target import prepare_target

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 50_000_000  # refused before decoding: a small file may still describe a huge picture
# The output's sides are cropped to multiples of this: at 640x638, Chromium showed the bottom of
# aiortc's VP8 frames green once the encoder had restarted at a new bitrate (docs/web.md).
VIDEO_BLOCK = 16
KEPT_PORTRAITS = 32  # the oldest prepared portrait is forgotten beyond this many


class PortraitRefused(ValueError):
    """An upload that cannot be a portrait; the message says why, for the person."""


def prepare_upload(data: bytes, name: str, config: PreprocessConfig, max_side: int | None) -> Target:
    """An uploaded file's bytes -> a Target whose sides are multiples of VIDEO_BLOCK, its
    longer side at most ``max_side``. Raises PortraitRefused: too large, not an image, no face."""
    if not data:
        raise PortraitRefused(f"{name} is empty: choose a photo with a face")
    if len(data) > MAX_UPLOAD_BYTES:
        raise PortraitRefused(f"{name} is {len(data) / 2**20:.1f} MiB; a portrait may be at most {MAX_UPLOAD_BYTES // 2**20} MiB")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        not_an_image = PortraitRefused(f"{name} is not an image rt-dtgan can read (PNG, JPEG, WebP, BMP, ...)")
        _check_pixels(path, name, not_an_image)
        try:
            image, _ = load_image_and_size(path, max_side)
        except FaceError:
            raise not_an_image from None
    return prepare_image(image, name, config, max_side)


def _check_pixels(path: Path, name: str, not_an_image: PortraitRefused) -> None:
    """Decode the file's first picture with FFmpeg's limit of MAX_PIXELS, so that a small
    file describing a huge picture is refused before it is ever held whole."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise not_an_image
            stream = container.streams.video[0]
            stream.codec_context.options = {"max_pixels": str(MAX_PIXELS)}
            next(container.decode(stream))
    except av.ArgumentError:  # the decoder refused to open for the picture's size
        raise PortraitRefused(f"{name} is too large a picture: a portrait may have at most {MAX_PIXELS // 10**6} million pixels") from None
    except (av.FFmpegError, OSError, StopIteration):
        raise not_an_image from None


def prepare_image(image: np.ndarray, name: str, config: PreprocessConfig, max_side: int | None) -> Target:
    """(H, W, 3) uint8 RGB -> a Target cropped to sides that are multiples of VIDEO_BLOCK (at most
    VIDEO_BLOCK - 1 rows and columns lost); PortraitRefused without a face."""
    fitted = fit_image(image, max_side)
    height, width = fitted.shape[:2]
    if min(height, width) < VIDEO_BLOCK:
        raise PortraitRefused(f"{name} is {width}x{height} pixels: too small for a face")
    blocks = np.ascontiguousarray(fitted[: height - height % VIDEO_BLOCK, : width - width % VIDEO_BLOCK])
    try:
        return prepare_target(blocks, config, name=name)
    except FaceNotFoundError:
        raise PortraitRefused(f"no face found in {name}: choose a photo where one face looks at the camera") from None


class PortraitStore:
    """Prepared portraits under random ids, the newest KEPT_PORTRAITS of them; thread-safe."""

    def __init__(self) -> None:
        self._portraits: OrderedDict[str, Target] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, target: Target) -> str:
        portrait_id = secrets.token_urlsafe(12)
        with self._lock:
            self._portraits[portrait_id] = target
            while len(self._portraits) > KEPT_PORTRAITS:
                self._portraits.popitem(last=False)
        return portrait_id

    def get(self, portrait_id: str) -> Target | None:
        with self._lock:
            return self._portraits.get(portrait_id)
