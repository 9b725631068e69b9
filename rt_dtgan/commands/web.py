"""`rt-dtgan web`: the page that animates a portrait from the browser's camera (rt_dtgan.web)."""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
from pathlib import Path

from rt_dtgan.commands.common import add_model_arguments, connect_address, engine_from_arguments, existing_file, host, integer
from rt_dtgan.commands.stream import add_face_arguments, connect_remote, face_transfer

DEFAULT_PORT = 7860
WEB_PORTRAIT_SIZE = 640  # the output is encoded for the browser at the portrait's size, each frame
MAX_SESSIONS = 64


def add_parsers(commands) -> None:
    web = commands.add_parser(
        "web",
        help="a web page: the browser's camera drives a portrait, shown live beside it",
        description="Serves one page on loopback (HTTP) unless --bind names another address; there it needs the "
        "token it prints, over HTTPS (--cert and --key, or a self-signed certificate made at start).",
    )
    web.add_argument("--port", type=integer(0, 65535), default=DEFAULT_PORT, help="port (default: %(default)s; 0: any free one)")
    web.add_argument("--bind", type=host, default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    web.add_argument("--remote", type=connect_address, help="run the engine on a worker (rt-dtgan serve) at this address")
    web.add_argument("--cert", type=existing_file, help="HTTPS certificate (PEM) for --bind beyond loopback (default: self-signed)")
    web.add_argument("--key", type=existing_file, help="the certificate's private key (PEM)")
    web.add_argument(
        "--max-sessions", type=integer(1, MAX_SESSIONS), default=4, help="browser streams open at once (default: %(default)s)"
    )
    add_face_arguments(web, portrait_size=WEB_PORTRAIT_SIZE)
    add_model_arguments(web)
    web.set_defaults(handler=run_web)


def run_web(args: argparse.Namespace) -> int:
    import asyncio

    from rt_dtgan.commands.common import UsageError
    from rt_dtgan.optional import require

    require("aiortc", "rt-dtgan web")
    from rt_dtgan.web.security import access_for
    from rt_dtgan.web.server import WebConfig, WebServer, serve

    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert and --key go together")
    with tempfile.TemporaryDirectory(prefix="rt-dtgan-web-") as folder:
        access = access_for(args.bind, args.cert, args.key, Path(folder))
        preprocess, open_transfer = _transfer_opener(args)
        config = WebConfig(preprocess, open_transfer, access, _examples(), args.portrait_size or None, args.max_sessions)
        server = WebServer(config)

        def ready(port: int) -> None:
            shown = {"127.0.0.1": "localhost", "0.0.0.0": socket.gethostname(), "::": socket.gethostname()}.get(args.bind, args.bind)
            token = f"/?token={access.token}" if access.token else "/"
            print(f"rt-dtgan web: open {access.scheme}://{shown}:{port}{token}  (Ctrl-C stops)", file=sys.stderr, flush=True)

        try:
            asyncio.run(serve(server, args.bind, args.port, ready))
        except KeyboardInterrupt:
            pass
    return 0


def _transfer_opener(args: argparse.Namespace):
    """-> (the model's PreprocessConfig, open(target, settings) -> FaceTransfer): sessions share
    the in-process engine, or each has its own stream on the --remote worker."""
    if args.remote:
        from rt_dtgan.transport import RemoteDriver

        probe, config = connect_remote(args)
        probe.close()

        def open_remote(target, settings):
            client, _ = connect_remote(args, quiet=True)
            driver = RemoteDriver(client, target, None, blocking=False, strength=settings.strength)
            return face_transfer(_with_strength(args, settings.strength), config, driver, target, settings.mirror, settings.pose)

        return config, open_remote

    from rt_dtgan.web.engines import SharedEngineDriver

    engine, _ = engine_from_arguments(args)
    lock = threading.Lock()

    def open_local(target, settings):
        driver = SharedEngineDriver(engine, lock, target, settings.strength)
        session_args = _with_strength(args, settings.strength)
        return face_transfer(session_args, engine.backend.config.preprocess, driver, target, settings.mirror, settings.pose)

    return engine.backend.config.preprocess, open_local


def _with_strength(args: argparse.Namespace, strength: float) -> argparse.Namespace:
    """The arguments with the page's expression strength for --strength (the look follows it too)."""
    return argparse.Namespace(**{**vars(args), "strength": strength})


def _examples() -> Path:
    """The folder of the portraits shipped as examples."""
    from importlib import resources

    return Path(str(resources.files("rt_dtgan") / "assets" / "grid"))
