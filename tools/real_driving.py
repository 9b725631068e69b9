"""Does a real face drive a synthetic avatar? Mouth opening and eye closing, measured by
MediaPipe on the source clip and on the output, correlated per clip (Pearson r).

    python tools/real_driving.py [--checkpoint CKPT] [--target synthetic:2] [--clips DIR] \
        --json bench/results/real-driving.json [--strip docs/images/real_driving.png]

Each clip of DIR (default ../shared/data/real/driving) runs through the same FaceTransfer as
`rt-dtgan transfer`; each source frame and its output are measured by MediaPipe FaceMesh
(video mode, one tracker each). Mouth opening: inner-lip gap over the eye-corner distance;
eye opening: eyelid gap over eye width, both eyes averaged (its r is also eye closing's).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from rt_dtgan.config import PORTRAIT_SIZE
from rt_dtgan.face import FaceTracker
from rt_dtgan.face.landmarks import FaceMeshDetector
from rt_dtgan.media import open_source
from rt_dtgan.models.checkpoint import resolve_checkpoint
from rt_dtgan.pipeline import FaceTransfer, LocalDriver, load_target_spec
from rt_dtgan.runtime.backends import open_backend
from rt_dtgan.runtime.engine import StreamEngine

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "driving"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="model (default: the shipped model)")
    parser.add_argument("--target", default="synthetic:2", help="portrait or synthetic:SEED")
    parser.add_argument("--clips", type=Path, default=REAL, help="folder of driving clips (.mp4)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--strip", help="write a PNG of source and output frames of the first clip here")
    return parser.parse_args()


def real_clips(folder: Path) -> list[Path]:
    """The .mp4 clips of ``folder``, sorted; exits with one sentence when there are none."""
    clips = sorted(folder.glob("*.mp4")) if folder.is_dir() else []
    if not clips:
        sys.exit(f"no clips in {folder}")
    return clips


def pearson(a: list[float], b: list[float]) -> float | None:
    a, b = np.asarray(a), np.asarray(b)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def drive_clip(engine: StreamEngine, target, clip: Path) -> tuple[dict, list[tuple[np.ndarray, np.ndarray]]]:
    """-> (figures of one clip, a few (source, output) frame pairs)."""
    config = engine.backend.config.preprocess
    transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(config))
    measured = {"source": [], "output": []}
    pairs = []
    with FaceMeshDetector(video_mode=True) as on_source, FaceMeshDetector(video_mode=True) as on_output:
        with open_source(str(clip), pace=False) as source:
            for frame in source:
                output, report = transfer.process(frame)
                found_source, found_output = on_source.detect(frame.image), on_output.detect(output)
                if report.found and found_source is not None and found_output is not None:
                    measured["source"].append((found_source.mouth_opening, found_source.eye_opening))
                    measured["output"].append((found_output.mouth_opening, found_output.eye_opening))
                if frame.index % 40 == 20:
                    pairs.append((frame.image, output))
    transfer.close()
    source_values, output_values = np.asarray(measured["source"]), np.asarray(measured["output"])
    figures = {"frames_measured": len(source_values)}
    for column, name in enumerate(("mouth_opening", "eye_opening")):
        figures[f"{name}_r"] = pearson(source_values[:, column], output_values[:, column]) if len(source_values) else None
        if len(source_values):
            figures[f"{name}_source_range"] = [float(np.percentile(source_values[:, column], p)) for p in (5, 95)]
            figures[f"{name}_output_range"] = [float(np.percentile(output_values[:, column], p)) for p in (5, 95)]
    return figures, pairs


def write_strip(path: str, pairs: list[tuple[np.ndarray, np.ndarray]], side: int = 160) -> None:
    """Source frames over output frames, ``side`` px each."""
    from contact_sheet import write_png

    from rt_dtgan.face.images import resize_area

    rows = [np.concatenate([resize_area(pair[index], side, side) for pair in pairs[:6]], axis=1) for index in (0, 1)]
    write_png(Path(path), np.concatenate(rows, axis=0))
    print(f"wrote {path}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    clips = real_clips(args.clips)
    checkpoint = resolve_checkpoint(args.checkpoint)
    backend, _ = open_backend("auto", checkpoint, None, 1)
    engine = StreamEngine(backend)
    target = load_target_spec(args.target, backend.config.preprocess, max_side=PORTRAIT_SIZE)
    results, first_pairs = {}, None
    for clip in clips:
        results[clip.name], pairs = drive_clip(engine, target, clip)
        first_pairs = first_pairs or pairs
        print(clip.name, json.dumps(results[clip.name]))
    payload = {"checkpoint": str(Path(checkpoint).name), "target": args.target, "clips": results}
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    if args.strip and first_pairs:
        write_strip(args.strip, first_pairs)


if __name__ == "__main__":
    main()
