"""StreamEngine: per-stream state around one shared backend; O(1) work per frame.

A stream keeps its target (the tensor, the generator's first-convolution response to it
and the neutral output G(x, F(0)), all computed once per target), the dynamics state (the
tensors the model's step graph names: for a windowed stream the anchor's LSTM state, the
last W input gates and the static h) and a frame counter. A step is one call of the
backend's ``step`` graph; the frames of several streams go through in one batched call
with ``step_many``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rt_dtgan.runtime.backends import Backend
from rt_dtgan.runtime.graphs import graph_specs


@dataclass
class _Stream:
    target: Tensor
    target_response: Tensor
    neutral_output: Tensor
    dynamics: dict[str, Tensor] | None = None
    frames: int = 0


class StreamEngine:
    """Many streams on one backend. Crops are uint8 (S, S, 3) RGB, aligned as the model's
    PreprocessConfig says; outputs are the same."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.size = backend.config.image_size
        self.state_keys = graph_specs(backend.config)["step"].state_inputs
        self._streams: dict[int, _Stream] = {}
        self._ids = itertools.count(1)

    def open(self, target_crop: np.ndarray) -> int:
        """Start a stream driving ``target_crop``; its first frame becomes the anchor y0."""
        stream_id = next(self._ids)
        self._streams[stream_id] = self._prepare_target(target_crop)
        return stream_id

    def close(self, stream_id: int) -> None:
        if self._streams.pop(stream_id, None) is None:
            raise KeyError(f"no open stream {stream_id}")

    def set_target(self, stream_id: int, target_crop: np.ndarray) -> None:
        """Drive another target from the next frame on; the dynamics state is kept."""
        stream = self._stream(stream_id)
        fresh = self._prepare_target(target_crop)
        stream.target, stream.target_response, stream.neutral_output = fresh.target, fresh.target_response, fresh.neutral_output

    def recalibrate(self, stream_id: int, reference_crop: np.ndarray | None = None) -> None:
        """Make ``reference_crop`` the anchor y0 now, or, without one, the next frame."""
        stream = self._stream(stream_id)
        stream.dynamics = None
        stream.frames = 0
        if reference_crop is not None:
            stream.dynamics = self._calibrate([to_tensor(reference_crop, self.size)])[0]
            stream.frames = 1

    def frames_seen(self, stream_id: int) -> int:
        """Frames since the stream's anchor, the anchor included."""
        return self._stream(stream_id).frames

    def step(self, stream_id: int, crop: np.ndarray) -> np.ndarray:
        return self.step_many([(stream_id, crop)])[0]

    def step_many(self, frames: Sequence[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """One frame for each of several distinct streams -> their outputs, in order. Streams
        without an anchor take this frame as y0 and output their neutral frame."""
        ids = [stream_id for stream_id, _ in frames]
        if len(set(ids)) != len(ids):
            raise ValueError("step_many takes at most one frame per stream")
        streams = [self._stream(stream_id) for stream_id in ids]
        tensors = [to_tensor(crop, self.size) for _, crop in frames]
        outputs: list[Tensor | None] = [None] * len(frames)
        anchoring = [i for i, s in enumerate(streams) if s.dynamics is None]
        stepping = [i for i, s in enumerate(streams) if s.dynamics is not None]
        if anchoring:
            for i, dynamics in zip(anchoring, self._calibrate([tensors[i] for i in anchoring])):
                streams[i].dynamics = dynamics
                outputs[i] = streams[i].neutral_output
        if stepping:
            for i, output in zip(stepping, self._step([streams[i] for i in stepping], [tensors[i] for i in stepping])):
                outputs[i] = output
        for stream in streams:
            stream.frames += 1
        return [to_image(output) for output in outputs]

    def _stream(self, stream_id: int) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise KeyError(f"no open stream {stream_id}") from None

    def _prepare_target(self, target_crop: np.ndarray) -> _Stream:
        target = to_tensor(target_crop, self.size)
        out = self.backend.run("target", {"target": target})
        return _Stream(target, out["target_response"], out["neutral_output"])

    def _calibrate(self, anchors: list[Tensor]) -> list[dict[str, Tensor]]:
        out = self.backend.run("calibrate", {"anchor": torch.cat(anchors)})
        return [{key: out[key][i : i + 1] for key in self.state_keys} for i in range(len(anchors))]

    def _step(self, streams: list[_Stream], frames: list[Tensor]) -> list[Tensor]:
        inputs = {
            "frame": torch.cat(frames),
            "target": torch.cat([s.target for s in streams]),
            "target_response": torch.cat([s.target_response for s in streams]),
        }
        for key in self.state_keys:
            inputs[key] = torch.cat([s.dynamics[key] for s in streams])
        out = self.backend.run("step", inputs)
        for i, stream in enumerate(streams):
            for key in self.state_keys:
                if f"next_{key}" in out:
                    stream.dynamics[key] = out[f"next_{key}"][i : i + 1]
        return [out["output"][i : i + 1] for i in range(len(streams))]


def to_tensor(crop: np.ndarray, size: int) -> Tensor:
    """uint8 (size, size, 3) RGB -> float32 (1, 3, size, size) in [-1, 1]."""
    if crop.dtype != np.uint8 or crop.shape != (size, size, 3):
        raise ValueError(f"expected a uint8 ({size}, {size}, 3) RGB crop, got {crop.dtype} {crop.shape}")
    return torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0).float().div_(127.5).sub_(1.0)


def to_image(frame: Tensor) -> np.ndarray:
    """float (1, 3, S, S) in [-1, 1] -> uint8 (S, S, 3) RGB."""
    pixels = frame[0].float().add(1.0).mul_(127.5).round_().clamp_(0, 255)
    return pixels.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
