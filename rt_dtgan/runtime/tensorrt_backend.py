"""TensorRT 10 engines built from the exported ONNX graphs, and a backend that runs them.

No custom plugins: the LSTM step is plain matrix products, the state explicit engine
inputs and outputs. Plans are built by ``rt-dtgan export --backend tensorrt``, never
lazily, and stored beside the ONNX graphs; meta.json records the TensorRT version, the
GPU and its compute capability, and a plan built elsewhere is refused.

Precision: every network is strongly typed, so TensorRT keeps the types the ONNX graph
states. For "fp16" the graph holds G's weights in float16 with casts at its boundary
(export_onnx's generator_dtype) while A, F and the LSTM state stay float32, so z_d of a
neutral face stays exactly zero; "fp32" is float32 throughout, TF32 off.

UNTESTED on this project's machines (no TensorRT wheel on either): the machine checks,
the engine checks (names, dtypes, batch limits, failed calls) and the mixed-precision
ONNX graph are tested without TensorRT, against a stand-in for its API.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rt_dtgan.optional import require
from rt_dtgan.runtime.backend_protocol import BackendEntry, OpenRequest, check_batch
from rt_dtgan.runtime.export import GENERATOR_DTYPES, EngineError, export_onnx, file_sha256, meta_model_config, read_meta, write_meta

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


def runs_here() -> bool:
    """Whether TensorRT plans can run on this machine: a CUDA GPU and the tensorrt package."""
    return torch.cuda.is_available() and importlib.util.find_spec("tensorrt") is not None


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
    """Export the ONNX graphs (G in float16 for "fp16"), build one strongly typed plan per
    graph (batch profile 1..max_batch, optimised for 1), and record the machine in meta.json.
    Raises EngineError when a plan cannot be built; the directory then holds the ONNX
    graphs alone, which ONNX Runtime runs."""
    trt = require("tensorrt", "the TensorRT backend")
    machine = current_machine()
    meta = export_onnx(model, out_dir, checkpoint, max_batch=max_batch, generator_dtype=GENERATOR_DTYPES[precision])
    logger = trt.Logger(trt.Logger.WARNING)
    for name, graph in meta["graphs"].items():
        plan_path = Path(out_dir) / f"{name}.plan"
        try:
            plan = _build_plan(trt, logger, Path(out_dir) / graph["onnx"], max_batch)
        except EngineError as error:
            raise EngineError(f"{error}. {out_dir} holds the ONNX graphs alone: `--backend auto` runs them with ONNX Runtime") from error
        plan_path.write_bytes(plan)
        graph["plan"] = plan_path.name
        graph["plan_sha256"] = file_sha256(plan_path)
    meta |= {"backend": "tensorrt", "tensorrt": dataclasses.asdict(machine)}
    write_meta(Path(out_dir), meta)
    return meta


def _build_plan(trt, logger, onnx_path: Path, max_batch: int) -> bytes:
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT could not parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    config.clear_flag(trt.BuilderFlag.TF32)  # float32 means float32: the LSTM state's precision
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
    """Runs the plans on the GPU. Names, modes and dtypes of each plan's tensors are read
    from the plan and must match meta.json (float32 in and out). Per graph and batch size,
    buffers are allocated once; addresses are set again only when the batch size changes.
    A batch beyond the plans' ``max_batch`` is refused (the engine splits larger ones).
    ``meta``: engine_dir's meta.json when already loaded (load_meta), so it is read once."""

    name = "tensorrt"

    def __init__(self, engine_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None, meta: dict | None = None) -> None:
        trt = require("tensorrt", "the TensorRT backend")
        meta = read_meta(engine_dir, checkpoint, meta)
        check_machine(meta, current_machine(), engine_dir)
        self.config = meta_model_config(meta)
        self.device = torch.device("cuda")
        self.precision = meta["precision"]
        self.max_batch = meta["max_batch"]
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.contexts, self.outputs = {}, {}
        for name, graph in meta["graphs"].items():
            engine = _load_engine(runtime, Path(engine_dir) / graph["plan"], graph["plan_sha256"])
            self.outputs[name] = check_engine_tensors(trt, engine, graph, self.max_batch, name)
            context = engine.create_execution_context()
            if context is None:
                raise EngineError(f"{name}: TensorRT could not create an execution context (out of GPU memory?)")
            self.contexts[name] = context
        self.buffers: dict[tuple[str, int], dict[str, Tensor]] = {}
        self.bound_batch: dict[str, int] = {}

    def run(self, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Enqueued on torch's current stream, not a stream of its own: the inputs were made
        on it (the engine's torch.cat), the outputs are read on it, and the buffers are
        reused by the next call on it, so stream order alone keeps every tensor safe."""
        batch = check_batch(self, graph, inputs)
        if (graph, batch) not in self.buffers:
            self.buffers[(graph, batch)] = self._allocate(graph, inputs)
        buffers = self.buffers[(graph, batch)]
        if self.bound_batch.get(graph) != batch:
            self._bind(graph, buffers, inputs)
        for name, value in inputs.items():
            buffers[name].copy_(value, non_blocking=True)
        if not self.contexts[graph].execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise EngineError(f"TensorRT failed to run the {graph} graph")
        return {name: buffers[name].clone() for name in self.outputs[graph]}

    def _allocate(self, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        context = self.contexts[graph]
        buffers = {name: torch.empty(value.shape, dtype=torch.float32, device=self.device) for name, value in inputs.items()}
        for name, value in inputs.items():
            _set_input_shape(context, graph, name, value.shape)
        for name in self.outputs[graph]:
            buffers[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=torch.float32, device=self.device)
        return buffers

    def _bind(self, graph: str, buffers: dict[str, Tensor], inputs: dict[str, Tensor]) -> None:
        context = self.contexts[graph]
        for name, value in inputs.items():
            _set_input_shape(context, graph, name, value.shape)
        for name, buffer in buffers.items():
            if not context.set_tensor_address(name, buffer.data_ptr()):
                raise EngineError(f"{graph}: TensorRT refused the address of {name}")
        self.bound_batch[graph] = next(iter(inputs.values())).shape[0]

    def describe(self) -> str:
        precision = "G float16, A and state float32" if self.precision == "fp16" else "float32"
        return f"TensorRT {current_machine().tensorrt} on {torch.cuda.get_device_name(0)}, {precision}"


def _load_engine(runtime, plan_path: Path, sha256: str):
    if file_sha256(plan_path) != sha256:
        raise EngineError(f"{plan_path}: changed since it was built; re-run `rt-dtgan export --backend tensorrt`")
    engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
    if engine is None:
        rebuild = "rebuild it with `rt-dtgan export --backend tensorrt`"
        raise EngineError(f"{plan_path}: TensorRT could not load the plan (see the log above); {rebuild}")
    return engine


def check_engine_tensors(trt, engine, graph: dict, max_batch: int, name: str) -> list[str]:
    """Check a plan's I/O tensors against its meta.json entry: the same input and output
    names, every one float32, and a batch profile reaching ``max_batch``. -> the output
    names, in meta's order. Raises EngineError naming the mismatch."""
    tensors = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    found = {
        mode: sorted(t for t in tensors if engine.get_tensor_mode(t) == mode) for mode in (trt.TensorIOMode.INPUT, trt.TensorIOMode.OUTPUT)
    }
    for mode, wanted in ((trt.TensorIOMode.INPUT, graph["inputs"]), (trt.TensorIOMode.OUTPUT, graph["outputs"])):
        if found[mode] != sorted(wanted):
            raise EngineError(
                f"{name}: the plan's {mode.name.lower()}s are {found[mode]}, meta.json says {sorted(wanted)}; rebuild the engines"
            )
    for tensor in tensors:
        if engine.get_tensor_dtype(tensor) != trt.float32:
            raise EngineError(f"{name}: the plan's {tensor} is {engine.get_tensor_dtype(tensor)}, not float32; rebuild the engines")
    for tensor in found[trt.TensorIOMode.INPUT]:
        largest = engine.get_tensor_profile_shape(tensor, 0)[2][0]
        if largest < max_batch:
            raise EngineError(f"{name}: the plan takes at most {largest} streams, meta.json says {max_batch}; rebuild the engines")
    return list(graph["outputs"])


def _set_input_shape(context, graph: str, name: str, shape) -> None:
    if not context.set_input_shape(name, tuple(shape)):
        raise EngineError(f"{graph}: TensorRT refused the shape {tuple(shape)} for {name}")


def _open(request: OpenRequest) -> TensorRTBackend:
    return TensorRTBackend(request.engine_dir, request.checkpoint, meta=request.meta)


TENSORRT = BackendEntry(
    "tensorrt", _open, engines="TensorRT plans", runs_here=runs_here, export=export_tensorrt, precisions=("fp32", "fp16")
)
