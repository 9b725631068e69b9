"""`rt-dtgan web` without a browser: who may open it, what an upload must be, the page's
settings and controls, and a whole stream through the server, its media over WebRTC from an
in-process aiortc peer playing the shipped GRID clip: frames come back at the portrait's
size, the controls answer, two browsers at once have a stream each, and a closed connection
(or a camera that stops) frees its stream. The page in a real
browser: tests/test_web_browser.py (heavy)."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
import zlib
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from conftest import HANG_S, LOOPBACK, serving

from rt_dtgan.cli import build_parser
from rt_dtgan.commands.web import _examples, _transfer_opener
from rt_dtgan.config import PreprocessConfig
from rt_dtgan.web.portraits import MAX_UPLOAD_BYTES, PortraitRefused, prepare_upload
from rt_dtgan.web.security import TOKEN_COOKIE, Access, access_for, is_loopback
from rt_dtgan.web.server import WebConfig, WebServer
from rt_dtgan.web.session import ControlRefused, SessionSettings

SHIPPED = Path(str(resources.files("rt_dtgan") / "assets" / "grid"))
PORTRAIT = SHIPPED / "lwbsza.jpg"
CLIP = SHIPPED / "swiz3n.mp4"
FRAMES_WANTED = 10


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("192.168.1.5", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_is_this_machine_only(host, loopback):
    assert is_loopback(host) is loopback


def test_loopback_needs_no_token_and_any_other_address_a_token_over_https(tmp_path):
    local = access_for("127.0.0.1", None, None, tmp_path)
    assert local.token is None and local.tls is None and local.allows(None)
    public = access_for("0.0.0.0", None, None, tmp_path)
    assert public.scheme == "https" and len(public.token) >= 24
    assert not public.allows(None) and not public.allows("guess") and public.allows(public.token)
    assert (tmp_path / "web-cert.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert (tmp_path / "web-key.pem").stat().st_mode & 0o077 == 0
    given = access_for("0.0.0.0", str(tmp_path / "web-cert.pem"), str(tmp_path / "web-key.pem"), tmp_path / "unused")
    assert given.token and given.tls


@pytest.mark.parametrize(
    ("data", "said"),
    [(b"", "is empty"), (b"dear portrait,\n", "not an image"), (b"\xff" * (MAX_UPLOAD_BYTES + 1), "at most 10 MiB"),
     (cv2.imencode(".png", np.full((240, 320, 3), 128, np.uint8))[1].tobytes(), "no face found")],
)  # fmt: skip
def test_an_upload_that_cannot_be_a_portrait_is_refused_with_its_reason(data, said):
    with pytest.raises(PortraitRefused, match=said):
        prepare_upload(data, "upload.png", PreprocessConfig(), max_side=640)


def test_a_small_file_of_a_huge_picture_is_refused_before_it_is_decoded():
    side = 8000  # 64 million pixels, in a PNG of a few hundred KiB
    rows = zlib.compressobj(9)
    data = b"".join(rows.compress(bytes(1 + 3 * side)) for _ in range(side)) + rows.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + b"".join(_png_chunk(kind, body) for kind, body in [(b"IHDR", header), (b"IDAT", data), (b"IEND", b"")])
    assert len(png) < MAX_UPLOAD_BYTES
    with pytest.raises(PortraitRefused, match="at most 50 million pixels"):
        prepare_upload(png, "huge.png", PreprocessConfig(), max_side=640)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_a_portrait_is_brought_to_whole_video_blocks_within_its_size():
    image = cv2.imread(str(PORTRAIT))
    odd = cv2.imencode(".png", cv2.resize(image, (361, 289)))[1].tobytes()
    target = prepare_upload(odd, "odd.png", PreprocessConfig(), max_side=640)
    assert target.image.shape == (288, 352, 3)
    assert prepare_upload(odd, "odd.png", PreprocessConfig(), max_side=181).image.shape[:2] == (144, 176)


@pytest.mark.parametrize(
    "given",
    [{"strength": 4}, {"strength": "strong"}, {"strength": True}, {"pose": "sideways"}, {"pose_strength": -1}],
)
def test_settings_outside_their_range_are_refused(given):
    with pytest.raises(ControlRefused):
        SessionSettings.from_page(given)


def test_settings_from_the_page():
    assert SessionSettings.from_page({"mirror": True, "strength": 1.5, "pose": "lock"}) == SessionSettings(True, 1.5, "lock", 1.0)


def _server(access: Access, open_transfer=None, preprocess: PreprocessConfig | None = None, max_sessions: int = 4) -> WebServer:
    return WebServer(WebConfig(preprocess or PreprocessConfig(), open_transfer, access, _examples(), 640, max_sessions))


def _run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=3 * HANG_S))


def test_beyond_loopback_every_request_needs_the_token_then_its_cookie(tmp_path):
    access = access_for("0.0.0.0", None, None, tmp_path)

    async def check():
        async with TestClient(TestServer(_server(Access(access.token, None)).app)) as client:
            assert (await client.get("/")).status == 403
            assert (await client.get("/api/examples", params={"token": "wrong"})).status == 403
            page = await client.get("/", params={"token": access.token})
            assert page.status == 200 and "id=\"portrait\"" in await page.text()
            cookie = page.cookies[TOKEN_COOKIE]
            assert cookie.value == access.token and cookie["secure"] and cookie["httponly"]
            as_a_browser_sends_it = {"Cookie": f"{TOKEN_COOKIE}={access.token}"}  # HTTPS only: the test client is plain HTTP
            assert (await client.get("/api/examples", headers=as_a_browser_sends_it)).status == 200

    _run(check())


def test_the_page_its_examples_and_bad_uploads_answer_in_words():
    async def check():
        async with TestClient(TestServer(_server(Access(None, None)).app)) as client:
            page = await (await client.get("/")).text()
            for element in ("portrait", "start", "output", "status", "recalibrate", "mirror"):
                assert f'id="{element}"' in page
            assert (await client.get("/static/app.js")).status == 200
            assert (await client.get("/static/..%2Fserver.py")).status == 404
            examples = (await (await client.get("/api/examples")).json())["examples"]
            assert "lwbsza.jpg" in examples
            refused = await client.post("/api/portrait", params={"name": "notes.txt"}, data=b"a shopping list\n")
            assert refused.status == 400 and "notes.txt is not an image" in (await refused.json())["error"]
            unknown = await client.post("/api/portrait", params={"example": "nobody.jpg"})
            assert unknown.status == 400 and "no example portrait" in (await unknown.json())["error"]
            offer = await client.post("/api/offer", json={"sdp": "v=0", "type": "offer", "portrait": "forgotten"})
            assert offer.status == 400 and "choose a portrait" in (await offer.json())["error"]
            malformed = await client.post("/api/offer", data=b"{not json")
            assert malformed.status == 400
            assert (await (await client.get("/api/status")).json()) == {"streams": 0, "max_streams": 4}

    _run(check())


def test_an_upload_that_arrives_in_pieces_is_read_whole():
    data = PORTRAIT.read_bytes()

    async def slowly():
        for start in range(0, len(data), len(data) // 3 + 1):
            yield data[start : start + len(data) // 3 + 1]
            await asyncio.sleep(0.05)

    async def check():
        async with TestClient(TestServer(_server(Access(None, None)).app)) as client:
            reply = await client.post("/api/portrait", params={"name": "slow.jpg"}, data=slowly())
            assert reply.status == 200, await reply.text()

    _run(check())


class _ClipTrack(VideoStreamTrack):
    """The shipped GRID clip's frames, again and again, at 30 frames/s: a browser's camera."""

    def __init__(self) -> None:
        super().__init__()
        with av.open(str(CLIP)) as container:
            self.images = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        self.count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.images[self.count % len(self.images)], format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame


@contextmanager
def _engine_options(where: str):
    """Options of `rt-dtgan web` for an in-process engine, a worker serving the shipped model on
    loopback ("remote"), or the Ray edge over one replica of it on a local Ray cluster ("ray")."""
    if where == "local":
        yield []
        return
    if where == "ray":
        with _ray_edge() as address:
            yield ["--remote", address]
        return
    from rt_dtgan.runtime.engine import open_engine
    from rt_dtgan.transport import Worker, WorkerConfig

    engine, _, _ = open_engine(None, "torch", None, 1, False)
    with serving(Worker(WorkerConfig(bind=LOOPBACK), engine)) as worker:
        yield ["--remote", worker.address]


@contextmanager
def _ray_edge():
    """`serve --ray local`'s edge on loopback, one replica of the shipped model -> its address."""
    import ray
    from test_cluster import restore_environment

    from rt_dtgan.transport import Worker, WorkerConfig
    from rt_dtgan.transport.cluster import ClusterConfig, ReplicaPool
    from rt_dtgan.transport.replica import CheckpointRecipe

    environment = dict(os.environ)
    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False, namespace="rt-dtgan-web", log_to_driver=False)
    cluster = ClusterConfig(min_replicas=1, max_replicas=1, replica_cpus=0.5, start_timeout_s=120.0)
    pool = ReplicaPool(cluster, CheckpointRecipe(None, "torch"))
    try:
        with serving(Worker(WorkerConfig(bind=LOOPBACK), pool, on_turn=pool.tick)) as edge:
            yield edge.address
    finally:
        pool.shutdown()
        ray.shutdown()
        restore_environment(environment)


@pytest.mark.parametrize("where", ["local", "remote", pytest.param("ray", marks=pytest.mark.heavy)])
def test_a_stream_over_webrtc_animates_the_portrait_answers_its_controls_and_is_freed_when_closed(where):
    with _engine_options(where) as options:
        args = build_parser().parse_args(["web", "--max-sessions", "1", *options])
        preprocess, open_transfer = _transfer_opener(args)
        _stream_and_close(_server(Access(None, None), open_transfer, preprocess, max_sessions=1), where)


def _stream_and_close(server: WebServer, where: str) -> None:

    async def check():
        async with TestClient(TestServer(server.app)) as client:
            portrait = await (await client.post("/api/portrait", params={"example": "lwbsza.jpg"})).json()
            assert (portrait["width"], portrait["height"]) == (352, 288)
            browser = await _Browser.open(client, portrait["id"], {"strength": 1.5})
            frames = [await browser.output.recv() for _ in range(FRAMES_WANTED)]
            assert {(frame.width, frame.height) for frame in frames} == {(352, 288)}
            second = await client.post("/api/offer", json=browser.offer)
            assert second.status == 503 and "its most" in (await second.json())["error"]

            for control in [{"type": "mirror", "on": True}, {"type": "strength", "value": 9}, {"type": "strength", "value": 0.5},
                            {"type": "pose", "mode": "lock"}]:  # fmt: skip
                browser.channel.send(json.dumps(control))
            answered = [await browser.reply() for _ in range(4)]
            strength_changes = "applied" if where == "local" else "refused"  # a worker or the edge takes it at the start only
            assert [reply["type"] for reply in answered] == ["applied", "refused", strength_changes, "applied"]
            assert answered[0]["text"] == "mirror on" and "from 0 to 3" in answered[1]["text"]
            figures = await browser.reply("figures")
            assert figures["frames"] > 0 and figures["face"] and figures["error"] is None

            await browser.peer.close()
            await _until(lambda: not server.sessions)
            assert not server.sessions, "the closed connection's stream is still open"

    _run(check())


def test_two_browsers_at_once_each_have_their_own_stream():
    preprocess, open_transfer = _transfer_opener(build_parser().parse_args(["web"]))
    server = _server(Access(None, None), open_transfer, preprocess)

    async def check():
        async with TestClient(TestServer(server.app)) as client:
            first = await (await client.post("/api/portrait", params={"example": "lwbsza.jpg"})).json()
            second = await (await client.post("/api/portrait", params={"example": "brbk7n.jpg"})).json()
            browsers = [await _Browser.open(client, first["id"]), await _Browser.open(client, second["id"], {"mirror": True})]
            assert len(server.sessions) == 2
            looks = [(await browser.output.recv()).to_ndarray(format="rgb24") for browser in browsers]
            assert not np.array_equal(looks[0], looks[1]), "both browsers got the same portrait"
            await browsers[0].peer.close()
            await _until(lambda: len(server.sessions) == 1)
            assert len(server.sessions) == 1
            await browsers[1].output.recv()  # the other goes on
            await browsers[1].peer.close()

    _run(check())


def test_a_stream_whose_camera_stops_ends_by_itself_and_closes_its_connection(monkeypatch):
    from rt_dtgan.web import session

    monkeypatch.setattr(session, "CAMERA_GONE_S", 1.0)
    preprocess, open_transfer = _transfer_opener(build_parser().parse_args(["web"]))
    server = _server(Access(None, None), open_transfer, preprocess)

    async def check():
        async with TestClient(TestServer(server.app)) as client:
            portrait = await (await client.post("/api/portrait", params={"example": "lwbsza.jpg"})).json()
            browser = await _Browser.open(client, portrait["id"])
            await browser.output.recv()
            (stream,) = server.sessions.values()
            browser.camera.replaceTrack(None)  # the camera stops sending; the connection stays up
            assert (await browser.reply("ended"))["error"] is None
            await _until(lambda: not server.sessions and stream.connection.connectionState == "closed")
            assert not server.sessions and stream.connection.connectionState == "closed"
            await browser.peer.close()

    _run(check())


class _Browser:
    """What the page does, in-process: the shipped clip as its camera, the control channel,
    the output track once the server's answer is in."""

    @classmethod
    async def open(cls, client: TestClient, portrait_id: str, settings: dict | None = None) -> _Browser:
        browser = cls()
        browser.peer, browser.replies = RTCPeerConnection(), asyncio.Queue()
        browser.camera = browser.peer.addTrack(_ClipTrack())
        browser.channel = browser.peer.createDataChannel("control")
        browser.channel.on("message", lambda message: browser.replies.put_nowait(json.loads(message)))
        output = asyncio.get_running_loop().create_future()
        browser.peer.on("track", output.set_result)
        await browser.peer.setLocalDescription(await browser.peer.createOffer())
        browser.offer = {"sdp": browser.peer.localDescription.sdp, "type": "offer", "portrait": portrait_id, "settings": settings or {}}
        answer = await (await client.post("/api/offer", json=browser.offer)).json()
        await browser.peer.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        browser.output = await output
        return browser

    async def reply(self, kind: str | None = None) -> dict:
        """The next message from the server (of ``kind``, where given; figures are skipped otherwise)."""
        while True:
            reply = await asyncio.wait_for(self.replies.get(), HANG_S)
            if reply["type"] == kind or (kind is None and reply["type"] != "figures"):
                return reply


async def _until(condition) -> None:
    """Wait until ``condition()`` holds, at most HANG_S."""
    deadline = time.monotonic() + HANG_S
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
