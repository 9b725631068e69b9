"""The three graphs a stream needs, as nn.Modules with explicit state in and out.

One ``GraphSpec`` per graph names its inputs and outputs and makes a sample input; the
same spec drives the torch backend, the ONNX export, the TensorRT build and the parity
tests. Every tensor is float32 (float16 inside TensorRT); B is the number of streams.

- ``target``:    target (B, 3, S, S) -> target_response (B, C, S/2, S/2), neutral_output (B, 3, S, S)
- ``calibrate``: anchor (B, 3, S, S) -> the stream's dynamics state
- ``step``:      frame, target, target_response and the state -> output (B, 3, S, S),
                 z_d (B, H) and ``next_<name>`` for each state tensor the step changes (ONNX
                 names a value once); state tensors without a ``next_`` stay as they are

The state, for a windowed stream (ModelConfig.stream_window = W > 0): first_h, first_c
(B, H), recent_gates (B, W, 4H), static_h (B, H); for whole history (W = 0):
anchor_gates (B, 4H), live_h, live_c, static_h, static_c (B, H).

Images are in [-1, 1]. ``neutral_output`` is G(x, F(0)), the output whenever z_d is zero
(the first frame of a stream), computed once per target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rt_dtgan.config import ModelConfig
from rt_dtgan.dynamics import DynamicsState, WindowState, start_dynamics, start_windowed, step_dynamics, step_windowed
from rt_dtgan.models import DynamicsTransferGAN, LSTMState

STREAM_INPUTS = ("frame", "target", "target_response")


class TargetGraph(nn.Module):
    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.embedder, self.generator = model.embedder, model.generator
        self.hidden_dim = model.config.encoder.hidden_dim

    def forward(self, target: Tensor) -> tuple[Tensor, Tensor]:
        response = self.generator.target_stem(target)
        no_dynamics = target.new_zeros(target.shape[0], self.hidden_dim)
        neutral = self.generator.from_target_response(target, response, self.embedder(no_dynamics))
        return response, neutral


class HistoryCalibrateGraph(nn.Module):
    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, anchor: Tensor) -> tuple[Tensor, ...]:
        _, state = start_dynamics(self.encoder, anchor)
        return state.anchor_gates, state.live.h, state.live.c, state.static.h.clone(), state.static.c.clone()


class _StepGraph(nn.Module):
    """What both step graphs share: the networks, and the frame G draws for z_d."""

    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.encoder, self.embedder, self.generator = model.encoder, model.embedder, model.generator

    def draw(self, target: Tensor, target_response: Tensor, z_d: Tensor) -> Tensor:
        return self.generator.from_target_response(target, target_response, self.embedder(z_d))


class HistoryStepGraph(_StepGraph):
    def forward(
        self,
        frame: Tensor,
        target: Tensor,
        target_response: Tensor,
        anchor_gates: Tensor,
        live_h: Tensor,
        live_c: Tensor,
        static_h: Tensor,
        static_c: Tensor,
    ) -> tuple[Tensor, ...]:
        state = DynamicsState(anchor_gates, LSTMState(live_h, live_c), LSTMState(static_h, static_c))
        z_d, state = step_dynamics(self.encoder, frame, state)
        return self.draw(target, target_response, z_d), z_d, state.live.h, state.live.c, state.static.h, state.static.c


class WindowCalibrateGraph(nn.Module):
    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.encoder, self.window = model.encoder, model.config.stream_window

    def forward(self, anchor: Tensor) -> tuple[Tensor, ...]:
        _, state = start_windowed(self.encoder, anchor, self.window)
        return state.first.h, state.first.c, state.recent_gates, state.static_h


class WindowStepGraph(_StepGraph):
    def forward(
        self,
        frame: Tensor,
        target: Tensor,
        target_response: Tensor,
        first_h: Tensor,
        first_c: Tensor,
        recent_gates: Tensor,
        static_h: Tensor,
    ) -> tuple[Tensor, ...]:
        state = WindowState(LSTMState(first_h, first_c), recent_gates, static_h)
        z_d, state = step_windowed(self.encoder, frame, state)
        return self.draw(target, target_response, z_d), z_d, state.recent_gates


@dataclass(frozen=True)
class GraphSpec:
    """Names and sample shapes of one graph; dimension 0 of every tensor is the batch B."""

    name: str
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    module_type: type[nn.Module]

    def build(self, model: DynamicsTransferGAN) -> nn.Module:
        return self.module_type(model).eval()

    def sample_inputs(self, batch: int = 1, seed: int = 0) -> dict[str, Tensor]:
        """Random inputs of the right shapes: images uniform in [-1, 1], states small normals."""
        generator = torch.Generator().manual_seed(seed)
        return {
            name: (torch.rand((batch, *shape), generator=generator) * 2 - 1)
            if name in STREAM_INPUTS
            else 0.3 * torch.randn((batch, *shape), generator=generator)
            for name, shape in self.inputs.items()
        }

    @property
    def state_inputs(self) -> list[str]:
        """The dynamics state tensors among the inputs (the step graph's)."""
        return [name for name in self.inputs if name not in STREAM_INPUTS]


def graph_specs(config: ModelConfig) -> dict[str, GraphSpec]:
    """The target, calibrate and step specs for a model of ``config`` (shapes without the batch axis)."""
    if not config.appearance_suppression:
        raise ValueError("this model feeds G with H (the paper's ablation); it is for evaluation, not streaming")
    size, hidden = config.image_size, config.encoder.hidden_dim
    image = (3, size, size)
    response = (config.generator.channels[0], size // 2, size // 2)
    if config.stream_window:
        state = {"first_h": (hidden,), "first_c": (hidden,), "recent_gates": (config.stream_window, 4 * hidden), "static_h": (hidden,)}
        changing, graphs = ("recent_gates",), (WindowCalibrateGraph, WindowStepGraph)
    else:
        state = {"anchor_gates": (4 * hidden,), "live_h": (hidden,), "live_c": (hidden,), "static_h": (hidden,), "static_c": (hidden,)}
        changing, graphs = ("live_h", "live_c", "static_h", "static_c"), (HistoryCalibrateGraph, HistoryStepGraph)
    step_outputs = {"output": image, "z_d": (hidden,)} | {f"next_{name}": state[name] for name in changing}
    return {
        "target": GraphSpec("target", {"target": image}, {"target_response": response, "neutral_output": image}, TargetGraph),
        "calibrate": GraphSpec("calibrate", {"anchor": image}, state, graphs[0]),
        "step": GraphSpec("step", {"frame": image, "target": image, "target_response": response} | state, step_outputs, graphs[1]),
    }
