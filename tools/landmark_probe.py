"""How much of a real face's motion does A's z_d carry? A linear probe on prepared real video.

    python tools/landmark_probe.py --encoders A.safetensors,B.safetensors --train DIR \
        --heldout DIR [--windows 40] [--json OUT]

DIR are datasets from `rt-dtgan data prepare`, which store the MediaPipe landmarks
(MOTION_POINTS) of every kept frame. Windows of 16 frames (the live stream's window) are
drawn as the trainer draws them, without colour jitter; each frame's z_d = H - H_static
is paired with the motion of the landmarks from the window's first frame, in inter-ocular
distances. Per encoder, a ridge regression without bias (z_d = 0 reads as no motion) is fitted
on --train and scored on --heldout (clips of other people): R^2 of all the motion, and the
Pearson r of the mouth opening it reads (lower inner lip minus upper, vertically).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from rt_dtgan.models.checkpoint import load_checkpoint
from rt_dtgan.models.dynamics import hidden_and_static
from rt_dtgan.train.prepared import PreparedDataConfig, prepared_batch

WINDOW = 16
RIDGE = 0.1  # times the mean of the Gram matrix's diagonal
UPPER_INNER_LIP, LOWER_INNER_LIP = 0, 1  # positions in MOTION_POINTS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", required=True, help="comma-separated encoder or model checkpoints")
    parser.add_argument("--train", required=True, help="prepared dataset the probe is fitted on")
    parser.add_argument("--heldout", required=True, help="prepared dataset the probe is scored on")
    parser.add_argument("--windows", type=int, default=40, help="batches of 8 windows drawn from each dataset")
    parser.add_argument("--json", help="write the figures here")
    return parser.parse_args()


@torch.no_grad()
def pairs(encoder: torch.nn.Module, root: str, batches: int) -> tuple[np.ndarray, np.ndarray]:
    """(z_d (N, hidden), landmark motion (N, 2K)) over the frames after each window's first."""
    config = PreparedDataConfig(root=root, batch_size=8, min_length=WINDOW, max_length=WINDOW, augment=False)
    features, targets = [], []
    for step in range(batches):
        batch = prepared_batch(config, step)
        hidden, static = hidden_and_static(encoder, batch.video)
        features.append((hidden - static)[:, 1:].flatten(0, 1))
        targets.append(batch.landmark_motion[:, 1:].flatten(0, 1).flatten(1))
    return torch.cat(features).numpy(), torch.cat(targets).numpy()


def fit_ridge(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(hidden, 2K) weights minimising |features W - targets|^2 + lambda |W|^2, lambda = RIDGE
    times the mean squared feature (so encoders of any z_d scale are shrunk alike)."""
    gram = features.T @ features
    penalty = RIDGE * np.trace(gram) / len(gram)
    return np.linalg.solve(gram + penalty * np.eye(len(gram)), features.T @ targets)


def mouth_opening(motion: np.ndarray) -> np.ndarray:
    """(N, 2K) landmark motion -> (N,) change of the inner-lip gap, in eye distances."""
    return motion[:, 2 * LOWER_INNER_LIP + 1] - motion[:, 2 * UPPER_INNER_LIP + 1]


def score(encoder_path: str, train: str, heldout: str, batches: int) -> dict:
    encoder = load_checkpoint(encoder_path, required_parts=["encoder"]).encoder.eval()
    weights = fit_ridge(*pairs(encoder, train, batches))
    features, truth = pairs(encoder, heldout, batches)
    predicted = features @ weights
    r_squared = 1 - ((truth - predicted) ** 2).sum() / ((truth - truth.mean(0)) ** 2).sum()
    mouth_r = float(np.corrcoef(mouth_opening(predicted), mouth_opening(truth))[0, 1])
    return {"encoder": encoder_path, "heldout_r2": float(r_squared), "heldout_mouth_r": mouth_r, "frames": len(truth)}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    results = [score(path, args.train, args.heldout, args.windows) for path in args.encoders.split(",")]
    for row in results:
        print(f"{row['encoder']}: held-out R^2 {row['heldout_r2']:.3f}, mouth r {row['heldout_mouth_r']:.3f} ({row['frames']} frames)")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"probe": "landmark motion from z_d", "window": WINDOW, "ridge": RIDGE, "results": results}, file, indent=1)


if __name__ == "__main__":
    main()
