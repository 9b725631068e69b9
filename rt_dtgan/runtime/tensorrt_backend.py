"""TensorRT 10 engines built from the exported ONNX graphs, and a backend that runs them.

No custom plugins: the LSTM step is plain matrix products, the state explicit engine
inputs and outputs. Plans are built by ``rt-dtgan export --backend tensorrt``, never
lazily, and stored beside the ONNX graphs; meta.json records the TensorRT version, the
GPU and its compute capability, and a plan built elsewhere is refused.

UNTESTED on this project's machines (no NVIDIA GPU, no TensorRT); the machine checks are
tested without TensorRT.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rt_dtgan.optional import require
from rt_dtgan.runtime.export import EngineError, export_onnx, file_sha256, meta_model_config, read_meta, write_meta

WORKSPACE_BYTES = 2 << 30


@dataclass(frozen=True)
class Machine:
    """What a TensorRT plan is tied to."""

    tensorrt: str
    gpu: str
    compute_capability: str


def current_machine() -> Machine:
    trt = require("tensorrt", "the TensorRT backend")
    if not torch.cuda.is_available():
        raise EngineError("the TensorRT backend needs an NVIDIA GPU with CUDA, and torch sees none")
    major, minor = torch.cuda.get_device_capability(0)
    return Machine(trt.__version__, torch.cuda.get_device_name(0), f"{major}.{minor}")


def check_machine(meta: dict, machine: Machine, engine_dir: str | os.PathLike) -> None:
    """Refuse plans built with another TensorRT version or for another GPU."""
    built = meta.get("tensorrt")
    if meta.get("backend") != "tensorrt" or built is None:
        raise EngineError(f"{engine_dir}: holds no TensorRT plans; run `rt-dtgan export --backend tensorrt`")
    for field, ours in (("tensorrt", machine.tensorrt), ("gpu", machine.gpu), ("compute_capability", machine.compute_capability)):
        if built[field] != ours:
            raise EngineError(
                f"{engine_dir}: plans were built for {field} {built[field]!r}, this machine has {ours!r}; "
                "rebuild them here with `rt-dtgan export --backend tensorrt`"
            )


def export_tensorrt(model, out_dir: str | os.PathLike, checkpoint, precision: str = "fp16", max_batch: int = 32) -> dict:
    """Export the ONNX graphs, build one plan per graph (batch profile 1..max_batch, optimised
    for 1), and record the machine in meta.json."""
    trt = require("tensorrt", "the TensorRT backend")
    machine = current_machine()
    meta = export_onnx(model, out_dir, checkpoint, max_batch=max_batch)
    logger = trt.Logger(trt.Logger.WARNING)
    for name, graph in meta["graphs"].items():
        plan_path = Path(out_dir) / f"{name}.plan"
        plan_path.write_bytes(_build_plan(trt, logger, Path(out_dir) / graph["onnx"], precision, max_batch))
        graph["plan"] = plan_path.name
        graph["plan_sha256"] = file_sha256(plan_path)
    meta |= {"backend": "tensorrt", "precision": precision, "tensorrt": dataclasses.asdict(machine)}
    write_meta(Path(out_dir), meta)
    return meta


def _build_plan(trt, logger, onnx_path: Path, precision: str, max_batch: int) -> bytes:
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT could not parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (1, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"{onnx_path}: TensorRT failed to build a plan (see the log above)")
    return bytes(plan)


class TensorRTBackend:
    """Runs the plans on the GPU. Per graph and batch size, input and output buffers are
    allocated once; addresses are set again only when the batch size changes. A call copies
    the inputs in, enqueues
    ``execute_async_v3`` on the backend's own CUDA stream, and returns copies of the outputs."""

    name = "tensorrt"

    def __init__(self, engine_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None) -> None:
        trt = require("tensorrt", "the TensorRT backend")
        meta = read_meta(engine_dir, checkpoint)
        check_machine(meta, current_machine(), engine_dir)
        self.config = meta_model_config(meta)
        self.device = torch.device("cuda")
        self.precision = meta["precision"]
        self.stream = torch.cuda.Stream()
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engines, self.contexts, self.outputs = {}, {}, {}
        for name, graph in meta["graphs"].items():
            plan_path = Path(engine_dir) / graph["plan"]
            if file_sha256(plan_path) != graph["plan_sha256"]:
                raise EngineError(f"{plan_path}: changed since it was built; re-run `rt-dtgan export --backend tensorrt`")
            engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
            self.engines[name] = engine
            self.contexts[name] = engine.create_execution_context()
            self.outputs[name] = list(graph["outputs"])
        self.buffers: dict[tuple[str, int], dict[str, Tensor]] = {}
        self.bound_batch: dict[str, int] = {}

    def run(self, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        batch = next(iter(inputs.values())).shape[0]
        if (graph, batch) not in self.buffers:
            self.buffers[(graph, batch)] = self._allocate(graph, inputs)
        buffers = self.buffers[(graph, batch)]
        if self.bound_batch.get(graph) != batch:
            self._bind(graph, buffers, inputs)
        with torch.cuda.stream(self.stream):
            for name, value in inputs.items():
                buffers[name].copy_(value, non_blocking=True)
            if not self.contexts[graph].execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT failed to run the {graph} graph")
            outputs = {name: buffers[name].clone() for name in self.outputs[graph]}
        self.stream.synchronize()
        return outputs

    def _allocate(self, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        context = self.contexts[graph]
        buffers = {name: torch.empty(value.shape, dtype=torch.float32, device=self.device) for name, value in inputs.items()}
        for name, value in inputs.items():
            context.set_input_shape(name, tuple(value.shape))
        for name in self.outputs[graph]:
            buffers[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=torch.float32, device=self.device)
        return buffers

    def _bind(self, graph: str, buffers: dict[str, Tensor], inputs: dict[str, Tensor]) -> None:
        context = self.contexts[graph]
        for name, value in inputs.items():
            context.set_input_shape(name, tuple(value.shape))
        for name, buffer in buffers.items():
            context.set_tensor_address(name, buffer.data_ptr())
        self.bound_batch[graph] = next(iter(inputs.values())).shape[0]

    def describe(self) -> str:
        return f"TensorRT {current_machine().tensorrt} on {torch.cuda.get_device_name(0)}, {self.precision}"
