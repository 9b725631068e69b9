"""`rt-dtgan doctor`: what is installed, which backends can run, and a live check that
streaming dynamics match the offline computation on this machine."""

from __future__ import annotations

import importlib
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rt_dtgan.config import MESH_POINTS
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.models.dynamics import dynamics_offline, start_dynamics, step_dynamics
from rt_dtgan.optional import EXTRA_OF_MODULE

CORE_MODULES = ("numpy", "torch", "onnx", "onnxruntime", "mediapipe", "av", "zmq", "safetensors")
OPTIONAL_MODULES = ("tensorrt", "torch_tensorrt", "pyvirtualcam", "ray")


def environment_report() -> list[tuple[str, str]]:
    """(name, finding) rows: Python, each core and optional package, CUDA and ONNX Runtime providers."""
    rows = [("python", platform.python_version()), ("platform", platform.platform())]
    for name in CORE_MODULES:
        rows.append((name, _module_version(name, missing="MISSING: reinstall rt-dtgan")))
    for name in OPTIONAL_MODULES:
        rows.append((name, _module_version(name, missing=f"not installed (pip install 'rt-dtgan[{EXTRA_OF_MODULE[name]}]')")))
    rows.append(("cuda", _cuda_finding()))
    rows.append(("onnxruntime providers", _onnxruntime_providers()))
    return rows


def resident_mib(pid: int) -> float:
    """The resident memory of process ``pid`` in MiB (Linux: /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _module_version(name: str, missing: str) -> str:
    try:
        module = importlib.import_module(name)
    except ImportError:
        return missing
    return str(getattr(module, "__version__", "installed"))


def _cuda_finding() -> str:
    if not torch.cuda.is_available():
        build = f"torch built with CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only torch build"
        return f"no CUDA device ({build})"
    return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"


def _onnxruntime_providers() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime missing"
    return ", ".join(onnxruntime.get_available_providers())


@dataclass(frozen=True)
class StreamingCheck:
    """Streaming vs offline z_d over one random sequence."""

    frames: int
    max_abs_error: float
    dynamics_scale: float
    step_ms_median: float

    @property
    def passed(self) -> bool:
        return self.max_abs_error < 1e-5


def streaming_check(model: DynamicsTransferGAN, frames: int, seed: int = 0) -> StreamingCheck:
    """Stream ``frames`` random frames (random face meshes for a mesh-reading A; one at a
    time, timing each step of A) and compare z_d with the offline computation over the whole sequence."""
    size = model.config.image_size
    generator = torch.Generator().manual_seed(seed)
    if model.config.reads_mesh:
        video = 0.5 * torch.randn(1, frames, MESH_POINTS, 2, generator=generator)
    else:
        video = torch.rand(1, frames, 3, size, size, generator=generator) * 2 - 1
    encoder = model.encoder.eval()
    with torch.inference_mode():
        offline = dynamics_offline(encoder, video)
        z_t, state = start_dynamics(encoder, video[:, 0])
        streamed, step_seconds = [z_t], []
        for t in range(1, frames):
            began = time.perf_counter()
            z_t, state = step_dynamics(encoder, video[:, t], state)
            step_seconds.append(time.perf_counter() - began)
            streamed.append(z_t)
    streamed_z = torch.stack(streamed, dim=1)
    return StreamingCheck(
        frames=frames,
        max_abs_error=(streamed_z - offline).abs().max().item(),
        dynamics_scale=offline.abs().max().item(),
        step_ms_median=1000 * statistics.median(step_seconds) if step_seconds else 0.0,
    )
