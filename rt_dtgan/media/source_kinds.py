"""The kinds of source, and ``open_source``, which opens a spec with the first kind that claims it.

A new kind of source is a module with its ``Source`` and its ``SourceKind`` (``media/source.py``),
and that kind added to ``SOURCE_KINDS``. The kinds are asked in order, which matters only where
two could claim one spec (a glob's pattern may also be a folder's or a file's name);
``SOURCE_SPEC_HELP``, the help of every source error, lists them in that order.
"""

from __future__ import annotations

from rt_dtgan.media.av_source import CAMERA_SOURCE, LAVFI_SOURCE, VIDEO_FILE_SOURCE
from rt_dtgan.media.errors import SourceError
from rt_dtgan.media.generated import SYNTHETIC_SOURCE
from rt_dtgan.media.image_sequence import IMAGE_FOLDER_SOURCE, IMAGE_GLOB_SOURCE
from rt_dtgan.media.source import Source, SourceKind, SourceOptions, SourceRequest, SyntheticFactory

SOURCE_KINDS = (CAMERA_SOURCE, LAVFI_SOURCE, SYNTHETIC_SOURCE, IMAGE_GLOB_SOURCE, IMAGE_FOLDER_SOURCE, VIDEO_FILE_SOURCE)
SOURCE_SPEC_HELP = "a source is " + ", ".join(kind.help for kind in SOURCE_KINDS[:-1]) + f", or {SOURCE_KINDS[-1].help}"


def open_source(
    spec: str | int,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    pace: bool = True,
    synthetic_factory: SyntheticFactory | None = None,
) -> Source:
    """Open the source that ``spec`` names, with the first of SOURCE_KINDS that claims it;
    raises SourceError. ``size`` and ``fps`` resize and re-time it (for a camera: requests to
    the device); ``pace`` plays files and graphs in real time."""
    options = SourceOptions(size=size, fps=fps, pace=pace)
    text = str(spec).strip()
    return _checked_kind(text).open(SourceRequest(text, options, synthetic_factory))


def check_source_spec(spec: str | int) -> None:
    """Raise SourceError, one sentence, unless ``spec`` names a source that could be opened
    (a kind claims it, its own check passed); opens nothing (a camera is tried only when opened)."""
    _checked_kind(str(spec).strip())


def _checked_kind(text: str) -> SourceKind:
    if not text:
        raise SourceError(f"empty source spec: {SOURCE_SPEC_HELP}")
    kind = next((kind for kind in SOURCE_KINDS if kind.claims(text)), None)
    if kind is None:
        raise SourceError(f"no such file or folder: {text} ({SOURCE_SPEC_HELP})")
    if kind.check is not None:
        kind.check(text)
    return kind
