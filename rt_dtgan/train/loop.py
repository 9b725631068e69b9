"""The training loop shared by encoder pretraining and the GAN: data, progress, logs,
checkpoints, resume, and several processes (torchrun: gloo on the CPU, NCCL on GPUs).

A run directory holds ``config.json``, the training state (``training_state.*``, to
resume), the inference checkpoint (``encoder.safetensors`` or ``model.safetensors``),
``metrics.jsonl`` (one line per logged step) and, with TensorBoard, ``tensorboard/``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from rt_dtgan.train.config import RunConfig
from rt_dtgan.train.data import SequenceBatch, StepBatches
from rt_dtgan.train.objectives import Objective
from rt_dtgan.train.state import (
    has_training_state,
    load_training_state,
    random_states,
    restore_random_states,
    save_training_state,
)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: rank, world size and device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Distributed:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Distributed(dist.get_rank(), world_size, device)


class RunLogger:
    """metrics.jsonl always; TensorBoard scalars, image grids and short GIF clips when asked."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.metrics = (run_dir / "metrics.jsonl").open("a")
        self.writer = None
        if tensorboard:
            from rt_dtgan.optional import require

            summary = require("torch.utils.tensorboard", "TensorBoard logging")
            self.writer = summary.SummaryWriter(str(run_dir / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.metrics.write(json.dumps({"step": step, **values}) + "\n")
        self.metrics.flush()
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def videos(self, step: int, videos: dict[str, torch.Tensor]) -> None:
        """videos: name -> (B, T, 3, S, S) in [-1, 1]; a filmstrip grid and a GIF clip each."""
        if self.writer is None:
            return
        from rt_dtgan.train.previews import add_gif, filmstrip

        for name, video in videos.items():
            self.writer.add_image(f"{name}/filmstrip", filmstrip(video), step)
            add_gif(self.writer, f"{name}/clip", video, step)

    def close(self) -> None:
        self.metrics.close()
        if self.writer is not None:
            self.writer.close()


def run_training(
    objective: Objective,
    run: RunConfig,
    run_dir: str | os.PathLike,
    config_dict: dict,
    distributed: Distributed,
    checkpoint_name: str,
    progress: bool = True,
    tensorboard: bool = False,
) -> Path:
    """Train ``objective`` for ``run.steps`` steps (resuming from run_dir when it holds a
    training state of the same ``config_dict``); returns the inference checkpoint path."""
    run_dir = Path(run_dir)
    start = _resume(objective, run_dir, config_dict) if has_training_state(run_dir) else 0
    checkpoint = run_dir / checkpoint_name
    logger = None
    if distributed.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n")
        logger = RunLogger(run_dir, tensorboard)
    loader = _loader(run, start, distributed.rank)
    bar = tqdm(total=run.steps, initial=start, desc=objective.name, disable=not (progress and distributed.is_main), unit="step")
    began, frames = time.perf_counter(), 0
    try:
        for step, batch in zip(range(start, run.steps), loader):
            batch = batch.to(distributed.device)
            losses = objective.step(batch)
            frames += batch.video.shape[0] * batch.video.shape[1]
            done = step + 1
            if logger is not None:
                _log(logger, objective, batch, losses, done, run, frames / (time.perf_counter() - began), bar)
            if done % run.checkpoint_every == 0 or done == run.steps:
                _checkpoint(objective, run_dir, done, config_dict, checkpoint, distributed)
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    return checkpoint


def _loader(run: RunConfig, start: int, rank: int) -> DataLoader:
    dataset = StepBatches(run.data, start_step=start, rank=rank)
    workers = run.loader_workers
    # The batches seed themselves by step; a generator of its own keeps the loader from
    # drawing on the global random state that dropout uses (resume would then drift).
    own_generator = torch.Generator().manual_seed(run.seed)
    return DataLoader(dataset, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None, generator=own_generator)


def _log(
    logger: RunLogger,
    objective: Objective,
    batch: SequenceBatch,
    losses: dict[str, float],
    step: int,
    run: RunConfig,
    frames_per_s: float,
    bar: tqdm,
) -> None:
    bar.update(1)
    bar.set_postfix({k: f"{v:.3f}" for k, v in list(losses.items())[:4]} | {"frames/s": f"{frames_per_s:.0f}"})
    if step % run.log_every == 0 or step == run.steps:
        logger.scalars(step, losses | {"frames_per_s": frames_per_s, "time": time.time()})
    if step % run.image_every == 0 or step == run.steps:
        logger.videos(step, objective.preview(batch))


def _checkpoint(objective: Objective, run_dir: Path, step: int, config: dict, checkpoint: Path, distributed: Distributed) -> None:
    if distributed.is_main:
        trees = {f"module.{name}": module.state_dict() for name, module in objective.modules().items()}
        trees |= {f"optimizer.{name}": optimizer.state_dict() for name, optimizer in objective.optimizers.items()}
        trees["random"] = random_states()
        save_training_state(run_dir, step, trees, config)
        objective.export(checkpoint)
    if distributed.world_size > 1:
        dist.barrier()


def _resume(objective: Objective, run_dir: Path, config: dict) -> int:
    step, trees, saved_config = load_training_state(run_dir)
    if _without_steps(saved_config) != _without_steps(json.loads(json.dumps(config))):
        raise ValueError(f"{run_dir} holds a run with another config; resume it with that config or use a new run directory")
    for name, module in objective.modules().items():
        module.load_state_dict(trees[f"module.{name}"])
    for name, optimizer in objective.optimizers.items():
        optimizer.load_state_dict(trees[f"optimizer.{name}"])
    restore_random_states(trees["random"])
    return step


def _without_steps(config):
    """The config minus every ``steps`` entry: a run may be resumed to train for longer."""
    if isinstance(config, dict):
        return {k: _without_steps(v) for k, v in config.items() if k != "steps"}
    return config
