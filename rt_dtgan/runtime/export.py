"""Export the stream graphs to ONNX, with a meta.json that ties them to their checkpoint.

An engine directory holds ``target.onnx``, ``calibrate.onnx``, ``step.onnx`` (and for
TensorRT the matching ``.plan`` files) beside ``meta.json``:

    {"format": "rt-dtgan-engines", "format_version": 1, "backend": "onnxruntime" | "tensorrt",
     "precision": "fp32" | "fp16" (G in float16; A and its state float32), "max_batch": N, "model_config": {...},
     "checkpoint": {"file": NAME, "sha256": HEX},
     "graphs": {NAME: {"onnx": FILE, "onnx_sha256": HEX, "inputs": {...}, "outputs": {...}}},
     "versions": {"torch": ..., "onnx": ..., "opset": ...}}

"backend" names the backend that runs the engines (folders exported before it was renamed
say "onnx" for ONNX Runtime, and still load). A loader checks the hashes and refuses a
directory whose meta does not match.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from rt_dtgan.config import ModelConfig
from rt_dtgan.errors import RtDtganError
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.runtime.graphs import GraphSpec, graph_specs

ENGINE_FORMAT = "rt-dtgan-engines"
ENGINE_FORMAT_VERSION = 1
OPSET = 18
META_FILE = "meta.json"
GENERATOR_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


class EngineError(RtDtganError, ValueError):
    """An engine directory cannot be used here; the message says why and what to run."""


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_onnx(
    model: DynamicsTransferGAN,
    out_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    max_batch: int = 32,
    generator_dtype: torch.dtype = torch.float32,
) -> dict:
    """Write the graphs of ``model`` as ONNX (batch axis dynamic, 1..max_batch) and
    meta.json to ``out_dir``; returns the meta. ``checkpoint`` is the file the model was
    loaded from (None for fresh weights, which then match no checkpoint). Inputs and
    outputs are float32; a float16 ``generator_dtype`` stores G's weights in float16 with
    explicit casts at its boundary (the graph a strongly typed TensorRT build keeps as it is)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).float().eval()  # build() may cast G in place
    graphs = {}
    for name, spec in graph_specs(model.config).items():
        onnx_path = out / f"{name}.onnx"
        _export_graph(spec, spec.build(model, generator_dtype), onnx_path, max_batch)
        graphs[name] = {
            "onnx": onnx_path.name,
            "onnx_sha256": file_sha256(onnx_path),
            "inputs": {k: list(v) for k, v in spec.inputs.items()},
            "outputs": {k: list(v) for k, v in spec.outputs.items()},
        }
    import onnx

    meta = {
        "format": ENGINE_FORMAT,
        "format_version": ENGINE_FORMAT_VERSION,
        "backend": "onnxruntime",
        "precision": "fp32" if generator_dtype == torch.float32 else "fp16",
        "max_batch": max_batch,
        "model_config": model.config.to_dict(),
        "checkpoint": _checkpoint_identity(checkpoint),
        "graphs": graphs,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "opset": OPSET},
    }
    write_meta(out, meta)
    return meta


def _export_graph(spec: GraphSpec, module: torch.nn.Module, path: Path, max_batch: int) -> None:
    # A sample batch of 2 keeps the exporter from specialising the batch axis to 1.
    sample = spec.sample_inputs(batch=2)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    with warnings.catch_warnings(), _quiet_onnx_exporter():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (),
            str(path),
            kwargs=sample,
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            dynamic_shapes={name: {0: batch} for name in spec.inputs},
            verbose=False,
        )


@contextlib.contextmanager
def _quiet_onnx_exporter() -> Iterator[None]:
    """The exporter logs progress at INFO; keep the command's output to its own report."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _checkpoint_identity(checkpoint: str | os.PathLike | None) -> dict | None:
    if checkpoint is None:
        return None
    return {"file": Path(checkpoint).name, "sha256": file_sha256(checkpoint)}


def write_meta(out_dir: Path, meta: dict) -> None:
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_meta(engine_dir: str | os.PathLike) -> dict:
    """``engine_dir/meta.json`` as written, unchecked. Raises EngineError when it is missing
    or not JSON."""
    meta_path = Path(engine_dir) / META_FILE
    if not meta_path.is_file():
        raise EngineError(f"{engine_dir}: no {META_FILE}; build engines with `rt-dtgan export`")
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise EngineError(f"{meta_path}: not valid JSON: {error}") from error


def read_meta(engine_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None, meta: dict | None = None) -> dict:
    """Read and check ``engine_dir/meta.json`` (``meta``: its contents when already loaded,
    so the file is read once): format, graph files and their hashes, and, when
    ``checkpoint`` is given, that the engines were built from it. Raises EngineError."""
    engine_dir = Path(engine_dir)
    meta_path = engine_dir / META_FILE
    meta = load_meta(engine_dir) if meta is None else meta
    if meta.get("format") != ENGINE_FORMAT or meta.get("format_version") != ENGINE_FORMAT_VERSION:
        raise EngineError(f"{meta_path}: not an rt-dtgan engine meta of version {ENGINE_FORMAT_VERSION}")
    for graph in meta["graphs"].values():
        onnx_path = engine_dir / graph["onnx"]
        if not onnx_path.is_file() or file_sha256(onnx_path) != graph["onnx_sha256"]:
            raise EngineError(f"{onnx_path}: missing or changed since export (hash differs); re-run `rt-dtgan export`")
    if checkpoint is not None:
        _check_checkpoint(engine_dir, meta, checkpoint)
    return meta


def _check_checkpoint(engine_dir: Path, meta: dict, checkpoint: str | os.PathLike) -> None:
    built_from = meta.get("checkpoint")
    if built_from is None or built_from["sha256"] != file_sha256(checkpoint):
        source = "fresh weights" if built_from is None else built_from["file"]
        raise EngineError(
            f"{engine_dir}: built from {source}, not from {checkpoint}; "
            f"re-run `rt-dtgan export --checkpoint {checkpoint}`"
        )


def meta_model_config(meta: dict) -> ModelConfig:
    return ModelConfig.from_dict(meta["model_config"])
