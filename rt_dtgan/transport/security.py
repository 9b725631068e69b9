"""Who may talk to a worker or broker: loopback only, unless CURVE keys say otherwise.

A server key directory (``--curve-dir``) holds the server's certificate pair
``server.key`` / ``server.key_secret`` and a folder ``authorized_clients/`` of client
public certificates (``*.key``), all as written by ``generate_keys``. A client needs its
own ``NAME.key_secret`` and the server's public ``server.key``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from rt_dtgan.config import ConfigError

SERVER_KEY_NAME = "server"
AUTHORIZED_CLIENTS_DIR = "authorized_clients"
_KEY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_LOCAL_HOSTS = ("localhost",)


class SecurityError(ConfigError):
    """A socket would be exposed without encryption, or its keys are missing or unreadable."""


def generate_keys(directory: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write a CURVE certificate pair ``directory/name.key`` (public, to share) and
    ``directory/name.key_secret`` (secret, mode 0600). Refuses to overwrite. Returns both paths."""
    if not _KEY_NAME.match(name):
        raise SecurityError(f"key name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise SecurityError(f"{path} exists already; remove it first or choose another name")
    public_file, secret_file = zmq.auth.create_certificates(str(directory), name)
    os.chmod(secret_file, 0o600)
    return Path(public_file), Path(secret_file)


def is_local_address(address: str) -> bool:
    """True for ipc:// and inproc:// endpoints and tcp:// on a loopback host (127.0.0.0/8,
    ::1, localhost); False for anything else, wildcards ('*', 0.0.0.0) included."""
    transport, _, rest = address.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp" or not rest:
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ClientKeys:
    """A client's CURVE keys: its own secret certificate and the server's public one."""

    secret_file: Path
    server_public_file: Path

    def __post_init__(self) -> None:
        for path in (self.secret_file, self.server_public_file):
            if not Path(path).is_file():
                raise SecurityError(f"CURVE key file {path} does not exist")


def check_exposure(address: str, encrypted: bool, role: str) -> None:
    """Refuse to bind ``address`` beyond this machine without CURVE, with a message that says what to do."""
    if not encrypted and not is_local_address(address):
        raise SecurityError(
            f"refusing to {role} {address} without encryption: a non-loopback address needs CURVE keys. "
            "Make them with `rt-dtgan keys --out DIR --name server`, put each client's public NAME.key "
            f"into DIR/{AUTHORIZED_CLIENTS_DIR}/ and pass --curve-dir DIR; or bind tcp://127.0.0.1:PORT or ipc://PATH"
        )


def start_authenticator(context: zmq.Context, curve_dir: str | os.PathLike) -> ThreadAuthenticator:
    """Admit to ``context``'s CURVE servers only the clients whose public keys are in
    ``curve_dir/authorized_clients`` (read now; restart to pick up new keys). Stop it on close."""
    allowed = Path(curve_dir) / AUTHORIZED_CLIENTS_DIR
    if not allowed.is_dir() or not any(allowed.glob("*.key")):
        raise SecurityError(f"{allowed} holds no client public keys (*.key); no client could connect")
    _load_pair(Path(curve_dir) / f"{SERVER_KEY_NAME}.key_secret")
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(allowed))
    return authenticator


def secure_server(socket: zmq.Socket, curve_dir: str | os.PathLike) -> None:
    """Make ``socket`` (not yet bound) a CURVE server with the key pair in ``curve_dir``."""
    public, secret = _load_pair(Path(curve_dir) / f"{SERVER_KEY_NAME}.key_secret")
    socket.curve_server = True
    socket.curve_publickey, socket.curve_secretkey = public, secret


def secure_client(socket: zmq.Socket, keys: ClientKeys) -> None:
    """Make ``socket`` (not yet connected) a CURVE client of the server whose public key ``keys`` names."""
    public, secret = _load_pair(Path(keys.secret_file))
    server_public, _ = _load(Path(keys.server_public_file))
    socket.curve_publickey, socket.curve_secretkey = public, secret
    socket.curve_serverkey = server_public


def _load_pair(secret_file: Path) -> tuple[bytes, bytes]:
    public, secret = _load(secret_file)
    if secret is None:
        raise SecurityError(f"{secret_file} holds no secret key; it must be a NAME.key_secret file from `rt-dtgan keys`")
    return public, secret


def _load(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise SecurityError(f"CURVE key file {path} does not exist; make keys with `rt-dtgan keys`")
    try:
        return zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as error:
        raise SecurityError(f"{path} is not a zmq certificate file: {error}") from error
