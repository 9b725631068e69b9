"""A picture of the head following: for each pair, whole frames of the driver (top) and of the
model's output (below) where the driver's head turns, nods and tilts the most (yaw, pitch,
roll against its first frame) and where its mouth opens widest.

    python tools/real_pairs.py --methods model --keep DIR ...
    python tools/head_strip.py --videos DIR --pairs lp_d3>av_obama,lp_d11>av_einstein --out docs/images/head.png

Reads DIR/<pair>-model.mp4 (as real_pairs.py --keep writes it) and the pair's driver clip
under --data (pairs that start mid-clip, CLIP@SECONDS, are not taken).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from rt_dtgan.face.landmarks import FaceMeshDetector
from rt_dtgan.face.pose import head_pose, rotation_angles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contact_sheet import write_png  # noqa: E402
from pair_strip import DATA, driver_clip, frames_of  # noqa: E402

HEIGHT = 180


def telling_frames(frames: list[np.ndarray]) -> list[int]:
    """Indices of the frames of largest |yaw|, |pitch|, |roll| (against the first) and mouth opening."""
    turns, mouths = [], []
    with FaceMeshDetector(video_mode=True) as detector:
        for image in frames:
            found = detector.detect(image)
            turns.append(head_pose(found.points).rotation if found is not None else None)
            mouths.append(found.mouth_opening if found is not None else 0.0)
    first = next(turn for turn in turns if turn is not None)
    angles = np.array([np.abs(rotation_angles(turn @ first.T)) if turn is not None else np.zeros(3) for turn in turns])
    chosen = [int(np.argmax(angles[:, axis])) for axis in range(3)] + [int(np.argmax(mouths))]
    return sorted(set(chosen))


def fit(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (round(width * HEIGHT / height), HEIGHT), interpolation=cv2.INTER_AREA)


def pair_rows(videos: Path, data: Path, pair: str) -> np.ndarray:
    """(driver row over output row) for one pair, at its telling frames."""
    driver = frames_of(driver_clip(data, pair.split(">")[0]))
    output = frames_of(videos / f"{pair}-model.mp4")
    indices = telling_frames(driver)
    rows = [np.concatenate([fit(frames[index]) for index in indices], axis=1) for frames in (driver, output)]
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, required=True, help="folder of real_pairs.py --keep videos")
    parser.add_argument("--pairs", required=True, help="comma-separated pair names, e.g. lp_d3>av_obama")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the real data (driving/, grid/)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    blocks = [pair_rows(args.videos, args.data, pair) for pair in args.pairs.split(",")]
    width = max(block.shape[1] for block in blocks)
    write_png(args.out, np.concatenate([np.pad(block, ((0, 0), (0, width - block.shape[1]), (0, 0))) for block in blocks]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
