"""Image sequences: a folder of images, or a glob such as ``"frames/*.png"``, read in natural
order (frame_2 before frame_10) at ``fps`` (default 25)."""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from rt_dtgan.media.errors import SourceError
from rt_dtgan.media.source import Source, SourceKind, SourceOptions, SourceRequest

DEFAULT_IMAGE_FPS = 25.0
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"})


class ImageSequenceSource(Source):
    """Images read in the given order at ``fps``; each is converted to RGB and resized to ``size``
    (default: the first image's size)."""

    def __init__(self, paths: Sequence[Path], description: str, options: SourceOptions) -> None:
        if not paths:
            raise SourceError(f"no images in {description}")
        self._paths = list(paths)
        self._fps = options.fps or DEFAULT_IMAGE_FPS
        self._first_image = _read_image(self._paths[0], options.size)
        self._size = (self._first_image.shape[1], self._first_image.shape[0])
        super().__init__(description, self._fps if options.pace else None)

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def frame_count(self) -> int:
        return len(self._paths)

    def _read(self) -> tuple[np.ndarray, float]:
        index = self._next_index
        if index >= len(self._paths):
            raise StopIteration
        image = self._first_image if index == 0 else _read_image(self._paths[index], self._size)
        return image, index / self._fps

    def _release(self) -> None:
        """Nothing is held open between images."""


def _open_glob(request: SourceRequest) -> ImageSequenceSource:
    pattern = request.spec
    paths = sorted((Path(name) for name in glob.glob(pattern)), key=_natural_key)
    files = [path for path in paths if path.is_file()]
    return ImageSequenceSource(files, f"image sequence {pattern}", request.options)


def _open_image_folder(request: SourceRequest) -> ImageSequenceSource:
    folder = Path(request.spec).expanduser()
    images = (path for path in folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())
    files = sorted(images, key=_natural_key)
    if not files:
        raise SourceError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {folder}")
    return ImageSequenceSource(files, f"image folder {folder}", request.options)


def _natural_key(path: Path) -> list[object]:
    """Sort key putting frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def _read_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB, resized to ``size`` = (width, height) if given."""
    width, height = size if size is not None else (None, None)
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            return frame.to_ndarray(format="rgb24", width=width, height=height)
    except (av.FFmpegError, StopIteration) as error:
        raise SourceError(f"cannot read image {path}: {error or 'no picture in it'}") from error


IMAGE_GLOB_SOURCE = SourceKind("a glob of images", glob.has_magic, _open_glob)
IMAGE_FOLDER_SOURCE = SourceKind("a folder of images", lambda spec: Path(spec).expanduser().is_dir(), _open_image_folder)
