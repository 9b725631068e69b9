"""The backends and their registry. A backend runs the stream graphs by name (the Backend
protocol, ``runtime/backend_protocol.py``); the StreamEngine needs nothing else, so a
backend can be torch modules, ONNX Runtime sessions or TensorRT engines.

A backend takes at most ``max_batch`` streams in one call (None: no limit) and refuses
more; ``run_in_chunks`` splits a larger batch into calls it takes.

``BACKENDS`` registers every backend by name (a ``BackendEntry``: its opener, its exporter,
when ``auto`` takes it); ``open_backend`` and ``rt-dtgan export`` read nothing else. A new
backend is a module with its class and entry, and that entry added to ``BACKENDS``."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.runtime.backend_protocol import Backend, BackendEntry, OpenRequest, check_batch
from rt_dtgan.runtime.export import GENERATOR_DTYPES, META_FILE, EngineError, export_onnx, load_meta, meta_model_config, read_meta
from rt_dtgan.runtime.graphs import graph_specs
from rt_dtgan.runtime.tensorrt_backend import TENSORRT


def run_in_chunks(backend: Backend, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """``backend.run`` for any batch size: calls of at most ``max_batch`` streams, their
    outputs concatenated in order."""
    batch = next(iter(inputs.values())).shape[0]
    chunk = backend.max_batch or batch
    if batch <= chunk:
        return backend.run(graph, inputs)
    parts = [backend.run(graph, {k: v[start : start + chunk] for k, v in inputs.items()}) for start in range(0, batch, chunk)]
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


class CapturedGraph:
    """One graph module recorded as a CUDA graph for one set of input shapes: a call copies
    the inputs into the recorded buffers and replays every kernel in one launch. The outputs
    are the recorded buffers, overwritten by the next call (copy them before then)."""

    WARMUP_CALLS = 3

    def __init__(self, module: torch.nn.Module, inputs: dict[str, Tensor]) -> None:
        self.inputs = {name: tensor.clone() for name, tensor in inputs.items()}
        side = torch.cuda.Stream(device=next(iter(inputs.values())).device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(self.WARMUP_CALLS):  # lazy initialisation stays out of the recording
                module(**self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.outputs = module(**self.inputs)

    def __call__(self, inputs: dict[str, Tensor]) -> tuple[Tensor, ...]:
        for name, tensor in inputs.items():
            self.inputs[name].copy_(tensor)
        self.graph.replay()
        return self.outputs


class TorchBackend:
    """The graphs as torch modules. A, F and the dynamics state run in float32 everywhere;
    the generator in float16 with ``half`` (the default on CUDA), else float32.
    ``cuda_graphs`` (CUDA only) records each graph once per input shape (one per number of
    batched streams) and replays it: one launch per graph instead of one per kernel.
    ``compile_step`` hands the per-frame step graph to ``torch.compile`` (its batch axis
    dynamic). ``max_batch`` bounds the streams of one call (and so the recorded shapes)."""

    name = "torch"

    def __init__(
        self,
        model: DynamicsTransferGAN,
        device: str | torch.device = "cpu",
        half: bool | None = None,
        cuda_graphs: bool = False,
        max_batch: int | None = None,
        compile_step: bool = False,
    ) -> None:
        self.device = torch.device(device)
        if cuda_graphs and self.device.type != "cuda":
            raise EngineError(f"CUDA graphs need a CUDA device; this backend runs on {self.device}")
        if cuda_graphs and compile_step:
            raise ValueError("choose CUDA graph replay or torch.compile, not both")
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.half = self.device.type == "cuda" if half is None else half
        self.generator_dtype = torch.float16 if self.half else torch.float32
        self.cuda_graphs = cuda_graphs
        self.max_batch = max_batch
        self.config = model.config
        self.specs = graph_specs(model.config)
        own_copy = copy.deepcopy(model).to(self.device, torch.float32)  # build() casts G in place; the caller's model stays
        self.graphs = {name: spec.build(own_copy, self.generator_dtype) for name, spec in self.specs.items()}
        self.compiled = compile_step
        if compile_step:
            self.graphs["step"] = torch.compile(self.graphs["step"], dynamic=True)
        self._captured: dict[tuple, CapturedGraph] = {}

    def run(self, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        check_batch(self, graph, inputs)
        inputs = {k: v.to(self.device, torch.float32) for k, v in inputs.items()}
        if self.cuda_graphs:
            outputs = tuple(output.clone() for output in self._replay(graph, inputs))
        else:
            with torch.inference_mode():
                outputs = self.graphs[graph](**inputs)
        return dict(zip(self.specs[graph].outputs, outputs))

    def _replay(self, graph: str, inputs: dict[str, Tensor]) -> tuple[Tensor, ...]:
        key = (graph, *((name, tuple(tensor.shape)) for name, tensor in sorted(inputs.items())))
        if key not in self._captured:
            self._captured[key] = CapturedGraph(self.graphs[graph], inputs)
        return self._captured[key](inputs)

    def describe(self) -> str:
        where = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        graphs = ", CUDA graphs" if self.cuda_graphs else ", torch.compile (step)" if self.compiled else ""
        precision = "G float16, A and state float32" if self.half else "float32"
        return f"torch {torch.__version__} on {where}, {precision}{graphs}"


class OnnxRuntimeBackend:
    """The exported ONNX graphs in ONNX Runtime sessions (CPU, or CUDA where present).
    ``meta``: engine_dir's meta.json when already loaded (load_meta), so it is read once."""

    name = "onnxruntime"

    def __init__(
        self,
        engine_dir: str | os.PathLike,
        checkpoint: str | os.PathLike | None = None,
        threads: int | None = None,
        providers: list[str] | None = None,
        meta: dict | None = None,
    ) -> None:
        import onnxruntime

        meta = read_meta(engine_dir, checkpoint, meta)
        if not ONNXRUNTIME.built(meta):
            raise EngineError(f"{engine_dir}: holds {meta['backend']} engines, not ONNX graphs")
        self.config = meta_model_config(meta)
        self.device = torch.device("cpu")
        self.max_batch = meta["max_batch"]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = onnxruntime.get_available_providers()
        self.providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.sessions = {
            name: onnxruntime.InferenceSession(str(Path(engine_dir) / graph["onnx"]), options, providers=self.providers)
            for name, graph in meta["graphs"].items()
        }
        self.output_names = {name: list(graph["outputs"]) for name, graph in meta["graphs"].items()}
        self.threads = threads

    def run(self, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        check_batch(self, graph, inputs)
        feed = {k: np.ascontiguousarray(v.detach().cpu().numpy(), dtype=np.float32) for k, v in inputs.items()}
        outputs = self.sessions[graph].run(self.output_names[graph], feed)
        return {name: torch.from_numpy(out) for name, out in zip(self.output_names[graph], outputs)}

    def describe(self) -> str:
        import onnxruntime

        threads = self.threads or "all"
        return f"onnxruntime {onnxruntime.__version__}, {self.providers[0]}, {threads} threads"


def _open_torch(request: OpenRequest) -> TorchBackend:
    """The checkpoint in torch: float16 G on a CUDA GPU (replaying CUDA graphs with
    ``cuda_graphs``), float32 on the CPU."""
    from rt_dtgan.models.checkpoint import load_checkpoint

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if request.threads:
        torch.set_num_threads(request.threads)
    return TorchBackend(load_checkpoint(request.checkpoint), device=device, cuda_graphs=request.cuda_graphs)


def _open_onnxruntime(request: OpenRequest) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(request.engine_dir, request.checkpoint, threads=request.threads, meta=request.meta)


def _export_onnxruntime(model, out_dir: str | os.PathLike, checkpoint, *, precision: str, max_batch: int) -> dict:
    return export_onnx(model, out_dir, checkpoint, max_batch=max_batch, generator_dtype=GENERATOR_DTYPES[precision])


TORCH = BackendEntry("torch", _open_torch)
ONNXRUNTIME = BackendEntry(
    "onnxruntime", _open_onnxruntime, engines="ONNX graphs", export=_export_onnxruntime, precisions=("fp32",), aliases=("onnx",)
)

BACKENDS = {entry.name: entry for entry in (TORCH, ONNXRUNTIME, TENSORRT)}
BACKEND_CHOICES = ("auto", *BACKENDS)
EXPORTERS = {name: entry for name, entry in BACKENDS.items() if entry.export is not None}


def backend_name(name: str) -> str:
    """The registered name for ``name``: an old name (an entry's alias) gives the current
    one, any other name comes back as it is."""
    return next((entry.name for entry in BACKENDS.values() if name in entry.aliases), name)


def open_backend(
    kind: str,
    checkpoint: str | os.PathLike,
    engine_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    cuda_graphs: bool = False,
) -> tuple[Backend, str]:
    """The backend ``kind`` (one of BACKEND_CHOICES) for ``checkpoint`` -> (backend, why it
    was chosen). ``auto`` runs the engines in ``engine_dir`` (TensorRT plans where TensorRT
    runs, ONNX graphs) with the backend they were built for, else torch: float16 on a CUDA
    GPU (replaying CUDA graphs with ``cuda_graphs``), float32 on the CPU. Engines built
    from another checkpoint are refused."""
    if kind not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {kind!r}; choose one of {BACKEND_CHOICES}")
    request = OpenRequest(checkpoint, engine_dir, threads, cuda_graphs)
    if kind == "auto":
        return _open_auto(request)
    entry = BACKENDS[kind]
    if entry.engines is None:
        return entry.open(request), "asked for"
    if engine_dir is None:
        raise EngineError(f"the {kind} backend runs exported engines: pass --engines DIR (made by `rt-dtgan export`)")
    return entry.open(request), f"{entry.engines} from {engine_dir}"


def _open_auto(request: OpenRequest) -> tuple[Backend, str]:
    """The first registered backend that the engines in ``engine_dir`` were built for and
    that runs here, else torch. meta.json is loaded once, here, and checked by the opener."""
    meta = _engine_meta(request.engine_dir)
    for entry in BACKENDS.values():
        if entry.engines is not None and entry.built(meta) and entry.runs_here():
            return entry.open(dataclasses.replace(request, meta=meta)), f"{entry.engines} from {request.engine_dir}"
    why = "no engines given" if request.engine_dir is None else f"no usable engines in {request.engine_dir}"
    return TORCH.open(request), why


def _engine_meta(engine_dir: str | os.PathLike | None) -> dict:
    """engine_dir's meta.json as written, unchecked; empty without one."""
    if engine_dir is None or not (Path(engine_dir) / META_FILE).is_file():
        return {}
    return load_meta(engine_dir)
