"""The stream graphs: ONNX export, ONNX Runtime parity with torch, the StreamEngine's
semantics, and the engine meta that ties engines to their checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_lively_model, random_video

from rt_dtgan.models.checkpoint import save_checkpoint
from rt_dtgan.models.dynamics import dynamics_offline, windowed_offline
from rt_dtgan.runtime.backends import OnnxRuntimeBackend, TorchBackend
from rt_dtgan.runtime.engine import StreamEngine, to_image, to_tensor
from rt_dtgan.runtime.export import EngineError, export_onnx, read_meta
from rt_dtgan.runtime.graphs import graph_specs

SIZE = 64


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """window -> (lively model, its checkpoint, its ONNX engine directory), exported once."""
    made = {}

    def export(window: int):
        if window not in made:
            model = make_lively_model(SIZE, seed=4, stream_window=window)
            root = tmp_path_factory.mktemp(f"engines{window}")
            checkpoint = save_checkpoint(root / "model.safetensors", model)
            export_onnx(model, root / "onnx", checkpoint)
            made[window] = (model, checkpoint, root / "onnx")
        return made[window]

    return export


@pytest.fixture(scope="module")
def model(exports):
    return exports(16)[0]


@pytest.fixture(scope="module")
def exported(exports):
    return exports(16)[1:]


def _crops(count, seed):
    video = random_video(1, count, SIZE, seed=seed)[0]
    return [to_image(frame.unsqueeze(0)) for frame in video]


@pytest.mark.parametrize("window", [0, 16])
def test_onnxruntime_matches_torch_over_100_streamed_frames(window, exports):
    model, _, engine_dir = exports(window)
    torch_backend, onnx_backend = TorchBackend(model), OnnxRuntimeBackend(engine_dir, threads=1)
    video = random_video(1, 100, SIZE, seed=11)[0]
    target = video[-1:].flip(-1)
    results = {}
    for backend in (torch_backend, onnx_backend):
        prepared = backend.run("target", {"target": target})
        state = backend.run("calibrate", {"anchor": video[:1]})
        outputs = [prepared["neutral_output"]]
        for t in range(1, 100):
            out = backend.run("step", {"frame": video[t : t + 1], "target": target, "target_response": prepared["target_response"]} | state)
            state = {key: out.get(f"next_{key}", value) for key, value in state.items()}
            outputs.append(out["output"])
        results[backend.name] = (torch.cat(outputs), state)
    (torch_frames, torch_state), (onnx_frames, onnx_state) = results["torch"], results["onnxruntime"]
    worst = (torch_frames - onnx_frames).abs().max().item()
    worst = max([worst] + [(torch_state[k] - onnx_state[k]).abs().max().item() for k in torch_state])
    assert (torch_frames[1:] - torch_frames[0]).abs().max() > 0.01, "outputs must move for the parity to mean anything"
    assert worst < 1e-4


@pytest.mark.parametrize("window", [0, 4])
def test_engine_equals_the_offline_computation(window):
    model = make_lively_model(SIZE, seed=4, stream_window=window)
    crops = _crops(12, seed=12)
    target = _crops(1, seed=13)[0]
    engine = StreamEngine(TorchBackend(model))
    stream = engine.open(target)
    streamed = np.stack([engine.step(stream, crop) for crop in crops]).astype(int)
    video = torch.cat([to_tensor(crop, SIZE) for crop in crops]).unsqueeze(0)
    with torch.inference_mode():
        z_d = windowed_offline(model.encoder, video, window) if window else dynamics_offline(model.encoder, video)
        offline = model.generate_video(to_tensor(target, SIZE), z_d)[0]
    expected = np.stack([to_image(frame.unsqueeze(0)) for frame in offline]).astype(int)
    assert np.abs(streamed - expected).max() <= 1
    assert engine.frames_seen(stream) == 12


def test_first_output_is_the_neutral_output_and_recalibration_returns_to_it(model):
    crops = _crops(6, seed=14)
    engine = StreamEngine(TorchBackend(model))
    stream = engine.open(_crops(1, seed=15)[0])
    first = engine.step(stream, crops[0])
    moved = [engine.step(stream, crop) for crop in crops[1:]]
    assert any(not np.array_equal(first, frame) for frame in moved)
    engine.recalibrate(stream)
    assert np.array_equal(engine.step(stream, crops[3]), first)
    engine.recalibrate(stream, reference=crops[2])
    assert engine.frames_seen(stream) == 1
    assert np.array_equal(engine.step(stream, crops[2]), first), "the anchor frame itself means z_d = 0"


def test_batched_streams_equal_streams_run_alone(exported):
    targets, drivers = _crops(2, seed=16), [_crops(8, seed=17), _crops(8, seed=18)]
    batched = StreamEngine(OnnxRuntimeBackend(exported[1], threads=1))
    ids = [batched.open(target) for target in targets]
    together = [batched.step_many(list(zip(ids, frames))) for frames in zip(*drivers)]
    for index, (target, frames) in enumerate(zip(targets, drivers)):
        alone = StreamEngine(OnnxRuntimeBackend(exported[1], threads=1))
        stream = alone.open(target)
        for t, frame in enumerate(frames):
            assert np.abs(alone.step(stream, frame).astype(int) - together[t][index].astype(int)).max() <= 1


def test_bad_crop_and_unknown_stream_are_reported(model):
    engine = StreamEngine(TorchBackend(model))
    with pytest.raises(ValueError, match=r"expected a uint8 \(64, 64, 3\) RGB crop, got float32 \(64, 64, 3\)"):
        engine.open(np.zeros((SIZE, SIZE, 3), np.float32))
    with pytest.raises(KeyError, match="no open stream 7"):
        engine.step(7, np.zeros((SIZE, SIZE, 3), np.uint8))


def test_meta_describes_the_graphs(model, exported):
    checkpoint, engine_dir = exported
    meta = read_meta(engine_dir, checkpoint)
    specs = graph_specs(model.config)
    assert set(meta["graphs"]) == set(specs)
    assert meta["graphs"]["step"]["inputs"]["frame"] == [3, SIZE, SIZE]
    assert meta["checkpoint"]["file"] == "model.safetensors" and meta["precision"] == "fp32"


def test_engines_from_another_checkpoint_are_refused(exported, tmp_path):
    other = save_checkpoint(tmp_path / "other.safetensors", make_lively_model(SIZE, seed=5))
    with pytest.raises(EngineError, match="built from model.safetensors, not from .*other.safetensors"):
        OnnxRuntimeBackend(exported[1], checkpoint=other)


def test_changed_graph_or_missing_meta_is_refused(exported, tmp_path):
    engine_dir = tmp_path / "copy"
    engine_dir.mkdir()
    for path in exported[1].iterdir():
        (engine_dir / path.name).write_bytes(path.read_bytes())
    with open(engine_dir / "step.onnx", "ab") as file:
        file.write(b"\0")
    with pytest.raises(EngineError, match="step.onnx: missing or changed since export"):
        read_meta(engine_dir)
    (engine_dir / "meta.json").unlink()
    with pytest.raises(EngineError, match="no meta.json; build engines with `rt-dtgan export`"):
        read_meta(engine_dir)


def test_meta_of_another_format_is_refused(exported, tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(EngineError, match="not an rt-dtgan engine meta"):
        read_meta(tmp_path)


def test_open_backend_picks_what_the_engines_directory_holds(exported):
    from rt_dtgan.runtime.backends import open_backend

    checkpoint, engine_dir = exported
    backend, why = open_backend("auto", checkpoint, engine_dir, threads=1)
    assert backend.name == "onnxruntime" and str(engine_dir) in why
    backend, why = open_backend("auto", checkpoint)
    assert backend.name == "torch" and why == "no engines given"
    with pytest.raises(EngineError, match="pass --engines DIR"):
        open_backend("onnxruntime", checkpoint)
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        open_backend("cuda", checkpoint)


def test_set_target_takes_effect_on_the_next_frame_and_keeps_the_dynamics(model):
    first_target, second_target = _crops(2, seed=19)
    crops = _crops(4, seed=20)
    engine = StreamEngine(TorchBackend(model))
    stream = engine.open(first_target)
    engine.step(stream, crops[0])
    engine.step(stream, crops[1])
    engine.set_target(stream, second_target)
    switched = engine.step(stream, crops[2])
    reference = StreamEngine(TorchBackend(model))
    fresh = reference.open(second_target)
    expected = [reference.step(fresh, crop) for crop in crops[:3]][-1]
    assert engine.frames_seen(stream) == 3
    assert np.abs(switched.astype(int) - expected.astype(int)).max() <= 1


def test_a_torch_backend_leaves_the_callers_model_as_it_was(model):
    parameter = next(model.parameters())
    TorchBackend(model, half=True)
    assert next(model.parameters()) is parameter and parameter.dtype == torch.float32


def test_cuda_graphs_need_a_cuda_device(model):
    with pytest.raises(EngineError, match="CUDA graphs need a CUDA device"):
        TorchBackend(model, device="cpu", cuda_graphs=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_graph_replay_equals_eager_float16_over_streamed_frames(model):
    eager = StreamEngine(TorchBackend(model, device="cuda"))
    replayed = StreamEngine(TorchBackend(model, device="cuda", cuda_graphs=True))
    target, *crops = _crops(21, seed=3)
    streams = [engine.open(target) for engine in (eager, replayed)]
    for crop in crops:
        expected, got = eager.step(streams[0], crop), replayed.step(streams[1], crop)
        assert np.abs(expected.astype(int) - got.astype(int)).max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_float16_follows_cpu_float32_over_100_streamed_frames(model):
    """The stated FP16 tolerance (as for TensorRT): within 8 of 255 levels per pixel, 1.5 on average."""
    engines = [StreamEngine(TorchBackend(model)), StreamEngine(TorchBackend(model, device="cuda"))]
    target, *crops = _crops(101, seed=23)
    streams = [engine.open(target) for engine in engines]
    for crop in crops:
        reference, fp16 = (engine.step(stream, crop).astype(int) for engine, stream in zip(engines, streams))
        difference = np.abs(reference - fp16)
        assert difference.max() <= 8 and difference.mean() <= 1.5
