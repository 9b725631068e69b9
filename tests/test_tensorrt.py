"""TensorRT: the machine checks run everywhere; building and FP16 parity need TensorRT and
an NVIDIA GPU and are skipped, saying so, where either is absent."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import make_lively_model, random_video

from rt_dtgan.cli import main
from rt_dtgan.models.checkpoint import save_checkpoint
from rt_dtgan.runtime.backends import TorchBackend
from rt_dtgan.runtime.engine import StreamEngine, to_image
from rt_dtgan.runtime.export import EngineError
from rt_dtgan.runtime.tensorrt_backend import Machine, check_machine

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
MISSING_FOR_TENSORRT = [
    what
    for what, present in (
        ("TensorRT is not installed (pip install 'rt-dtgan[trt]')", HAVE_TENSORRT),
        ("no NVIDIA GPU is present", torch.cuda.is_available()),
    )
    if not present
]
BUILT_ON = {"tensorrt": "10.3.0", "gpu": "NVIDIA GeForce RTX 3090", "compute_capability": "8.6"}


@pytest.mark.parametrize(
    "machine, field",
    [
        (Machine("10.7.0", "NVIDIA GeForce RTX 3090", "8.6"), "tensorrt"),
        (Machine("10.3.0", "NVIDIA H100 80GB HBM3", "8.6"), "gpu"),
        (Machine("10.3.0", "NVIDIA GeForce RTX 3090", "9.0"), "compute_capability"),
    ],
)
def test_plans_from_another_machine_are_refused(machine, field):
    meta = {"backend": "tensorrt", "tensorrt": BUILT_ON}
    with pytest.raises(EngineError, match=rf"plans were built for {field} .*rebuild them here"):
        check_machine(meta, machine, "engines/x")
    check_machine(meta, Machine(**BUILT_ON), "engines/x")


def test_onnx_engines_are_not_taken_for_plans():
    with pytest.raises(EngineError, match="holds no TensorRT plans"):
        check_machine({"backend": "onnx"}, Machine(**BUILT_ON), "engines/x")


@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed")
def test_export_without_tensorrt_names_the_extra(tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", make_lively_model())
    assert main(["export", "--checkpoint", str(checkpoint), "--backend", "tensorrt", "--out", str(tmp_path / "e")]) == 1
    assert "pip install 'rt-dtgan[trt]'" in capsys.readouterr().err


@pytest.mark.skipif(bool(MISSING_FOR_TENSORRT), reason="; ".join(MISSING_FOR_TENSORRT))
def test_tensorrt_fp16_follows_torch_fp32_over_100_frames(tmp_path):
    from rt_dtgan.runtime.tensorrt_backend import TensorRTBackend, export_tensorrt

    model = make_lively_model(seed=6)
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", model)
    export_tensorrt(model, tmp_path / "trt", checkpoint, precision="fp16", max_batch=4)
    video = random_video(1, 100, 64, seed=21)[0]
    crops = [to_image(frame.unsqueeze(0)) for frame in video]
    engines = [StreamEngine(TorchBackend(model)), StreamEngine(TensorRTBackend(tmp_path / "trt", checkpoint))]
    streams = [engine.open(crops[-1]) for engine in engines]
    for crop in crops:
        reference, fp16 = (engine.step(stream, crop) for engine, stream in zip(engines, streams))
        # Stated tolerance: FP16 within 8 of 255 levels per pixel, 1.5 on average.
        difference = (torch.from_numpy(reference).float() - torch.from_numpy(fp16).float()).abs()
        assert difference.max() <= 8 and difference.mean() <= 1.5


@pytest.mark.skipif(bool(MISSING_FOR_TENSORRT), reason="; ".join(MISSING_FOR_TENSORRT))
def test_tensorrt_fp16_keeps_a_neutral_z_d_at_zero_and_splits_batches_beyond_its_plans(tmp_path):
    from rt_dtgan.runtime.tensorrt_backend import TensorRTBackend, export_tensorrt

    model = make_lively_model(seed=7)
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", model)
    export_tensorrt(model, tmp_path / "trt", checkpoint, precision="fp16", max_batch=2)
    backend = TensorRTBackend(tmp_path / "trt", checkpoint)
    anchor = torch.rand(1, 3, 64, 64, device="cuda") * 2 - 1
    target = torch.rand(1, 3, 64, 64, device="cuda") * 2 - 1
    state = backend.run("calibrate", {"anchor": anchor})
    response = backend.run("target", {"target": target})["target_response"]
    for _ in range(50):
        step_inputs = {"frame": anchor, "target": target, "target_response": response}
        out = backend.run("step", step_inputs | {name: state[name] for name in StreamEngine(backend).state_keys})
        assert torch.count_nonzero(out["z_d"]) == 0
        state |= {name[len("next_"):]: value for name, value in out.items() if name.startswith("next_")}
    with pytest.raises(EngineError, match="a batch of 3 streams is more than"):
        backend.run("calibrate", {"anchor": anchor.expand(3, -1, -1, -1)})
    engine = StreamEngine(backend)
    crops = [to_image(frame.unsqueeze(0)) for frame in random_video(1, 5, 64, seed=4)[0]]
    streams = [engine.open(crop) for crop in crops]
    for _ in range(3):
        assert len(engine.step_many([(stream, crops[0]) for stream in streams])) == 5
