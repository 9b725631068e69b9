"""Which per-frame input should the geometry model's A read: the mesh's coordinates through
an MLP (what ships), or the mesh rasterised for a CNN? Both train stage 1 (keypoints) the
same way on the same prepared clips and are scored on the same held-out clips.

    python tools/mesh_input_probe.py --data RUNS/data/grid --data RUNS/data/driving \
        --hold-out bbaf2n,lbax4n,swiz3n,lp_d3,tpsmm_driving --steps 1000 --json OUT.json

The raster: each of the 468 points splatted as a Gaussian (sigma one grid cell) on a 32 x 32
grid over [-1.5, 1.5] x [-1, 2] eye units, then four stride-2 3x3 convolutions (16 to 64
channels) and a linear layer to A's feature size. Everything else (LSTM, F, data, loss,
augmentation, steps, seed) is the same.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rt_dtgan.config import ModelConfig
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.train.geometry import GeometryTrainingConfig, keypoint_batch, keypoint_loss, load_clips, validate

RASTER_SIDE = 32
RASTER_SPAN = ((-1.5, 1.5), (-1.0, 2.0))  # x and y ranges in eye units


class MeshRaster(nn.Module):
    """(N, 468, 2) meshes in eye units -> (N, feature_dim) through a Gaussian splat and a CNN."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        (x0, x1), (y0, y1) = RASTER_SPAN
        ys, xs = torch.meshgrid(torch.linspace(y0, y1, RASTER_SIDE), torch.linspace(x0, x1, RASTER_SIDE), indexing="ij")
        self.register_buffer("cells", torch.stack([xs.flatten(), ys.flatten()], dim=-1))
        self.sigma = (x1 - x0) / RASTER_SIDE
        widths = (1, 16, 32, 48, 64)
        layers: list[nn.Module] = []
        for inputs, outputs in zip(widths, widths[1:]):
            layers += [nn.Conv2d(inputs, outputs, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        side = RASTER_SIDE >> (len(widths) - 1)
        self.cnn = nn.Sequential(*layers, nn.Flatten(), nn.Linear(widths[-1] * side * side, feature_dim), nn.Tanh())

    def forward(self, meshes: Tensor) -> Tensor:
        squared = torch.cdist(self.cells.unsqueeze(0).expand(meshes.shape[0], -1, -1), meshes).square()
        image = torch.exp(-squared / (2 * self.sigma**2)).sum(-1).view(-1, 1, RASTER_SIDE, RASTER_SIDE)
        return self.cnn(image)


def train_stage_one(model: DynamicsTransferGAN, clips: list, config: GeometryTrainingConfig, steps: int) -> float:
    """Train A and F on keypoint motion for ``steps`` steps; returns the seconds it took."""
    parameters = [*model.encoder.mesh_features.parameters(), *model.encoder.lstm.parameters(), *model.embedder.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=config.learning_rate / 20)
    rng = np.random.default_rng(config.seed)
    began = time.perf_counter()
    model.train()
    for _ in range(steps):
        loss = keypoint_loss(model, keypoint_batch(clips, config, model.config.stream_window, rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", required=True, help="a prepared dataset (repeatable)")
    parser.add_argument("--hold-out", required=True, help="comma-separated sequence ids to score on")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    hold_out = tuple(name for name in args.hold_out.split(",") if name)
    config = GeometryTrainingConfig(data=tuple(args.data), hold_out=hold_out, refine_steps=0)
    training, held = load_clips(config.data, config.hold_out)
    clips = [training[name] for name in sorted(training)]
    results = {}
    for name in ("mlp", "raster"):
        torch.manual_seed(config.seed)
        model = DynamicsTransferGAN(ModelConfig.geometry(config.size))
        if name == "raster":
            model.encoder.mesh_features = MeshRaster(model.config.encoder.feature_dim)
        seconds = train_stage_one(model, clips, config, args.steps)
        figures = {key: value for key, value in validate(model, held, config).items() if "/" in key}
        results[name] = figures | {
            "train_seconds": round(seconds, 1),
            "parameters": sum(p.numel() for p in model.encoder.mesh_features.parameters()),
        }
        mouth = np.median([value for key, value in figures.items() if key.endswith("mouth_r")])
        error = np.median([value for key, value in figures.items() if key.endswith("/error")])
        print(f"{name}: held-out inner-lip r median {mouth:.4f}, keypoint error median {error:.4f} eye units, {seconds:.0f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": args.steps, "hold_out": hold_out, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
