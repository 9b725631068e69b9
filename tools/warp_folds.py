"""Does the warp ever fold or crush the face? Every frame of every real pair, measured in-process.

    python tools/warp_folds.py [--checkpoint CKPT] [--pairs CLIP[@S]:PORTRAIT,...] [--pose follow|lock] \
        [--json bench/results/warp-folds.json] [--picture docs/images/worst_frames.png]

Each pair runs through the live path's own FaceTransfer (tracker, engine, head, renderer).
Per frame, the Jacobian determinant of where the output samples the portrait, per unit of
the sampling grid's own cell (models.warp.cell_determinant: 1 the area kept, toward 0 a part
stretched, 0 or less folded, the output showing a part twice and mirrored: lips or lids
crossing, a melted face), on the expression's spline grid over the face crop (``face``; an
opening mouth stretches the lips' line across the opening, which the refiner paints) and on
the head's sampling over its box (``head``, every 4th pixel). Reported per pair: the lowest
of each over all frames and the frame it came from, and the frames with a fold anywhere.
The picture shows, for the pair with the lowest figure (face or head), that
worst frame beside the pair's best (the driver above, the output below).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face import FaceTracker
from rt_dtgan.face.head import HeadFollower
from rt_dtgan.media import open_source
from rt_dtgan.models.warp import cell_determinant, grid_centres
from rt_dtgan.pipeline import FaceTransfer, LocalDriver, load_target_spec
from rt_dtgan.runtime.engine import open_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contact_sheet import write_png  # noqa: E402
from real_pairs import DATA, DEFAULT_PAIRS, cut_clip, parse_pairs  # noqa: E402

TILE = 200
HEAD_STRIDE = 4


def lowest_determinant(positions: np.ndarray, origin: tuple[float, float], step: float) -> float:
    """(h, w, 2) sampling positions at the points origin + (column, row) * step -> the lowest
    cell_determinant of the map."""
    height, width = positions.shape[:2]
    rows, columns = np.mgrid[0:height, 0:width]
    identity = np.stack([origin[0] + columns * step, origin[1] + rows * step], axis=-1)
    moved_by = torch.from_numpy(positions.astype(np.float64) - identity).unsqueeze(0)
    return float(cell_determinant(moved_by, (step, step)).min())


def measure_pair(engine, clip: Path, portrait: Path, pose: str) -> dict:
    """Run one pair -> per-frame lowest Jacobians, and the driver and output images of every frame."""
    config: PreprocessConfig = engine.config.preprocess
    target = load_target_spec(str(portrait), config)
    transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(config), head=HeadFollower(pose))
    side = engine.config.generator.flow_grid
    cell = config.size / side
    first = tuple(grid_centres(side, config.size)[0].tolist())
    face, head, drivers, outputs = [], [], [], []
    with open_source(str(clip), pace=False) as source:
        for frame in source:
            stepped = transfer.step(transfer.track(frame))
            output, _ = transfer.draw(stepped)
            motion = stepped.generated
            grid = getattr(motion, "grid", None)
            face.append(lowest_determinant(grid, first, cell) if grid is not None else 1.0)
            sampled = stepped.head
            if sampled is None:
                head.append(1.0)
            else:
                origin = (sampled.columns.start + 0.5, sampled.rows.start + 0.5)
                head.append(lowest_determinant(sampled.positions[::HEAD_STRIDE, ::HEAD_STRIDE], origin, HEAD_STRIDE))
            drivers.append(frame.image)
            outputs.append(output)
    transfer.close()
    return {"face": np.asarray(face), "head": np.asarray(head), "drivers": drivers, "outputs": outputs}


def tile(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = TILE / max(height, width)
    resized = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    return np.pad(resized, ((0, TILE - resized.shape[0]), (0, TILE - resized.shape[1]), (0, 0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    parser.add_argument("--pairs", default=",".join(DEFAULT_PAIRS), help="comma-separated CLIP[@SECONDS]:PORTRAIT, relative to --data")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pose", choices=("follow", "lock"), default="follow")
    parser.add_argument("--json", default="bench/results/warp-folds.json")
    parser.add_argument("--picture", help="write the worst frame beside the best here (PNG)")
    args = parser.parse_args()
    engine, path, _ = open_engine(args.checkpoint, "torch")
    rows, worst = [], None
    with tempfile.TemporaryDirectory(prefix="warp-folds-") as scratch:
        for index, pair in enumerate(parse_pairs(args.pairs, args.data), 1):
            measured = measure_pair(engine, cut_clip(pair.clip, pair.start_s, Path(scratch)), pair.portrait, args.pose)
            face, head = measured["face"], measured["head"]
            row = {
                "pair": pair.name,
                "frames": len(face),
                "face_min": float(face.min()),
                "face_min_frame": int(face.argmin()),
                "face_folded_frames": int((face <= 0).sum()),
                "head_min": float(head.min()),
                "head_min_frame": int(head.argmin()),
                "head_folded_frames": int((head <= 0).sum()),
            }
            rows.append(row)
            print(f"[{index}] {pair.name}: face min {row['face_min']:.3f} (frame {row['face_min_frame']}), "
                  f"folded in {row['face_folded_frames']} of {len(face)} frames; head min {row['head_min']:.3f}, "
                  f"folded in {row['head_folded_frames']}", flush=True)
            lowest = np.minimum(face, head)
            if worst is None or lowest.min() < worst[0]:
                worst = (float(lowest.min()), int(lowest.argmin()), int(lowest.argmax()), row["pair"], measured)
    if args.picture and worst is not None:
        _, worst_frame, best, pair_name, measured = worst
        frames = (best, worst_frame)
        sheet = np.concatenate(
            [np.concatenate([tile(measured[kind][frame]) for frame in frames], axis=1) for kind in ("drivers", "outputs")]
        )
        write_png(Path(args.picture), sheet)
        print(f"wrote {args.picture}: {pair_name}, best frame {best} beside the worst {worst_frame}")
    payload = {"command": " ".join(sys.argv), "checkpoint": str(path), "pose": args.pose, "pairs": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
