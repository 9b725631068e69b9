"""The three graphs a stream needs, as nn.Modules with explicit state in and out.

One ``GraphSpec`` per graph names its inputs and outputs and makes a sample input; the
same spec drives the torch backend, the ONNX export, the TensorRT build and the parity
tests. Every graph input and output is float32 (see Precision below); B is the number of streams.

- ``target``:    target (B, 3, S, S) -> target_response (B, C, S/2, S/2), neutral_output (B, 3, S, S)
- ``calibrate``: anchor (B, *F) -> the stream's dynamics state
- ``step``:      frame (B, *F), target, target_response and the state -> output (B, 3, S, S),
                 z_d (B, H) and ``next_<name>`` for each state tensor the step changes (ONNX
                 names a value once); state tensors without a ``next_`` stay as they are

What A reads per frame, F: the aligned crop (3, S, S) in [-1, 1], or for a mesh-reading A
the eye-aligned face mesh (MESH_POINTS, 2) in eye units. The generator's kind sets the rest
(``ModelConfig.generator_contract``, from its entry in GENERATOR_KINDS): a G that draws
gives ``output`` from the target and its response; a warping G has no target graph, its
step gives ``offsets`` (B, K, 2), F's keypoint offsets in eye units, and a fourth graph
refines the warp that the runtime makes of them:

- ``refine``:    warped (B, 3, S, S), displacement (B, 2, S, S), mouth (B, 1, S, S) -> mask (B, 1, S, S),
                 colour (B, 3, S, S)

The state, for a windowed stream (ModelConfig.stream_window = W > 0): first_h, first_c
(B, H), recent_gates (B, W, 4H), static_h (B, H); for whole history (W = 0):
anchor_gates (B, 4H), live_h, live_c, static_h, static_c (B, H).

Images are in [-1, 1]. ``neutral_output`` is G(x, F(0)), the output whenever z_d is zero
(the first frame of a stream), computed once per target.

Precision: A, F and so the dynamics state always run in float32. z_d = H - H_static
subtracts two nearly equal vectors, so a half-precision LSTM would leave a neutral face
with a z_d that is not exactly zero and let the state random-walk. Only the generator (G,
or a warping G's refiner) may hold float16 weights (``GraphSpec.build(model,
generator_dtype)``); the graphs cast at its boundary, so every graph input and output stays
float32 whatever the generator's precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rt_dtgan.config import MESH_POINTS, ModelConfig
from rt_dtgan.models import DynamicsTransferGAN, LSTMState
from rt_dtgan.models.dynamics import DynamicsState, WindowState, start_dynamics, start_windowed, step_dynamics, step_windowed
from rt_dtgan.models.warp import MOVING_POINTS

GENERATOR_PARTS = ("generator", "refiner")
STREAM_INPUTS = ("frame", "anchor", "target", "target_response", "warped", "displacement", "mouth")
TARGET_INPUTS = ("target", "target_response")


def in_generator_precision(generator: nn.Module, method, *tensors: Tensor):
    """``method`` of ``generator`` on ``tensors`` cast to its weights' dtype -> its output(s)
    as float32."""
    dtype = next(generator.parameters()).dtype
    outputs = method(*(tensor.to(dtype) for tensor in tensors))
    return tuple(output.float() for output in outputs) if isinstance(outputs, tuple) else outputs.float()


def set_generator_dtype(graph: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast the generator part of a graph module (GENERATOR_PARTS) to ``dtype``, in place;
    A and F stay float32."""
    for name in GENERATOR_PARTS:
        part = getattr(graph, name, None)
        if part is not None:
            part.to(dtype)
    return graph


class TargetGraph(nn.Module):
    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.embedder, self.generator = model.embedder, model.generator
        self.hidden_dim = model.config.encoder.hidden_dim

    def forward(self, target: Tensor) -> tuple[Tensor, Tensor]:
        generator = self.generator
        response = in_generator_precision(generator, generator.target_stem, target)
        no_dynamics = target.new_zeros(target.shape[0], self.hidden_dim)
        neutral = in_generator_precision(generator, generator.from_target_response, target, response, self.embedder(no_dynamics))
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
        generator = self.generator
        return in_generator_precision(generator, generator.from_target_response, target, target_response, self.embedder(z_d))


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


class WarpHistoryStepGraph(nn.Module):
    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.encoder, self.embedder = model.encoder, model.embedder

    def forward(
        self, frame: Tensor, anchor_gates: Tensor, live_h: Tensor, live_c: Tensor, static_h: Tensor, static_c: Tensor
    ) -> tuple[Tensor, ...]:
        state = DynamicsState(anchor_gates, LSTMState(live_h, live_c), LSTMState(static_h, static_c))
        z_d, state = step_dynamics(self.encoder, frame, state)
        return self.embedder(z_d), z_d, state.live.h, state.live.c, state.static.h, state.static.c


class WarpWindowStepGraph(nn.Module):
    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.encoder, self.embedder = model.encoder, model.embedder

    def forward(self, frame: Tensor, first_h: Tensor, first_c: Tensor, recent_gates: Tensor, static_h: Tensor) -> tuple[Tensor, ...]:
        state = WindowState(LSTMState(first_h, first_c), recent_gates, static_h)
        z_d, state = step_windowed(self.encoder, frame, state)
        return self.embedder(z_d), z_d, state.recent_gates


class RefineGraph(nn.Module):
    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.refiner = model.generator.refiner

    def forward(self, warped: Tensor, displacement: Tensor, mouth: Tensor) -> tuple[Tensor, Tensor]:
        return in_generator_precision(self.refiner, self.refiner, warped, displacement, mouth)


@dataclass(frozen=True)
class GraphSpec:
    """Names and sample shapes of one graph; dimension 0 of every tensor is the batch B."""

    name: str
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    module_type: type[nn.Module]

    def build(self, model: DynamicsTransferGAN, generator_dtype: torch.dtype = torch.float32) -> nn.Module:
        """The graph module over ``model``'s networks (shared, not copied: a float16
        ``generator_dtype`` casts the model's generator in place)."""
        return set_generator_dtype(self.module_type(model).eval(), generator_dtype)

    def sample_inputs(self, batch: int = 1, seed: int = 0) -> dict[str, Tensor]:
        """Random inputs of the right shapes: images uniform in [-1, 1], meshes and states small normals."""
        generator = torch.Generator().manual_seed(seed)
        return {
            name: (torch.rand((batch, *shape), generator=generator) * 2 - 1)
            if name in STREAM_INPUTS and len(shape) == 3
            else 0.3 * torch.randn((batch, *shape), generator=generator)
            for name, shape in self.inputs.items()
        }

    @property
    def state_inputs(self) -> list[str]:
        """The dynamics state tensors among the inputs (the step graph's)."""
        return [name for name in self.inputs if name not in STREAM_INPUTS]

    @property
    def target_inputs(self) -> list[str]:
        """The per-target tensors among the inputs (the step graph's; none for a warping G)."""
        return [name for name in self.inputs if name in TARGET_INPUTS]


def graph_specs(config: ModelConfig) -> dict[str, GraphSpec]:
    """The target (drawing generators only), calibrate and step specs for a model of
    ``config`` (shapes without the batch axis)."""
    if not config.appearance_suppression:
        raise ValueError("this model feeds G with H (the paper's ablation); it is for evaluation, not streaming")
    size, hidden = config.image_size, config.encoder.hidden_dim
    image = (3, size, size)
    frame = (MESH_POINTS, 2) if config.reads_mesh else image
    if config.stream_window:
        state = {"first_h": (hidden,), "first_c": (hidden,), "recent_gates": (config.stream_window, 4 * hidden), "static_h": (hidden,)}
        changing, calibrate, steps = ("recent_gates",), WindowCalibrateGraph, (WindowStepGraph, WarpWindowStepGraph)
    else:
        state = {"anchor_gates": (4 * hidden,), "live_h": (hidden,), "live_c": (hidden,), "static_h": (hidden,), "static_c": (hidden,)}
        changing = ("live_h", "live_c", "static_h", "static_c")
        calibrate, steps = HistoryCalibrateGraph, (HistoryStepGraph, WarpHistoryStepGraph)
    next_state = {f"next_{name}": state[name] for name in changing}
    specs = {"calibrate": GraphSpec("calibrate", {"anchor": frame}, state, calibrate)}
    contract = config.generator_contract
    if contract.draws:
        response = (config.generator.channels[0], size // 2, size // 2)
        target_outputs = {"target_response": response, "neutral_output": image}
        specs["target"] = GraphSpec("target", {"target": image}, target_outputs, TargetGraph)
        step_inputs = {"frame": frame, "target": image, "target_response": response} | state
        step_outputs = {contract.step_output: image, "z_d": (hidden,)} | next_state
        specs["step"] = GraphSpec("step", step_inputs, step_outputs, steps[0])
    else:
        offsets = (len(MOVING_POINTS), 2)
        step_outputs = {contract.step_output: offsets, "z_d": (hidden,)} | next_state
        specs["step"] = GraphSpec("step", {"frame": frame} | state, step_outputs, steps[1])
        refine_inputs = {"warped": image, "displacement": (2, size, size), "mouth": (1, size, size)}
        specs["refine"] = GraphSpec("refine", refine_inputs, {"mask": (1, size, size), "colour": image}, RefineGraph)
    return specs
