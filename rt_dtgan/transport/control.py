"""``ControlChannel``: commands for a running ``rt-dtgan live`` from other programs (a hotkey
tool, a stream deck), the same requests as the preview window's hotkeys (``WindowAction``)."""

from __future__ import annotations

import json

import zmq

from rt_dtgan.media.window import WindowAction
from rt_dtgan.transport.security import SecurityError, is_local_address

CONTROL_COMMANDS = tuple(action.value for action in WindowAction)


class ControlChannel:
    """A ZeroMQ REP socket on loopback taking JSON ``{"command": "recalibrate" | "mirror" |
    "quit"}`` and answering ``{"ok": true}`` or ``{"ok": false, "error": "..."}``."""

    def __init__(self, address: str) -> None:
        if not is_local_address(address):
            raise SecurityError(f"the control channel binds to this machine only (tcp://127.0.0.1:PORT or ipc://PATH), not {address}")
        self.socket = zmq.Context.instance().socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, 4096)
        self.socket.bind(address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def poll(self) -> list[str]:
        """The commands received since the last call, without waiting (called every frame)."""
        commands = []
        while self.socket.poll(0, zmq.POLLIN):
            try:
                command = json.loads(self.socket.recv())["command"]
                if command not in CONTROL_COMMANDS:
                    raise ValueError(f"unknown command {command!r}; known: {list(CONTROL_COMMANDS)}")
            except (ValueError, KeyError, TypeError) as error:
                self.socket.send_json({"ok": False, "error": str(error)})
                continue
            commands.append(command)
            self.socket.send_json({"ok": True})
        return commands

    def close(self) -> None:
        self.socket.close()
