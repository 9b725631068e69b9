"""Appearance-suppressed dynamics z_d = H - H_st, offline and streaming.

H is the encoder's LSTM run over the source video [y0, y1, ...]; H_st the same LSTM run
over the static video [y0, y0, ...]. Both runs share their first step exactly (same input,
same zero state), so both ways compute it once and z_d(0) is exactly zero.

- ``dynamics_offline``: whole sequences at once, with ``nn.LSTM`` (training, evaluation);
- ``start_dynamics`` / ``step_dynamics``: one frame at a time with the state passed in and
  out explicitly, O(1) work per frame: one CNN pass, one LSTM step for the live state and
  one for the static state, which reuses the cached input gates of y0.
- ``start_windowed`` / ``step_windowed``: for streams that never end. The whole-history
  LSTM drifts out of the range it was trained in (measured: after 3,000 frames of motion
  the static cell state reached 1,458 and the live 158, and 60 neutral frames left z_d at
  up to 0.09), so the live stream replays only the anchor and the last W frames,
  [y0, y_{t-W+1} .. y_t] (anchor frames fill the window at the start), against the
  static [y0] * (W + 1), computed once. Per frame: one CNN pass and W small LSTM steps;
  W neutral frames bring z_d back to exactly zero, whatever came before.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from rt_dtgan.models.encoder import DynamicsEncoder, LSTMState


class DynamicsState(NamedTuple):
    """Per-stream state (B streams): the LSTM input gates of the anchor frame y0
    (B, 4 * hidden_dim), and the live and static LSTM states, each (B, hidden_dim) twice."""

    anchor_gates: Tensor
    live: LSTMState
    static: LSTMState


def dynamics_offline(encoder: DynamicsEncoder, video: Tensor) -> Tensor:
    """video (B, T, 3, S, S) in [-1, 1] -> z_d (B, T, hidden_dim), z_d[:, 0] == 0 exactly.

    Differentiable with respect to ``video`` (the generator's gradient path through A).
    """
    hidden, static = hidden_and_static(encoder, video)
    return hidden - static


def hidden_and_static(encoder: DynamicsEncoder, video: Tensor) -> tuple[Tensor, Tensor]:
    """video (B, T, 3, S, S) -> (H, H_st), each (B, T, hidden_dim); their first steps are
    one and the same tensor."""
    batch, length = video.shape[:2]
    features = encoder.frame_features(video.flatten(0, 1)).unflatten(0, (batch, length))
    first = encoder.run_lstm(features[:, :1])[1]  # the state after the first frame
    first_hidden = first.h.unsqueeze(1)
    if length == 1:
        return first_hidden, first_hidden
    live = encoder.sequence_hidden(features[:, 1:], first)
    static = encoder.sequence_hidden(features[:, :1].expand(-1, length - 1, -1), first)
    return torch.cat([first_hidden, live], dim=1), torch.cat([first_hidden, static], dim=1)


def start_dynamics(encoder: DynamicsEncoder, anchor_frame: Tensor) -> tuple[Tensor, DynamicsState]:
    """anchor_frame y0 (B, 3, S, S) in [-1, 1] -> (z_d(0) (B, hidden_dim), all zeros; the state).

    Also the way to recalibrate: a new anchor restarts both LSTM states.
    """
    anchor_gates = encoder.input_gates(encoder.frame_features(anchor_frame))
    first = encoder.lstm_step(anchor_gates, encoder.initial_state(anchor_frame.shape[0], anchor_gates))
    return first.h - first.h, DynamicsState(anchor_gates, first, first)


def step_dynamics(encoder: DynamicsEncoder, frame: Tensor, state: DynamicsState) -> tuple[Tensor, DynamicsState]:
    """frame y_t (B, 3, S, S) in [-1, 1] and the state after y_{t-1} -> (z_d(t) (B, hidden_dim),
    the state after y_t). The live and static steps run as one batched LSTM step."""
    batch = frame.shape[0]
    live_gates = encoder.input_gates(encoder.frame_features(frame))
    both = encoder.lstm_step(
        torch.cat([live_gates, state.anchor_gates]),
        LSTMState(torch.cat([state.live.h, state.static.h]), torch.cat([state.live.c, state.static.c])),
    )
    live = LSTMState(both.h[:batch], both.c[:batch])
    static = LSTMState(both.h[batch:], both.c[batch:])
    return live.h - static.h, DynamicsState(state.anchor_gates, live, static)


def dynamics_streamed(encoder: DynamicsEncoder, video: Tensor) -> Tensor:
    """video (B, T, 3, S, S) -> z_d (B, T, hidden_dim), one frame at a time through the
    streaming state (the reference the runtime engine must match)."""
    z_first, state = start_dynamics(encoder, video[:, 0])
    outputs = [z_first]
    for t in range(1, video.shape[1]):
        z_t, state = step_dynamics(encoder, video[:, t], state)
        outputs.append(z_t)
    return torch.stack(outputs, dim=1)


class WindowState(NamedTuple):
    """Per-stream state of windowed dynamics (B streams): the LSTM state after the anchor
    step (h, c each (B, H)), the input gates of the last W frames (B, W, 4H), and h of the
    static window (B, H)."""

    first: LSTMState
    recent_gates: Tensor
    static_h: Tensor


def start_windowed(encoder: DynamicsEncoder, anchor_frame: Tensor, window: int) -> tuple[Tensor, WindowState]:
    """anchor_frame y0 (B, 3, S, S) -> (z_d(0) (B, H), exactly zero; the state)."""
    gates = encoder.input_gates(encoder.frame_features(anchor_frame))
    first = encoder.lstm_step(gates, encoder.initial_state(anchor_frame.shape[0], gates))
    recent = gates.unsqueeze(1).expand(-1, window, -1).contiguous()
    static_h = _replay(encoder, first, recent)
    return static_h - static_h, WindowState(first, recent, static_h)


def step_windowed(encoder: DynamicsEncoder, frame: Tensor, state: WindowState) -> tuple[Tensor, WindowState]:
    """frame y_t (B, 3, S, S) -> (z_d(t) (B, H), the state after y_t)."""
    gates = encoder.input_gates(encoder.frame_features(frame))
    recent = torch.cat([state.recent_gates[:, 1:], gates.unsqueeze(1)], dim=1)
    return _replay(encoder, state.first, recent) - state.static_h, WindowState(state.first, recent, state.static_h)


def _replay(encoder: DynamicsEncoder, first: LSTMState, gates: Tensor) -> Tensor:
    """h after running the LSTM from ``first`` over input gates (B, W, 4H)."""
    state = first
    for index in range(gates.shape[1]):
        state = encoder.lstm_step(gates[:, index], state)
    return state.h


def windowed_offline(encoder: DynamicsEncoder, video: Tensor, window: int) -> Tensor:
    """video (B, T, 3, S, S) or meshes (B, T, P, 2) -> windowed z_d (B, T, H), each frame's window run through
    ``nn.LSTM`` from scratch: the reference the streaming form must match."""
    length = video.shape[1]
    padded = torch.cat([video[:, :1].expand(-1, window, *video.shape[2:]), video], dim=1)
    outputs = []
    for t in range(length):
        sequence = torch.cat([video[:, :1], padded[:, t + 1 : t + window + 1]], dim=1)
        hidden, static = hidden_and_static(encoder, sequence)
        outputs.append(hidden[:, -1] - static[:, -1])
    return torch.stack(outputs, dim=1)


def sequence_dynamics(encoder: DynamicsEncoder, video: Tensor, appearance_suppression: bool = True) -> Tensor:
    """video (B, T, 3, S, S) -> what drives the generator, (B, T, hidden_dim): z_d = H - H_st,
    or, for the paper's ablation (experiment 3), H itself."""
    return dynamics_offline(encoder, video) if appearance_suppression else encoder(video)
