"""The GPU path's rules, checked where the logic runs on the CPU: batches beyond a
backend's limit are split or refused; under mixed precision A and its state stay float32
(a neutral stream's z_d exactly zero) while G runs in float16; the mixed ONNX graph keeps
A's weights float32; a TensorRT plan whose tensors disagree with meta.json is refused."""

from __future__ import annotations

import enum
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from conftest import make_lively_model, random_video

from rt_dtgan.runtime.backends import OnnxRuntimeBackend, TorchBackend, run_in_chunks
from rt_dtgan.runtime.engine import StreamEngine, to_image
from rt_dtgan.runtime.export import EngineError, export_onnx, file_sha256
from rt_dtgan.runtime.tensorrt_backend import _load_engine, _set_input_shape, check_engine_tensors

SIZE = 64


@pytest.fixture(scope="module", params=[0, 16], ids=["history", "window16"])
def model(request):
    return make_lively_model(SIZE, seed=8, stream_window=request.param)


def _crops(count: int, seed: int) -> list[np.ndarray]:
    return [to_image(frame.unsqueeze(0)) for frame in random_video(1, count, SIZE, seed=seed)[0]]


def _assert_backends_agree(model, options: tuple[dict, dict], streams: int, steps: int, seed: int) -> None:
    """Two torch backends of ``model`` stream the same frames of ``streams`` streams for
    ``steps`` batched calls; their crops agree within 1 level (float sums differ by batch
    size and kernel choice)."""
    crops = _crops(streams + steps, seed=seed)
    outputs = []
    for backend_options in options:
        engine = StreamEngine(TorchBackend(model, **backend_options))
        ids = [engine.open(crops[i]) for i in range(streams)]
        outputs.append([engine.step_many([(s, crops[(s + step) % len(crops)]) for s in ids]) for step in range(steps)])
    for first, second in zip(*outputs):
        for a, b in zip(first, second):
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_batches_beyond_max_batch_are_split_into_calls_it_takes(model):
    _assert_backends_agree(model, ({}, {"max_batch": 2}), streams=5, steps=4, seed=3)


def test_a_backend_refuses_a_batch_beyond_its_limit(model):
    backend = TorchBackend(model, max_batch=2)
    anchors = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    with pytest.raises(EngineError, match="a batch of 3 streams is more than this torch backend takes in one call \\(2\\)"):
        backend.run("calibrate", {"anchor": anchors})
    assert run_in_chunks(backend, "calibrate", {"anchor": anchors})["static_h"].shape[0] == 3


def _step_and_embedding(backend, inputs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The step graph's outputs, and F's output inside it: the embedding of z_d that G draws from."""
    embedded = []
    hook = backend.graphs["step"].embedder.register_forward_hook(lambda module, args, output: embedded.append(output))
    try:
        return backend.run("step", inputs), embedded[-1]
    finally:
        hook.remove()


def test_half_precision_runs_g_in_float16_and_keeps_a_and_its_state_float32(model):
    half, full = TorchBackend(model, half=True), TorchBackend(model)
    step = half.graphs["step"]
    assert {p.dtype for p in step.encoder.parameters()} == {torch.float32}
    assert {p.dtype for p in step.embedder.parameters()} == {torch.float32}
    assert {p.dtype for p in step.generator.parameters()} == {torch.float16}
    inputs = half.specs["step"].sample_inputs(batch=2, seed=1)
    inputs["frame"] = inputs["frame"].clamp(-1, 1)
    (ours, our_embedding), (reference, embedding) = _step_and_embedding(half, inputs), _step_and_embedding(full, inputs)
    for name, value in ours.items():
        assert value.dtype == torch.float32, name
        if name != "output":  # z_d and the state: A's float32 arithmetic, unchanged
            torch.testing.assert_close(value, reference[name], rtol=0, atol=0)
    assert our_embedding.dtype == torch.float32, "F runs in float32; only G's input is cast"
    torch.testing.assert_close(our_embedding, embedding, rtol=0, atol=0)  # F's output, bit-identical
    assert (ours["output"] - reference["output"]).abs().max() < 0.05


NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
HALF_BACKENDS = [
    pytest.param({"half": True}, id="cpu"),
    pytest.param({"half": True, "device": "cuda"}, id="cuda", marks=NO_CUDA),
    pytest.param({"half": True, "device": "cuda", "cuda_graphs": True}, id="cuda-graphs", marks=NO_CUDA),
]


@pytest.mark.parametrize("options", HALF_BACKENDS)
def test_a_neutral_stream_gives_z_d_exactly_zero_under_half_precision(model, options):
    backend = TorchBackend(model, **options)
    anchor = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    state = backend.run("calibrate", {"anchor": anchor})
    target = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    response = backend.run("target", {"target": target})["target_response"]
    for _ in range(50):
        step_inputs = {"frame": anchor, "target": target, "target_response": response}
        out = backend.run("step", step_inputs | {name: state[name] for name in backend.specs["step"].state_inputs})
        assert torch.count_nonzero(out["z_d"]) == 0
        assert all(value.dtype == torch.float32 for value in out.values())
        state |= {name[len("next_"):]: value for name, value in out.items() if name.startswith("next_")}


@NO_CUDA
def test_cuda_graphs_with_a_batch_limit_follow_eager_float16(model):
    _assert_backends_agree(model, ({"device": "cuda"}, {"device": "cuda", "cuda_graphs": True, "max_batch": 2}), streams=5, steps=6, seed=9)


def test_mixed_precision_onnx_keeps_a_in_float32_and_runs_like_torch(model, tmp_path):
    export_onnx(model, tmp_path, None, max_batch=4, generator_dtype=torch.float16)

    def initializer_types(graph: str) -> set[int]:
        return {tensor.data_type for tensor in onnx.load(tmp_path / f"{graph}.onnx").graph.initializer}

    assert onnx.TensorProto.FLOAT16 not in initializer_types("calibrate")
    assert onnx.TensorProto.FLOAT16 in initializer_types("target")
    crops = _crops(30, seed=5)
    engines = [StreamEngine(TorchBackend(model, half=True)), StreamEngine(OnnxRuntimeBackend(tmp_path, threads=1))]
    streams = [engine.open(crops[-1]) for engine in engines]
    for crop in crops:
        torch_frame, onnx_frame = (engine.step(stream, crop).astype(int) for engine, stream in zip(engines, streams))
        assert np.abs(torch_frame - onnx_frame).max() <= 2


class _TensorRTStandIn:
    """The corner of the TensorRT 10 API the plan checks read; what they read is set per test."""

    float32, float16 = "FLOAT", "HALF"
    TensorIOMode = enum.Enum("TensorIOMode", "INPUT OUTPUT")


class _Plan:
    def __init__(self, inputs: dict[str, str], outputs: dict[str, str], largest_batch: int) -> None:
        self.modes = {name: _TensorRTStandIn.TensorIOMode.INPUT for name in inputs} | {
            name: _TensorRTStandIn.TensorIOMode.OUTPUT for name in outputs
        }
        self.dtypes = inputs | outputs
        self.largest_batch = largest_batch
        self.num_io_tensors = len(self.dtypes)

    def get_tensor_name(self, index: int) -> str:
        return list(self.dtypes)[index]

    def get_tensor_mode(self, name: str):
        return self.modes[name]

    def get_tensor_dtype(self, name: str) -> str:
        return self.dtypes[name]

    def get_tensor_profile_shape(self, name: str, profile: int):
        return [(1, 3), (1, 3), (self.largest_batch, 3)]


META_GRAPH = {"inputs": {"anchor": [3]}, "outputs": {"static_h": [8], "first_h": [8]}}
FLOAT = _TensorRTStandIn.float32


def test_a_plan_that_matches_its_meta_is_taken():
    plan = _Plan({"anchor": FLOAT}, {"first_h": FLOAT, "static_h": FLOAT}, largest_batch=32)
    assert check_engine_tensors(_TensorRTStandIn, plan, META_GRAPH, 32, "calibrate") == ["static_h", "first_h"]


@pytest.mark.parametrize(
    "plan, message",
    [
        (_Plan({"frame": FLOAT}, {"first_h": FLOAT, "static_h": FLOAT}, 32), r"inputs are \['frame'\], meta.json says \['anchor'\]"),
        (_Plan({"anchor": FLOAT}, {"static_h": FLOAT}, 32), r"outputs are \['static_h'\]"),
        (_Plan({"anchor": FLOAT}, {"first_h": "HALF", "static_h": FLOAT}, 32), "first_h is HALF, not float32"),
        (_Plan({"anchor": FLOAT}, {"first_h": FLOAT, "static_h": FLOAT}, 8), "takes at most 8 streams, meta.json says 32"),
    ],
    ids=["input-name", "outputs", "dtype", "batch-profile"],
)
def test_a_plan_that_disagrees_with_its_meta_is_refused(plan, message):
    with pytest.raises(EngineError, match=message):
        check_engine_tensors(_TensorRTStandIn, plan, META_GRAPH, 32, "calibrate")


def test_refused_shapes_and_unloadable_plans_are_errors_not_silence(tmp_path):
    refusing = SimpleNamespace(set_input_shape=lambda name, shape: False)
    with pytest.raises(EngineError, match=r"refused the shape \(64, 3\) for frame"):
        _set_input_shape(refusing, "step", "frame", (64, 3))
    plan_path = tmp_path / "step.plan"
    plan_path.write_bytes(b"not a plan")
    runtime = SimpleNamespace(deserialize_cuda_engine=lambda data: None)
    with pytest.raises(EngineError, match="could not load the plan"):
        _load_engine(runtime, plan_path, file_sha256(plan_path))
    with pytest.raises(EngineError, match="changed since it was built"):
        _load_engine(runtime, plan_path, "0" * 64)


@NO_CUDA
def test_a_compiled_step_follows_the_eager_one(model):
    _assert_backends_agree(model, ({"device": "cuda"}, {"device": "cuda", "compile_step": True}), streams=3, steps=5, seed=12)
