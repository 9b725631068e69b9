"""Per-pair quality figures on real faces: a driver clip drives a portrait of another person,
through any method that turns (clip, portrait) into an output video.

    python tools/real_pairs.py [--methods warp,model] [--checkpoint CKPT] [--pairs CLIP:PORTRAIT,...] \
        [--data DIR] [--json bench/results/real-pairs.json] [--keep DIR]

Methods: ``warp`` is tools/landmark_warp.py (training-free landmark + thin-plate-spline warp);
``model`` runs `rt-dtgan transfer --source CLIP --target PORTRAIT --out OUT.mp4 [--checkpoint
CKPT]` in a subprocess, so any model kind that command runs is measured unchanged. Pairs
name files under --data (default ../shared/data/real), e.g. grid/bbaf2n.mpg:targets/lp_s1.jpg;
CLIP@SECONDS starts the clip there (cut once, re-encoded), as a driver who starts mid-sentence.

Figures, measured with MediaPipe FaceMesh (video mode; one tracker on the driver, one on the
output), over the frames where both have a face:
- mouth r: Pearson r of the mouth opening (inner-lip gap / eye distance), driver vs output;
  range ratio: the output's p95 - p5 of it over the driver's;
- eye r: Pearson r of the eye opening (eyelid gap / eye width, both eyes);
- the head: its rotation fitted to the 3D mesh (rt_dtgan.face.pose) relative to the video's
  first measured frame, as yaw, pitch and roll: r with the driver and the output's range
  over the driver's; head position r (x and y of the eye midpoint in the image);
- brow r: the brows' height above the eyes in the frontal mesh (pose taken out); gaze r:
  the irises' place between the eye corners, from the image-left one (both eyes' mean);
- found %: output frames with a face;
- sharpness: variance of the Laplacian (grayscale) inside the portrait's landmark box, mean
  over output frames, over the same for the portrait after the same codec trip (the portrait
  written as a 10-frame .mp4 through open_sink and decoded); 1 = as sharp as the portrait;
- still: the driver's first frame repeated 60 times (a PNG folder) through the method; PSNR of
  each output frame against the codec-tripped portrait, whole frame: min, mean and last frame
  (drift), and the min inside the face box; identical images count as 100 dB. A driver whose
  first frame shows an open mouth opens the portrait's (the model closes the anchor's mouth,
  rt_dtgan.models.neutral), so against the portrait such a pair scores what that opening
  changes; ``steady`` is what tracker noise and drift change: the lowest PSNR of any later
  output frame against the second (the first the engine moves).
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
from rt_dtgan.face.pose import head_pose, rotation_angles
from rt_dtgan.media import Frame, open_sink, open_source

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
# Different people in every pair; every driving clip, three GRID speakers, every portrait;
# drivers who turn, nod and tilt (lp_d3, lp_d11) and who start mid-sentence (lp_d11 at 6.6 s,
# bbaf2n at 1.44 s, and lbax4n and swiz3n, whose first frames already show the mouth open).
DEFAULT_PAIRS = (
    "driving/lp_d3.mp4:targets/av_obama.jpg",
    "driving/lp_d11.mp4:targets/av_einstein.jpg",
    "driving/lp_d11.mp4@6.6:targets/st_people_0.png",
    "driving/lp_d18.mp4:targets/st_people_0.png",
    "driving/lp_d19.mp4:targets/tpsmm_source.png",
    "driving/tpsmm_driving.mp4:targets/lp_s1.jpg",
    "grid/bbaf2n.mpg@1.44:targets/st_happy1.png",
    "grid/lbax4n.mpg:targets/lp_s1.jpg",
    "grid/swiz3n.mpg:targets/av_obama.jpg",
)
METHODS = ("warp", "model")
# FaceMesh's brows (both) and the eye points under them; the irises' centres with each eye's
# corners, image-left first (both eyes the same way: a look to one side moves both places alike).
BROW_POINTS = (70, 63, 105, 66, 107, 300, 293, 334, 296, 336)
EYES_BELOW_BROWS = (33, 133, 362, 263, 159, 386)
IRISES = ((468, (33, 133)), (473, (362, 263)))
STILL_FRAMES = 60
TRIP_FRAMES = 10
MODEL_TIMEOUT_S = 1800
MAX_PSNR_DB = 100.0  # reported for identical images
COLUMNS = (  # (JSON key, table heading, format)
    ("mouth_r", "mouth r", "{:+.2f}"),
    ("mouth_range_ratio", "range", "{:.2f}"),
    ("eye_r", "eye r", "{:+.2f}"),
    ("brow_r", "brow r", "{:+.2f}"),
    ("gaze_r", "gaze r", "{:+.2f}"),
    ("yaw_r", "yaw r", "{:+.2f}"),
    ("yaw_range_ratio", "yaw rng", "{:.2f}"),
    ("pitch_r", "pitch r", "{:+.2f}"),
    ("pitch_range_ratio", "pitch rng", "{:.2f}"),
    ("roll_r", "roll r", "{:+.2f}"),
    ("roll_range_ratio", "roll rng", "{:.2f}"),
    ("x_r", "x r", "{:+.2f}"),
    ("y_r", "y r", "{:+.2f}"),
    ("sharpness_ratio", "sharp", "{:.2f}"),
    ("found_percent", "found%", "{:.0f}"),
    ("still_min_psnr_db", "still min dB", "{:.1f}"),
    ("still_steady_min_psnr_db", "steady dB", "{:.1f}"),
)


class MethodFailed(Exception):
    """A method could not make its output video; the message is one line."""


@dataclass(frozen=True)
class Pair:
    clip: Path
    portrait: Path
    start_s: float = 0.0

    @property
    def name(self) -> str:
        start = f"@{self.start_s:g}" if self.start_s else ""
        return f"{self.clip.stem}{start}>{self.portrait.stem}"


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
        clip, _, start = clip.partition("@")
        if not clip or not portrait:
            sys.exit(f"pair {item!r} is not CLIP[@SECONDS]:PORTRAIT (files relative to {data}).")
        try:
            pair = Pair(data / clip, data / portrait, float(start or 0.0))
        except ValueError:
            sys.exit(f"pair {item!r}: {start!r} is not a start in seconds.")
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


def face_measures(landmarks: FaceLandmarks) -> tuple[np.ndarray, list[float]]:
    """One face -> (its head rotation (3, 3), [mouth, eye, brow, gaze, x, y]): the mouth and eye
    openings, the brows' height over the eyes in the frontal mesh, the irises' place between
    the eye corners (0 at the image-left corner, 1 at the image-right one; both eyes' mean), the eye midpoint."""
    pose = head_pose(landmarks.points)
    frontal = pose.frontal(landmarks.points[:, :3])
    brow = float(frontal[list(EYES_BELOW_BROWS), 1].mean() - frontal[list(BROW_POINTS), 1].mean())
    xy = landmarks.points[:, :2]
    gaze = float(np.mean([place_between(xy[iris], xy[outer], xy[inner]) for iris, (outer, inner) in IRISES])) if len(xy) > 468 else 0.0
    return pose.rotation, [landmarks.mouth_opening, landmarks.eye_opening, brow, gaze, *pose.offset[:2]]


def place_between(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    """Where ``point`` projects on the segment start -> end (0 at start, 1 at end)."""
    along = end - start
    return float((point - start) @ along / (along @ along))


def motion_figures(clip: Path, outputs: list[np.ndarray]) -> dict:
    """Face and head measures of driver and output frames, paired in order -> r, ranges, found %."""
    driver, output, found = [], [], 0
    with FaceMeshDetector(video_mode=True) as on_driver, FaceMeshDetector(video_mode=True) as on_output:
        with open_source(str(clip), pace=False) as source:
            for frame, image in zip(source, outputs):
                seen_driver, seen_output = on_driver.detect(frame.image), on_output.detect(image)
                found += seen_output is not None
                if seen_driver is not None and seen_output is not None:
                    driver.append(face_measures(seen_driver))
                    output.append(face_measures(seen_output))
    figures = {"frames": len(outputs), "frames_measured": len(driver), "found_percent": 100 * found / max(len(outputs), 1)}
    if len(driver) < 3:
        return figures
    (driver_turns, driver), (output_turns, output) = (series(measured) for measured in (driver, output))
    figures.update(
        mouth_r=pearson(driver[:, 0], output[:, 0]),
        mouth_range_ratio=range_ratio(driver[:, 0], output[:, 0]),
        eye_r=pearson(driver[:, 1], output[:, 1]),
        brow_r=pearson(driver[:, 2], output[:, 2]),
        gaze_r=pearson(driver[:, 3], output[:, 3]),
        x_r=pearson(driver[:, 4], output[:, 4]),
        y_r=pearson(driver[:, 5], output[:, 5]),
        mouth_range_driver=[float(np.percentile(driver[:, 0], p)) for p in (5, 95)],
        mouth_range_output=[float(np.percentile(output[:, 0], p)) for p in (5, 95)],
    )
    for axis, name in enumerate(("yaw", "pitch", "roll")):
        figures[f"{name}_r"] = pearson(driver_turns[:, axis], output_turns[:, axis])
        figures[f"{name}_range_ratio"] = range_ratio(driver_turns[:, axis], output_turns[:, axis])
        figures[f"{name}_range_driver_degrees"] = spread(driver_turns[:, axis])
    return figures


def series(measured: list[tuple[np.ndarray, list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame face_measures -> ((T, 3) yaw, pitch, roll in degrees relative to the first frame, (T, 6) the rest)."""
    rotations = np.stack([rotation for rotation, _ in measured])
    turns = np.degrees(rotation_angles(rotations @ rotations[0].T))
    return turns, np.asarray([values for _, values in measured])


def range_ratio(driver: np.ndarray, output: np.ndarray) -> float | None:
    """The output's spread over the driver's, None when the driver's is 0."""
    driver_range = spread(driver)
    return spread(output) / driver_range if driver_range > 0 else None


def still_figures(outputs: list[np.ndarray], reference: np.ndarray, box: tuple[int, int, int, int]) -> dict:
    """PSNR (dB) of still-driver outputs against the codec-tripped portrait."""
    left, top, right, bottom = box
    whole = [psnr(image, reference) for image in outputs]
    face = [psnr(image[top:bottom, left:right], reference[top:bottom, left:right]) for image in outputs]
    return {
        "still_steady_min_psnr_db": min(psnr(image, outputs[1]) for image in outputs[1:]),
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


def cut_clip(clip: Path, start_s: float, folder: Path) -> Path:
    """The clip from ``start_s`` seconds on, written once to ``folder`` -> its path (the clip itself when 0)."""
    if not start_s:
        return clip
    path = folder / f"{clip.stem}-from-{start_s:g}s.mp4"
    with open_source(str(clip), pace=False) as source:
        frames = [frame.image for frame in source if frame.pts_s >= start_s - 1e-6]
        fps = float(source.fps)
    if len(frames) < 3:
        raise MethodFailed(f"{clip.name} has fewer than 3 frames after {start_s:g} s")
    height, width = frames[0].shape[:2]
    with open_sink(str(path), width, height, fps) as sink:
        for index, image in enumerate(frames):
            sink.write(Frame(image=image, index=index, capture_ns=0, pts_s=index / fps))
    return path


def evaluate(pair: Pair, method: str, checkpoint: str | None, work: Path) -> dict:
    """All figures of one pair and method; raises MethodFailed."""
    pair = Pair(cut_clip(pair.clip, pair.start_s, work), pair.portrait)
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


def print_table(rows: list[dict], summary: dict, worst_pairs: dict) -> None:
    """One line per pair and method (the COLUMNS figures, or the error), then the medians and the worst pairs."""
    lines = [["pair", "method"] + [heading for _, heading, _ in COLUMNS]]
    lines += [table_cells(row["pair"], row["method"], row) for row in rows if "error" not in row]
    lines += [table_cells("median", method, figures) for method, figures in summary.items()]
    lines += [table_cells("worst", method, figures) for method, figures in worst_pairs.items()]
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
    for method, figures in worst_pairs.items():
        show(table_cells("worst", method, figures))


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


def worst(rows: list[dict], methods: list[str]) -> dict:
    """{method: {figure: the worst pair's value}}: the lowest r, dB or sharpness, the range
    ratio furthest from 1 (by its log), and {figure}_pair naming that pair."""
    result = {}
    for method in methods:
        ours = [row for row in rows if row["method"] == method and "error" not in row]
        result[method] = {}
        for key, _, _ in COLUMNS:
            measured = [row for row in ours if row.get(key) is not None and (not key.endswith("ratio") or row[key] > 0)]
            if not measured:
                continue
            chosen = max(measured, key=lambda row, key=key: badness(key, row[key]))
            result[method][key], result[method][f"{key}_pair"] = chosen[key], chosen["pair"]
    return result


def badness(key: str, value: float) -> float:
    """How bad a figure is: a range ratio by its distance from 1 (log), anything else by its lowness."""
    return abs(float(np.log(value))) if key.endswith("ratio") else -value


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
        row = {"pair": pair.name, "method": method, "clip": pair.clip.name, "start_s": pair.start_s, "portrait": pair.portrait.name}
        row.update(run_one(pair, method, args.checkpoint, args.keep))
        rows.append(row)
        print(progress_line(index, len(runs), row, time.perf_counter() - begun), flush=True)
    summary, worst_pairs = medians(rows, methods), worst(rows, methods)
    print()
    print_table(rows, summary, worst_pairs)
    payload = {
        "command": " ".join(shlex.quote(part) for part in [Path(sys.executable).name, *sys.argv]),
        "versions": versions(),
        "checkpoint": args.checkpoint or "shipped default",
        "seconds": time.perf_counter() - started,
        "medians": summary,
        "worst": worst_pairs,
        "pairs": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json} ({payload['seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
