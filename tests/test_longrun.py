"""Streams that run for hours: after 20,000 frames of varied motion, the neutral calibration
face brings the output back to the stream's first output, and memory stays flat."""

from __future__ import annotations

import resource

import pytest
import torch
from conftest import make_lively_model

from rt_dtgan.runtime.backends import TorchBackend
from rt_dtgan.runtime.engine import StreamEngine, to_tensor
from rt_dtgan.synth import Expression, Identity, render
from rt_dtgan.synth.sequences import freeform_sequence
from rt_dtgan.train.metrics import psnr

SIZE = 64
MOTION_FRAMES = 20_000
NEUTRAL_FRAMES = 60


@pytest.fixture
def one_thread():
    """Small per-frame work runs fastest on one thread; restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.heavy
def test_neutral_face_returns_the_output_after_20000_frames_of_motion(one_thread):
    identity_seed = 21
    model = make_lively_model(SIZE, seed=7)
    with torch.no_grad():
        # Sensitive to faces: synthetic motion must take the output below 30 dB from the first.
        model.encoder.project[1].weight.mul_(100.0)
    engine = StreamEngine(TorchBackend(model))
    identity = Identity.from_seed(identity_seed)
    calibration = render(identity, Expression(), None, SIZE)
    stream = engine.open(render(Identity.from_seed(22), Expression(), None, SIZE))
    first = engine.step(stream, calibration)
    motion = freeform_sequence(5, MOTION_FRAMES, SIZE, identity_seed=identity_seed)
    peak_rss = None
    farthest = float("inf")
    for index, frame in enumerate(motion):
        output = engine.step(stream, frame.image)
        farthest = min(farthest, psnr(to_tensor(output, SIZE), to_tensor(first, SIZE)))
        if index == 2_000:
            peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert farthest < 30.0, "the motion must take the output away for the return to mean anything"
    # The neutral face with fresh sensor noise each frame, as a camera would give it.
    for index in range(NEUTRAL_FRAMES):
        output = engine.step(stream, render(identity, Expression(), None, SIZE, noise_seed=index))
    back = psnr(to_tensor(output, SIZE), to_tensor(first, SIZE))
    assert back >= 30.0, f"PSNR of the output after the neutral frames against the first output: {back:.1f} dB"
    assert engine.frames_seen(stream) == 1 + MOTION_FRAMES + NEUTRAL_FRAMES
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_rss
    assert grown_kib < 64 * 1024, f"peak memory grew by {grown_kib} KiB over 18,000 frames"
