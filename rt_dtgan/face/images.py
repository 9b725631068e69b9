"""Loading still images as uint8 RGB arrays with PyAV, and fast area downscaling.

Every image leaves this module as a C-contiguous ``(H, W, 3) uint8`` RGB array.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from rt_dtgan.face.errors import FaceError

WHITE = 255


def load_image(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Decode the image file at ``path`` -> (H, W, 3) uint8 RGB.

    Any format FFmpeg decodes as a still (PNG, JPEG, BMP, TIFF, WebP, ...): grayscale is
    expanded to three channels, 16-bit samples are scaled to 8 bits, palette images are
    expanded, and transparency (an alpha channel or a palette with transparent entries) is
    composited over WHITE, so transparent backgrounds become white. With ``max_side`` the
    image is area-downscaled while decoding so that its longer side is at most ``max_side``
    (a huge image then never exists at full resolution in RGB). EXIF orientation is not
    applied; a video file gives its first frame. A missing, unreadable or non-image file
    raises FaceError naming the file.
    """
    return load_image_and_size(path, max_side)[0]


def load_image_and_size(path: str | Path, max_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """As load_image, with the file's own (width, height), before any downscaling."""
    path = Path(path)
    if not path.is_file():
        raise FaceError(f"no image file at {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FaceError(f"not an image file (no picture stream): {path}")
            frame = next(container.decode(video=0))
            return _frame_to_rgb(frame, max_side), (frame.width, frame.height)
    except (av.FFmpegError, OSError, StopIteration) as error:
        raise FaceError(f"cannot decode image file {path}: {error}") from error


def _frame_to_rgb(frame: av.VideoFrame, max_side: int | None) -> np.ndarray:
    width, height = _fitted_size(frame.width, frame.height, max_side)
    components = frame.format.components
    has_alpha = frame.format.has_palette or any(component.is_alpha for component in components)
    deep = any(component.bits > 8 for component in components)
    pixel_format = {(False, False): "rgb24", (True, False): "rgba", (False, True): "rgb48le", (True, True): "rgba64le"}
    converted = frame.reformat(
        width=width, height=height, format=pixel_format[has_alpha, deep], interpolation="AREA"
    ).to_ndarray()
    if deep:  # swscale's own 16-to-8-bit conversion is off by up to 2 levels; round exactly instead
        converted = ((converted.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if has_alpha:
        converted = composite_over_white(converted)
    return np.ascontiguousarray(converted)


def _fitted_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    if max_side is None or max(width, height) <= max_side:
        return width, height
    factor = max_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def composite_over_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W, 3) uint8 RGB over a white background."""
    alpha = rgba[..., 3:].astype(np.uint16)
    blended = (rgba[..., :3].astype(np.uint16) * alpha + WHITE * (255 - alpha) + 127) // 255
    return blended.astype(np.uint8)


def check_rgb_image(image: np.ndarray, what: str = "image") -> None:
    """Raise FaceError unless ``image`` is a non-empty (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise FaceError(f"{what} must be an (H, W, 3) uint8 RGB array, got shape {shape} dtype {dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise FaceError(f"{what} is empty: shape {image.shape}")


def fit_image(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """(H, W, 3) uint8 -> ``image`` itself when ``max_side`` is None or its longer side is at
    most ``max_side``, else a copy area-downscaled (aspect ratio kept) to that longer side."""
    height, width = image.shape[:2]
    fitted_width, fitted_height = _fitted_size(width, height, max_side)
    if (fitted_width, fitted_height) == (width, height):
        return image
    return resize_area(image, fitted_width, fitted_height)


def resize_area(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3) uint8, area-averaged (swscale)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return frame.reformat(width=width, height=height, interpolation="AREA").to_ndarray()


def box_downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C) uint8 -> (H // factor, W // factor, C) float32 means of factor x factor blocks.

    A pixel (i, j) of the result covers [j * factor, (j + 1) * factor) in x of the input,
    so continuous coordinates map exactly as x_out = x_in / factor. Rows are summed first
    (whole contiguous rows at a time), then columns of the factor-times smaller result.
    """
    if factor < 1:
        raise ValueError(f"factor must be at least 1, got {factor}")
    height, width = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    rows = _strided_sum(image[:height, :width], factor, axis=0, largest=255 * factor)
    blocks = _strided_sum(rows, factor, axis=1, largest=255 * factor * factor)
    return blocks.astype(np.float32) / (factor * factor)


def _strided_sum(values: np.ndarray, factor: int, axis: int, largest: int) -> np.ndarray:
    """Sums of each run of ``factor`` entries along ``axis`` (0 or 1) of (H, W, C) values;
    ``largest`` bounds a sum and picks the integer type."""
    total_type = np.uint16 if largest <= np.iinfo(np.uint16).max else np.uint32
    shape = list(values.shape)
    shape[axis] //= factor
    total = np.zeros(shape, total_type)
    for phase in range(factor):
        total += values[phase::factor] if axis == 0 else values[:, phase::factor]
    return total
