"""A quit, a `q` or Ctrl-C ends the frame loop within STOP_S whatever is stalled (issue 27):
a source that stopped sending, an engine busy with a step, a remote worker killed or one
that stopped replying; the loop tells its hooks which. In-process through
``pipeline.run_frames``, then through ``rt-dtgan live`` itself: a worker killed with -9
under ``--remote --no-pace`` and Ctrl-C, the mp4 still playable; a stalled source and a
``quit`` on the control channel. Each asserts the deadline; none sleeps for it."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import zmq
from conftest import HANG_S, decoded, new_worker

from rt_dtgan.media import Sink, open_capture
from rt_dtgan.media.source import Source
from rt_dtgan.pipeline import FaceTransfer, FrameHooks, run_frames
from rt_dtgan.transport import ClientConfig, RemoteDriver, StreamClient

STOP_S = 2.0  # the promise: the loop, its threads and the transfer closed within this of a stop
SIZE, FPS, CROP = 32, 30, 64
# each stall -> what the loop says it waits on
STALLS = {
    "source, paced": "source",
    "source, unpaced": "source",
    "engine, in-process": "engine",
    "worker killed": "engine",
    "worker not replying": "engine",
}

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.timeout(2 * HANG_S)]  # a hang fails, not waits


class StallingSource(Source):
    """``frames`` frames, then a read that blocks until ``released`` (a camera that stopped sending)."""

    def __init__(self, frames: int, paced: bool, released: threading.Event) -> None:
        super().__init__("stalling source", FPS if paced else None)
        self.frames, self.released = frames, released

    @property
    def fps(self) -> float:
        return FPS

    @property
    def size(self) -> tuple[int, int]:
        return SIZE, SIZE

    def _read(self) -> tuple[np.ndarray, float]:
        if self._next_index >= self.frames:
            self.released.wait()
            raise StopIteration
        return np.full((SIZE, SIZE, 3), self._next_index, np.uint8), self._next_index / FPS

    def _release(self) -> None:
        pass


class FaceEveryFrame:
    """A tracker that finds the same aligned face (a CROP px crop, no mesh) in every frame."""

    def __init__(self) -> None:
        self.face = SimpleNamespace(found=True, reason=None, crop=np.full((CROP, CROP, 3), 128, np.uint8), mesh=None)

    def locate(self, image, pts_s):
        return self.face

    def align(self, image, located):
        return self.face

    def close(self) -> None:
        pass


class StubDriver:
    """No result yet for any face; with ``hung``, a step blocks until it is set (an
    in-process engine that cannot be interrupted)."""

    link = None

    def __init__(self, hung: threading.Event | None = None) -> None:
        self.hung = hung

    def step(self, face):
        if self.hung is not None:
            self.hung.wait()
        return None

    def recalibrate(self, reference=None) -> None:
        pass

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


class NullSink(Sink):
    def __init__(self) -> None:
        super().__init__("null", SIZE, SIZE, FPS)

    def _write(self, frame) -> None:
        pass

    def _release(self) -> None:
        pass


class StopWhenStalled(FrameHooks):
    """Once the loop says what is stalled: a 'quit' request, or Ctrl-C (KeyboardInterrupt
    where the loop waits); ``stopped_at`` is when."""

    def __init__(self, how: str) -> None:
        self.how, self.stalled, self.stopped_at = how, [], None

    def waiting(self, stalled: str) -> bool:
        self.stalled.append(stalled)
        self.stopped_at = self.stopped_at or time.monotonic()
        if self.how == "ctrl-c":
            raise KeyboardInterrupt
        return True

    def requests(self) -> list[str]:
        return ["quit"] if self.stopped_at is not None else []


@contextlib.contextmanager
def stalled_transfer(stall: str, lively_model, released: threading.Event):
    """(transfer, capture) whose loop stalls as ``stall`` says, all closed on exit."""
    frames = 3 if stall.startswith("source") else None
    source = StallingSource(frames or 10_000, paced=stall != "source, unpaced", released=released)
    with contextlib.ExitStack() as stack:
        if stall.startswith("worker"):
            worker = new_worker(lively_model)
            serve = threading.Thread(target=worker.serve_forever, daemon=True)
            serve.start()
            stack.callback(serve.join, HANG_S)
            stack.callback(worker.stop)
            client = StreamClient(ClientConfig(address=worker.address))
            client.connect()
            driver = RemoteDriver(client, FaceEveryFrame().face, None, blocking=True)
            if stall == "worker killed":  # gone before the first frame: no reply will come
                worker.stop()
                serve.join(HANG_S)
            else:
                hang(worker, released)
        else:
            driver = StubDriver(released if stall == "engine, in-process" else None)
        stack.callback(released.set)  # last: lets what is still blocked end before the worker is joined
        yield FaceTransfer(driver, SimpleNamespace(image=np.zeros((SIZE, SIZE, 3), np.uint8)), FaceEveryFrame()), open_capture(source)


def hang(worker, released: threading.Event) -> None:
    """The worker's engine busy with its next frames until ``released``: it answers nothing meanwhile."""
    step_many = worker.engine.step_many

    def busy(frames):
        released.wait()
        return step_many(frames)

    worker.engine.step_many = busy


@pytest.mark.parametrize("how", ["quit", "ctrl-c"])
@pytest.mark.parametrize("stall", STALLS)
def test_a_stop_ends_the_loop_within_the_deadline_whatever_is_stalled(stall, how, lively_model):
    released = threading.Event()
    with stalled_transfer(stall, lively_model, released) as (transfer, capture):
        hooks = StopWhenStalled(how)
        with contextlib.suppress(KeyboardInterrupt):
            run_frames(transfer, capture, NullSink(), hooks, wait_s=0.2)
        transfer.close()
        capture.close()
        stopped_s = time.monotonic() - hooks.stopped_at
    assert stopped_s < STOP_S, f"{stall}: {how} took {stopped_s:.2f} s to end the loop and close"
    assert hooks.stalled[0] == STALLS[stall]


# -- rt-dtgan live ------------------------------------------------------------------------------

LIVE = [sys.executable, "-m", "rt_dtgan", "live", "--target", "synthetic:4"]


def _interruptible() -> None:
    """In a command's process before it starts: SIGINT back to its default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Command:
    """A running ``rt-dtgan`` command whose stderr (status lines end in \\r) is read line by line."""

    def __init__(self, argv: list[str]) -> None:
        # SIGINT as a terminal gives it, whatever this runner's own (a background job's is ignored,
        # and an ignored signal stays ignored across exec: Ctrl-C would then test nothing).
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=_interruptible
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            for part in line.replace("\r", "\n").splitlines():
                self.lines.put(part.strip())

    def wait_for(self, text: str, timeout_s: float = HANG_S) -> str:
        """The first line from now on that holds ``text``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.lines.get(timeout=0.05))
                if text in self.seen[-1]:
                    return self.seen[-1]
        raise AssertionError(f"no {text!r} within {timeout_s} s; last lines: {self.seen[-5:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ctrl_c_ends_live_within_the_deadline_after_its_remote_worker_is_killed(tmp_path):
    address, out = f"tcp://127.0.0.1:{free_port()}", tmp_path / "out.mp4"
    worker = Command([sys.executable, "-m", "rt_dtgan", "serve", "--bind", address])
    live = None
    try:
        worker.wait_for("serving")
        live = Command([*LIVE, "--source", "synthetic:3", "--remote", address, "--no-pace", "--output", str(out)])
        live.wait_for("remote streaming")  # frames flow through the worker
        worker.process.send_signal(signal.SIGKILL)
        live.wait_for("waiting for the engine: remote outage")
        live.process.send_signal(signal.SIGINT)
        stopped_at = time.monotonic()
        assert live.process.wait(timeout=STOP_S) == 0, f"Ctrl-C took over {STOP_S} s"
        assert time.monotonic() - stopped_at < STOP_S
    finally:
        for command in (worker, live):
            if command is not None:
                command.stop()
    assert len(decoded(out)) > 0, "the mp4 is complete and plays"


def test_quit_on_the_control_channel_ends_live_within_the_deadline_while_its_source_is_stalled(tmp_path):
    control = f"ipc://{tmp_path / 'control'}"
    # one frame at once, the next after 60 s: a camera that stopped sending
    live = Command([*LIVE, "--source", "lavfi:testsrc2=size=320x240:rate=1/60", "--output", "null", "--control", control])
    try:
        live.wait_for("waiting for the source")
        with zmq.Context() as context, context.socket(zmq.REQ) as requests:
            requests.connect(control)
            requests.send_json({"command": "quit"})
            stopped_at = time.monotonic()
            assert requests.poll(int(STOP_S * 1000)) and json.loads(requests.recv()) == {"ok": True}
            assert live.process.wait(timeout=STOP_S) == 0, f"quit took over {STOP_S} s"
            assert time.monotonic() - stopped_at < STOP_S
    finally:
        live.stop()
