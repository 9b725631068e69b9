"""The three graphs a stream needs, as nn.Modules with explicit state in and out.

One ``GraphSpec`` per graph names its inputs and outputs and makes a sample input; the
same spec drives the torch backend, the ONNX export, the TensorRT build and the parity
tests. Every tensor is float32 (float16 inside TensorRT); B is the number of streams.

- ``target``:    target (B, 3, S, S) -> target_response (B, C, S/2, S/2), neutral_output (B, 3, S, S)
- ``calibrate``: anchor (B, 3, S, S) -> anchor_gates (B, 4H), live_h, live_c (B, H)
                 (the static state starts equal to the live one)
- ``step``:      frame, target, target_response, anchor_gates, live_h, live_c, static_h, static_c
                 -> output (B, 3, S, S), z_d (B, H), next_live_h, next_live_c, next_static_h,
                 next_static_c (ONNX names a value once, so a state's next value gets its own name)

Images are in [-1, 1]. ``neutral_output`` is G(x, F(0)), the output whenever z_d is zero
(the first frame of a stream), computed once per target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rt_dtgan.dynamics import DynamicsState, start_dynamics, step_dynamics
from rt_dtgan.models import DynamicsTransferGAN, LSTMState


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


class CalibrateGraph(nn.Module):
    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, anchor: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _, state = start_dynamics(self.encoder, anchor)
        return state.anchor_gates, state.live.h, state.live.c


class StepGraph(nn.Module):
    def __init__(self, model: DynamicsTransferGAN) -> None:
        super().__init__()
        self.encoder, self.embedder, self.generator = model.encoder, model.embedder, model.generator

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
        output = self.generator.from_target_response(target, target_response, self.embedder(z_d))
        return output, z_d, state.live.h, state.live.c, state.static.h, state.static.c


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
            if len(shape) == 3
            else 0.3 * torch.randn((batch, *shape), generator=generator)
            for name, shape in self.inputs.items()
        }


def graph_specs(model: DynamicsTransferGAN) -> dict[str, GraphSpec]:
    """The target, calibrate and step specs for ``model`` (shapes without the batch axis)."""
    config = model.config
    if not config.appearance_suppression:
        raise ValueError("this model feeds G with H (the paper's ablation); it is for evaluation, not streaming")
    size, hidden = config.image_size, config.encoder.hidden_dim
    image = (3, size, size)
    response = (config.generator.channels[0], size // 2, size // 2)
    gates, state = (4 * hidden,), (hidden,)
    return {
        "target": GraphSpec("target", {"target": image}, {"target_response": response, "neutral_output": image}, TargetGraph),
        "calibrate": GraphSpec(
            "calibrate", {"anchor": image}, {"anchor_gates": gates, "live_h": state, "live_c": state}, CalibrateGraph
        ),
        "step": GraphSpec(
            "step",
            {
                "frame": image,
                "target": image,
                "target_response": response,
                "anchor_gates": gates,
                "live_h": state,
                "live_c": state,
                "static_h": state,
                "static_c": state,
            },
            {
                "output": image,
                "z_d": state,
                "next_live_h": state,
                "next_live_c": state,
                "next_static_h": state,
                "next_static_c": state,
            },
            StepGraph,
        ),
    }
