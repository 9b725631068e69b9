"""Training state for resuming, kept apart from the inference checkpoint, never pickled.

``training_state.safetensors`` holds every tensor (module weights and buffers, optimiser
moments, random generator states); ``training_state.json`` holds the step, the training
config and the structure of each state dict with tensors replaced by references
``{"tensor": NAME}``. Both are written atomically, the JSON last.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"


def save_training_state(run_dir: str | os.PathLike, step: int, trees: dict[str, Any], config: dict) -> None:
    """Write ``trees`` (name -> nested dicts/lists of tensors and JSON scalars, such as
    state_dict() of modules and optimisers) at ``step``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    structure = {name: _split(tree, name, tensors) for name, tree in trees.items()}
    _atomic(run_dir / STATE_TENSORS, lambda path: save_file(tensors, str(path)))
    payload = {"step": step, "config": config, "structure": structure}
    _atomic(run_dir / STATE_JSON, lambda path: path.write_text(json.dumps(payload)))


def load_training_state(run_dir: str | os.PathLike) -> tuple[int, dict[str, Any], dict]:
    """-> (step, trees, config) as saved by ``save_training_state``."""
    run_dir = Path(run_dir)
    payload = json.loads((run_dir / STATE_JSON).read_text())
    tensors = load_file(str(run_dir / STATE_TENSORS))
    trees = {name: _join(tree, tensors) for name, tree in payload["structure"].items()}
    return payload["step"], trees, payload["config"]


def has_training_state(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / STATE_JSON).is_file()


def random_states() -> dict[str, torch.Tensor]:
    """The torch CPU (and CUDA) generator states, to resume bit for bit."""
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def restore_random_states(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def _split(tree: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().cpu().contiguous()
        return {"tensor": prefix}
    if isinstance(tree, dict):
        return {"dict": [[_key(k), _split(v, f"{prefix}.{k}", tensors)] for k, v in tree.items()]}
    if isinstance(tree, (list, tuple)):
        return {"list": [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return {"value": tree}
    raise TypeError(f"cannot store {type(tree).__name__} at {prefix} in the training state")


def _key(key: Any) -> Any:
    if not isinstance(key, (int, str)):
        raise TypeError(f"state dict keys must be int or str, got {key!r}")
    return key


def _join(node: dict, tensors: dict[str, torch.Tensor]) -> Any:
    if "tensor" in node:
        return tensors[node["tensor"]]
    if "dict" in node:
        return {key: _join(value, tensors) for key, value in node["dict"]}
    if "list" in node:
        return [_join(value, tensors) for value in node["list"]]
    return node["value"]


def _atomic(path: Path, write) -> None:
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)
