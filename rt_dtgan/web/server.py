"""The page's server (aiohttp): the page, the shipped example portraits, uploads, and one
WebRTC peer connection (aiortc) per browser stream, each with its own WebSession.

Routes: GET / (the page), GET /static/NAME, GET /api/examples (names), GET
/api/examples/NAME (the image), POST /api/portrait (an image's bytes, or ?example=NAME ->
{id, width, height} or {error}), POST /api/offer ({sdp, type, portrait, settings} -> the
answer and the session's id), POST /api/close ({session}), GET /api/status ({streams, max_streams}). The data channel "control"
carries the page's controls ({type: recalibrate | mirror | strength | pose, ...}, answered
{type: applied | refused, text}) and, every STATUS_INTERVAL_S, {type: figures, ...}."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face.images import load_image
from rt_dtgan.web.bridge import OutputTrack
from rt_dtgan.web.portraits import MAX_UPLOAD_BYTES, PortraitRefused, PortraitStore, prepare_image, prepare_upload
from rt_dtgan.web.security import TOKEN_COOKIE, Access
from rt_dtgan.web.session import ControlRefused, SessionSettings, TransferOpener, WebSession

STATUS_INTERVAL_S = 0.5
UPLOAD_CHUNK_BYTES = 64 * 1024
EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


@dataclass(frozen=True)
class WebConfig:
    """``preprocess``: the model's alignment; ``open_transfer``: opens a session's
    FaceTransfer; ``max_side``: a portrait's longest side; ``examples``: the folder of shipped
    portraits; ``max_sessions``: streams open at once."""

    preprocess: PreprocessConfig
    open_transfer: TransferOpener
    access: Access
    examples: Path
    max_side: int | None = None
    max_sessions: int = 4


class WebServer:
    """The application and the streams it holds; ``close_all`` ends every stream."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.portraits = PortraitStore()
        self.sessions: dict[str, _Stream] = {}
        self.app = web.Application(middlewares=[self._check_token], client_max_size=MAX_UPLOAD_BYTES + 1024)
        self.app.add_routes([
            web.get("/", self._page),
            web.get("/static/{name}", self._static),
            web.get("/api/examples", self._examples),
            web.get("/api/examples/{name}", self._example_image),
            web.post("/api/portrait", self._portrait),
            web.post("/api/offer", self._offer),
            web.post("/api/close", self._close),
            web.get("/api/status", self._status),
        ])  # fmt: skip
        self.app.on_shutdown.append(lambda _: self.close_all())

    async def close_all(self) -> None:
        await asyncio.gather(*(stream.close() for stream in list(self.sessions.values())))

    @web.middleware
    async def _check_token(self, request: web.Request, handler):
        given = request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or request.headers.get("X-Token")
        if not self.config.access.allows(given):
            return web.Response(status=403, text="rt-dtgan web: open the address with the token that `rt-dtgan web` printed\n")
        response = await handler(request)
        if self.config.access.token is not None and request.query.get("token"):
            response.set_cookie(TOKEN_COOKIE, given, httponly=True, secure=True, samesite="Strict")
        return response

    async def _page(self, request: web.Request) -> web.Response:
        return _static_file("index.html")

    async def _static(self, request: web.Request) -> web.Response:
        return _static_file(request.match_info["name"])

    async def _examples(self, request: web.Request) -> web.Response:
        return web.json_response({"examples": [path.name for path in self._example_paths()]})

    async def _example_image(self, request: web.Request) -> web.StreamResponse:
        path = self._example(request.match_info["name"])
        return web.FileResponse(path) if path else web.json_response({"error": "no such example portrait"}, status=404)

    async def _portrait(self, request: web.Request) -> web.Response:
        """An uploaded image's bytes (or ?example=NAME) -> {id, width, height}, or {error} with status 400."""
        loop = asyncio.get_running_loop()
        max_side, preprocess = self.config.max_side, self.config.preprocess
        try:
            if "example" in request.query:
                path = self._example(request.query["example"])
                if path is None:
                    raise PortraitRefused(f"no example portrait named {request.query['example']!r}")
                target = await loop.run_in_executor(None, lambda: prepare_image(load_image(path), path.name, preprocess, max_side))
            else:
                name = request.query.get("name", "the file")[:100]
                data = await _body(request, MAX_UPLOAD_BYTES + 1)
                target = await loop.run_in_executor(None, prepare_upload, data, name, preprocess, max_side)
        except PortraitRefused as refused:
            return web.json_response({"error": str(refused)}, status=400)
        height, width = target.image.shape[:2]
        return web.json_response({"id": self.portraits.add(target), "width": width, "height": height})

    async def _offer(self, request: web.Request) -> web.Response:
        """The page's SDP offer with its portrait and settings -> the answer; a stream starts."""
        try:
            asked = await request.json()
            settings = SessionSettings.from_page(asked.get("settings") or {})
            offer = RTCSessionDescription(sdp=str(asked["sdp"]), type=str(asked["type"]))
        except (ValueError, KeyError, AttributeError, ControlRefused) as error:
            return web.json_response({"error": f"a malformed start request: {error}"}, status=400)
        target = self.portraits.get(str(asked.get("portrait")))
        if target is None:
            return web.json_response({"error": "choose a portrait first (the one chosen before was forgotten)"}, status=400)
        if len(self.sessions) >= self.config.max_sessions:
            message = f"this server already runs {len(self.sessions)} streams, its most; try again when one ends"
            return web.json_response({"error": message}, status=503)
        loop = asyncio.get_running_loop()
        try:
            transfer = await loop.run_in_executor(None, self.config.open_transfer, target, settings)
        except Exception as error:  # the engine or the worker refused: said on the page, the server goes on
            return web.json_response({"error": f"the stream could not start: {error}"}, status=500)
        stream = _Stream(secrets.token_urlsafe(12), WebSession(transfer, OutputTrack(loop)), self.sessions)
        self.sessions[stream.id] = stream
        try:
            answer = await stream.connect(offer)
        except ValueError as error:  # aiortc's word for an offer it cannot take
            await stream.close()
            return web.json_response({"error": f"the browser's offer could not be answered: {error}"}, status=400)
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "session": stream.id})

    async def _close(self, request: web.Request) -> web.Response:
        try:
            session_id = str((await request.json()).get("session"))
        except (ValueError, AttributeError):
            session_id = ""
        stream = self.sessions.get(session_id)
        if stream is not None:
            await stream.close()
        return web.json_response({"closed": stream is not None})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"streams": len(self.sessions), "max_streams": self.config.max_sessions})

    def _example_paths(self) -> list[Path]:
        return sorted(path for path in self.config.examples.iterdir() if path.suffix.lower() in EXAMPLE_SUFFIXES)

    def _example(self, name: str) -> Path | None:
        return next((path for path in self._example_paths() if path.name == name), None)


class _Stream:
    """One browser's peer connection and its WebSession, in ``registry`` while open."""

    def __init__(self, stream_id: str, session: WebSession, registry: dict[str, _Stream]) -> None:
        self.id, self.session, self.registry = stream_id, session, registry
        self.connection = RTCPeerConnection()
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self.connection.on("track", self._on_track)
        self.connection.on("datachannel", self._on_channel)
        self.connection.on("connectionstatechange", self._on_state)

    async def connect(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        await self.connection.setRemoteDescription(offer)
        await self.connection.setLocalDescription(await self.connection.createAnswer())
        self.session.start()
        return self.connection.localDescription

    async def close(self) -> None:
        """Free the stream: its loop, its transfer, its connection; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self.registry.pop(self.id, None)
        for task in self._tasks:
            if task is not asyncio.current_task():  # the task closing goes on to the end of this
                task.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self.session.close)
        await self.connection.close()

    def _on_track(self, track) -> None:
        if track.kind != "video":
            return
        self.connection.addTrack(self.session.output)
        self._tasks.append(asyncio.ensure_future(self._read_camera(track)))

    async def _read_camera(self, track) -> None:
        try:
            while True:
                self.session.capture.push(await track.recv())
        except MediaStreamError:
            await self.close()

    def _on_channel(self, channel) -> None:
        channel.on("message", lambda message: self._on_control(channel, message))
        self._tasks.append(asyncio.ensure_future(self._send_figures(channel)))

    def _on_control(self, channel, message) -> None:
        try:
            text = self.session.control(json.loads(message))
            reply = {"type": "applied", "text": text}
        except (ControlRefused, ValueError, TypeError, AttributeError) as error:
            reply = {"type": "refused", "text": str(error)}
        channel.send(json.dumps(reply))

    async def _send_figures(self, channel) -> None:
        while not self.session.ended.is_set():
            if channel.readyState == "open":
                figures = self.session.figures() | {"sent_ms": _finite(self.session.output.sent_latency_ms)}
                channel.send(json.dumps({"type": "figures", **figures}))
            await asyncio.sleep(STATUS_INTERVAL_S)
        if channel.readyState == "open":
            channel.send(json.dumps({"type": "ended", "error": self.session.error}))
        await self.close()

    async def _on_state(self) -> None:
        if self.connection.connectionState in ("failed", "closed"):
            await self.close()


async def _body(request: web.Request, limit: int) -> bytes:
    """The request's body, all of it as it arrives, or its first ``limit`` bytes where longer."""
    received = bytearray()
    async for chunk in request.content.iter_chunked(UPLOAD_CHUNK_BYTES):
        received += chunk
        if len(received) >= limit:
            break
    return bytes(received[:limit])


def _static_file(name: str) -> web.Response:
    """A file of the page (static/), or 404; names with a folder are refused."""
    suffix = Path(name).suffix
    files = resources.files("rt_dtgan.web") / "static"
    if "/" in name or "\\" in name or suffix not in STATIC_TYPES or not (files / name).is_file():
        return web.Response(status=404, text="not found\n")
    return web.Response(body=(files / name).read_bytes(), content_type=STATIC_TYPES[suffix], headers={"Cache-Control": "no-store"})


def _finite(value: float) -> float | None:
    return None if value != value else round(value, 1)


async def serve(server: WebServer, bind: str, port: int, ready) -> None:
    """Serve ``server`` on ``bind``:``port`` (0: any free port) until cancelled; ``ready(port)``
    is called once it listens. Every stream is closed on the way out."""
    runner = web.AppRunner(server.app)
    await runner.setup()
    try:
        await web.TCPSite(runner, bind, port, ssl_context=server.config.access.tls).start()
        ready(runner.addresses[0][1])
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
