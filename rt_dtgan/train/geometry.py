"""Training the geometry model (ModelConfig.geometry) on real video, in two stages.

Data: prepared datasets (`rt-dtgan data prepare`), whose crops and meshes are the live
tracker's own.

1. Keypoints (``steps``): A (mesh MLP + LSTM) and F learn to give the motion of each
   keypoint since the anchor y0. An item is what the live stream's window sees: the anchor,
   then W consecutive frames from anywhere in the same clip; the target at each position
   is that frame's mesh minus the anchor's, at MOVING_POINTS, in eye units. z_d = H - H_st
   must carry it. Augmentation teaches z_d to ignore the face's own shape: each item's face
   is stretched below the eyes (faces differ in length) and every point gets a fixed random
   displacement (identity), the same in all its frames; its motion is scaled.
2. Refiner (``refine_steps``): G's U-Net learns what the warp cannot show, inside the
   moved inner lips. An item: the anchor crop warped by the true keypoint motion of frame t
   (mostly frames with the mouth open); the target is frame t's crop inside its mouth. With
   about ten people to learn from, it overfits fast: colours are jittered per item (the
   same for anchor and target) and training is short.
3. Adversarial (``adversarial_steps``): the paper's spatial term for the residual. The L1
   of stage 2 goes on; a PatchGAN discriminator sees a MOUTH_PATCH square around each open
   mouth, where real is the warp with frame t's own mouth interior pasted in and fake is
   the refined warp, so only the interior tells them apart; the refiner also learns to
   fool it (non-saturating loss, ``adversarial_weight``).
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

from rt_dtgan.config import ModelConfig, SpatialDiscriminatorConfig
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.models.checkpoint import save_checkpoint
from rt_dtgan.models.discriminators import SpatialDiscriminator
from rt_dtgan.models.dynamics import sequence_dynamics, start_windowed, step_windowed
from rt_dtgan.models.warp import LIPS_INNER, MOVING_POINTS
from rt_dtgan.prepare import read_manifest, read_mesh, read_sequence
from rt_dtgan.runtime.pixels import to_unit_range
from rt_dtgan.train.state import has_training_state, load_training_state, random_states, restore_random_states, save_training_state

# The first frames of a track jump (detection, then tracking settles): anchors come later.
SETTLED_FROM = 2
UPPER_LIP, LOWER_LIP = MOVING_POINTS.index(13), MOVING_POINTS.index(14)
# Lips matter most to a viewer: their keypoints weigh this much more in the loss.
LIP_POINTS = [MOVING_POINTS.index(point) for point in LIPS_INNER]
LIP_WEIGHT = 3.0
# The refiner learns from open mouths: frames whose inner lips are this far apart (eye
# units) are drawn OPEN_SHARE of the time, where a clip has any.
OPEN_GAP = 0.06
OPEN_SHARE = 0.75
# Per-item colour jitter of the refiner's data: a gain per channel and a brightness shift.
COLOUR_GAIN = (0.75, 1.25)
BRIGHTNESS_SHIFT = 0.15
# Stage 3: the discriminator's view, pixels square around the mouth's centre, and its levels.
MOUTH_PATCH = 48
MOUTH_DISCRIMINATOR = SpatialDiscriminatorConfig(channels=(32, 64, 128))


@dataclass(frozen=True)
class GeometryTrainingConfig:
    """``data``: prepared dataset folders; ``hold_out``: sequence ids kept for validation.
    Stage 1: ``steps`` of ``batch_size`` windows; ``shape_noise`` (eye units) and
    ``stretch`` (factor range of the face below the eyes) vary identities, ``motion_scale``
    (factor range) how much people move. Stage 2: ``refine_steps`` of ``refine_batch_size`` frames.
    Stage 3: ``adversarial_steps`` more of them with the discriminator's term, weighted
    ``adversarial_weight`` against the L1, at constant learning rates.
    ``appearance_suppression`` False trains the paper's ablation: F reads H, not H - H_st."""

    data: tuple[str, ...]
    hold_out: tuple[str, ...] = ()
    size: int = 128
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    shape_noise: float = 0.015
    stretch: tuple[float, float] = (0.88, 1.15)
    motion_scale: tuple[float, float] = (0.7, 1.6)
    refine_steps: int = 600
    refine_batch_size: int = 12
    refine_learning_rate: float = 3e-4
    refine_weight_decay: float = 1e-4
    adversarial_steps: int = 0
    adversarial_weight: float = 0.05
    adversarial_learning_rate: float = 1e-4
    checkpoint_every: int = 250
    appearance_suppression: bool = True

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("geometry training needs at least one prepared dataset (--data)")
        if (
            min(self.steps, self.batch_size, self.refine_batch_size, self.checkpoint_every) < 1
            or min(self.refine_steps, self.adversarial_steps) < 0
        ):
            raise ValueError("steps, batch sizes and the checkpoint interval must be positive")
        if not self.adversarial_weight >= 0:
            raise ValueError(f"adversarial_weight must be at least 0, got {self.adversarial_weight}")
        if not (0 < self.stretch[0] <= self.stretch[1] and 0 < self.motion_scale[0] <= self.motion_scale[1]):
            raise ValueError("stretch and motion_scale are (low, high) ranges of positive factors")

    @property
    def total_steps(self) -> int:
        return self.steps + self.refine_steps + self.adversarial_steps

    def stage(self, step: int) -> str:
        """The stage that ``step`` (0-based) belongs to: keypoints, refine or adversarial."""
        if step < self.steps:
            return "keypoints"
        return "refine" if step < self.steps + self.refine_steps else "adversarial"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class Clip:
    """One prepared sequence: ``meshes`` (T, MESH_POINTS, 2) float32 the frontal meshes A
    reads, ``crop_meshes`` the same points in the aligned crops, both in eye units, and
    ``crops`` (T, S, S, 3) uint8."""

    meshes: np.ndarray
    crop_meshes: np.ndarray
    crops: np.ndarray


def load_clips(roots: tuple[str, ...], hold_out: tuple[str, ...]) -> tuple[dict[str, Clip], dict[str, Clip]]:
    """-> (training, held-out) clips by sequence id. Raises ValueError for a held-out id
    that no dataset holds, or when no training clip is left."""
    training, held = {}, {}
    for root in roots:
        for entry in read_manifest(root)["sequences"]:
            if entry["kept"] > SETTLED_FROM + 1:
                clip = Clip(read_mesh(root, entry), read_mesh(root, entry, "crop_mesh"), read_sequence(root, entry))
                (held if entry["id"] in hold_out else training)[entry["id"]] = clip
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


def keypoint_batch(clips: list[Clip], config: GeometryTrainingConfig, window: int, rng: np.random.Generator) -> Tensor:
    """-> meshes (batch_size, window + 1, P, 2) float32, augmented."""
    picks = rng.integers(len(clips), size=config.batch_size)
    return torch.from_numpy(np.stack([augment(window_item(clips[i].meshes, window, rng), config, rng) for i in picks]))


def keypoint_loss(model: DynamicsTransferGAN, meshes: Tensor) -> Tensor:
    """Smooth L1 between F(z_d) (F(H) for the ablation) and the keypoints' motion at every
    position, lips weighted."""
    dynamics = sequence_dynamics(model.encoder, meshes, model.config.appearance_suppression)
    predicted = model.embedder(dynamics.flatten(0, 1)).unflatten(0, dynamics.shape[:2])
    errors = functional.smooth_l1_loss(predicted, keypoint_motion(meshes), beta=0.01, reduction="none").sum(-1)
    weights = torch.ones(errors.shape[-1])
    weights[LIP_POINTS] = LIP_WEIGHT
    return (errors * weights).mean() / weights.mean()


@dataclass(frozen=True, eq=False)
class RefineBatch:
    """``portrait`` and ``truth`` (B, 3, S, S) in [-1, 1]: the anchor and frame t crops;
    ``portrait_mesh`` (B, P, 2) the anchor's mesh; ``offsets`` (B, K, 2) frame t's keypoint motion."""

    portrait: Tensor
    portrait_mesh: Tensor
    offsets: Tensor
    truth: Tensor


def refine_batch(clips: list[Clip], batch_size: int, rng: np.random.Generator, jitter: bool = False) -> RefineBatch:
    """``batch_size`` items from ``clips``; with ``jitter``, colours vary per item."""
    items = []
    for index in rng.integers(len(clips), size=batch_size):
        clip = clips[index]
        meshes = clip.crop_meshes  # the refiner learns in the crop, where its pixels are
        anchor = rng.integers(SETTLED_FROM, len(meshes))
        gaps = meshes[:, 14, 1] - meshes[:, 13, 1]
        open_frames = np.flatnonzero(gaps > OPEN_GAP)
        pick_open = len(open_frames) and rng.random() < OPEN_SHARE
        frame = rng.choice(open_frames) if pick_open else rng.integers(SETTLED_FROM, len(meshes))
        items.append((clip.crops[anchor], meshes[anchor], clip.crops[frame], meshes[frame]))
    portraits, anchor_meshes, truths, meshes = (np.stack(column) for column in zip(*items))
    motion = meshes[:, list(MOVING_POINTS)] - anchor_meshes[:, list(MOVING_POINTS)]
    portrait, truth = (to_unit_range(torch.from_numpy(crops)) for crops in (portraits, truths))
    if jitter:
        gain = torch.from_numpy(rng.uniform(*COLOUR_GAIN, size=(batch_size, 3, 1, 1))).float()
        shift = torch.from_numpy(rng.uniform(-BRIGHTNESS_SHIFT, BRIGHTNESS_SHIFT, size=(batch_size, 1, 1, 1))).float()
        portrait, truth = ((image * gain + shift).clamp(-1.0, 1.0) for image in (portrait, truth))
    return RefineBatch(portrait, torch.from_numpy(anchor_meshes), torch.from_numpy(motion), truth)


@dataclass(frozen=True, eq=False)
class RefinePass:
    """G drawn on a RefineBatch: ``warped`` the warp alone and ``output`` the refined warp
    (B, 3, S, S), ``mouth`` the mouth opening (B, 1, S, S), and the L1 of each against frame
    t inside the mouth."""

    warped: Tensor
    output: Tensor
    mouth: Tensor
    refined_l1: Tensor
    warp_only_l1: Tensor


def refine_pass(model: DynamicsTransferGAN, batch: RefineBatch) -> RefinePass:
    warped, output, mouth = model.generator.draw(batch.portrait, batch.portrait_mesh, batch.offsets)
    area = mouth.sum().clamp_min(1.0) * 3
    refined, warp_only = (((image - batch.truth).abs() * mouth).sum() / area for image in (output, warped))
    return RefinePass(warped, output, mouth, refined, warp_only)


def refine_loss(model: DynamicsTransferGAN, batch: RefineBatch) -> tuple[Tensor, Tensor]:
    """-> (the L1 of the refined warp against frame t inside the mouth opening, the same L1
    of the warp alone, for reference)."""
    drawn = refine_pass(model, batch)
    return drawn.refined_l1, drawn.warp_only_l1


@dataclass(frozen=True, eq=False)
class MouthViews:
    """MOUTH_PATCH squares around each open mouth (N, 3, P, P), N <= B: ``real`` the warp with
    frame t's own interior, ``fake`` the refined warp."""

    real: Tensor
    fake: Tensor


def mouth_views(real: Tensor, fake: Tensor, mouth: Tensor) -> MouthViews:
    """Crop a MOUTH_PATCH square around the centre of each item's mouth opening (items with
    none are left out) from ``real`` and ``fake`` (B, 3, S, S); ``mouth`` (B, 1, S, S)."""
    size = mouth.shape[-1]
    coordinates = torch.arange(size, dtype=mouth.dtype)
    reals, fakes = [], []
    for index in range(mouth.shape[0]):
        weight = mouth[index, 0]
        if weight.sum() < 1.0:
            continue
        centre_y = int((weight.sum(1) * coordinates).sum() / weight.sum())
        centre_x = int((weight.sum(0) * coordinates).sum() / weight.sum())
        top = min(max(centre_y - MOUTH_PATCH // 2, 0), size - MOUTH_PATCH)
        left = min(max(centre_x - MOUTH_PATCH // 2, 0), size - MOUTH_PATCH)
        window = (slice(None), slice(top, top + MOUTH_PATCH), slice(left, left + MOUTH_PATCH))
        reals.append(real[index][window])
        fakes.append(fake[index][window])
    empty = real.new_zeros(0, 3, MOUTH_PATCH, MOUTH_PATCH)
    return MouthViews(torch.stack(reals) if reals else empty, torch.stack(fakes) if fakes else empty)


def mouth_detail(images: Tensor, mouth: Tensor) -> Tensor:
    """Mean absolute Laplacian of the grey level inside the mouth opening: how much fine
    detail (teeth, lip edges) an image shows there. images (B, 3, S, S), mouth (B, 1, S, S)."""
    grey = images.mean(1, keepdim=True)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    edges = functional.conv2d(grey, kernel, padding=1).abs()
    return (edges * mouth).sum() / mouth.sum().clamp_min(1.0)


def streamed_offsets(model: DynamicsTransferGAN, meshes: np.ndarray) -> np.ndarray:
    """One clip's meshes (T, P, 2), streamed through the window as live, with its first
    settled frame as y0 -> F's offsets (T', K, 2), T' = T - SETTLED_FROM. The ablation's F
    reads H = z_d + H_st."""
    video = torch.from_numpy(meshes[SETTLED_FROM:])
    with torch.no_grad():
        z_d, state = start_windowed(model.encoder, video[:1], model.config.stream_window)
        steps = [z_d]
        for frame in video[1:]:
            z_d, state = step_windowed(model.encoder, frame.unsqueeze(0), state)
            steps.append(z_d)
        dynamics = torch.cat(steps)
        if not model.config.appearance_suppression:
            dynamics = dynamics + state.static_h
        return model.embedder(dynamics).numpy()


def validate(model: DynamicsTransferGAN, held: dict[str, Clip], config: GeometryTrainingConfig) -> dict[str, float]:
    """Per held-out clip, streamed: the mean keypoint error (eye units), the Pearson r of
    the predicted and true inner-lip gap motion and its gain (predicted over true spread);
    over all held-out clips, the refiner's loss and the warp's alone on fixed pairs."""
    figures = {}
    for name, clip in held.items():
        predicted = streamed_offsets(model, clip.meshes)
        points = clip.meshes[SETTLED_FROM:, list(MOVING_POINTS)]
        truth = points - points[:1]
        gap_true = truth[:, LOWER_LIP, 1] - truth[:, UPPER_LIP, 1]
        gap_predicted = predicted[:, LOWER_LIP, 1] - predicted[:, UPPER_LIP, 1]
        figures[f"{name}/error"] = float(np.abs(predicted - truth).mean())
        figures[f"{name}/mouth_r"] = float(np.corrcoef(gap_true, gap_predicted)[0, 1]) if gap_true.std() > 0 else float("nan")
        figures[f"{name}/mouth_gain"] = float(gap_predicted.std() / max(gap_true.std(), 1e-9))
    batch = refine_batch(list(held.values()), 48, np.random.default_rng(12345))
    with torch.no_grad():
        drawn = refine_pass(model, batch)
        truth_detail = mouth_detail(batch.truth, drawn.mouth)
    return figures | {
        "refine_l1": float(drawn.refined_l1),
        "warp_only_l1": float(drawn.warp_only_l1),
        "refine_detail": float(mouth_detail(drawn.output, drawn.mouth) / truth_detail),
        "warp_only_detail": float(mouth_detail(drawn.warped, drawn.mouth) / truth_detail),
    }


def train_geometry(config: GeometryTrainingConfig, run_dir: str, progress: bool = True) -> Path:
    """Train a geometry model: ``config.steps`` keypoint steps (A and F), then
    ``config.refine_steps`` refiner steps (G), resuming from ``run_dir``. Writes
    run_dir/model.safetensors at every checkpoint and the held-out figures to
    run_dir/validation.jsonl. Returns the checkpoint path."""
    run = Path(run_dir)
    training, held = load_clips(config.data, config.hold_out)
    clips = [training[name] for name in sorted(training)]
    torch.manual_seed(config.seed)
    model_config = dataclasses.replace(ModelConfig.geometry(config.size), appearance_suppression=config.appearance_suppression)
    model = DynamicsTransferGAN(model_config)
    discriminator = SpatialDiscriminator(MOUTH_DISCRIMINATOR)
    optimizers = _optimizers(model, discriminator, config)
    start = _resume(run, config, model, discriminator, optimizers) if has_training_state(run) else 0
    rng = np.random.default_rng([config.seed, start])
    checkpoint = run / "model.safetensors"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    bar = tqdm(total=config.total_steps, initial=start, desc="geometry", unit="step", disable=not progress)
    began = time.perf_counter()
    for step in range(start, config.total_steps):
        model.train()
        stage = config.stage(step)
        if stage == "keypoints":
            losses = {"keypoints": keypoint_loss(model, keypoint_batch(clips, config, model.config.stream_window, rng))}
        elif stage == "refine":
            refined, warp_only = refine_loss(model, refine_batch(clips, config.refine_batch_size, rng, jitter=True))
            losses = {"refine": refined, "warp_only": warp_only}
        else:
            losses = adversarial_step(
                model, discriminator, refine_batch(clips, config.refine_batch_size, rng, jitter=True), config, optimizers
            )
        _descend(optimizers[stage], next(iter(losses.values())))
        bar.update(1)
        bar.set_postfix({name: f"{value.item():.4f}" for name, value in losses.items()})
        done = step + 1
        if done % config.checkpoint_every == 0 or done in (config.steps, config.steps + config.refine_steps, config.total_steps):
            _save(run, done, config, model, discriminator, optimizers, checkpoint, held, time.perf_counter() - began)
    bar.close()
    return checkpoint


def adversarial_step(model: DynamicsTransferGAN, discriminator: SpatialDiscriminator, batch: RefineBatch, config, optimizers) -> dict:
    """Stage 3 on one batch: the discriminator's step on the mouth views, then -> the
    refiner's losses, the total first (its step is the caller's)."""
    drawn = refine_pass(model, batch)
    refined, warp_only = drawn.refined_l1, drawn.warp_only_l1
    views = mouth_views(drawn.warped + drawn.mouth * (batch.truth - drawn.warped), drawn.output, drawn.mouth)
    if len(views.fake) == 0:
        return {"total": refined, "refine": refined, "warp_only": warp_only}
    real_logits, fake_logits = discriminator(views.real), discriminator(views.fake.detach())
    discriminator_loss = functional.softplus(-real_logits).mean() + functional.softplus(fake_logits).mean()
    _descend(optimizers["discriminator"], discriminator_loss)
    fooling = functional.softplus(-discriminator(views.fake)).mean()
    total = refined + config.adversarial_weight * fooling
    return {"total": total, "refine": refined, "warp_only": warp_only, "fooling": fooling, "discriminator": discriminator_loss}


def _descend(optimizer_and_schedule: tuple, loss: Tensor) -> None:
    optimizer, schedule = optimizer_and_schedule
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()


def _optimizers(model: DynamicsTransferGAN, discriminator: SpatialDiscriminator, config: GeometryTrainingConfig) -> dict:
    """name -> (Adam, schedule) for the keypoint stage (A, F), the refiner (G), then the
    refiner and the discriminator of the adversarial stage (constant rates)."""
    refiner = list(model.generator.refiner.parameters())
    stages = {
        "keypoints": (
            [*model.encoder.mesh_features.parameters(), *model.encoder.lstm.parameters(), *model.embedder.parameters()],
            config.learning_rate,
            config.steps,
        ),
        "refine": (refiner, config.refine_learning_rate, max(config.refine_steps, 1)),
    }
    made = {}
    for name, (parameters, rate, steps) in stages.items():
        decay = config.refine_weight_decay if name == "refine" else 0.0
        optimizer = torch.optim.Adam(parameters, lr=rate, weight_decay=decay)
        made[name] = (optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=rate / 20))
    for name, parameters in (("adversarial", refiner), ("discriminator", list(discriminator.parameters()))):
        optimizer = torch.optim.Adam(parameters, lr=config.adversarial_learning_rate, betas=(0.5, 0.999))
        made[name] = (optimizer, torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0))
    return made


def _save(run: Path, step: int, config, model, discriminator, optimizers, checkpoint: Path, held, seconds: float) -> None:
    trees = {"model": model.state_dict(), "discriminator": discriminator.state_dict(), "random": random_states()}
    for name, (optimizer, schedule) in optimizers.items():
        trees |= {f"optimizer.{name}": optimizer.state_dict(), f"schedule.{name}": schedule.state_dict()}
    save_training_state(run, step, trees, config.to_dict())
    model.eval()
    save_checkpoint(checkpoint, model)
    figures = validate(model, held, config) if held else {}
    with (run / "validation.jsonl").open("a") as file:
        file.write(json.dumps({"step": step, "seconds": round(seconds, 1)} | figures) + "\n")


def _resume(run: Path, config: GeometryTrainingConfig, model, discriminator, optimizers) -> int:
    """Load the run's state -> its step. The step counts may grow; a run saved before a
    setting existed counts as having had its default."""
    step, trees, saved = load_training_state(run)
    growing = ("steps", "refine_steps", "adversarial_steps")
    ours = json.loads(json.dumps(config.to_dict()))
    defaults = {f.name: f.default for f in dataclasses.fields(GeometryTrainingConfig) if f.default is not dataclasses.MISSING}
    saved = json.loads(json.dumps(defaults)) | saved
    if {k: v for k, v in saved.items() if k not in growing} != {k: v for k, v in ours.items() if k not in growing}:
        raise ValueError(f"{run} holds a run with another config; resume it with that config or use a new run directory")
    model.load_state_dict(trees["model"])
    if "discriminator" in trees:
        discriminator.load_state_dict(trees["discriminator"])
    for name, (optimizer, schedule) in optimizers.items():
        if f"optimizer.{name}" in trees:
            optimizer.load_state_dict(trees[f"optimizer.{name}"])
            schedule.load_state_dict(trees[f"schedule.{name}"])
    restore_random_states(trees["random"])
    return step
