"""The transport's default addresses, both on loopback, and a free one (imports nothing of
rt_dtgan, so the CLI's parsers can show them)."""

import socket

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"  # where clients find the engine: a worker's bind, or a broker's front
DEFAULT_BROKER_BACK = "tcp://127.0.0.1:5556"  # where workers join a broker


def free_address(host: str = "127.0.0.1") -> str:
    """tcp://HOST:PORT on a port that is free now (the system's choice)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return f"tcp://{host}:{probe.getsockname()[1]}"
