"""A newcomer's first run: the README's first code block runs as written (its run line, not
the install), makes a video and says where, and the terminal shows our lines only."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import av

README = Path(__file__).resolve().parents[1] / "README.md"
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
        assert sum(1 for _ in video.decode(video=0)) == 150
    assert "150 frames to rt-dtgan-demo.mp4" in finished.stderr and "next: rt-dtgan live" in finished.stderr
    assert not NATIVE_LOG.search(finished.stderr), "native log lines reached the terminal"


def test_verbose_lets_the_native_log_lines_through(tmp_path):
    rt_dtgan = Path(sys.executable).parent / "rt-dtgan"
    command = [str(rt_dtgan), "--verbose", "demo", "--frames", "3", "--out", "short.mp4"]
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert NATIVE_LOG.search(finished.stderr)
