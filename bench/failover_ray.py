"""An engine replica killed with -9 under `rt-dtgan live --remote`, served by `serve --ray local`:
does the stream complete, and how many of its frames differ from a local transfer?

    python bench/failover_ray.py --source clip.mp4 --target face.jpg --json bench/results/failover-ray.json

Everything runs as a user would run it, through the command line: `rt-dtgan serve --ray local`
(the shipped model, two replicas), `rt-dtgan transfer` of the clip to a Y4M file, and
`rt-dtgan live --remote ... --no-pace` of the same clip to another. While live runs, the
replica serving the stream is found by its process title (``ray::EngineReplica.step_many``,
Ray's name for an actor process running that method) and killed with SIGKILL. Then the two
videos are compared frame by frame, and the edge's failover log lines are kept, with the
client's own outages (its status line saying ``outage``: no reply for its 2 s reply timeout,
after which it reopens the stream from its anchor, so W frames differ whatever the edge does).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, source_state, write_json  # noqa: E402

from rt_dtgan.transport import ClientConfig, StreamClient  # noqa: E402
from rt_dtgan.transport.addresses import free_address  # noqa: E402

BUSY_TITLE = "ray::EngineReplica.step_many"
HANG_S = 300.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="a driving clip")
    parser.add_argument("--target", required=True, help="a portrait")
    parser.add_argument("--kill-after", type=int, default=60, help="frames written by live before the kill")
    parser.add_argument("--runs", type=int, default=3, help="runs, each with its own edge and kill")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rt_dtgan", *args]


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def busy_replicas() -> set[int]:
    """Pids of processes whose title says an EngineReplica is stepping."""
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return {int(line.split()[0]) for line in listing.splitlines() if BUSY_TITLE in line}


def written_frames(path: Path) -> int:
    return path.read_bytes().count(b"FRAME\n") if path.exists() else 0


def kill_the_busy_replica(live: subprocess.Popen, out: Path, after_frames: int) -> dict:
    """Once live has written ``after_frames``, SIGKILL the replica seen stepping -> what was killed, when."""
    deadline = time.monotonic() + HANG_S
    seen: set[int] = set()
    while written_frames(out) < after_frames or not seen:
        if live.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("live ended, or never reached the kill, before a replica was seen stepping")
        seen = busy_replicas() or seen
        time.sleep(0.01)
    victim = max(seen)
    frame = written_frames(out)
    subprocess.run(["kill", f"-{signal.SIGKILL.value}", str(victim)], check=True)
    return {"pid": victim, "title": BUSY_TITLE, "frames_written_at_kill": frame}


def one_run(args: argparse.Namespace, expected: list[np.ndarray], folder: Path) -> dict:
    """serve --ray local, live --remote through it, a replica killed -> the run's figures."""
    address = free_address()
    remote, edge_log, live_log = (folder / name for name in ("remote.y4m", "edge.log", "live.log"))
    remote.unlink(missing_ok=True)
    with edge_log.open("w") as log_file:
        edge = subprocess.Popen(cli("serve", "--ray", "local", "--bind", address), stderr=log_file)
    try:
        with StreamClient(ClientConfig(address=address)) as probe:
            probe.connect(timeout_s=HANG_S)
        live_args = ["live", "--remote", address, "--source", args.source, "--target", args.target, "--no-pace"]
        with live_log.open("w") as live_file:
            live = subprocess.Popen(cli(*live_args, "--output", str(remote)), stderr=live_file)
            kill = kill_the_busy_replica(live, remote, args.kill_after)
            status = live.wait(timeout=HANG_S)
    finally:
        edge.send_signal(signal.SIGINT)
        edge.wait(timeout=60)
    got = frames_of(remote)
    differing = [i for i, (a, b) in enumerate(zip(expected, got)) if not np.array_equal(a, b)]
    run = {
        "live_exit_status": status,
        "frames_remote": len(got),
        "frames_differing": differing,
        "largest_difference": max((int(np.abs(expected[i].astype(int) - got[i]).max()) for i in differing), default=0),
        "kill": kill,
        "edge_log": [re.sub(r"^\S+ ", "", line) for line in edge_log.read_text().splitlines() if "failover" in line or "lost" in line],
        "client_outage_lines": sorted({line.strip() for line in re.split(r"[\r\n]", live_log.read_text()) if "outage" in line}),
    }
    print(f"live exited {status}; {len(got)} of {len(expected)} frames; {len(differing)} differ from the local transfer "
          f"(frames {differing}, largest difference {run['largest_difference']} of 255); killed {kill}")
    for line in run["edge_log"]:
        print("edge:", line)
    for line in run["client_outage_lines"]:
        print("client:", line)
    return run


def main() -> None:
    args = parse_args()
    with TemporaryDirectory() as folder:
        local = Path(folder) / "local.y4m"
        subprocess.run(cli("transfer", "--source", args.source, "--target", args.target, "--out", str(local)), check=True)
        expected = frames_of(local)
        runs = [one_run(args, expected, Path(folder)) for _ in range(args.runs)]
    write_json(args.json, {
        "benchmark": "ray replica killed with -9 under live --remote",
        "environment": environment(),
        "commit": source_state(),
        "source": Path(args.source).name,
        "target": Path(args.target).name,
        "frames_local": len(expected),
        "runs": runs,
    })


if __name__ == "__main__":
    main()
