"""`rt-dtgan web` in a real browser: Debian's Chromium, headless, driven by Playwright, its
fake camera playing a real clip. A real portrait uploaded through #portrait, #start clicked:
the output plays within 10 s, the status counts frames, the output's mouth follows the
clip's (measured by FaceMesh on frames taken from the page), every control does what it
says, a text file as the portrait gets a message while the stream goes on, and a closed tab
frees its stream on the server. Skips, in one line, where Chromium or Playwright is absent."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.heavy

BENCH_WEB = Path(__file__).resolve().parents[1] / "bench" / "web.py"
_spec = importlib.util.spec_from_file_location("bench_web", BENCH_WEB)
page_tools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(page_tools)

CLIP = page_tools.REAL_DATA / "driving" / "lp_d3.mp4"
PORTRAIT = page_tools.REAL_DATA / "targets" / "av_obama.jpg"
GRAB_S = 10.0
STILL_GRAB_S = 7.0  # longer than the clip's quiet stretch (about 4.3 s of its 11.8)
PIPELINE_FLUSH_MS = 3000  # frames stepped before a change still come out for this long on a loaded machine
FREED_WITHIN_S = 15.0


def _missing() -> str | None:
    if page_tools.chromium_path() is None:
        return "Chromium is not installed (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright)"
    if not CLIP.is_file() or not PORTRAIT.is_file():
        return f"real test media not found at {page_tools.REAL_DATA}"
    return None


pytestmark = [pytest.mark.heavy, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    return page_tools.clip_to_y4m(CLIP, tmp_path_factory.mktemp("camera") / "camera.y4m")


@pytest.fixture(scope="module")
def browser(camera, tmp_path_factory):
    with page_tools.chromium(camera, tmp_path_factory.mktemp("downloads")) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def page(browser):
    with page_tools.web_server() as (server, url):
        browser_page = page_tools.open_page(browser, url)
        browser_page.server_url = url
        yield browser_page


def _message(page, contains: str) -> str:
    page.wait_for_function(f"document.getElementById('message').textContent.includes({json.dumps(contains)})", timeout=10_000)
    return page.inner_text("#message")


def _frames_in_status(page) -> int:
    return int(page.inner_text("#status").split("frames shown ")[1].split()[0])


def _streams(url: str) -> int:
    with urllib.request.urlopen(f"{url.rstrip('/')}/api/status") as reply:
        return json.load(reply)["streams"]


def test_a_text_file_as_the_portrait_gets_a_message(page, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a photo\n")
    page.set_input_files("#portrait", str(text))
    assert "not an image" in _message(page, "notes.txt")
    assert page.is_disabled("#start")


def test_a_shipped_example_can_be_picked(page):
    page.click("#examples button[data-example='brbk7n.jpg']")
    assert "portrait ready (352x288)" in _message(page, "portrait ready")
    assert page.is_enabled("#start")


def test_the_portrait_animates_within_10_s_and_its_mouth_follows_the_clip(page):
    first_frame_s = page_tools.upload_and_start(page, PORTRAIT, timeout_s=10.0)
    assert first_frame_s < 10.0
    shown = _frames_in_status(page) if "frames shown" in page.inner_text("#status") else 0
    page.wait_for_timeout(1500)
    assert _frames_in_status(page) > shown, page.inner_text("#status")
    camera, output = page_tools.grab(page, GRAB_S)
    camera_mouth, output_mouth = page_tools.mouth_openings(camera), page_tools.mouth_openings(output)
    assert np.isfinite(output_mouth[1]).mean() > 0.9, "the output shows no face in most frames"
    delay_ms, r = page_tools.best_lag(camera_mouth, output_mouth)
    assert r > 0.5, f"the output's mouth does not follow the clip's: r {r:.2f} at its best delay, {delay_ms:.0f} ms"
    clip_range = page_tools.range_behind(camera_mouth, output_mouth, delay_ms)
    output_range = page_tools.mouth_range(output_mouth[1])
    taken = f"{len(output)} output frames over {(output[-1][0] - output[0][0]) / 1000:.1f} s, {delay_ms:.0f} ms behind"
    assert output_range >= 0.5 * clip_range, f"the output's mouth range {output_range:.3f} against the clip's {clip_range:.3f} ({taken})"


def test_each_control_does_what_it_says(page, tmp_path):
    page.click("#mirror")
    assert "mirror on" in _message(page, "mirror")
    assert "mirrored" in page.get_attribute("#camera", "class")
    page.click("#mirror")
    _message(page, "mirror off")
    page.click("#recalibrate")
    _message(page, "recalibrated")
    page.select_option("#pose", "lock")
    _message(page, "pose lock")
    page.select_option("#pose", "follow")
    _message(page, "pose follow")

    page.select_option("#pose", "lock")  # the head still too, so that only the expression could move the mouth
    page.fill("#strength", "0")
    page.dispatch_event("#strength", "change")
    _message(page, "expression strength 0")
    page.wait_for_timeout(PIPELINE_FLUSH_MS)
    camera, still = page_tools.grab(page, STILL_GRAB_S)
    talking = page_tools.mouth_range(page_tools.mouth_openings(camera)[1])
    assert talking > 0.1, f"the camera's mouth barely moved meanwhile ({talking:.3f}): nothing to compare with"
    still_range = page_tools.mouth_range(page_tools.mouth_openings(still)[1])
    assert still_range < 0.2 * talking, f"expression strength 0 still moves the mouth: range {still_range:.3f}, the camera's {talking:.3f}"
    page.fill("#strength", "1")
    page.dispatch_event("#strength", "change")
    _message(page, "expression strength 1")
    page.select_option("#pose", "follow")

    page.click("#record")
    page.wait_for_timeout(2000)
    page.click("#record")
    page.wait_for_selector("#clip:not([hidden])")
    with page.expect_download() as clip:
        page.click("#clip")
    assert Path(clip.value.path()).read_bytes()[:4] == bytes.fromhex("1a45dfa3"), "the clip is not a WebM file"

    with page.expect_download() as frame:
        page.click("#snapshot")
    import cv2

    image = cv2.imread(str(frame.value.path()))
    video_size = page.evaluate("[document.getElementById('output').videoWidth, document.getElementById('output').videoHeight]")
    assert image is not None and [image.shape[1], image.shape[0]] == video_size


def test_a_bad_upload_while_streaming_leaves_the_stream_going(page, tmp_path):
    shown = _frames_in_status(page)
    text = tmp_path / "letter.txt"
    text.write_text("dear portrait\n")
    page.set_input_files("#portrait", str(text))
    _message(page, "letter.txt")
    page.wait_for_timeout(1500)
    assert _frames_in_status(page) > shown


def test_a_closed_tab_frees_its_stream(page):
    assert _streams(page.server_url) == 1
    page.close()
    deadline = time.monotonic() + FREED_WITHIN_S
    while _streams(page.server_url) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _streams(page.server_url) == 0


def _address_beyond_loopback() -> str | None:
    """An IPv4 address of this machine other than loopback, where it has one (ifaddr comes with aiortc)."""
    import ifaddr

    addresses = [ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips if isinstance(ip.ip, str)]
    return next((address for address in addresses if not ipaddress.ip_address(address).is_loopback), None)


def test_beyond_loopback_the_page_needs_its_token_and_streams_over_https(browser):
    address = _address_beyond_loopback()
    if address is None:
        pytest.skip("this machine has no address beyond loopback")
    with page_tools.web_server("--bind", address) as (server, url):
        assert url.startswith(f"https://{address}:") and "/?token=" in url
        page = page_tools.open_page(browser, url.split("?")[0], self_signed=True)
        assert "open the address with the token" in page.inner_text("body")
        page.goto(url)
        assert page_tools.upload_and_start(page, PORTRAIT, timeout_s=10.0) < 10.0
        page.close()
