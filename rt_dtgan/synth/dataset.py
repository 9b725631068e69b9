"""Writing synthetic datasets in the project's dataset layout, and synthetic target portraits.

Layout (shared with real datasets):
    DIR/manifest.json              format, version, size, fps, source, expressions, controls, sequences
    DIR/<subject>/<sequence>.mp4   H.264 video (lossless RGB by default, so labels match pixels)
    DIR/<subject>/<sequence>.json  per-frame labels: expression vector, pose, label
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from rt_dtgan.synth.canvas import SUPPORTED_SIZES
from rt_dtgan.synth.expression import BASIC_EXPRESSIONS, CONTROLS, EXPRESSION_LABELS, Expression
from rt_dtgan.synth.identity import Identity
from rt_dtgan.synth.render import render
from rt_dtgan.synth.sequences import FPS, FrameSpec, freeform_track, onset_track, random_onset_length, render_track

DATASET_FORMAT = "rt-dtgan-dataset"
DATASET_VERSION = 1
SYNTHETIC_PREFIX = "synthetic:"


def identity_seed_for(dataset_seed: int, subject_index: int) -> int:
    """The identity seed of subject `subject_index` in a dataset generated with `dataset_seed`."""
    return int(np.random.SeedSequence([dataset_seed, subject_index, 0x1D5]).generate_state(1)[0] >> 1)


def write_dataset(
    out_dir: str | os.PathLike,
    identities: int,
    size: int = 128,
    seed: int = 0,
    sequences_per_identity: int = len(BASIC_EXPRESSIONS),
    freeform_length: int = 0,
    progress: bool = True,
    overwrite: bool = False,
    lossless: bool = True,
) -> Path:
    """Render `identities` synthetic subjects into out_dir and return its path.

    Each subject gets `sequences_per_identity` onset sequences (the six basic expressions in
    a per-subject random order, cycling when more than six), 10 to 60 frames each, and, when
    freeform_length > 0, one free-form sequence of that many frames. lossless=True stores
    exact RGB (libx264rgb, qp 0); False stores ordinary H.264 yuv420p (crf 18).
    Raises ValueError on bad arguments and FileExistsError if out_dir is not empty and
    overwrite is False (overwrite replaces same-named files and the manifest).
    """
    _validate(identities, size, seed, sequences_per_identity, freeform_length)
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(f"{root} is not empty; choose an empty directory or allow overwriting (--overwrite)")
    root.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(identities - 1)))
    per_subject = sequences_per_identity + (1 if freeform_length > 0 else 0)
    entries = []
    with tqdm(total=identities * per_subject, desc="synth", unit="seq", disable=not progress) as bar:
        for subject_index in range(identities):
            subject = f"S{subject_index:0{width}d}"
            identity_seed = identity_seed_for(seed, subject_index)
            for entry in _write_subject(root, subject, identity_seed, sequences_per_identity, freeform_length, size, lossless):
                entries.append(entry)
                bar.update(1)
    manifest = {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "size": size,
        "fps": FPS,
        "source": "synthetic",
        "expressions": list(EXPRESSION_LABELS),
        "controls": list(CONTROLS),
        "lossless": lossless,
        "seed": seed,
        "sequences": entries,
    }
    _write_json(root / "manifest.json", manifest, indent=1)
    return root


def _validate(identities: int, size: int, seed: int, sequences_per_identity: int, freeform_length: int) -> None:
    for name, value, low in (
        ("identities", identities, 1),
        ("seed", seed, 0),
        ("sequences_per_identity", sequences_per_identity, 0),
        ("freeform_length", freeform_length, 0),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if size not in SUPPORTED_SIZES:
        raise ValueError(f"size must be one of {SUPPORTED_SIZES}, got {size!r}")
    if sequences_per_identity == 0 and freeform_length == 0:
        raise ValueError("nothing to write: sequences_per_identity and freeform_length are both 0")


def _write_subject(root: Path, subject: str, identity_seed: int, onsets: int, freeform_length: int, size: int,
                   lossless: bool) -> Iterable[dict]:
    """Write the sequences of one subject, yielding each one's manifest entry."""
    identity = Identity.from_seed(identity_seed)
    (root / subject).mkdir(exist_ok=True)
    for name, label, track in _subject_tracks(identity_seed, onsets, freeform_length):
        frames = _write_sequence(root, subject, name, label, identity, identity_seed, track, size, lossless)
        yield {
            "subject": subject,
            "name": name,
            "video": f"{subject}/{name}.mp4",
            "labels": f"{subject}/{name}.json",
            "frames": frames,
            "label": label,
            "identity_seed": identity_seed,
        }


def _subject_tracks(identity_seed: int, onsets: int, freeform_length: int) -> Iterable[tuple[str, str, Iterable[FrameSpec]]]:
    """(sequence name, sequence label, track) for each sequence of one subject."""
    rng = np.random.default_rng([identity_seed, 0x5E0])
    order = [BASIC_EXPRESSIONS[i] for i in rng.permutation(len(BASIC_EXPRESSIONS))]
    for k in range(onsets):
        expression = order[k % len(order)]
        name = expression if k < len(order) else f"{expression}_{k // len(order)}"
        sequence_seed = int(rng.integers(0, 1 << 31))
        yield name, expression, onset_track(expression, random_onset_length(sequence_seed), sequence_seed)
    if freeform_length > 0:
        yield "freeform", "freeform", freeform_track(int(rng.integers(0, 1 << 31)), freeform_length)


def _write_sequence(root: Path, subject: str, name: str, label: str, identity: Identity, identity_seed: int,
                    track: Iterable[FrameSpec], size: int, lossless: bool) -> int:
    """Encode one sequence and its labels; returns the number of frames."""
    frames_json = []
    with VideoWriter(root / subject / f"{name}.mp4", size, lossless) as video:
        for frame in render_track(identity, track, size):
            video.write(frame.image)
            frames_json.append(frame.spec.to_json())
    _write_json(
        root / subject / f"{name}.json",
        {"label": label, "identity_seed": identity_seed, "size": size, "fps": FPS, "controls": list(CONTROLS), "frames": frames_json},
    )
    return len(frames_json)


class VideoWriter:
    """H.264 writer for (S, S, 3) uint8 RGB frames (PyAV); lossless RGB or yuv420p.

    Not media's EncodedSink, a display output: its yuv420p (or mpeg4 without libx264)
    cannot hold exact RGB, and a dataset's decoded pixels must equal the rendered ones
    (libx264rgb, qp 0, no fallback). synth sits beside media in the layers, not above it."""

    def __init__(self, path: Path, size: int, lossless: bool = True) -> None:
        self._container = av.open(str(path), mode="w")
        codec, pix_fmt, options = (
            ("libx264rgb", "rgb24", {"qp": "0", "preset": "veryfast"}) if lossless else ("libx264", "yuv420p", {"crf": "18"})
        )
        self._stream = self._container.add_stream(codec, rate=FPS)
        self._stream.width = size
        self._stream.height = size
        self._stream.pix_fmt = pix_fmt
        self._stream.options = options

    def write(self, image: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _write_json(path: Path, payload: dict, indent: int | None = None) -> None:
    """Write JSON atomically (temporary file, then rename); compact unless indent is given."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=indent, separators=None if indent else (",", ":")))
    temporary.replace(path)


def parse_synthetic_spec(spec: str) -> int:
    """'synthetic:SEED' -> SEED (a non-negative integer); ValueError with a clear message otherwise."""
    if not isinstance(spec, str) or not spec.startswith(SYNTHETIC_PREFIX):
        raise ValueError(f"expected a synthetic target spec like 'synthetic:123', got {spec!r}")
    text = spec[len(SYNTHETIC_PREFIX):].strip()
    if not text.isdigit():
        raise ValueError(f"the seed in {spec!r} must be a non-negative integer, like 'synthetic:123'")
    return int(text)


def synthetic_target(seed: int, size: int = 256) -> np.ndarray:
    """Neutral frontal portrait of identity `seed` without sensor noise: (size, size, 3) uint8 RGB."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return render(Identity.from_seed(int(seed)), Expression(), None, size)


__all__ = [
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "VideoWriter",
    "identity_seed_for",
    "parse_synthetic_spec",
    "synthetic_target",
    "write_dataset",
]
