"""`rt-dtgan web` in a real browser, against `rt-dtgan live` on the same clip, in one run.

Headless Chromium (Debian's `chromium`, driven by Playwright; no browser is downloaded)
gets a fake camera playing a real clip (converted to Y4M, looped), opens the page, uploads a
real portrait through #portrait and clicks #start. Over --seconds with the page only
showing: the frames the server sent, its CPU time (all threads) over them, and the CPU the
browser used. Then, over GRAB_S, the frames of both videos are taken as the browser presents
them (requestVideoFrameCallback: the camera's with its capture time, the output's with its
display time); MediaPipe FaceMesh measures the mouth opening on each, and the glass-to-glass
latency is the delay that best aligns the output's mouth with the camera's (capture to
display). Then `rt-dtgan live --output null` plays the same clip, looped, onto the same
portrait at the same size for --seconds: its frames/s, CPU per frame and latency from its
status lines. Last, what WebRTC's codecs cost per frame here (VP8 and H.264, as aiortc runs them).

    python bench/web.py [--clip ../shared/data/real/driving/lp_d3.mp4] \
        [--portrait ../shared/data/real/targets/av_obama.jpg] [--seconds 20] \
        --json bench/results/web.json [--screenshots docs/images]

The heavy test (tests/test_web_browser.py) drives the page with the functions here.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_json  # noqa: E402

from rt_dtgan.face.landmarks import FaceMeshDetector  # noqa: E402
from rt_dtgan.media import Y4MSink, open_source  # noqa: E402
from rt_dtgan.pipeline.loop import STATUS_INTERVAL_S  # noqa: E402

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
READY = re.compile(r"open (https?://\S+)")
STATUS_LINE = re.compile(r"(\d+\.\d) fps  latency p50 +(\d+\.\d) ms")
SERVER_START_S = 120.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GRAB_WIDTH = 320  # frames taken from the page are brought to this width (enough for FaceMesh)
GRAB_S = 10.0  # how long the frames are taken for the glass-to-glass latency
SCREENSHOT_QUALITY = 85  # JPEG
LAG_STEP_MS = 5.0
MAX_LAG_MS = 1500.0


def chromium_path() -> str | None:
    """Debian's Chromium, where installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def clip_to_y4m(clip: Path, out: Path) -> Path:
    """The clip's frames as Y4M (4:2:0), which Chromium's fake camera plays in a loop."""
    with open_source(str(clip), pace=False) as source, open(out, "wb") as stream:
        width, height = source.size
        with Y4MSink(width, height, source.fps, stream=stream, chroma="420jpeg") as sink:
            for frame in source:
                sink.write(frame)
    return out


@contextmanager
def web_server(*options: str):
    """`rt-dtgan web --port 0 OPTIONS` in a subprocess -> (process, its URL) once it listens."""
    command = [sys.executable, "-m", "rt_dtgan", "web", "--port", "0", *options]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        lines = []
        while (line := process.stderr.readline()) and time.monotonic() < deadline:
            lines.append(line)
            if found := READY.search(line):
                yield process, found[1]
                return
        raise RuntimeError("rt-dtgan web did not start:\n" + "".join(lines))
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def chromium(camera_y4m: Path, downloads: Path):
    """Headless Chromium whose camera plays ``camera_y4m``, its downloads in ``downloads``."""
    from playwright.sync_api import sync_playwright

    flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera_y4m}"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=flags, downloads_path=str(downloads))
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, self_signed: bool = False):
    """A page of ``browser`` at ``url`` (``self_signed``: the server's certificate is accepted,
    as a person accepts it at the browser's warning)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True, ignore_https_errors=self_signed)
    page.goto(url)
    return page


@contextmanager
def browser_page(url: str, camera_y4m: Path, downloads: Path):
    """A page at ``url`` of a headless Chromium whose camera plays ``camera_y4m``."""
    with chromium(camera_y4m, downloads) as browser:
        yield open_page(browser, url)


def upload_and_start(page, portrait: Path, timeout_s: float = 10.0) -> float:
    """Upload ``portrait`` through #portrait, click #start -> seconds until #output plays a frame."""
    page.set_input_files("#portrait", str(portrait))
    page.wait_for_function("!document.getElementById('message').textContent.startsWith('finding')", timeout=60_000)
    if page.is_disabled("#start"):
        raise RuntimeError(f"the page refused {portrait.name}: {page.inner_text('#message')}")
    began = time.monotonic()
    page.click("#start")
    page.wait_for_function("window.rtDtgan.shown > 0 && !document.getElementById('output').paused", timeout=timeout_s * 1000)
    return time.monotonic() - began


GRAB = """async ([seconds, width]) => {
  const end = performance.now() + seconds * 1000;
  const take = (video, when, list) => {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = Math.round((video.videoHeight * width) / video.videoWidth);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    list.push([when, canvas.toDataURL("image/jpeg", 0.92)]);
  };
  const follow = (video, pick) => new Promise((resolve) => {
    const list = [];
    const onFrame = (now, meta) => {
      if (now > end) return resolve(list);
      take(video, pick(now, meta), list);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  });
  const [camera, output] = await Promise.all([
    follow(document.getElementById("camera"), (now, meta) => meta.captureTime ?? now),
    follow(document.getElementById("output"), (now, meta) => meta.expectedDisplayTime),
  ]);
  return { camera, output };
}"""


def grab(page, seconds: float) -> tuple[list[tuple[float, np.ndarray]], list[tuple[float, np.ndarray]]]:
    """The frames both videos present over ``seconds`` -> (camera, output), each [(time ms, (H, W, 3) uint8 RGB)]:
    the camera's at its capture time, the output's at its display time, on the page's clock."""
    taken = page.evaluate(GRAB, [seconds, GRAB_WIDTH])
    return [_decode(item) for item in taken["camera"]], [_decode(item) for item in taken["output"]]


def _decode(item: list) -> tuple[float, np.ndarray]:
    import cv2

    when, url = item
    data = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    return float(when), cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def mouth_openings(frames: list[tuple[float, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """-> (times ms, mouth openings), FaceMesh in video mode; NaN where no face is found."""
    times, openings = [], []
    with FaceMeshDetector(video_mode=True) as detector:
        for when, image in frames:
            landmarks = detector.detect(image)
            times.append(when)
            openings.append(np.nan if landmarks is None else landmarks.mouth_opening)
    return np.asarray(times), np.asarray(openings)


def mouth_range(openings: np.ndarray) -> float:
    """The spread of the mouth opening: its 95th percentile less its 5th, over the frames with a face."""
    found = openings[np.isfinite(openings)]
    return float(np.percentile(found, 95) - np.percentile(found, 5)) if found.size else 0.0


def range_behind(camera: tuple[np.ndarray, np.ndarray], output: tuple[np.ndarray, np.ndarray], delay_ms: float) -> float:
    """The camera's mouth range over the frames the output showed: those captured ``delay_ms``
    before the output's first and last frames (at a second of latency, the last second of a
    window's camera has not reached the output yet)."""
    times, openings = camera
    shown = (times >= output[0][0] - delay_ms) & (times <= output[0][-1] - delay_ms)
    return mouth_range(openings[shown])


def best_lag(camera: tuple[np.ndarray, np.ndarray], output: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """The delay (ms) by which the output's mouth best follows the camera's -> (delay, Pearson r at it):
    both series interpolated on a LAG_STEP_MS grid, delays 0..MAX_LAG_MS tried."""
    camera_times, camera_values = _finite(*camera)
    output_times, output_values = _finite(*output)
    grid = np.arange(max(camera_times[0], output_times[0]), min(camera_times[-1], output_times[-1]), LAG_STEP_MS)
    lags = np.arange(0.0, MAX_LAG_MS, LAG_STEP_MS)
    shown = np.interp(grid, output_times, output_values)
    scores = []
    for lag in lags:
        usable = grid - lag >= camera_times[0]
        captured = np.interp(grid[usable] - lag, camera_times, camera_values)
        scores.append(np.corrcoef(captured, shown[usable])[0, 1] if usable.sum() > 10 else -1.0)
    best = int(np.nanargmax(scores))
    return float(lags[best]), float(scores[best])


def _finite(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(values)
    return times[keep], values[keep]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def measure_web(clip_y4m: Path, portrait: Path, seconds: float, folder: Path, screenshots: Path | None) -> dict:
    """One browser session: the first frame's time; over ``seconds`` with the page only
    showing, the frames sent, the server's and the browser's CPU; then over GRAB_S, with
    frames taken from the page, the glass-to-glass latency and the mouths' ranges."""
    with web_server() as (server, url), browser_page(url, clip_y4m, folder) as page:
        first_frame_s = upload_and_start(page, portrait, timeout_s=20.0)
        page.wait_for_timeout(3000)  # past the first frames' warm-up
        before = _server_frames(page), process_cpu_s(server.pid), _browser_cpu_s(), time.monotonic()
        page.wait_for_timeout(seconds * 1000)
        after = _server_frames(page), process_cpu_s(server.pid), _browser_cpu_s(), time.monotonic()
        figures = page.evaluate("window.rtDtgan")
        status = page.inner_text("#status")
        camera, output = grab(page, GRAB_S)
        if screenshots is not None:
            take_screenshots(page, screenshots, folder)
    sent, server_cpu_s, browser_cpu_s, elapsed = (end - start for start, end in zip(before, after))
    camera_mouth, output_mouth = mouth_openings(camera), mouth_openings(output)
    lag_ms, lag_r = best_lag(camera_mouth, output_mouth)
    return {
        "first_frame_s": first_frame_s,
        "frames_sent": sent,
        "fps": sent / elapsed,
        "server_cpu_ms_per_frame": 1000 * server_cpu_s / max(sent, 1),
        "browser_cpu_cores": browser_cpu_s / elapsed,
        "page_latency_estimate_ms": figures.get("latencyMs"),
        "server_latency_ms": figures["server"].get("server_ms"),
        "status_line": status,
        "glass_to_glass_ms": lag_ms,
        "mouth_r_at_that_delay": lag_r,
        "camera_frames_taken": len(camera),
        "output_frames_taken": len(output),
        "mouth_range_camera": range_behind(camera_mouth, output_mouth, lag_ms),
        "mouth_range_output": mouth_range(output_mouth[1]),
    }


def _browser_cpu_s() -> float:
    """CPU seconds used so far by every Chromium process of this machine."""
    total = 0.0
    for folder in Path("/proc").iterdir():
        try:
            if folder.name.isdigit() and "chromium" in (folder / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace"):
                total += process_cpu_s(int(folder.name))
        except OSError:  # a process that ended meanwhile
            continue
    return total


def take_screenshots(page, folder: Path, scratch: Path) -> None:
    """web.jpg: the page streaming; web_refused.jpg: the message a text file as the portrait gets, the stream going on."""
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / "web.jpg"), quality=SCREENSHOT_QUALITY)
    text = scratch / "notes.txt"
    text.write_text("not a photo\n")
    page.set_input_files("#portrait", str(text))
    page.wait_for_function("document.getElementById('message').textContent.includes('notes.txt')")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(folder / "web_refused.jpg"), quality=SCREENSHOT_QUALITY)


def _server_frames(page) -> int:
    return int(page.evaluate("window.rtDtgan.server.frames"))


def measure_live(clip: Path, portrait: Path, seconds: float) -> dict:
    """`rt-dtgan live --output null` at the page's portrait size, the clip played in a loop as the
    browser's fake camera plays it (an FFmpeg movie source): frames/s and CPU per frame."""
    with open_source(str(clip), pace=False) as source:
        looped = f"lavfi:movie={clip}:loop=0,setpts=N/({source.fps:g}*TB)"
    command = [sys.executable, "-m", "rt_dtgan", "live", "--source", looped, "--target", str(portrait),
               "--output", "null", "--portrait-size", "640"]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, bufsize=0)
    try:
        _wait_for_status(process)
        time.sleep(3.0)
        cpu_before, began = process_cpu_s(process.pid), time.monotonic()
        time.sleep(seconds)
        cpu_after, elapsed = process_cpu_s(process.pid), time.monotonic() - began
        fps, latency_ms = _mean_status(process, seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"fps": fps, "cpu_ms_per_frame": 1000 * (cpu_after - cpu_before) / (fps * elapsed), "latency_p50_ms": latency_ms}


def _wait_for_status(process: subprocess.Popen) -> None:
    """Read live's stderr until its first status line (frames are flowing)."""
    text = ""
    while not STATUS_LINE.search(text):
        chunk = process.stderr.read(256)
        if not chunk:
            raise RuntimeError(f"rt-dtgan live ended:\n{text}")
        text += chunk


def _mean_status(process: subprocess.Popen, seconds: float) -> tuple[float, float]:
    """The mean frame rate and median latency (capture to sink) of live's status lines over the
    last ``seconds`` (a line each STATUS_INTERVAL_S, its rate over the last second; they end
    with a carriage return)."""
    os.set_blocking(process.stderr.fileno(), False)
    lines = STATUS_LINE.findall(process.stderr.read() or "")[-round(seconds / STATUS_INTERVAL_S) :]
    return float(np.mean([float(fps) for fps, _ in lines])), float(np.mean([float(p50) for _, p50 in lines]))


def codec_costs(clip: Path, frames: int = 90) -> dict:
    """CPU ms per frame of what WebRTC adds on the server, per codec aiortc offers: encoding a
    frame and decoding it (the camera's 640x480, as the page asks), the codecs' own threads included."""
    import fractions

    from aiortc.codecs.h264 import H264Decoder, H264Encoder, h264_depayload
    from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
    from aiortc.jitterbuffer import JitterFrame

    with open_source(str(clip), (640, 480), pace=False) as source:
        images = [frame.image for _, frame in zip(range(frames), source)]
    costs = {}
    for name, encoder, decoder, depayload in [("VP8", Vp8Encoder(), Vp8Decoder(), vp8_depayload),
                                              ("H.264", H264Encoder(), H264Decoder(), h264_depayload)]:  # fmt: skip
        encoding = decoding = 0.0
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90_000)
            began = time.process_time()
            payloads, timestamp = encoder.encode(frame)
            encoded = time.process_time()
            decoder.decode(JitterFrame(b"".join(depayload(payload) for payload in payloads), timestamp))
            encoding, decoding = encoding + encoded - began, decoding + time.process_time() - encoded
        costs[name] = {"encode_ms": 1000 * encoding / len(images), "decode_ms": 1000 * decoding / len(images)}
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=REAL_DATA / "driving" / "lp_d3.mp4")
    parser.add_argument("--portrait", type=Path, default=REAL_DATA / "targets" / "av_obama.jpg")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--screenshots", type=Path, help="a folder for web.jpg and web_refused.jpg")
    args = parser.parse_args()
    if chromium_path() is None:
        sys.exit("bench/web.py needs Debian's chromium: apt-get install chromium")
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        y4m = clip_to_y4m(args.clip, Path(folder) / "camera.y4m")
        web = measure_web(y4m, args.portrait, args.seconds, Path(folder), args.screenshots)
    live = measure_live(args.clip, args.portrait, args.seconds)
    codecs = codec_costs(args.clip)
    results = {"clip": args.clip.name, "portrait": args.portrait.name, "seconds": args.seconds, "web": web, "live": live,
               "codecs_640x480": codecs, "load_average_1_5_15": os.getloadavg(), "environment": environment()}  # fmt: skip
    write_json(args.json, results)
    rows = [*web.items(), *(("live " + key, value) for key, value in live.items())]
    rows += [(f"{codec} {key}", value) for codec, figures in codecs.items() for key, value in figures.items()]
    for name, value in rows:
        print(f"{name:>28}: {value:.1f}" if isinstance(value, float) else f"{name:>28}: {value}")


if __name__ == "__main__":
    main()
