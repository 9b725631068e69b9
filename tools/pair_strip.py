"""A picture of real pairs: for each pair, the driver, the model and the training-free warp,
at the frames where the driver's mouth is most open and half as open, faces cropped.

    python tools/real_pairs.py --methods warp,model --keep DIR ...
    python tools/pair_strip.py --videos DIR --pairs lp_d3>av_obama,... --out docs/images/real_pairs.png

Reads DIR/<pair>-model.mp4 and DIR/<pair>-warp.mp4 (as real_pairs.py --keep writes them) and
the pair's driver clip under --data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from rt_dtgan.face.landmarks import FaceMeshDetector
from rt_dtgan.media import open_source

sys.path.insert(0, str(Path(__file__).resolve().parent))
from contact_sheet import write_png  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
TILE = 160


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, required=True, help="folder of real_pairs.py --keep videos")
    parser.add_argument("--pairs", required=True, help="comma-separated pair names, e.g. lp_d3>av_obama")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the real data (driving/, grid/)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    return parser.parse_args()


def frames_of(path: Path) -> list[np.ndarray]:
    with open_source(str(path), pace=False) as source:
        return [frame.image for frame in source]


def driver_clip(data: Path, driver: str) -> Path:
    found = sorted(data.glob(f"*/{driver}.*"))
    if not found:
        sys.exit(f"no driver clip {driver} under {data}")
    return found[0]


def mouth_openings(frames: list[np.ndarray]) -> np.ndarray:
    """FaceMesh mouth opening per frame (video mode); 0 where no face is found."""
    with FaceMeshDetector(video_mode=True) as detector:
        return np.array([(found.mouth_opening if (found := detector.detect(image)) is not None else 0.0) for image in frames])


def face_tile(image: np.ndarray, detector: FaceMeshDetector) -> np.ndarray:
    """The face of ``image``, a square around its landmarks, TILE x TILE."""
    found = detector.detect(image)
    height, width = image.shape[:2]
    if found is None:
        return cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_AREA)
    left, top, right, bottom = found.bounding_box
    side = 1.15 * max(right - left, bottom - top)
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    x0, y0 = int(max(0, centre_x - side / 2)), int(max(0, centre_y - side / 2))
    x1, y1 = int(min(width, centre_x + side / 2)), int(min(height, centre_y + side / 2))
    return cv2.resize(image[y0:y1, x0:x1], (TILE, TILE), interpolation=cv2.INTER_AREA)


def pair_columns(videos: Path, data: Path, pair: str) -> list[np.ndarray]:
    """Two columns (driver, model, warp stacked) for one pair."""
    driver = frames_of(driver_clip(data, pair.split(">")[0]))
    outputs = {method: frames_of(videos / f"{pair}-{method}.mp4") for method in ("model", "warp")}
    openings = mouth_openings(driver)
    widest = int(np.argmax(openings))
    half = int(np.argmin(np.abs(openings - openings[widest] / 2)))
    columns = []
    with FaceMeshDetector(video_mode=False) as detector:
        for index in (half, widest):
            tiles = [face_tile(frames[index], detector) for frames in (driver, outputs["model"], outputs["warp"])]
            columns.append(np.concatenate(tiles, axis=0))
    return columns


def main() -> None:
    args = parse_args()
    columns = [column for pair in args.pairs.split(",") for column in pair_columns(args.videos, args.data, pair)]
    write_png(args.out, np.concatenate(columns, axis=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
