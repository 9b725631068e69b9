"""Backends run the stream graphs by name: ``run(graph, inputs) -> outputs``, dicts of
float32 tensors named as in ``graph_specs``, batch first. The StreamEngine needs nothing
else, so a backend can be torch modules, ONNX Runtime sessions or TensorRT engines."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from rt_dtgan.config import ModelConfig
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.runtime.export import EngineError, meta_model_config, read_meta
from rt_dtgan.runtime.graphs import graph_specs


class Backend(Protocol):
    name: str
    config: ModelConfig
    device: torch.device

    def run(self, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]: ...

    def describe(self) -> str: ...


class TorchBackend:
    """The graphs as torch modules: float32 on the CPU, float16 on CUDA by default."""

    name = "torch"

    def __init__(self, model: DynamicsTransferGAN, device: str | torch.device = "cpu", half: bool | None = None) -> None:
        self.device = torch.device(device)
        self.half = self.device.type == "cuda" if half is None else half
        self.dtype = torch.float16 if self.half else torch.float32
        self.config = model.config
        self.specs = graph_specs(model.config)
        self.graphs = {name: spec.build(model).to(self.device, self.dtype) for name, spec in self.specs.items()}

    def run(self, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        with torch.inference_mode():
            outputs = self.graphs[graph](**{k: v.to(self.device, self.dtype) for k, v in inputs.items()})
        return {name: out.float() for name, out in zip(self.specs[graph].outputs, outputs)}

    def describe(self) -> str:
        where = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        return f"torch {torch.__version__} on {where}, {'float16' if self.half else 'float32'}"


class OnnxRuntimeBackend:
    """The exported ONNX graphs in ONNX Runtime sessions (CPU, or CUDA where present)."""

    name = "onnxruntime"

    def __init__(
        self,
        engine_dir: str | os.PathLike,
        checkpoint: str | os.PathLike | None = None,
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        import onnxruntime

        meta = read_meta(engine_dir, checkpoint)
        if meta["backend"] != "onnx":
            raise EngineError(f"{engine_dir}: holds {meta['backend']} engines, not ONNX graphs")
        self.config = meta_model_config(meta)
        self.device = torch.device("cpu")
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
        feed = {k: np.ascontiguousarray(v.detach().cpu().numpy(), dtype=np.float32) for k, v in inputs.items()}
        outputs = self.sessions[graph].run(self.output_names[graph], feed)
        return {name: torch.from_numpy(out) for name, out in zip(self.output_names[graph], outputs)}

    def describe(self) -> str:
        import onnxruntime

        threads = self.threads or "all"
        return f"onnxruntime {onnxruntime.__version__}, {self.providers[0]}, {threads} threads"


BACKEND_CHOICES = ("auto", "torch", "onnxruntime", "tensorrt")


def open_backend(
    kind: str, checkpoint: str | os.PathLike, engine_dir: str | os.PathLike | None = None, threads: int | None = None
) -> tuple[Backend, str]:
    """The backend ``kind`` (one of BACKEND_CHOICES) for ``checkpoint`` -> (backend, why it
    was chosen). ``auto`` takes TensorRT plans or ONNX graphs from ``engine_dir`` when they
    were built from this checkpoint (and TensorRT can run here), else torch: float16 on a
    CUDA GPU, float32 on the CPU."""
    if kind not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {kind!r}; choose one of {BACKEND_CHOICES}")
    if kind in ("onnxruntime", "tensorrt") and engine_dir is None:
        raise EngineError(f"the {kind} backend runs exported engines: pass --engines DIR (made by `rt-dtgan export`)")
    if kind == "tensorrt" or (kind == "auto" and _tensorrt_ready(engine_dir)):
        from rt_dtgan.runtime.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(engine_dir, checkpoint), "TensorRT plans from " + str(engine_dir)
    if kind == "onnxruntime" or (kind == "auto" and _engine_kind(engine_dir) == "onnx"):
        return OnnxRuntimeBackend(engine_dir, checkpoint, threads=threads), "ONNX graphs from " + str(engine_dir)
    from rt_dtgan.checkpoint import load_checkpoint

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if threads:
        torch.set_num_threads(threads)
    why = "no engines given" if engine_dir is None else f"no usable engines in {engine_dir}"
    return TorchBackend(load_checkpoint(checkpoint), device=device), why if kind == "auto" else "asked for"


def _engine_kind(engine_dir: str | os.PathLike | None) -> str | None:
    if engine_dir is None or not (Path(engine_dir) / "meta.json").is_file():
        return None
    import json

    return json.loads((Path(engine_dir) / "meta.json").read_text()).get("backend")


def _tensorrt_ready(engine_dir: str | os.PathLike | None) -> bool:
    import importlib.util

    return _engine_kind(engine_dir) == "tensorrt" and torch.cuda.is_available() and importlib.util.find_spec("tensorrt") is not None
