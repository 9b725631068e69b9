"""StreamEngine: per-stream state around one shared backend; O(1) work per frame.

A stream keeps its target (for a drawing G: the tensor, the generator's first-convolution
response to it and the neutral output G(x, F(0)), all computed once per target; a warping
G needs nothing of it here), the dynamics state (the
tensors the model's step graph names: for a windowed stream the anchor's LSTM state, the
last W input gates and the static h) and a frame counter. A step is one call of the
backend's ``step`` graph; the frames of several streams go through in one batched call
with ``step_many`` (in calls of at most the backend's ``max_batch`` streams).

Per frame only the frame crosses to the backend's device, as uint8 (a quarter of float32's
bytes), and the drawn crops come back in one copy: the per-target tensors and the state
stay on the device.

A warping G's stream also keeps its anchor's mouth opening (rt_dtgan.models.neutral), added
to its offsets, so that a driver who starts mid-sentence never closes the portrait's lips
past closed, and its anchor's mesh: the eyes' points move as the driver's measured lids
(models.warp.with_measured_eyes).

Faces come in as ``AlignedFace``: the aligned crop, and the face mesh in eye units; the
model's encoder reads one of them. What comes out depends on the generator's kind: a crop
(S, S, 3) uint8, or ``KeypointMotion``, F's offsets of the target's keypoints.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from rt_dtgan.config import MESH_POINTS
from rt_dtgan.models.neutral import mouth_correction
from rt_dtgan.models.warp import lid_gain, with_measured_eyes
from rt_dtgan.runtime.backends import Backend, open_backend, run_in_chunks
from rt_dtgan.runtime.graphs import graph_specs
from rt_dtgan.runtime.pixels import to_images, to_unit_range
from rt_dtgan.runtime.warping import KeypointMotion, WarpStage


class AlignedFace(Protocol):
    """One face, aligned: ``crop`` (S, S, 3) uint8 RGB and ``mesh`` (MESH_POINTS, 2) float32
    in eye units (a TrackResult, a Target or a ``Face``)."""

    crop: np.ndarray
    mesh: np.ndarray


@dataclass(frozen=True, eq=False)
class Face:
    """An ``AlignedFace`` made by hand (tests, tools); ``mesh`` may be None for pixel models."""

    crop: np.ndarray
    mesh: np.ndarray | None = None


Generated = np.ndarray | KeypointMotion


@dataclass
class _Stream:
    """``target``: the step graph's per-target inputs on the backend's device (a drawing G),
    or for a warping G the portrait crop (1, 3, S, S) and its mesh (1, MESH_POINTS, 2) on
    the CPU, where the warp is solved."""

    target: dict[str, Tensor]
    neutral_output: Tensor
    strength: float = 1.0
    dynamics: dict[str, Tensor] | None = field(default=None)
    frames: int = 0
    mouth_correction: Tensor | None = None
    anchor_mesh: Tensor | None = None


class StreamEngine:
    """Many streams on one backend. Faces are aligned as the model's PreprocessConfig says;
    a bare uint8 (S, S, 3) RGB crop stands for a face where the model reads pixels."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.config = backend.config
        self.size = backend.config.image_size
        self.device = backend.device
        self.contract = backend.config.generator_contract
        step = graph_specs(backend.config)["step"]
        self.state_keys, self.target_keys = step.state_inputs, step.target_inputs
        self.neutral_offsets_shape = () if self.contract.draws else step.outputs["offsets"]
        self.warp_stage = None if self.contract.draws else WarpStage(backend.config, backend)
        self._streams: dict[int, _Stream] = {}
        self._ids = itertools.count(1)

    def open(self, target: AlignedFace | np.ndarray, strength: float = 1.0) -> int:
        """Start a stream driving ``target``; its first frame becomes the anchor y0.
        ``strength`` scales the motion of a warping G (1 as the driver moves)."""
        stream_id = next(self._ids)
        self._streams[stream_id] = self._prepare_target(target)
        self.set_strength(stream_id, strength)
        return stream_id

    def set_strength(self, stream_id: int, strength: float) -> None:
        """Scale the expression of a warping G's stream from the next frame on (0 holds the
        target still, 1 moves it as the driver moves, up to 3)."""
        if not 0.0 <= strength <= 3.0:
            raise ValueError(f"expression strength must be in [0, 3], got {strength}")
        if self.contract.draws and strength != 1.0:
            raise ValueError("expression strength needs a model that warps the portrait; this one redraws the crop")
        self._stream(stream_id).strength = strength

    def close(self, stream_id: int) -> None:
        if self._streams.pop(stream_id, None) is None:
            raise KeyError(f"no open stream {stream_id}")

    def set_target(self, stream_id: int, target: AlignedFace | np.ndarray) -> None:
        """Drive another target from the next frame on; the dynamics state is kept."""
        stream = self._stream(stream_id)
        fresh = self._prepare_target(target)
        stream.target, stream.neutral_output = fresh.target, fresh.neutral_output

    def recalibrate(self, stream_id: int, reference: AlignedFace | np.ndarray | None = None) -> None:
        """Make the ``reference`` face the anchor y0 now, or, without one, the next frame."""
        stream = self._stream(stream_id)
        stream.dynamics = None
        stream.frames = 0
        if reference is not None:
            self._anchor([stream], [self._driving(reference)])
            stream.frames = 1

    def frames_seen(self, stream_id: int) -> int:
        """Frames since the stream's anchor, the anchor included."""
        return self._stream(stream_id).frames

    def step(self, stream_id: int, face: AlignedFace | np.ndarray) -> Generated:
        return self.step_many([(stream_id, face)])[0]

    def step_many(self, frames: Sequence[tuple[int, AlignedFace | np.ndarray]]) -> list[Generated]:
        """One frame for each of several distinct streams -> their outputs, in order. Streams
        without an anchor take this frame as y0 and output their neutral frame."""
        return self._generated(*self._advance(frames))

    def advance_many(self, frames: Sequence[tuple[int, AlignedFace | np.ndarray]]) -> None:
        """As ``step_many``, but only the streams' states move on; no output is made (a
        stream rebuilt from its last frames, transport/replica.py)."""
        self._advance(frames)

    def _advance(self, frames: Sequence[tuple[int, AlignedFace | np.ndarray]]) -> tuple[list[Tensor], list[_Stream]]:
        """Step the streams' states -> the step graph's outputs (mouth-corrected) and the streams."""
        ids = [stream_id for stream_id, _ in frames]
        if len(set(ids)) != len(ids):
            raise ValueError("step_many takes at most one frame per stream")
        streams = [self._stream(stream_id) for stream_id in ids]
        tensors = [self._driving(face) for _, face in frames]
        outputs: list[Tensor | None] = [None] * len(frames)
        anchoring = [i for i, s in enumerate(streams) if s.dynamics is None]
        stepping = [i for i, s in enumerate(streams) if s.dynamics is not None]
        if anchoring:
            self._anchor([streams[i] for i in anchoring], [tensors[i] for i in anchoring])
            for i in anchoring:
                outputs[i] = streams[i].neutral_output
        if stepping:
            for i, output in zip(stepping, self._step([streams[i] for i in stepping], [tensors[i] for i in stepping])):
                outputs[i] = self._corrected(output, streams[i], tensors[i])
        for stream in streams:
            stream.frames += 1
        return outputs, streams

    @staticmethod
    def _corrected(offsets: Tensor, stream: _Stream, mesh: Tensor) -> Tensor:
        """A warping G's offsets (1, K, 2) -> with the anchor's mouth closed and the eyes
        measured, where the model reads meshes; any other output as it is."""
        if stream.anchor_mesh is None:
            return offsets
        return with_measured_eyes(offsets.float().cpu() + stream.mouth_correction, mesh, stream.anchor_mesh)

    def _stream(self, stream_id: int) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise KeyError(f"no open stream {stream_id}") from None

    def _driving(self, face: AlignedFace | np.ndarray) -> Tensor:
        """A face -> what A reads of it, on the CPU: the crop as uint8 (1, S, S, 3), or the
        mesh as float32 (1, MESH_POINTS, 2)."""
        if not self.config.reads_mesh:
            return crop_to_tensor(face if isinstance(face, np.ndarray) else face.crop, self.size)
        mesh = None if isinstance(face, np.ndarray) else face.mesh
        if mesh is None:
            raise ValueError("this model reads the face mesh: give faces with a mesh (a tracked face), not bare crops")
        return mesh_to_tensor(mesh)

    def _frames(self, faces: list[Tensor]) -> Tensor:
        """What ``_driving`` gave for several faces -> one float32 batch on the device (crops
        in [-1, 1])."""
        batch = torch.cat(faces).to(self.device)
        return to_unit_range(batch) if batch.dtype == torch.uint8 else batch

    def _prepare_target(self, target: AlignedFace | np.ndarray) -> _Stream:
        if not self.contract.draws:
            if isinstance(target, np.ndarray) or target.mesh is None:
                raise ValueError("this model warps the target's own keypoints: give a target with a face mesh")
            portrait = {"portrait": to_tensor(target.crop, self.size), "mesh": mesh_to_tensor(target.mesh)}
            return _Stream(portrait, torch.zeros(1, *self.neutral_offsets_shape))
        image = to_tensor(target if isinstance(target, np.ndarray) else target.crop, self.size).to(self.device)
        out = self.backend.run("target", {"target": image})
        return _Stream({"target": image, "target_response": out["target_response"]}, out["neutral_output"])

    def _generated(self, outputs: list[Tensor], streams: list[_Stream]) -> list[Generated]:
        if self.contract.draws:
            return list(to_images(torch.cat(outputs)))
        scales = [stream.strength * stream.target.get("gain", 1.0) for stream in streams]
        offsets = torch.cat([output.float().cpu() * scale for output, scale in zip(outputs, scales)])
        portraits = torch.cat([stream.target["portrait"] for stream in streams])
        meshes = torch.cat([stream.target["mesh"] for stream in streams])
        return self.warp_stage.motions(offsets, portraits, meshes)

    def _anchor(self, streams: list[_Stream], anchors: list[Tensor]) -> None:
        """Make ``anchors`` the streams' y0: their dynamics state and, for a warping G that
        reads meshes, how far the target's lids move per unit of the driver's (lid_gain), the
        anchor's mouth closed (mouth_correction) and its mesh (the eyes' motion is measured from it)."""
        for stream, dynamics, anchor in zip(streams, self._calibrate(self._frames(anchors)), anchors):
            stream.dynamics = dynamics
            if not self.contract.draws and self.config.reads_mesh:
                stream.target["gain"] = lid_gain(stream.target["mesh"], anchor)
                stream.mouth_correction = mouth_correction(anchor)
                stream.anchor_mesh = anchor

    def _calibrate(self, anchors: Tensor) -> list[dict[str, Tensor]]:
        out = run_in_chunks(self.backend, "calibrate", {"anchor": anchors})
        return [{key: out[key][i : i + 1] for key in self.state_keys} for i in range(len(anchors))]

    def _step(self, streams: list[_Stream], frames: list[Tensor]) -> list[Tensor]:
        inputs = {"frame": self._frames(frames)}
        for key in self.target_keys:
            inputs[key] = torch.cat([s.target[key] for s in streams])
        for key in self.state_keys:
            inputs[key] = torch.cat([s.dynamics[key] for s in streams])
        out = run_in_chunks(self.backend, "step", inputs)
        for i, stream in enumerate(streams):
            for key in self.state_keys:
                if f"next_{key}" in out:
                    stream.dynamics[key] = out[f"next_{key}"][i : i + 1]
        output = out[self.contract.step_output]
        return [output[i : i + 1] for i in range(len(streams))]


def open_engine(
    checkpoint: str | os.PathLike | None = None,
    backend: str = "auto",
    engines: str | os.PathLike | None = None,
    threads: int | None = None,
    cuda_graphs: bool = False,
) -> tuple[StreamEngine, Path, str]:
    """A StreamEngine for ``checkpoint`` (a file, a shipped model's name, or None: the default
    model) on the backend ``backend`` (BACKEND_CHOICES), ``engines`` the exported engines'
    folder -> (engine, the checkpoint file, why this backend was chosen)."""
    from rt_dtgan.models.checkpoint import resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    opened, why = open_backend(backend, path, engines, threads, cuda_graphs)
    return StreamEngine(opened), path, why


def crop_to_tensor(crop: np.ndarray, size: int) -> Tensor:
    """uint8 (size, size, 3) RGB -> uint8 (1, size, size, 3), a view (channels last, so that
    a batch of them is one contiguous copy)."""
    if crop.dtype != np.uint8 or crop.shape != (size, size, 3):
        raise ValueError(f"expected a uint8 ({size}, {size}, 3) RGB crop, got {crop.dtype} {crop.shape}")
    return torch.from_numpy(crop).unsqueeze(0)


def to_tensor(crop: np.ndarray, size: int) -> Tensor:
    """uint8 (size, size, 3) RGB -> float32 (1, 3, size, size) in [-1, 1]."""
    return to_unit_range(crop_to_tensor(crop, size))


def mesh_to_tensor(mesh: np.ndarray) -> Tensor:
    """float32 (MESH_POINTS, 2) in eye units -> float32 (1, MESH_POINTS, 2)."""
    if mesh.shape != (MESH_POINTS, 2) or not np.isfinite(mesh).all():
        raise ValueError(f"expected a finite ({MESH_POINTS}, 2) face mesh, got {mesh.dtype} {mesh.shape}")
    return torch.from_numpy(np.asarray(mesh, dtype=np.float32)).unsqueeze(0)


def to_image(frame: Tensor) -> np.ndarray:
    """float (1, 3, S, S) in [-1, 1] -> uint8 (S, S, 3) RGB."""
    return to_images(frame)[0]
