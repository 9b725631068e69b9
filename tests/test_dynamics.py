"""z_d = H - H_st: the streaming computation equals the offline one, and its invariants."""

from __future__ import annotations

import pytest
import torch
from conftest import random_video

from rt_dtgan.models.dynamics import dynamics_offline, dynamics_streamed, start_dynamics, step_dynamics

SIZE = 64


@pytest.mark.parametrize("length", [1, 2, 17, 300])
def test_streaming_equals_offline(lively_model, length):
    video = random_video(2, length, SIZE, seed=length)
    with torch.inference_mode():
        offline = dynamics_offline(lively_model.encoder, video)
        streamed = dynamics_streamed(lively_model.encoder, video)
    assert offline.shape == streamed.shape == (2, length, lively_model.config.encoder.hidden_dim)
    if length > 1:
        assert offline[:, 1:].abs().max() > 0.1, "dynamics too small for the tolerance to mean anything"
    assert (streamed - offline).abs().max().item() < 1e-5


def test_first_dynamics_is_exactly_zero(lively_model):
    video = random_video(3, 5, SIZE, seed=1)
    with torch.inference_mode():
        for z_d in (dynamics_offline(lively_model.encoder, video), dynamics_streamed(lively_model.encoder, video)):
            assert torch.count_nonzero(z_d[:, 0]) == 0
            assert torch.count_nonzero(z_d[:, 1:]) > 0


def test_static_video_gives_zero_dynamics(lively_model):
    still = random_video(2, 1, SIZE, seed=2).expand(-1, 40, -1, -1, -1).contiguous()
    with torch.inference_mode():
        assert torch.count_nonzero(dynamics_offline(lively_model.encoder, still)) == 0
        assert torch.count_nonzero(dynamics_streamed(lively_model.encoder, still)) == 0


def test_recalibration_restarts_both_states(lively_model):
    first, second = random_video(1, 6, SIZE, seed=3), random_video(1, 6, SIZE, seed=4)
    encoder = lively_model.encoder
    with torch.inference_mode():
        _, state = start_dynamics(encoder, first[:, 0])
        for t in range(1, 6):
            _, state = step_dynamics(encoder, first[:, t], state)
        z_first, state = start_dynamics(encoder, second[:, 0])
        streamed = [z_first]
        for t in range(1, 6):
            z_t, state = step_dynamics(encoder, second[:, t], state)
            streamed.append(z_t)
        expected = dynamics_offline(encoder, second)
    assert torch.count_nonzero(z_first) == 0
    assert (torch.stack(streamed, dim=1) - expected).abs().max().item() < 1e-5


def test_batched_streams_do_not_mix(lively_model):
    video = random_video(3, 12, SIZE, seed=5)
    with torch.inference_mode():
        together = dynamics_streamed(lively_model.encoder, video)
        alone = torch.cat([dynamics_streamed(lively_model.encoder, video[i : i + 1]) for i in range(3)])
    assert (together - alone).abs().max().item() < 1e-5


def test_streaming_state_does_not_grow(lively_model):
    video = random_video(1, 50, SIZE, seed=6)
    with torch.inference_mode():
        _, state = start_dynamics(lively_model.encoder, video[:, 0])
        shapes = _state_shapes(state)
        for t in range(1, 50):
            _, state = step_dynamics(lively_model.encoder, video[:, t], state)
        assert _state_shapes(state) == shapes


def _state_shapes(state):
    return [tuple(t.shape) for t in (state.anchor_gates, *state.live, *state.static)]


def test_offline_dynamics_carry_gradient_to_the_video(lively_model):
    video = random_video(1, 4, SIZE, seed=7).requires_grad_(True)
    dynamics_offline(lively_model.encoder, video).abs().sum().backward()
    assert video.grad is not None and video.grad.abs().sum() > 0
