"""Shared fixtures: small models whose dynamics are large enough for tolerances to mean something."""

from __future__ import annotations

import dataclasses
import json
import threading
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from rt_dtgan.config import ModelConfig
from rt_dtgan.models import DynamicsTransferGAN


def make_lively_model(size: int = 64, seed: int = 0, stream_window: int | None = None) -> DynamicsTransferGAN:
    """A freshly initialised model in eval mode whose encoder reacts strongly to its input.

    At default initialisation, random frames give z_d of about 1e-3, too little for a
    tolerance to test anything; larger gains on the encoder's projection and LSTM input, and
    on G's embedding stem, give z_d of order 0.1 to 1 and outputs that move with it, as a
    trained model does, while keeping the LSTM stable.
    """
    torch.manual_seed(seed)
    config = ModelConfig.for_size(size)
    if stream_window is not None:
        config = dataclasses.replace(config, stream_window=stream_window)
    model = DynamicsTransferGAN(config)
    with torch.no_grad():
        model.encoder.project[1].weight.mul_(10.0)
        nn.init.normal_(model.encoder.lstm.weight_ih_l0, std=0.3)
        model.generator.embedding_stem.weight.mul_(10.0)
    return model.eval()


LOOPBACK = "tcp://127.0.0.1:*"
# Seconds to wait for something to happen: long enough only to catch a hang, not to time anything.
HANG_S = 30.0


def make_lively_geometry_model(size: int = 64, window: int = 4, seed: int = 0) -> DynamicsTransferGAN:
    """A fresh geometry model (ModelConfig.geometry) in eval mode whose keypoint offsets move
    by about 0.1 eye units for meshes that move by a few hundredths, as a trained one does."""
    torch.manual_seed(seed)
    model = DynamicsTransferGAN(dataclasses.replace(ModelConfig.geometry(size), stream_window=window))
    with torch.no_grad():
        nn.init.normal_(model.encoder.lstm.weight_ih_l0, std=0.3)
        model.embedder.layers[-1].weight.mul_(300.0)
    return model.eval()


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for the module's tests, then back to what it was."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@contextmanager
def serving(server):
    """Run a transport Worker or Broker's serve_forever in a thread; stop and join it on exit."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(timeout=30)  # long enough only to catch a hang
        assert not thread.is_alive(), "server did not stop"


def new_worker(model: DynamicsTransferGAN, **config):
    """A transport Worker on loopback (an ephemeral port unless ``bind`` is given) serving ``model``."""
    from rt_dtgan.runtime.backends import TorchBackend
    from rt_dtgan.runtime.engine import StreamEngine
    from rt_dtgan.transport import Worker, WorkerConfig

    config.setdefault("bind", LOOPBACK)
    return Worker(WorkerConfig(**config), StreamEngine(TorchBackend(model)))


def header(**fields) -> bytes:
    """A protocol header: ``{"v": 1, **fields}`` as JSON bytes."""
    return json.dumps({"v": 1, **fields}).encode()


def random_video(batch: int, length: int, size: int, seed: int = 0) -> torch.Tensor:
    """(batch, length, 3, size, size) uniform in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, length, 3, size, size, generator=generator) * 2 - 1


@pytest.fixture(scope="session")
def lively_model() -> DynamicsTransferGAN:
    return make_lively_model()


def decoded(path) -> list:
    """Every frame of a video file, as (H, W, 3) uint8 RGB arrays."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
