"""Per-pair quality figures on real faces: a driver clip drives a portrait of another person,
through any method that turns (clip, portrait) into an output video.

    python tools/real_pairs.py [--methods warp,model] [--checkpoint CKPT] [--pairs CLIP:PORTRAIT,...] \
        [--data DIR] [--json bench/results/real-pairs.json] [--keep DIR]

Methods: ``warp`` is tools/landmark_warp.py (training-free landmark + thin-plate-spline warp);
``model`` runs `rt-dtgan transfer --source CLIP --target PORTRAIT --out OUT.mp4 [--checkpoint
CKPT]` in a subprocess, so any model kind that command runs is measured unchanged. Pairs
name files under --data (default ../shared/data/real), e.g. grid/bbaf2n.mpg:targets/lp_s1.jpg.

Figures, measured with MediaPipe FaceMesh (video mode; one tracker on the driver, one on the
output), over the frames where both have a face:
- mouth r: Pearson r of the mouth opening (inner-lip gap / eye distance), driver vs output;
  range ratio: the output's p95 - p5 of it over the driver's;
- eye r: Pearson r of the eye opening (eyelid gap / eye width, both eyes);
- found %: output frames with a face;
- sharpness: variance of the Laplacian (grayscale) inside the portrait's landmark box, mean
  over output frames, over the same for the portrait after the same codec trip (the portrait
  written as a 10-frame .mp4 through open_sink and decoded); 1 = as sharp as the portrait;
- still: the driver's first frame repeated 60 times (a PNG folder) through the method; PSNR of
  each output frame against the codec-tripped portrait, whole frame: min, mean and last frame
  (drift), and the min inside the face box; identical images count as 100 dB.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rt_dtgan.face.images import load_image
from rt_dtgan.face.landmarks import FaceLandmarks, FaceMeshDetector
from rt_dtgan.media import Frame, open_sink, open_source

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
# Different people in every pair; every driving clip, three GRID speakers, every portrait.
DEFAULT_PAIRS = (
    "driving/lp_d3.mp4:targets/av_obama.jpg",
    "driving/lp_d11.mp4:targets/av_einstein.jpg",
    "driving/lp_d18.mp4:targets/st_people_0.png",
    "driving/lp_d19.mp4:targets/tpsmm_source.png",
    "driving/tpsmm_driving.mp4:targets/lp_s1.jpg",
    "grid/bbaf2n.mpg:targets/st_happy1.png",
    "grid/lbax4n.mpg:targets/lp_s1.jpg",
    "grid/swiz3n.mpg:targets/av_obama.jpg",
)
METHODS = ("warp", "model")
STILL_FRAMES = 60
TRIP_FRAMES = 10
MODEL_TIMEOUT_S = 1800
MAX_PSNR_DB = 100.0  # reported for identical images
COLUMNS = (  # (JSON key, table heading, format)
    ("mouth_r", "mouth r", "{:+.2f}"),
    ("mouth_range_ratio", "range", "{:.2f}"),
    ("eye_r", "eye r", "{:+.2f}"),
    ("sharpness_ratio", "sharp", "{:.2f}"),
    ("found_percent", "found%", "{:.0f}"),
    ("still_min_psnr_db", "still min dB", "{:.1f}"),
)


class MethodFailed(Exception):
    """A method could not make its output video; the message is one line."""


@dataclass(frozen=True)
class Pair:
    clip: Path
    portrait: Path

    @property
    def name(self) -> str:
        return f"{self.clip.stem}>{self.portrait.stem}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="warp,model", help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--checkpoint", help="model checkpoint for the model method (default: the shipped model)")
    parser.add_argument("--pairs", default=",".join(DEFAULT_PAIRS), help="comma-separated CLIP:PORTRAIT, relative to --data")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the real data (driving/, grid/, targets/)")
    parser.add_argument("--json", default="bench/results/real-pairs.json", help="write the figures here")
    parser.add_argument("--keep", type=Path, help="keep the output videos in this folder")
    return parser.parse_args()


def parse_pairs(text: str, data: Path) -> list[Pair]:
    """'CLIP:PORTRAIT,...' (paths relative to ``data``, or absolute) -> pairs; exits on a missing file."""
    if not (data / "targets").is_dir():
        sys.exit(f"no real data at {data} (expected driving/, grid/ and targets/ there); pass --data DIR.")
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        clip, _, portrait = item.partition(":")
        if not clip or not portrait:
            sys.exit(f"pair {item!r} is not CLIP:PORTRAIT (files relative to {data}).")
        pair = Pair(data / clip, data / portrait)
        for path in (pair.clip, pair.portrait):
            if not path.is_file():
                sys.exit(f"pair {item!r}: there is no file {path}.")
        pairs.append(pair)
    return pairs


def run_warp(clip: Path, portrait: Path, out: Path, checkpoint: str | None) -> None:
    """The training-free baseline (tools/landmark_warp.py); ``checkpoint`` is unused."""
    from landmark_warp import warp_video

    try:
        warp_video(clip, portrait, out)
    except Exception as error:  # reported for this pair, the run goes on
        raise MethodFailed(f"{type(error).__name__}: {error}") from error


def run_model(clip: Path, portrait: Path, out: Path, checkpoint: str | None) -> None:
    """`rt-dtgan transfer` in a subprocess; MethodFailed with its last error line."""
    command = [sys.executable, "-m", "rt_dtgan", "transfer", "--source", str(clip), "--target", str(portrait), "--out", str(out)]
    if checkpoint:
        command += ["--checkpoint", checkpoint]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=MODEL_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise MethodFailed(f"rt-dtgan transfer ran over {MODEL_TIMEOUT_S} s") from error
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise MethodFailed(f"rt-dtgan transfer exited {result.returncode}: {lines[-1] if lines else 'no message'}")


RUNNERS = {"warp": run_warp, "model": run_model}


def read_images(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    """Every frame of the video at ``path`` as (H, W, 3) uint8 RGB, cropped to ``size`` (width,
    height): encoded outputs of odd sizes carry one padded row or column."""
    width, height = size
    with open_source(str(path), pace=False) as source:
        return [np.ascontiguousarray(frame.image[:height, :width]) for frame in source]


def codec_trip(image: np.ndarray, fps: float, folder: Path) -> np.ndarray:
    """(H, W, 3) uint8 -> the same after writing TRIP_FRAMES copies through open_sink (.mp4) and
    decoding; the last frame (the outputs too are mostly predicted frames)."""
    path = folder / "portrait-trip.mp4"
    height, width = image.shape[:2]
    with open_sink(str(path), width, height, fps) as sink:
        for index in range(TRIP_FRAMES):
            sink.write(Frame(image=image, index=index, capture_ns=0, pts_s=index / fps))
    return read_images(path, (width, height))[-1]


def still_driver(clip: Path, folder: Path) -> Path:
    """A folder of STILL_FRAMES PNG copies of the clip's first frame -> its path."""
    with open_source(str(clip), pace=False) as source:
        first = next(iter(source)).image
    folder.mkdir(parents=True, exist_ok=True)
    encoded = cv2.imencode(".png", first[..., ::-1])[1].tobytes()
    for index in range(STILL_FRAMES):
        (folder / f"{index:04d}.png").write_bytes(encoded)
    return folder


def landmark_box(landmarks: FaceLandmarks, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) integer pixels of the landmarks' bounding box, inside the image."""
    left, top, right, bottom = landmarks.bounding_box
    return max(0, int(left)), max(0, int(top)), min(width, int(np.ceil(right))), min(height, int(np.ceil(bottom)))


def laplacian_variance(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Variance of the grayscale Laplacian of (H, W, 3) uint8 RGB ``image`` inside ``box``."""
    left, top, right, bottom = box
    gray = cv2.cvtColor(np.ascontiguousarray(image[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of one shape, at most MAX_PSNR_DB (identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(min(MAX_PSNR_DB, 10 * np.log10(255.0**2 / max(mse, 1e-12))))


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r of two 1-D series, None when too short or constant."""
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def spread(values: np.ndarray) -> float:
    """p95 - p5."""
    return float(np.percentile(values, 95) - np.percentile(values, 5))


def motion_figures(clip: Path, outputs: list[np.ndarray]) -> dict:
    """Mouth and eye openings of driver and output frames, paired in order -> r, ranges, found %."""
    driver, output, found = [], [], 0
    with FaceMeshDetector(video_mode=True) as on_driver, FaceMeshDetector(video_mode=True) as on_output:
        with open_source(str(clip), pace=False) as source:
            for frame, image in zip(source, outputs):
                seen_driver, seen_output = on_driver.detect(frame.image), on_output.detect(image)
                found += seen_output is not None
                if seen_driver is not None and seen_output is not None:
                    driver.append((seen_driver.mouth_opening, seen_driver.eye_opening))
                    output.append((seen_output.mouth_opening, seen_output.eye_opening))
    figures = {"frames": len(outputs), "frames_measured": len(driver), "found_percent": 100 * found / max(len(outputs), 1)}
    if len(driver) < 3:
        return figures
    driver, output = np.asarray(driver), np.asarray(output)
    driver_range = spread(driver[:, 0])
    figures.update(
        mouth_r=pearson(driver[:, 0], output[:, 0]),
        mouth_range_ratio=spread(output[:, 0]) / driver_range if driver_range > 0 else None,
        eye_r=pearson(driver[:, 1], output[:, 1]),
        mouth_range_driver=[float(np.percentile(driver[:, 0], p)) for p in (5, 95)],
        mouth_range_output=[float(np.percentile(output[:, 0], p)) for p in (5, 95)],
    )
    return figures


def still_figures(outputs: list[np.ndarray], reference: np.ndarray, box: tuple[int, int, int, int]) -> dict:
    """PSNR (dB) of still-driver outputs against the codec-tripped portrait."""
    left, top, right, bottom = box
    whole = [psnr(image, reference) for image in outputs]
    face = [psnr(image[top:bottom, left:right], reference[top:bottom, left:right]) for image in outputs]
    return {
        "still_min_psnr_db": min(whole),
        "still_mean_psnr_db": float(np.mean(whole)),
        "still_last_psnr_db": whole[-1],
        "still_face_min_psnr_db": min(face),
    }


@dataclass
class PortraitReference:
    """The portrait after the codec trip, its landmark box and that box's Laplacian variance."""

    image: np.ndarray
    box: tuple[int, int, int, int]
    sharpness: float


def portrait_reference(portrait: Path, fps: float, folder: Path) -> PortraitReference:
    image = load_image(portrait)
    with FaceMeshDetector(video_mode=False, max_faces=4) as detector:
        landmarks = detector.detect(image)
    if landmarks is None:
        raise MethodFailed(f"no face found in {portrait.name}")
    tripped = codec_trip(image, fps, folder)
    box = landmark_box(landmarks, image.shape[1], image.shape[0])
    return PortraitReference(tripped, box, laplacian_variance(tripped, box))


def clip_fps(clip: Path) -> float:
    with open_source(str(clip), pace=False) as source:
        return float(source.fps)


def evaluate(pair: Pair, method: str, checkpoint: str | None, work: Path) -> dict:
    """All figures of one pair and method; raises MethodFailed."""
    reference = portrait_reference(pair.portrait, clip_fps(pair.clip), work)
    size = (reference.image.shape[1], reference.image.shape[0])
    started = time.perf_counter()
    RUNNERS[method](pair.clip, pair.portrait, work / "out.mp4", checkpoint)
    seconds = time.perf_counter() - started
    outputs = read_images(work / "out.mp4", size)
    figures = {"method_seconds": seconds, "ms_per_frame": 1000 * seconds / max(len(outputs), 1)}
    figures.update(motion_figures(pair.clip, outputs))
    output_sharpness = float(np.mean([laplacian_variance(image, reference.box) for image in outputs]))
    figures["sharpness_ratio"] = output_sharpness / reference.sharpness
    RUNNERS[method](still_driver(pair.clip, work / "still"), pair.portrait, work / "still.mp4", checkpoint)
    figures.update(still_figures(read_images(work / "still.mp4", size), reference.image, reference.box))
    return figures


def run_one(pair: Pair, method: str, checkpoint: str | None, keep: Path | None) -> dict:
    """evaluate() in a scratch folder -> its figures, or {"error": one line} when anything fails."""
    with tempfile.TemporaryDirectory(prefix="real-pairs-") as scratch:
        try:
            figures = evaluate(pair, method, checkpoint, Path(scratch))
        except MethodFailed as error:
            return {"error": str(error)}
        except Exception as error:  # a broken output or a measuring failure: this pair only
            return {"error": f"{type(error).__name__}: {error}".splitlines()[0]}
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / "out.mp4").replace(keep / f"{pair.name}-{method}.mp4")
    return figures


def cell(value, form: str) -> str:
    return "-" if value is None else form.format(value)


def table_cells(label: str, method: str, figures: dict) -> list[str]:
    return [label, method] + [cell(figures.get(key), form) for key, _, form in COLUMNS]


def print_table(rows: list[dict], summary: dict) -> None:
    """One line per pair and method (the COLUMNS figures, or the error), then the medians."""
    lines = [["pair", "method"] + [heading for _, heading, _ in COLUMNS]]
    lines += [table_cells(row["pair"], row["method"], row) for row in rows if "error" not in row]
    lines += [table_cells("median", method, figures) for method, figures in summary.items()]
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]

    def show(line: list[str]) -> None:
        print("  ".join(text.ljust(width) if column < 2 else text.rjust(width) for column, (text, width) in enumerate(zip(line, widths))))

    show(lines[0])
    for row in rows:
        if "error" in row:
            print(f"{row['pair'].ljust(widths[0])}  {row['method'].ljust(widths[1])}  failed: {row['error']}")
        else:
            show(table_cells(row["pair"], row["method"], row))
    for method, figures in summary.items():
        show(table_cells("median", method, figures))


def medians(rows: list[dict], methods: list[str]) -> dict:
    """{method: {figure: median over the pairs that have it, "pairs": how many succeeded}}."""
    keys = [key for key, _, _ in COLUMNS] + ["still_mean_psnr_db", "still_last_psnr_db", "still_face_min_psnr_db", "ms_per_frame"]
    result = {}
    for method in methods:
        ours = [row for row in rows if row["method"] == method and "error" not in row]
        result[method] = {"pairs": len(ours)}
        for key in keys:
            values = [row[key] for row in ours if row.get(key) is not None]
            result[method][key] = float(np.median(values)) if values else None
    return result


def progress_line(index: int, total: int, row: dict, seconds: float) -> str:
    figures = row.get("error") or "  ".join(f"{heading} {cell(row.get(key), form)}" for key, heading, form in COLUMNS)
    return f"[{index}/{total}] {row['pair']} {row['method']}: {figures} ({seconds:.0f} s)"


def versions() -> dict:
    """Versions of what the figures depend on, and the project's commit."""
    import av
    import mediapipe
    import torch

    import rt_dtgan

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    commit, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain")
    return {
        "rt_dtgan": rt_dtgan.__version__,
        "commit": commit + (" (uncommitted changes)" if dirty else ""),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "mediapipe": mediapipe.__version__,
        "av": av.__version__,
        "torch": torch.__version__,
    }


def main() -> None:
    args = parse_args()
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        sys.exit(f"unknown methods {unknown}; choose from {', '.join(METHODS)}.")
    pairs = parse_pairs(args.pairs, args.data)
    rows, started = [], time.perf_counter()
    runs = [(pair, method) for pair in pairs for method in methods]
    for index, (pair, method) in enumerate(runs, 1):
        begun = time.perf_counter()
        row = {"pair": pair.name, "method": method, "clip": pair.clip.name, "portrait": pair.portrait.name}
        row.update(run_one(pair, method, args.checkpoint, args.keep))
        rows.append(row)
        print(progress_line(index, len(runs), row, time.perf_counter() - begun), flush=True)
    summary = medians(rows, methods)
    print()
    print_table(rows, summary)
    payload = {
        "command": " ".join(shlex.quote(part) for part in [Path(sys.executable).name, *sys.argv]),
        "versions": versions(),
        "checkpoint": args.checkpoint or "shipped default",
        "seconds": time.perf_counter() - started,
        "medians": summary,
        "pairs": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json} ({payload['seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
