"""Stage 1 of the geometry model: A (mesh MLP + LSTM) and F (keypoint offsets) learn, on real
video, to give the motion of each keypoint since the anchor y0.

Data: prepared datasets (`rt-dtgan data prepare`), whose meshes are the live tracker's own.
A training item is what the live stream's window sees: the anchor y0, then W consecutive
frames from anywhere in the same clip. The target at each position is that frame's mesh
minus the anchor's, at MOVING_POINTS, in eye units; z_d = H - H_st must carry it.

Augmentation teaches z_d to ignore the face's own shape: each item's face is stretched
below the eyes (faces differ in length) and every point gets a fixed random displacement
(identity), the same in all its frames; its motion is scaled (people move more or less).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional
from tqdm import tqdm

from rt_dtgan.checkpoint import save_checkpoint
from rt_dtgan.config import ModelConfig
from rt_dtgan.dynamics import dynamics_offline
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.models.warp import LIPS_INNER, MOVING_POINTS
from rt_dtgan.prepare import read_manifest, read_mesh
from rt_dtgan.train.state import has_training_state, load_training_state, random_states, restore_random_states, save_training_state

# The first frames of a track jump (detection, then tracking settles): anchors come later.
SETTLED_FROM = 2
UPPER_LIP, LOWER_LIP = MOVING_POINTS.index(13), MOVING_POINTS.index(14)
# Lips matter most to a viewer: their keypoints weigh this much more in the loss.
LIP_POINTS = [MOVING_POINTS.index(point) for point in LIPS_INNER]
LIP_WEIGHT = 3.0


@dataclass(frozen=True)
class GeometryTrainingConfig:
    """``data``: prepared dataset folders; ``hold_out``: sequence ids kept for validation.
    ``shape_noise`` (eye units) and ``stretch`` (factor range of the face below the eyes)
    vary identities; ``motion_scale`` (factor range) varies how much people move."""

    data: tuple[str, ...]
    hold_out: tuple[str, ...] = ()
    size: int = 128
    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    shape_noise: float = 0.015
    stretch: tuple[float, float] = (0.88, 1.15)
    motion_scale: tuple[float, float] = (0.7, 1.6)
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("geometry training needs at least one prepared dataset (--data)")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("steps, batch size and checkpoint interval must be positive")
        if not (0 < self.stretch[0] <= self.stretch[1] and 0 < self.motion_scale[0] <= self.motion_scale[1]):
            raise ValueError("stretch and motion_scale are (low, high) ranges of positive factors")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_meshes(roots: tuple[str, ...], hold_out: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """-> (training, held-out) meshes by sequence id, each (kept, MESH_POINTS, 2) float32.
    Raises ValueError for a held-out id that no dataset holds."""
    training, held = {}, {}
    for root in roots:
        for entry in read_manifest(root)["sequences"]:
            meshes = read_mesh(root, entry)
            if len(meshes) > SETTLED_FROM + 1:
                (held if entry["id"] in hold_out else training)[entry["id"]] = meshes
    unknown = sorted(set(hold_out) - set(held))
    if unknown:
        raise ValueError(f"held-out sequences not found in the data: {unknown}")
    if not training:
        raise ValueError("no training sequences left (all held out, or too short)")
    return training, held


def window_item(meshes: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """One clip's meshes (T, P, 2) -> (window + 1, P, 2): a settled anchor, then ``window``
    consecutive frames from anywhere in the clip (the anchor repeated where they would
    start before the clip)."""
    count = len(meshes)
    anchor = rng.integers(SETTLED_FROM, count)
    end = rng.integers(0, count)
    picks = np.arange(end - window + 1, end + 1)
    picks = np.where(picks < 0, anchor, picks)
    return meshes[np.concatenate([[anchor], picks])]


def augment(item: np.ndarray, config: GeometryTrainingConfig, rng: np.random.Generator) -> np.ndarray:
    """(L, P, 2) meshes of one item -> the same motion on another face: scaled about the
    anchor, stretched below the eyes, with a fixed random displacement per point."""
    anchor = item[:1]
    moved = anchor + rng.uniform(*config.motion_scale) * (item - anchor)
    stretch = rng.uniform(*config.stretch)
    moved[..., 1] = np.where(moved[..., 1] > 0, moved[..., 1] * stretch, moved[..., 1])
    return (moved + rng.normal(0.0, config.shape_noise, size=item.shape[1:])).astype(np.float32)


def keypoint_motion(meshes: Tensor) -> Tensor:
    """meshes (B, L, P, 2) -> (B, L, K, 2): MOVING_POINTS minus the anchor's (position 0)."""
    points = meshes[:, :, list(MOVING_POINTS)]
    return points - points[:, :1]


def geometry_batch(clips: list[np.ndarray], config: GeometryTrainingConfig, window: int, rng: np.random.Generator) -> Tensor:
    """-> meshes (batch_size, window + 1, P, 2) float32, augmented."""
    items = [augment(window_item(clips[rng.integers(len(clips))], window, rng), config, rng) for _ in range(config.batch_size)]
    return torch.from_numpy(np.stack(items))


def geometry_loss(model: DynamicsTransferGAN, meshes: Tensor) -> Tensor:
    """Smooth L1 between F(z_d) and the keypoints' motion at every position, lips weighted."""
    z_d = dynamics_offline(model.encoder, meshes)
    predicted = model.embedder(z_d.flatten(0, 1)).unflatten(0, z_d.shape[:2])
    errors = functional.smooth_l1_loss(predicted, keypoint_motion(meshes), beta=0.01, reduction="none").sum(-1)
    weights = torch.ones(errors.shape[-1])
    weights[LIP_POINTS] = LIP_WEIGHT
    return (errors * weights).mean() / weights.mean()


def streamed_offsets(model: DynamicsTransferGAN, meshes: np.ndarray) -> np.ndarray:
    """One clip's meshes (T, P, 2), streamed as live with its first settled frame as y0 ->
    F's offsets (T', K, 2), T' = T - SETTLED_FROM."""
    from rt_dtgan.runtime.backends import TorchBackend
    from rt_dtgan.runtime.engine import Face, StreamEngine

    engine = StreamEngine(TorchBackend(model))
    stream = engine.open(Face(np.zeros((model.config.image_size,) * 2 + (3,), np.uint8), meshes[0]))
    return np.stack([engine.step(stream, Face(None, mesh)).offsets for mesh in meshes[SETTLED_FROM:]])


def validate(model: DynamicsTransferGAN, held: dict[str, np.ndarray]) -> dict[str, float]:
    """Per held-out clip, streamed: the mean keypoint error (eye units), the Pearson r of
    the predicted and true inner-lip gap motion and its gain (predicted over true spread)."""
    figures = {}
    for name, meshes in held.items():
        predicted = streamed_offsets(model, meshes)
        points = meshes[SETTLED_FROM:, list(MOVING_POINTS)]
        truth = points - points[:1]
        gap_true = truth[:, LOWER_LIP, 1] - truth[:, UPPER_LIP, 1]
        gap_predicted = predicted[:, LOWER_LIP, 1] - predicted[:, UPPER_LIP, 1]
        figures[f"{name}/error"] = float(np.abs(predicted - truth).mean())
        figures[f"{name}/mouth_r"] = float(np.corrcoef(gap_true, gap_predicted)[0, 1]) if gap_true.std() > 0 else float("nan")
        figures[f"{name}/mouth_gain"] = float(gap_predicted.std() / max(gap_true.std(), 1e-9))
    return figures


def train_geometry(config: GeometryTrainingConfig, run_dir: str, progress: bool = True) -> Path:
    """Train A and F of a geometry model (ModelConfig.geometry) for ``config.steps`` steps,
    resuming from ``run_dir``; writes run_dir/model.safetensors and validation figures to
    run_dir/validation.json. Returns the checkpoint path."""
    run = Path(run_dir)
    training, held = load_meshes(config.data, config.hold_out)
    clips = [training[name] for name in sorted(training)]
    torch.manual_seed(config.seed)
    model = DynamicsTransferGAN(ModelConfig.geometry(config.size))
    parameters = [*model.encoder.mesh_features.parameters(), *model.encoder.lstm.parameters(), *model.embedder.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps, eta_min=config.learning_rate / 20)
    start = _resume(run, config, model, optimizer, schedule) if has_training_state(run) else 0
    rng = np.random.default_rng([config.seed, start])
    window = model.config.stream_window
    checkpoint = run / "model.safetensors"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    bar = tqdm(total=config.steps, initial=start, desc="geometry", unit="step", disable=not progress)
    began = time.perf_counter()
    for step in range(start, config.steps):
        model.train()
        loss = geometry_loss(model, geometry_batch(clips, config, window, rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        done = step + 1
        if done % config.checkpoint_every == 0 or done == config.steps:
            _save(run, done, config, model, optimizer, schedule, checkpoint, held, time.perf_counter() - began)
    bar.close()
    return checkpoint


def _save(run: Path, step: int, config, model, optimizer, schedule, checkpoint: Path, held, seconds: float) -> None:
    trees = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
    save_training_state(run, step, trees | {"random": random_states()}, config.to_dict())
    model.eval()
    save_checkpoint(checkpoint, model)
    figures = validate(model, held) if held else {}
    log = {"step": step, "seconds": round(seconds, 1)} | figures
    with (run / "validation.jsonl").open("a") as file:
        file.write(json.dumps(log) + "\n")


def _resume(run: Path, config: GeometryTrainingConfig, model, optimizer, schedule) -> int:
    step, trees, saved = load_training_state(run)
    if {k: v for k, v in saved.items() if k != "steps"} != {k: v for k, v in json.loads(json.dumps(config.to_dict())).items() if k != "steps"}:
        raise ValueError(f"{run} holds a run with another config; resume it with that config or use a new run directory")
    model.load_state_dict(trees["model"])
    optimizer.load_state_dict(trees["optimizer"])
    schedule.load_state_dict(trees["schedule"])
    restore_random_states(trees["random"])
    return step
