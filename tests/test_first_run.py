"""A newcomer's first run: the README's first code block runs as written (its run line, not
the install), makes a video and says where, and the terminal shows our lines only."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"
DEMO_CLIP_FRAMES = 75  # rt_dtgan/assets/grid/swiz3n.mp4: 3 s at 25 fps
NATIVE_LOG = re.compile(r"^(W0000|I0000|INFO: Created TensorFlow Lite|WARNING: All log messages before absl)", re.MULTILINE)


def first_block_lines() -> list[str]:
    """The commands of the README's first ```bash block, comments stripped."""
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def run_as_written(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """``command`` with `.venv/bin/` meaning this test's own environment, run in ``cwd``."""
    words = shlex.split(command)
    words[0] = str(Path(sys.executable).parent / Path(words[0]).name)
    return subprocess.run(words, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_readme_starts_with_install_run_and_test():
    install, run, test = first_block_lines()
    assert "pip install" in install and "pytest" in test
    assert run.startswith(".venv/bin/rt-dtgan ")


def test_the_readme_run_line_writes_a_video_and_says_where_quietly(tmp_path):
    finished = run_as_written(first_block_lines()[1], tmp_path)
    assert finished.returncode == 0, finished.stderr
    written = tmp_path / "rt-dtgan-demo.mp4"
    with av.open(str(written)) as video:
        frames = [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]
    assert len(frames) == DEMO_CLIP_FRAMES and frames[0].shape == (288, 2 * 360, 3)  # the driver, then the portrait
    said = f"{DEMO_CLIP_FRAMES} frames to rt-dtgan-demo.mp4 at 25 fps; face found in {DEMO_CLIP_FRAMES} (100.0%)"
    assert said in finished.stderr and "next: rt-dtgan live" in finished.stderr
    assert not NATIVE_LOG.search(finished.stderr), "native log lines reached the terminal"
    driver, portrait = _mouth_openings([frame[:, :360] for frame in frames]), _mouth_openings([frame[:, 360:] for frame in frames])
    assert np.corrcoef(driver, portrait)[0, 1] > 0.8, "the portrait's mouth does not follow the driver's"


def _mouth_openings(images: list) -> np.ndarray:
    from rt_dtgan.face.landmarks import FaceMeshDetector

    with FaceMeshDetector(video_mode=True) as detector:
        return np.array([detector.detect(np.ascontiguousarray(image)).mouth_opening for image in images])


def test_the_synthetic_demo_stays(tmp_path):
    rt_dtgan = Path(sys.executable).parent / "rt-dtgan"
    command = [str(rt_dtgan), "demo", "--synthetic", "--frames", "3", "--out", "cartoon.mp4"]
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    with av.open(str(tmp_path / "cartoon.mp4")) as video:
        first = next(video.decode(video=0))
    assert "3 frames to cartoon.mp4" in finished.stderr and first.width == first.height  # the portrait alone


def test_verbose_lets_the_native_log_lines_through(tmp_path):
    rt_dtgan = Path(sys.executable).parent / "rt-dtgan"
    command = [str(rt_dtgan), "--verbose", "demo", "--frames", "3", "--out", "short.mp4"]
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert NATIVE_LOG.search(finished.stderr)
