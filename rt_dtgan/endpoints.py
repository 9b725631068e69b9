"""Network addresses as rt-dtgan takes them, checked without opening anything: ZeroMQ endpoints
(``tcp://HOST:PORT``, ``ipc://PATH``, ``inproc://NAME``) and ``udp://HOST:PORT``. Imports
nothing, so the command line's parsers and every layer can use it."""

from __future__ import annotations

from dataclasses import dataclass

MAX_PORT = 65535
ANY_PORT = "*"  # ZeroMQ's bind to any free port
ZMQ_SCHEMES = ("tcp", "ipc", "inproc")


@dataclass(frozen=True)
class Endpoint:
    """A parsed address: ``scheme`` (tcp, udp, ipc, inproc), ``host`` and ``port`` for the
    network ones (``port`` None for ``*``), ``path`` for ipc and inproc."""

    scheme: str
    host: str = ""
    port: int | None = None
    path: str = ""


def parse_endpoint(address: str, schemes: tuple[str, ...] = ZMQ_SCHEMES, any_port: bool = True) -> Endpoint:
    """-> the Endpoint that ``address`` names; ValueError, one sentence, when it is not one of
    ``schemes`` or its port is not 1 to 65535 (``*`` also where ``any_port``). A udp address
    may end in ?OPTIONS."""
    scheme, separator, rest = address.partition("://")
    written = " or ".join(_EXAMPLES[name] for name in schemes)
    if not separator or scheme not in schemes:
        raise ValueError(f"an address is {written}; got {address!r}")
    if scheme in ("ipc", "inproc"):
        if not rest.strip():
            raise ValueError(f"{address!r} names no {'path' if scheme == 'ipc' else 'name'}")
        return Endpoint(scheme, path=rest)
    if scheme == "udp":
        rest = rest.partition("?")[0]
    host, colon, port = rest.rpartition(":")
    if not colon or not host or host != host.strip() or (host.startswith("[") != host.endswith("]")):
        raise ValueError(f"an address is {written}; got {address!r}")
    if any_port and port == ANY_PORT:
        return Endpoint(scheme, host.strip("[]"))
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= MAX_PORT):
        anything = f", or {ANY_PORT} for any free one" if any_port else ""
        raise ValueError(f"the port of {address!r} must be a number from 1 to {MAX_PORT}{anything}")
    return Endpoint(scheme, host.strip("[]"), int(port))


def port_of(address: str) -> int | None:
    """The port number of a tcp or udp address; None for ``*``, ipc and inproc."""
    return parse_endpoint(address, (*ZMQ_SCHEMES, "udp")).port


_EXAMPLES = {"tcp": "tcp://HOST:PORT", "udp": "udp://HOST:PORT", "ipc": "ipc://PATH", "inproc": "inproc://NAME"}
