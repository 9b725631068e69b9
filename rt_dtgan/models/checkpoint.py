"""Self-describing checkpoints: one safetensors file whose header carries the JSON config.

The header metadata holds ``format``, ``format_version``, ``config`` (ModelConfig JSON:
architecture and preprocessing) and ``parts`` (which of A, F, G, Ds, Dd the file holds),
so ``load_checkpoint(path)`` rebuilds the model with no other input. Tensors are named
``<part>.<parameter>``. Pickles (``torch.save`` files) are refused, never opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rt_dtgan.config import ConfigError, ModelConfig
from rt_dtgan.errors import RtDtganError
from rt_dtgan.models import INFERENCE_PARTS, PARTS, DynamicsTransferGAN

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# Models shipped inside the package, by the name --checkpoint takes: "geometry" (the default:
# A on the face mesh, G warping the portrait) and "paper" (A on pixels, a U-Net G).
SHIPPED_MODELS = {"geometry": ASSETS / "geometry-128.safetensors", "paper": ASSETS / "paper-128.safetensors"}
DEFAULT_CHECKPOINT = SHIPPED_MODELS["geometry"]
# What `rt-dtgan eval` scores the shipped models with: the judge, an expression recogniser
# trained apart from every A, and a model's ablation, its recipe driven by H instead of z_d.
SHIPPED_JUDGE = ASSETS / "judge-128.safetensors"
SHIPPED_ABLATIONS = {"geometry": ASSETS / "geometry-128-ablation.safetensors"}
FORMAT = "rt-dtgan-checkpoint"
FORMAT_VERSION = 1
_PICKLE_PROTOCOL_MARK = b"\x80"
_PICKLE_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(RtDtganError, ValueError):
    """A checkpoint file cannot be used; the message names the file and the problem."""


def save_checkpoint(
    path: str | os.PathLike,
    model: DynamicsTransferGAN,
    parts: Sequence[str] = INFERENCE_PARTS,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``parts`` of ``model`` to ``path`` (atomically). Floating tensors are cast to
    ``dtype`` when given (float16 for shipping); integer buffers keep their type."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown model parts {unknown}; known parts are {list(PARTS)}")
    tensors = {}
    for part in parts:
        for name, tensor in getattr(model, part).state_dict().items():
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors[f"{part}.{name}"] = tensor.detach().contiguous().cpu()
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": model.config.to_json(),
        "parts": json.dumps(list(parts)),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    os.replace(partial, path)
    return path


def resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    """``path``; a shipped model by its name (SHIPPED_MODELS) where no such file exists; the
    default model shipped inside the package when it is None."""
    if path is not None:
        if str(path) in SHIPPED_MODELS and not Path(path).exists():
            return SHIPPED_MODELS[str(path)]
        return Path(path)
    if not DEFAULT_CHECKPOINT.is_file():
        raise CheckpointError("this install ships no default model; pass --checkpoint (train one with `rt-dtgan train`)")
    return DEFAULT_CHECKPOINT


def load_checkpoint(
    path: str | os.PathLike,
    required_parts: Sequence[str] = INFERENCE_PARTS,
    device: str | torch.device = "cpu",
) -> DynamicsTransferGAN:
    """Rebuild the model from ``path`` in eval mode, float32, with every part the file holds
    loaded (parts it does not hold keep their fresh initialisation). Raises CheckpointError
    if the file is a pickle, truncated or corrupt, lacks one of ``required_parts``, or any
    tensor is missing, unexpected or of the wrong shape."""
    path = Path(path)
    _refuse_non_safetensors(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            config, parts = _read_header(path, metadata)
            model = DynamicsTransferGAN(config)
            missing = sorted(set(required_parts) - set(parts))
            if missing:
                raise CheckpointError(f"{path}: holds parts {parts} but {missing} are needed as well")
            expected = _expected_tensors(model, parts)
            _check_names(path, set(handle.keys()), set(expected))
            state = {name: _load_tensor(path, handle, name, reference) for name, reference in expected.items()}
    except SafetensorError as error:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt): {error}") from error
    for part in parts:
        prefix = f"{part}."
        getattr(model, part).load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return model.to(device).eval()


def read_config(path: str | os.PathLike) -> tuple[ModelConfig, list[str]]:
    """The config and the parts a checkpoint holds, without loading its tensors."""
    path = Path(path)
    _refuse_non_safetensors(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return _read_header(path, handle.metadata() or {})
    except SafetensorError as error:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt): {error}") from error


def _refuse_non_safetensors(path: Path) -> None:
    """Refuse, without unpickling anything, a missing file or a torch.save pickle. A
    safetensors file starts with its header length (8 bytes, little-endian) and then '{'."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with path.open("rb") as file:
        head = file.read(9)
    header_length = int.from_bytes(head[:8], "little") if len(head) == 9 else -1
    if 0 < header_length <= path.stat().st_size - 8 and head[8:9] == b"{":
        return
    if head.startswith(_ZIP_MAGIC) or head[:1] == _PICKLE_PROTOCOL_MARK and head[1:2] in _PICKLE_PROTOCOLS:
        raise CheckpointError(
            f"{path}: is a pickle (torch.save) file; rt-dtgan never unpickles checkpoints. "
            "Load it in a trusted environment and re-save it with rt_dtgan.models.checkpoint.save_checkpoint"
        )
    if len(head) < 9:
        raise CheckpointError(f"{path}: too short to be a safetensors file ({len(head)} bytes; truncated?)")


def _read_header(path: Path, metadata: dict[str, str]) -> tuple[ModelConfig, list[str]]:
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not an rt-dtgan checkpoint (no '{FORMAT}' header)")
    version = metadata.get("format_version", "")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format version {version!r}; this rt-dtgan reads {FORMAT_VERSION}")
    try:
        config = ModelConfig.from_json(metadata.get("config", ""))
        parts = json.loads(metadata.get("parts", ""))
    except (ConfigError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: bad header: {error}") from error
    if not isinstance(parts, list) or not parts or not set(parts) <= set(PARTS):
        raise CheckpointError(f"{path}: bad header: parts {parts!r} is not a list drawn from {list(PARTS)}")
    return config, parts


def _expected_tensors(model: DynamicsTransferGAN, parts: Sequence[str]) -> dict[str, torch.Tensor]:
    return {f"{part}.{name}": tensor for part in parts for name, tensor in getattr(model, part).state_dict().items()}


def _check_names(path: Path, present: set[str], expected: set[str]) -> None:
    missing = sorted(expected - present)
    if missing:
        raise CheckpointError(f"{path}: missing {len(missing)} tensor(s), first {missing[:3]}")
    unexpected = sorted(present - expected)
    if unexpected:
        raise CheckpointError(f"{path}: {len(unexpected)} unexpected tensor(s), first {unexpected[:3]}")


def _load_tensor(path: Path, handle, name: str, reference: torch.Tensor) -> torch.Tensor:
    shape = tuple(handle.get_slice(name).get_shape())
    if shape != tuple(reference.shape):
        raise CheckpointError(
            f"{path}: tensor '{name}' has shape {shape}, but the config builds {tuple(reference.shape)}"
        )
    tensor = handle.get_tensor(name)
    return tensor.to(reference.dtype) if tensor.is_floating_point() else tensor
