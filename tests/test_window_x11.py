"""The preview window for real, on an X display made by Xvfb: it opens and shows frames,
and its hotkeys m, c and q mirror, recalibrate and quit. Skips where Xvfb or xdotool is
not installed (Debian: apt install xvfb xdotool)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

NEEDED = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
pytestmark = [pytest.mark.heavy, pytest.mark.skipif(bool(NEEDED), reason=f"not installed: {', '.join(NEEDED)}")]


@pytest.fixture
def display():
    """A fresh Xvfb display, ':N', for the test's duration."""
    number = 90 + os.getpid() % 9
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24"], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        assert server.poll() is None, "Xvfb did not start"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def find_window(display: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = subprocess.run(["xdotool", "search", "--name", "rt-dtgan"], env={**os.environ, "DISPLAY": display},
                               capture_output=True, text=True)
        if found.stdout.strip():
            return found.stdout.split()[0]
        time.sleep(0.2)
    raise AssertionError(f"no rt-dtgan window within {timeout_s} s")


def test_the_window_opens_and_its_hotkeys_mirror_recalibrate_and_quit(display, tmp_path):
    rt_dtgan = Path(sys.executable).parent / "rt-dtgan"
    env = {**os.environ, "DISPLAY": display}
    command = [str(rt_dtgan), "live", "--source", "synthetic:9", "--target", "synthetic:8", "--output", "window"]
    live = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        window = find_window(display, timeout_s=60)
        time.sleep(2.0)  # frames flowing
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, check=True)
        for key in ("m", "c", "q"):
            subprocess.run(["xdotool", "key", key], env=env, check=True)
            time.sleep(1.0)
        _, errors = live.communicate(timeout=30)
    finally:
        live.kill()
    assert live.returncode == 0, errors
    said = [line.strip() for line in errors.replace("\r", "\n").splitlines() if line.strip()]
    assert "mirror on" in said and "recalibrated: the next frame is the neutral face" in said and "quit" in said
    assert any(" fps  latency p50" in line and " face " in line for line in said), "no frames were shown"


def test_q_in_the_window_ends_live_within_2_s_while_its_source_is_stalled(display):
    rt_dtgan = Path(sys.executable).parent / "rt-dtgan"
    env = {**os.environ, "DISPLAY": display}
    stalled = "lavfi:testsrc2=size=320x240:rate=1/60"  # one frame at once, the next after 60 s
    command = [str(rt_dtgan), "live", "--source", stalled, "--target", "synthetic:8", "--output", "window"]
    live = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        window = find_window(display, timeout_s=60)
        time.sleep(2.0)  # past the one frame: the loop waits for the source
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, check=True)
        subprocess.run(["xdotool", "key", "q"], env=env, check=True)
        pressed_at = time.monotonic()
        assert live.wait(timeout=2.0) == 0, "q took over 2 s"
        assert time.monotonic() - pressed_at < 2.0
    finally:
        live.kill()
        live.wait()
