"""What a backend is, and how one registers.

A backend runs the stream graphs by name: ``run(graph, inputs) -> outputs``, dicts of
float32 tensors named as in ``graph_specs``, batch first, at most ``max_batch`` streams in
one call (None: no limit). A ``BackendEntry`` tells the registry (``BACKENDS`` in
``runtime/backends.py``) how to open the backend, how to export its engines, and when
``auto`` takes it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from rt_dtgan.config import ModelConfig
from rt_dtgan.runtime.export import EngineError


class Backend(Protocol):
    name: str
    config: ModelConfig
    device: torch.device
    max_batch: int | None

    def run(self, graph: str, inputs: dict[str, Tensor]) -> dict[str, Tensor]: ...

    def describe(self) -> str: ...


def check_batch(backend: Backend, graph: str, inputs: dict[str, Tensor]) -> int:
    """-> the batch size of ``inputs``; raises EngineError beyond the backend's max_batch."""
    batch = next(iter(inputs.values())).shape[0]
    if backend.max_batch is not None and batch > backend.max_batch:
        raise EngineError(
            f"{graph}: a batch of {batch} streams is more than this {backend.name} backend takes in one call "
            f"({backend.max_batch}); split it (run_in_chunks), or export with a larger --max-batch"
        )
    return batch


@dataclass(frozen=True)
class OpenRequest:
    """What ``open_backend`` was asked; each opener takes what it needs. ``meta`` is
    engine_dir's meta.json when ``auto`` has already loaded it (unchecked), else None."""

    checkpoint: str | os.PathLike
    engine_dir: str | os.PathLike | None = None
    threads: int | None = None
    cuda_graphs: bool = False
    meta: dict | None = None


class Exporter(Protocol):
    def __call__(self, model, out_dir: str | os.PathLike, checkpoint, *, precision: str, max_batch: int) -> dict:
        """Build the engines of ``model`` in ``out_dir`` beside a meta.json; -> the meta."""


def runs_anywhere() -> bool:
    return True


@dataclass(frozen=True)
class BackendEntry:
    """One backend in the registry. ``engines`` names what it runs from an engine folder
    ("ONNX graphs"), None when it runs the checkpoint itself. ``auto`` takes a folder whose
    meta.json names this backend (``name``, or an old name in ``aliases``) when
    ``runs_here()``. ``export`` builds its engines in one of ``precisions``."""

    name: str
    open: Callable[[OpenRequest], Backend]
    engines: str | None = None
    runs_here: Callable[[], bool] = runs_anywhere
    export: Exporter | None = None
    precisions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def built(self, meta: dict) -> bool:
        """Whether ``meta`` (a meta.json's contents) describes engines for this backend."""
        return meta.get("backend") in (self.name, *self.aliases)
