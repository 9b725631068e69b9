"""Ship the geometry model, and what `rt-dtgan eval` scores it with, inside the package, in
float16: the model itself (the default, geometry-128.safetensors), the judge (an expression
recogniser trained apart from A) and the model's ablation (its recipe driven by H instead of
z_d). Each is optional. Recipe: tools/train_geometry.sh.

    python tools/ship_geometry.py --model runs/geometry/model/model.safetensors \
        --judge runs/geometry/judge-aligned/encoder.safetensors \
        --ablation runs/geometry/model-ablation/model.safetensors --out rt_dtgan/assets
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rt_dtgan.models import INFERENCE_PARTS
from rt_dtgan.models.checkpoint import SHIPPED_ABLATIONS, SHIPPED_JUDGE, SHIPPED_MODELS, load_checkpoint, save_checkpoint


def ship_judge(source: str, out: Path) -> Path:
    judge = load_checkpoint(source, required_parts=["encoder"])
    if judge.config.reads_mesh:
        raise SystemExit(f"{source}: the judge reads pixels; this encoder reads the face mesh")
    return save_checkpoint(out / SHIPPED_JUDGE.name, judge, parts=["encoder"], dtype=torch.float16)


def ship_model(source: str, out: Path) -> Path:
    model = load_checkpoint(source)
    if not (model.config.appearance_suppression and model.config.reads_mesh):
        raise SystemExit(f"{source}: the geometry model reads the face mesh and is driven by z_d")
    return save_checkpoint(out / SHIPPED_MODELS["geometry"].name, model, parts=INFERENCE_PARTS, dtype=torch.float16)


def ship_ablation(source: str, out: Path) -> Path:
    ablation = load_checkpoint(source)
    if ablation.config.appearance_suppression or not ablation.config.reads_mesh:
        raise SystemExit(f"{source}: the geometry ablation is a geometry model trained with --no-suppression")
    return save_checkpoint(out / SHIPPED_ABLATIONS["geometry"].name, ablation, parts=INFERENCE_PARTS, dtype=torch.float16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="the geometry model (train geometry)")
    parser.add_argument("--judge", help="the judge's encoder checkpoint (train encoder)")
    parser.add_argument("--ablation", help="the geometry ablation (train geometry --no-suppression)")
    parser.add_argument("--out", default="rt_dtgan/assets", help="the package's assets folder")
    args = parser.parse_args()
    out = Path(args.out)
    asked = ((ship_model, args.model), (ship_judge, args.judge), (ship_ablation, args.ablation))
    shipping = [(ship, source) for ship, source in asked if source]
    if not shipping:
        raise SystemExit("name at least one of --model, --judge, --ablation")
    for ship, source in shipping:
        path = ship(source, out)
        print(f"{path}: {path.stat().st_size / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
