"""Preparing real face videos once: MediaPipe tracking and eye alignment, exactly as live,
into lossless videos of aligned crops and a manifest the trainer reads (docs/prepare.md).

Layout of OUT:
    OUT/manifest.json            format, version, size, preprocess, layout, sequences, skipped
    OUT/sequences/<id>.mkv       the aligned (S, S, 3) crops of the frames with a face, lossless RGB

Every sequence carries a signature of its source files (names, sizes, modification times)
and of the crop configuration; a rerun reuses the sequences whose signature is unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from rt_dtgan.config import MESH_POINTS, SUPPORTED_SIZES, ModelConfig, PreprocessConfig
from rt_dtgan.errors import RtDtganError
from rt_dtgan.face import FaceError, FaceTracker, load_image
from rt_dtgan.face.landmarks import MOTION_POINTS
from rt_dtgan.media import Source, SourceError, open_source
from rt_dtgan.prepare.layouts import LAYOUT_CHOICES, LAYOUTS, Layout, SequenceSource, detect_layout, find_sequences
from rt_dtgan.synth.dataset import VideoWriter

MANIFEST_FORMAT = "rt-dtgan prepared faces"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
SEQUENCES_FOLDER = "sequences"
MIN_KEPT_FRAMES = 2
# The meshes kept per frame (TrackResult's fields): the frontal mesh A reads, the crop's G warps.
MESH_KINDS = ("mesh", "crop_mesh")
MIN_KEPT_FRACTION = 0.5
READ_ERRORS = (FaceError, SourceError, av.FFmpegError, OSError)


class PrepareError(RtDtganError, ValueError):
    """A bad argument, folder or manifest; the message names it."""


class UnreadableSequence(Exception):
    """The frames of one sequence cannot be read; the sequence is skipped."""


def prepare_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    layout: str = "auto",
    size: int = 128,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Prepare every sequence of the dataset at ``source`` into ``out``; returns the manifest path.

    ``layout``: one of LAYOUT_CHOICES; ``size``: the crop side (64, 128 or 256 px);
    ``workers``: processes that track sequences side by side. Sequences prepared by an earlier
    run with unchanged sources are reused. The manifest is rewritten after each sequence, so
    an interrupted run keeps its work. Raises PrepareError on bad arguments.
    """
    if size not in SUPPORTED_SIZES:
        raise PrepareError(f"size must be one of {SUPPORTED_SIZES}, got {size}")
    if not (isinstance(workers, int) and workers >= 1):
        raise PrepareError(f"workers must be a positive integer, got {workers!r}")
    root, out = _check_folders(source, out)
    chosen = _choose_layout(root, layout)
    config = ModelConfig.for_size(size).preprocess
    sequences = [sequence for sequence in find_sequences(root, chosen) if not sequence.path.is_relative_to(out)]
    if not sequences:
        raise PrepareError(f"no sequences found in {root} with the {chosen.name} layout (see docs/prepare.md)")
    signatures = {sequence.id: source_signature(sequence, config) for sequence in sequences}
    entries = _reusable_entries(out, root, sequences, signatures)
    todo = [sequence for sequence in sequences if sequence.id not in entries]
    (out / SEQUENCES_FOLDER).mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(out, config, chosen.name, [sequence.id for sequence in sequences])
    manifest.write(entries)
    if progress:
        print(f"{chosen.name} layout: {len(sequences)} sequences, {len(entries)} unchanged since the last run",
              file=sys.stderr)
    with tqdm(total=len(todo), desc="prepare", unit="seq", disable=not (progress and todo), file=sys.stderr) as bar:
        jobs = [(sequence, root, out, config, chosen.image_fps, signatures[sequence.id]) for sequence in todo]
        for entry in _run_jobs(jobs, workers):
            entries[entry["id"]] = entry
            manifest.write(entries)
            if progress and "reason" in entry:
                bar.write(f"skipped {entry['source']}: {entry['reason']}", file=sys.stderr)
            bar.update(1)
    return manifest.path


def read_manifest(out: str | os.PathLike) -> dict:
    """The manifest of the prepared dataset in ``out``; PrepareError (a ValueError) naming
    the file when it is missing, not JSON, or not a version-1 prepared-faces manifest."""
    path = Path(out) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise PrepareError(f"no prepared dataset at {path}: run `rt-dtgan data prepare` first") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PrepareError(f"cannot read {path}: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise PrepareError(f"{path} is not a prepared-faces manifest (format {MANIFEST_FORMAT!r})")
    if manifest.get("version") != MANIFEST_VERSION:
        raise PrepareError(f"{path} has version {manifest.get('version')!r}; this rt-dtgan reads version {MANIFEST_VERSION}")
    return manifest


def read_sequence(out: str | os.PathLike, entry: dict) -> np.ndarray:
    """The aligned crops of one manifest sequence entry (its ``video``, checked against its
    ``kept``): (kept, S, S, 3) uint8 RGB."""
    path = Path(out) / entry["video"]
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    expected = entry["kept"]
    if not frames or len(frames) != expected:
        raise PrepareError(f"{path} holds {len(frames)} frames, the manifest says {expected}: prepare it again")
    return np.stack(frames)


def read_mesh(out: str | os.PathLike, entry: dict, kind: str = "mesh") -> np.ndarray:
    """The face meshes of one manifest sequence entry: (kept, MESH_POINTS, 2) float32 in eye
    units, one row per kept frame; ``kind`` "mesh" the frontal mesh (the head's pose taken
    out, rt_dtgan.face.pose), "crop_mesh" the mesh in the aligned crop (rt_dtgan.face.geometry)."""
    if kind not in MESH_KINDS:
        raise ValueError(f"kind must be one of {MESH_KINDS}, got {kind!r}")
    if kind not in entry:
        raise PrepareError(f"sequence {entry.get('id')} was prepared without its {kind.replace('_', ' ')}es: prepare it again")
    path = Path(out) / entry[kind]
    meshes = np.load(path)
    if meshes.shape != (entry["kept"], MESH_POINTS, 2):
        raise PrepareError(f"{path} holds meshes of shape {meshes.shape}, the manifest says {entry['kept']} frames: prepare it again")
    return meshes


def read_landmarks(out: str | os.PathLike, entry: dict) -> np.ndarray:
    """The MOTION_POINTS of one manifest sequence entry: (kept, K, 2) float32 in crop
    coordinates (0 to 1 across the crop), one row per kept frame."""
    path = Path(out) / entry["landmarks"]
    points = np.load(path)
    if points.shape != (entry["kept"], len(MOTION_POINTS), 2):
        raise PrepareError(f"{path} holds landmarks of shape {points.shape}, the manifest says {entry['kept']} frames: prepare it again")
    return points


def source_signature(sequence: SequenceSource, config: PreprocessConfig) -> str:
    """A hash of the sequence's file names, sizes and modification times and of ``config``."""
    files = []
    for path in sequence.files:
        status = path.stat()
        files.append([path.name, status.st_size, status.st_mtime_ns])
    payload = json.dumps(
        {
            "files": files,
            "preprocess": dataclasses.asdict(config),
            "motion_points": MOTION_POINTS,
            "mesh": MESH_POINTS,
            "meshes": MESH_KINDS,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def prepare_sequence(
    sequence: SequenceSource, root: Path, out: Path, config: PreprocessConfig, image_fps: float, signature: str
) -> dict:
    """Track and align one sequence into OUT/sequences/<id>.mkv -> its manifest entry, or a
    skipped entry (with ``reason``) when it cannot be read or shows too few faces."""
    relative = sequence.path.relative_to(root).as_posix()
    video = Path(SEQUENCES_FOLDER, f"{sequence.id}.mkv")
    landmarks = Path(SEQUENCES_FOLDER, f"{sequence.id}.landmarks.npy")
    mesh_files = {kind: Path(SEQUENCES_FOLDER, f"{sequence.id}.{kind}.npy") for kind in MESH_KINDS}
    partial = out / video.with_name(f"{sequence.id}.partial.mkv")
    try:
        fps, frames = _source_frames(sequence, image_fps)
        frame_count, kept_indices, points, meshes = _track_into(frames, fps, partial, config)
    except UnreadableSequence as error:
        partial.unlink(missing_ok=True)
        return _skipped(sequence, relative, signature, f"unreadable: {error}")
    problem = _too_few_faces(frame_count, len(kept_indices))
    if problem:
        partial.unlink(missing_ok=True)
        return _skipped(sequence, relative, signature, problem)
    partial.replace(out / video)
    np.save(out / landmarks, np.asarray(points, dtype=np.float32))
    for kind, path in mesh_files.items():
        np.save(out / path, np.asarray(meshes[kind], dtype=np.float32))
    return {
        "id": sequence.id,
        "source": relative,
        "video": video.as_posix(),
        "landmarks": landmarks.as_posix(),
        **{kind: path.as_posix() for kind, path in mesh_files.items()},
        "subject": sequence.subject,
        "label": sequence.label,
        "fps": fps,
        "frames": frame_count,
        "kept": len(kept_indices),
        "kept_indices": kept_indices,
        "signature": signature,
    }


def _check_folders(source: str | os.PathLike, out: str | os.PathLike) -> tuple[Path, Path]:
    root, out = Path(source).expanduser().resolve(), Path(out).expanduser().resolve()
    if not root.is_dir():
        raise PrepareError(f"no source folder at {source}")
    if out.exists() and not out.is_dir():
        raise PrepareError(f"{out} exists and is not a folder")
    if out == root:
        raise PrepareError("the output folder must differ from the source folder")
    return root, out


def _choose_layout(root: Path, name: str) -> Layout:
    if name == "auto":
        return detect_layout(root)
    if name not in LAYOUTS:
        raise PrepareError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUT_CHOICES)}")
    return LAYOUTS[name]


def _reusable_entries(out: Path, root: Path, sequences: list[SequenceSource], signatures: dict[str, str]) -> dict[str, dict]:
    """Entries of an earlier run's manifest in ``out`` (sequences and skipped) whose source and
    signature are unchanged and whose video is still there, with subject and label refreshed."""
    if not (out / MANIFEST_NAME).exists():
        return {}
    previous = read_manifest(out)
    earlier = {entry.get("id"): entry for entry in previous.get("sequences", []) + previous.get("skipped", [])}
    reusable = {}
    for sequence in sequences:
        entry = earlier.get(sequence.id)
        unchanged = (
            entry is not None
            and entry.get("signature") == signatures[sequence.id]
            and entry.get("source") == sequence.path.relative_to(root).as_posix()
            and ("reason" in entry or all((out / entry.get(key, "")).is_file() for key in ("video", "landmarks", *MESH_KINDS)))
        )
        if unchanged:
            reusable[sequence.id] = entry if "reason" in entry else {**entry, "subject": sequence.subject, "label": sequence.label}
    return reusable


class _Manifest:
    """OUT/manifest.json, rewritten atomically from the entries done so far, in source order."""

    def __init__(self, out: Path, config: PreprocessConfig, layout: str, order: list[str]) -> None:
        self.path = out / MANIFEST_NAME
        self._header = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "size": config.size,
            "preprocess": dataclasses.asdict(config),
            "layout": layout,
        }
        self._order = order

    def write(self, entries: dict[str, dict]) -> None:
        done = [entries[key] for key in self._order if key in entries]
        manifest = {
            **self._header,
            "sequences": [entry for entry in done if "reason" not in entry],
            "skipped": [entry for entry in done if "reason" in entry],
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(manifest, indent=1))
        temporary.replace(self.path)


def _run_jobs(jobs: list[tuple], workers: int) -> Iterator[dict]:
    """The entries of ``prepare_sequence(*job)`` for each job, as they finish."""
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield prepare_sequence(*job)
        return
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"))
    try:
        for future in as_completed([pool.submit(prepare_sequence, *job) for job in jobs]):
            yield future.result()
    finally:
        pool.shutdown(cancel_futures=True)


def _source_frames(sequence: SequenceSource, image_fps: float) -> tuple[float, Iterator[np.ndarray]]:
    """(frames per second, the frames in order as (H, W, 3) uint8 RGB); reading errors,
    when opening or later, raise UnreadableSequence."""
    if sequence.images:
        return image_fps, _reading(load_image(path) for path in sequence.images)
    try:
        source = open_source(str(sequence.path), pace=False)
    except SourceError as error:
        raise UnreadableSequence(str(error)) from error
    return source.fps, _reading(_images_of(source))


def _images_of(source: Source) -> Iterator[np.ndarray]:
    """The images of ``source``, which is closed at the end."""
    with source:
        for frame in source:
            yield frame.image


def _reading(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """``frames``, with a reading error turned into UnreadableSequence."""
    try:
        yield from frames
    except READ_ERRORS as error:
        raise UnreadableSequence(str(error)) from error


def _track_into(
    frames: Iterator[np.ndarray], fps: float, video: Path, config: PreprocessConfig
) -> tuple[int, list[int], list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Write the aligned crop of every frame with a face to ``video``, frame i at i / fps
    seconds for the tracker's smoothing -> (number of frames, indices of the frames kept,
    per kept frame the MOTION_POINTS (K, 2) in crop coordinates, 0 to 1 across the crop,
    and by MESH_KINDS the whole mesh (MESH_POINTS, 2) in eye units)."""
    kept_indices, points = [], []
    meshes: dict[str, list[np.ndarray]] = {kind: [] for kind in MESH_KINDS}
    frame_count = 0
    with FaceTracker(config) as tracker, VideoWriter(video, config.size) as writer:
        for index, image in enumerate(frames):
            frame_count += 1
            tracked = tracker.track(image, index / fps)
            if tracked.found:
                writer.write(tracked.crop)
                kept_indices.append(index)
                points.append(tracked.transform.apply(tracked.landmarks.points[list(MOTION_POINTS), :2]) / config.size)
                for kind in MESH_KINDS:
                    meshes[kind].append(getattr(tracked, kind))
    return frame_count, kept_indices, points, meshes


def _too_few_faces(frame_count: int, kept: int) -> str | None:
    if frame_count == 0:
        return "no frames"
    if kept < MIN_KEPT_FRAMES or kept < MIN_KEPT_FRACTION * frame_count:
        return f"a face in only {kept} of {frame_count} frames (needs at least half, and {MIN_KEPT_FRAMES})"
    return None


def _skipped(sequence: SequenceSource, relative: str, signature: str, reason: str) -> dict:
    return {"id": sequence.id, "source": relative, "reason": reason, "signature": signature}
