"""Entry points: pretrain the encoder A, then train the GAN on top of the frozen A."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from rt_dtgan.config import ModelConfig
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.models.checkpoint import load_checkpoint
from rt_dtgan.runtime.export import file_sha256
from rt_dtgan.train.config import EncoderTrainingConfig, GanTrainingConfig, config_to_dict
from rt_dtgan.train.loop import run_training, setup_distributed
from rt_dtgan.train.objectives import EncoderObjective, GanObjective

ENCODER_CHECKPOINT = "encoder.safetensors"
MODEL_CHECKPOINT = "model.safetensors"
INIT_PARTS = ("embedder", "generator")


def train_encoder(
    config: EncoderTrainingConfig,
    run_dir: str | os.PathLike,
    progress: bool = True,
    tensorboard: bool = False,
    init_checkpoint: str | os.PathLike | None = None,
) -> Path:
    """Pretrain A; writes run_dir/encoder.safetensors (part: encoder). ``init_checkpoint``
    (any checkpoint with an encoder of this size) gives A its starting weights."""
    distributed = setup_distributed()
    torch.manual_seed(config.run.seed)
    model = DynamicsTransferGAN(ModelConfig.for_size(config.run.size))
    config_dict = {"encoder_training": config_to_dict(config)}
    if init_checkpoint is not None:
        start = _checked_encoder(init_checkpoint, config.run.size)
        model.encoder.load_state_dict(start.encoder.state_dict())
        config_dict["init_sha256"] = file_sha256(init_checkpoint)
    objective = EncoderObjective(model.to(distributed.device), config, distributed.world_size)
    return run_training(objective, config.run, run_dir, config_dict, distributed, ENCODER_CHECKPOINT, progress, tensorboard)


def train_gan(
    config: GanTrainingConfig,
    run_dir: str | os.PathLike,
    encoder_checkpoint: str | os.PathLike,
    progress: bool = True,
    tensorboard: bool = False,
    init_checkpoint: str | os.PathLike | None = None,
    init_parts: tuple[str, ...] = INIT_PARTS,
) -> Path:
    """Train F, G, Ds and Dd with the frozen A of ``encoder_checkpoint``; writes
    run_dir/model.safetensors (parts A, F, G). ``init_checkpoint`` (a model checkpoint of
    the same networks) gives ``init_parts`` (of F and G) their starting weights."""
    distributed = setup_distributed()
    pretrained = _checked_encoder(encoder_checkpoint, config.run.size)
    torch.manual_seed(config.run.seed)
    model_config = dataclasses.replace(pretrained.config, appearance_suppression=config.appearance_suppression)
    model = DynamicsTransferGAN(model_config)
    model.encoder.load_state_dict(pretrained.encoder.state_dict())
    config_dict = {"gan_training": config_to_dict(config), "encoder_sha256": file_sha256(encoder_checkpoint)}
    if init_checkpoint is not None:
        _start_from(model, init_checkpoint, init_parts)
        config_dict |= {"init_sha256": file_sha256(init_checkpoint), "init_parts": list(init_parts)}
    model.to(distributed.device)
    objective = GanObjective(model, config, distributed.world_size)
    return run_training(objective, config.run, run_dir, config_dict, distributed, MODEL_CHECKPOINT, progress, tensorboard)


def _checked_encoder(checkpoint: str | os.PathLike, size: int) -> DynamicsTransferGAN:
    """The model of ``checkpoint``, which must hold an encoder of ``size`` px crops."""
    model = load_checkpoint(checkpoint, required_parts=["encoder"])
    if model.config.image_size != size:
        raise ValueError(f"{checkpoint} encodes {model.config.image_size} px crops, but the training data is {size} px")
    return model


def _start_from(model: DynamicsTransferGAN, init_checkpoint: str | os.PathLike, parts: tuple[str, ...]) -> None:
    """Copy ``parts`` from ``init_checkpoint``; its networks must have the same shapes."""
    unknown = set(parts) - set(INIT_PARTS)
    if unknown or not parts:
        raise ValueError(f"init parts must be some of {INIT_PARTS}, got {list(parts)}")
    start = load_checkpoint(init_checkpoint, required_parts=list(parts))
    for part in parts:
        try:
            getattr(model, part).load_state_dict(getattr(start, part).state_dict())
        except RuntimeError as error:
            raise ValueError(f"{init_checkpoint}: its {part} does not fit this model ({error})") from error
