"""Native libraries' log lines kept off the terminal.

MediaPipe (absl logging), its TensorFlow Lite runtime and absl itself write lines such as
``W0000 00:00:... inference_feedback_manager.cc:114] ...`` and ``INFO: Created TensorFlow
Lite XNNPACK delegate for CPU.`` straight to file descriptor 2, from C++, where no Python
logging setting reaches. ``quiet_native_logs`` puts a pipe on descriptor 2 and a thread that
forwards every line but those; Python's own ``sys.stderr`` (status lines, progress bars,
errors) keeps writing to the terminal directly, unbuffered.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading

NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"  # absl / glog: severity, date, time, thread, file:line]
    rb"|INFO: Created TensorFlow Lite"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)


def quiet_native_logs() -> None:
    """From now on, drop native log lines written to descriptor 2 (call once, early)."""
    terminal = os.dup(2)
    sys.stderr.flush()
    sys.stderr = io.TextIOWrapper(io.FileIO(terminal, "w", closefd=False), write_through=True, errors="backslashreplace")
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    threading.Thread(target=_forward, args=(read_end, terminal), daemon=True, name="native-log-filter").start()


def _forward(read_end: int, terminal: int) -> None:
    """Copy lines from ``read_end`` to ``terminal``, leaving out native log lines."""
    pending = b""
    while chunk := os.read(read_end, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        kept = [line + b"\n" for line in lines if not NATIVE_LOG_LINE.match(line)]
        if kept:
            os.write(terminal, b"".join(kept))
    if pending and not NATIVE_LOG_LINE.match(pending):
        os.write(terminal, pending)
