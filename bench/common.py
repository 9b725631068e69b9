"""Shared by the bench scripts: percentiles, the machine description, the table and JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch


def percentiles(seconds: list[float]) -> dict[str, float]:
    """Latency figures in milliseconds: p50, p95, p99 and the mean."""
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def environment() -> dict[str, str]:
    """The device and versions a figure was measured with."""
    import onnxruntime

    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"{_cpu_name()}, {os.cpu_count()} logical CPUs"
    return {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def source_state() -> str:
    """The commit the figures come from, with ' (uncommitted changes)' where the checkout
    differs from it: a figure for the docs comes from a clean one."""

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    return commit + (" (uncommitted changes)" if git("status", "--porcelain") else "")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(_cell(row.get(c)).rjust(w) for c, w in zip(columns, widths)))


def _cell(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write_json(path: str | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {path}")


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of this process's live threads, summed by Python thread
    name; threads Python did not start (ONNX Runtime's, MediaPipe's, the codec's) count under
    "native". Linux (/proc)."""
    import threading

    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the thread ended while we looked
        name = names.get(int(task.name), "native")
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return totals
