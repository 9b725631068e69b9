"""A, the dynamics encoder: a CNN per frame, then an LSTM over time.

Pretrained as an expression recogniser (the paper's ref. [12]) and frozen while the GAN
trains. Two ways to run the LSTM share one set of weights:

- ``sequence_hidden``: ``nn.LSTM`` over a whole sequence (fast offline and in training);
- ``lstm_step``: one step with the state passed in and returned, written as plain
  matrix products so that it exports to ONNX/TensorRT without an RNN operator.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from rt_dtgan.config import MESH_POINTS, EncoderConfig


class LSTMState(NamedTuple):
    """One LSTM state: hidden ``h`` and cell ``c``, each (B, hidden_dim) float."""

    h: Tensor
    c: Tensor


def conv_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 stride-2 convolution, batch norm (folded away at export), LeakyReLU: halves the side."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    )


def mesh_mlp(config: EncoderConfig) -> nn.Sequential:
    """(N, MESH_POINTS, 2) eye-aligned mesh in eye units -> (N, feature_dim) in (-1, 1)."""
    widths = (MESH_POINTS * 2, *config.mesh_hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    for inputs, outputs in zip(widths, widths[1:]):
        layers += [nn.Linear(inputs, outputs), nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers, nn.Linear(widths[-1], config.feature_dim), nn.Tanh())


class DynamicsEncoder(nn.Module):
    """Per frame, a crop (3, S, S) in [-1, 1] (``input`` "rgb") or an eye-aligned mesh
    (MESH_POINTS, 2) in eye units ("mesh") -> features (feature_dim) -> LSTM hidden (B, T, hidden_dim)."""

    def __init__(self, config: EncoderConfig, image_size: int) -> None:
        super().__init__()
        self.config = config
        if config.input == "mesh":
            self.mesh_features = mesh_mlp(config)
        else:
            in_channels = (3,) + tuple(config.channels[:-1])
            self.cnn = nn.Sequential(*(conv_stage(i, o) for i, o in zip(in_channels, config.channels)))
            side = image_size >> len(config.channels)
            flat = config.channels[-1] * side * side
            self.project = nn.Sequential(nn.Flatten(), nn.Linear(flat, config.feature_dim), nn.Tanh())
        self.lstm = nn.LSTM(config.feature_dim, config.hidden_dim, batch_first=True)
        self.expression_head = nn.Linear(config.hidden_dim, config.num_classes)
        self.control_head = nn.Linear(config.hidden_dim, config.num_controls, bias=False)

    def frame_features(self, frames: Tensor) -> Tensor:
        """frames (N, 3, S, S) float in [-1, 1], or meshes (N, MESH_POINTS, 2) -> per-frame
        features (N, feature_dim). The last feature map is flattened, not pooled: where a
        face moves matters to its expression."""
        if self.config.input == "mesh":
            return self.mesh_features(frames)
        return self.project(self.cnn(frames))

    def initial_state(self, batch: int, like: Tensor) -> LSTMState:
        """The zero state for ``batch`` streams, on the device and dtype of ``like``."""
        zeros = like.new_zeros(batch, self.config.hidden_dim)
        return LSTMState(zeros, zeros)

    def sequence_hidden(self, features: Tensor, state: LSTMState | None = None) -> Tensor:
        """features (B, T, feature_dim) -> hidden states H (B, T, hidden_dim), from ``state``
        or from zeros."""
        return self.run_lstm(features, state)[0]

    def run_lstm(self, features: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """features (B, T, feature_dim) -> (H (B, T, hidden_dim), the state after the last step)."""
        initial = None if state is None else (state.h.unsqueeze(0), state.c.unsqueeze(0))
        # cuDNN's LSTM has no backward in eval mode, and the frozen A of GAN training is in
        # eval mode while eq. 6 back-propagates through it: use the native kernels then.
        with torch.backends.cudnn.flags(enabled=self.training or not torch.is_grad_enabled()):
            hidden, (h, c) = self.lstm(features, initial)
        return hidden, LSTMState(h.squeeze(0), c.squeeze(0))

    def input_gates(self, features: Tensor) -> Tensor:
        """The input half of the LSTM gates, W_ih f + b_ih: (B, feature_dim) -> (B, 4 * hidden_dim).
        Depends on the frame alone, so the static stream caches it for y0."""
        return torch.addmm(self.lstm.bias_ih_l0, features, self.lstm.weight_ih_l0.t())

    def lstm_step(self, input_gates: Tensor, state: LSTMState) -> LSTMState:
        """One LSTM step from precomputed ``input_gates`` (B, 4 * hidden_dim); returns the new
        state (h, c). Gate order i, f, g, o as in ``nn.LSTM``."""
        gates = input_gates + torch.addmm(self.lstm.bias_hh_l0, state.h, self.lstm.weight_hh_l0.t())
        in_gate, forget_gate, cell_gate, out_gate = gates.chunk(4, dim=1)
        c = torch.sigmoid(forget_gate) * state.c + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
        h = torch.sigmoid(out_gate) * torch.tanh(c)
        return LSTMState(h, c)

    def classify(self, hidden: Tensor) -> Tensor:
        """hidden (..., hidden_dim) -> expression logits (..., num_classes), for pretraining A."""
        return self.expression_head(hidden)

    def regress_controls(self, z_d: Tensor) -> Tensor:
        """z_d (..., hidden_dim) -> expression controls (..., num_controls), a linear readout
        without bias (z_d = 0 reads as the neutral face), for pretraining A."""
        return self.control_head(z_d)

    def forward(self, video: Tensor) -> Tensor:
        """video (B, T, 3, S, S) in [-1, 1] or meshes (B, T, MESH_POINTS, 2) -> H (B, T, hidden_dim)."""
        batch, length = video.shape[:2]
        features = self.frame_features(video.flatten(0, 1)).unflatten(0, (batch, length))
        return self.sequence_hidden(features)
