"""Dataset layouts: where a face-video dataset keeps its sequences, whose they are, and what
expression each shows (docs/prepare.md).

A layout's ``find(root)`` yields one ``SequenceSource`` per sequence, in a stable order:
a video file, or a folder of images read in natural name order. ``detect_layout(root)``
picks the layout of a folder by its structure. Labels are always one of
``EXPRESSION_CLASSES`` or None.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rt_dtgan.config import EXPRESSION_CLASSES
from rt_dtgan.media.image_sequence import DEFAULT_IMAGE_FPS

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
LABEL_NAMES = {name: name for name in EXPRESSION_CLASSES} | {
    "happy": "happiness",
    "angry": "anger",
    "sad": "sadness",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
}
# CK+ emotion codes 0..7; code 2, contempt, is none of EXPRESSION_CLASSES.
CKPLUS_LABELS = ("neutral", "anger", None, "disgust", "fear", "happiness", "sadness", "surprise")
CKPLUS_IMAGES = "cohn-kanade-images"
CKPLUS_EMOTIONS = "emotion"
OULU_EXPRESSIONS = frozenset({"anger", "disgust", "fear", "happiness", "sadness", "surprise"})
MUG_EXPRESSIONS = frozenset(EXPRESSION_CLASSES)
SEARCH_DEPTH = 2


@dataclass(frozen=True)
class SequenceSource:
    """One sequence of a dataset. ``path``: a video file, or the folder holding ``images``
    (the frames in order; empty for a video). ``id`` is unique within the dataset and safe as
    a file name; ``subject`` and ``label`` (one of EXPRESSION_CLASSES) may be None."""

    id: str
    path: Path
    images: tuple[Path, ...]
    subject: str | None
    label: str | None

    @property
    def files(self) -> tuple[Path, ...]:
        """The files the frames are read from."""
        return self.images or (self.path,)


@dataclass(frozen=True)
class Layout:
    """``find(root)`` yields the sequences under ``root``; image sequences of this layout
    were recorded at ``image_fps`` frames per second."""

    name: str
    image_fps: float
    find: Callable[[Path], Iterator[SequenceSource]]


def detect_layout(root: Path) -> Layout:
    """The layout of the dataset at ``root``: the first of ckplus, oulu, mug that finds a
    sequence there, else folder."""
    for name in ("ckplus", "oulu", "mug"):
        if next(LAYOUTS[name].find(root), None) is not None:
            return LAYOUTS[name]
    return LAYOUTS["folder"]


def find_sequences(root: Path, layout: Layout) -> list[SequenceSource]:
    """Every sequence ``layout`` finds under ``root``; an id met again gets a -2, -3... suffix."""
    seen: dict[str, int] = {}
    sequences = []
    for sequence in layout.find(root):
        seen[sequence.id] = seen.get(sequence.id, 0) + 1
        if seen[sequence.id] > 1:
            sequence = SequenceSource(
                f"{sequence.id}-{seen[sequence.id]}", sequence.path, sequence.images, sequence.subject, sequence.label
            )
        sequences.append(sequence)
    return sequences


def _find_folder(root: Path) -> Iterator[SequenceSource]:
    for folder, files in _walk(root):
        for video in (path for path in files if path.suffix.lower() in VIDEO_EXTENSIONS):
            relative = video.relative_to(root)
            yield SequenceSource(_safe_id(relative.with_suffix("").parts), video, (), None, _folder_label(relative.parent))
        images = _images(files)
        if images:
            relative = folder.relative_to(root)
            yield SequenceSource(_safe_id(relative.parts or (root.name,)), folder, images, None, _folder_label(relative))


def _folder_label(relative_folder: Path) -> str | None:
    """The expression named by the nearest folder of ``relative_folder`` (itself first), or None."""
    for name in reversed(relative_folder.parts):
        if name.lower() in LABEL_NAMES:
            return LABEL_NAMES[name.lower()]
    return None


def _find_ckplus(root: Path) -> Iterator[SequenceSource]:
    images_root = _find_dir(root, CKPLUS_IMAGES)
    if images_root is None:
        return
    emotions_root = _find_dir(images_root.parent, CKPLUS_EMOTIONS)
    for folder, files in _walk(images_root):
        images = _images(files)
        relative = folder.relative_to(images_root).parts
        if images and len(relative) == 2:
            subject, session = relative
            emotions = emotions_root / subject / session if emotions_root else None
            yield SequenceSource(_safe_id(relative), folder, images, subject, _ckplus_label(emotions))


def _ckplus_label(emotions: Path | None) -> str | None:
    """The label in the folder's ``*_emotion.txt`` (one number, a CK+ code), or None when
    there is none, it is contempt, or it is not a code."""
    files = sorted(emotions.glob("*_emotion.txt")) if emotions is not None and emotions.is_dir() else []
    if not files:
        return None
    try:
        code = float(files[-1].read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return CKPLUS_LABELS[int(code)] if code.is_integer() and 0 <= code < len(CKPLUS_LABELS) else None


def _find_oulu(root: Path) -> Iterator[SequenceSource]:
    for folder, files in _walk(root):
        images = _images(files)
        expression, subject = folder.name.lower(), folder.parent.name
        if images and expression in OULU_EXPRESSIONS and re.fullmatch(r"P\d+", subject) and folder != root:
            yield SequenceSource(_safe_id(folder.relative_to(root).parts), folder, images, subject, expression)


def _find_mug(root: Path) -> Iterator[SequenceSource]:
    for folder, files in _walk(root):
        images = _images(files)
        take, expression, subject = folder.name, folder.parent.name.lower(), folder.parent.parent.name
        if images and expression in MUG_EXPRESSIONS and subject.isdigit() and folder.parent != root:
            yield SequenceSource(_safe_id((subject, expression, take)), folder, images, subject, expression)


def _walk(root: Path) -> Iterator[tuple[Path, list[Path]]]:
    """(folder, its files sorted by name) for ``root`` and every folder under it, in name
    order; hidden entries and macOS __MACOSX folders are left out."""
    for folder, folders, names in os.walk(root):
        folders[:] = sorted((name for name in folders if not _hidden(name)), key=_natural_key)
        files = [Path(folder, name) for name in sorted(names, key=_natural_key) if not _hidden(name)]
        yield Path(folder), files


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _images(files: list[Path]) -> tuple[Path, ...]:
    return tuple(path for path in files if path.suffix.lower() in IMAGE_EXTENSIONS)


def _find_dir(root: Path, name: str) -> Path | None:
    """``root`` or the first folder at most SEARCH_DEPTH levels under it named ``name`` (any case)."""
    level = [root]
    for depth in range(SEARCH_DEPTH + 1):
        for folder in level:
            if folder.name.lower() == name:
                return folder
        if depth < SEARCH_DEPTH:
            level = [child for folder in level for child in _subfolders(folder)]
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        children = sorted(folder.iterdir(), key=lambda path: _natural_key(path.name))
    except OSError:
        return []
    return [child for child in children if child.is_dir() and not _hidden(child.name)]


def _natural_key(name: str) -> list[object]:
    """Sort key putting img_2 before img_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _safe_id(parts: tuple[str, ...]) -> str:
    """Path parts joined by '_', with anything but letters, digits, '.', '_' and '-' as '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts))


LAYOUTS = {
    "folder": Layout("folder", DEFAULT_IMAGE_FPS, _find_folder),
    "ckplus": Layout("ckplus", 30.0, _find_ckplus),
    "oulu": Layout("oulu", 25.0, _find_oulu),
    "mug": Layout("mug", 19.0, _find_mug),
}
LAYOUT_CHOICES = ("auto", *LAYOUTS)
