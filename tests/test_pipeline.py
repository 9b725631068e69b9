"""The user-facing path: transfer and live give the same frames, locally and through a
worker; a lost face holds the output and leaves the engine alone; real clips go through."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import decoded, make_lively_model

from rt_dtgan.cli import main
from rt_dtgan.face import FaceTracker, load_target
from rt_dtgan.media import BlockingCapture, CaptureEnded, open_source
from rt_dtgan.models.checkpoint import save_checkpoint
from rt_dtgan.pipeline import FaceTransfer, LocalDriver, SteppingStage, TrackingStage, synthetic_source_factory
from rt_dtgan.runtime.backends import TorchBackend
from rt_dtgan.runtime.engine import StreamEngine

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SOURCE, TARGET = "synthetic:3", "synthetic:1000004"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("model") / "lively.safetensors", make_lively_model(64))


def test_transfer_writes_one_frame_per_source_frame_at_the_source_rate(checkpoint, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert (
        main(["transfer", "--checkpoint", str(checkpoint), "--source", SOURCE, "--target", TARGET, "--out", str(out), "--frames", "24"])
        == 0
    )
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (256, 256, 30)
    assert len(decoded(out)) == 24
    assert "face found in 24 (100.0%)" in capsys.readouterr().err


def test_live_without_pacing_equals_transfer_locally_and_through_a_worker(checkpoint, tmp_path):
    from rt_dtgan.transport import Worker, WorkerConfig

    common = ["--checkpoint", str(checkpoint), "--source", SOURCE, "--target", TARGET, "--frames", "16"]
    assert main(["transfer", *common, "--out", str(tmp_path / "offline.y4m")]) == 0
    assert main(["live", *common, "--no-pace", "--output", str(tmp_path / "live.y4m")]) == 0
    worker = Worker(WorkerConfig(bind="tcp://127.0.0.1:0"), StreamEngine(TorchBackend(make_lively_model(64))))
    thread = threading.Thread(target=worker.serve_forever, daemon=True)
    thread.start()
    try:
        remote = ["--remote", worker.address, "--source", SOURCE, "--target", TARGET, "--frames", "16", "--no-pace"]
        assert main(["live", *remote, "--output", str(tmp_path / "remote.y4m")]) == 0
    finally:
        worker.stop()
        thread.join(timeout=10)
    offline = decoded(tmp_path / "offline.y4m")
    assert len(offline) == 16
    for name in ("live.y4m", "remote.y4m"):
        other = decoded(tmp_path / name)
        assert len(other) == 16 and all(np.array_equal(a, b) for a, b in zip(offline, other)), name


def test_an_automatic_reference_gives_the_same_frames_offline_and_live(checkpoint, tmp_path):
    common = ["--checkpoint", str(checkpoint), "--source", SOURCE, "--target", TARGET, "--frames", "70", "--auto-reference"]
    assert main(["transfer", *common, "--out", str(tmp_path / "offline.y4m")]) == 0
    assert main(["live", *common, "--no-pace", "--output", str(tmp_path / "live.y4m")]) == 0
    assert main(["transfer", *common[:-1], "--out", str(tmp_path / "first.y4m")]) == 0
    offline, live, first = (decoded(tmp_path / name) for name in ("offline.y4m", "live.y4m", "first.y4m"))
    assert len(offline) == 70 and all(np.array_equal(a, b) for a, b in zip(offline, live))
    # Until the window closes (2 s: frame 60) the first frame is y0; then the picked face is.
    assert all(np.array_equal(a, b) for a, b in zip(offline[:60], first[:60]))
    assert not np.array_equal(offline[-1], first[-1])


def _local_transfer(model) -> FaceTransfer:
    from rt_dtgan.pipeline import load_target_spec

    target = load_target_spec(TARGET, model.config.preprocess)
    return FaceTransfer(LocalDriver(StreamEngine(TorchBackend(model)), target), target, FaceTracker(model.config.preprocess))


def test_tracking_and_the_engine_on_their_own_threads_give_the_frames_of_one_thread_in_order():
    model = make_lively_model(64)
    serial = _local_transfer(model)
    with open_source(SOURCE, pace=False, synthetic_factory=synthetic_source_factory(12)) as source:
        expected = [serial.process(frame)[0] for frame in source]
    serial.close()
    staged = _local_transfer(model)
    outputs = []
    with open_source(SOURCE, pace=False, synthetic_factory=synthetic_source_factory(12)) as source:
        with BlockingCapture(source) as capture:
            tracking = TrackingStage(staged, capture)
            stepping = SteppingStage(staged, tracking)
            with pytest.raises(CaptureEnded):
                while True:
                    stepped = stepping.get(timeout=10)
                    outputs.append((stepped.item.frame.index, staged.draw(stepped)[0]))
            stepping.close()
            tracking.close()
    staged.close()
    assert [index for index, _ in outputs] == list(range(12))
    assert all(np.array_equal(a, b) for a, (_, b) in zip(expected, outputs))


@pytest.mark.parametrize("broken", ["track", "step"])
def test_a_tracking_or_engine_error_reaches_the_drawing_thread(broken):
    class Broken:
        def track(self, frame):
            if broken == "track":
                raise ValueError("tracker broke")
            return frame

        def step(self, item):
            raise ValueError("engine broke")

        def interrupt(self) -> None:
            pass

    with open_source(SOURCE, pace=False, synthetic_factory=synthetic_source_factory(3)) as source:
        with BlockingCapture(source) as capture:
            tracking = TrackingStage(Broken(), capture)
            stepping = SteppingStage(Broken(), tracking)
            for _ in range(2):  # and keeps raising it
                with pytest.raises(ValueError, match=f"{'tracker' if broken == 'track' else 'engine'} broke"):
                    stepping.get(timeout=10)
            stepping.close()
            tracking.close()


def test_a_lost_face_holds_the_output_and_leaves_the_engine_alone(tmp_path):
    from rt_dtgan.pipeline import load_target_spec

    model = make_lively_model(64)
    engine = StreamEngine(TorchBackend(model))
    target = load_target_spec(TARGET, model.config.preprocess)
    transfer = FaceTransfer(LocalDriver(engine, target), target, FaceTracker(model.config.preprocess))
    with open_source("lavfi:testsrc=size=160x120:rate=30", pace=False) as source:
        for _, frame in zip(range(5), source):
            image, report = transfer.process(frame)
            assert not report.found and report.reason
            assert image is target.image
    assert engine.frames_seen(transfer.driver.stream) == 0
    transfer.close()


def test_an_image_without_a_face_is_a_clear_error(checkpoint, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    with av.open(str(blank), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 200, np.uint8), format="rgb24")):
            container.mux(packet)
    argv = ["transfer", "--checkpoint", str(checkpoint), "--source", SOURCE, "--target", str(blank), "--out", str(tmp_path / "o.mp4")]
    assert main(argv) == 1
    assert "no face found in" in capsys.readouterr().err


@pytest.mark.heavy
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real is absent")
@pytest.mark.parametrize("clip", sorted(p.name for p in (REAL / "driving").glob("*.mp4")) if REAL.is_dir() else [])
def test_every_real_clip_goes_through_transfer(checkpoint, tmp_path, capsys, clip):
    source = REAL / "driving" / clip
    target = REAL / "targets" / "tpsmm_source.png"
    out = tmp_path / "out.mp4"
    assert main(["transfer", "--checkpoint", str(checkpoint), "--source", str(source), "--target", str(target), "--out", str(out)]) == 0
    with av.open(str(source)) as container:
        source_frames = sum(1 for _ in container.decode(video=0))
    assert len(decoded(out)) == source_frames
    err = capsys.readouterr().err
    found = int(err.split("face found in ")[1].split(" ")[0])
    assert found >= 0.95 * source_frames
    assert load_target(target).image.shape[:2] == decoded(out)[0].shape[:2]


def test_visualize_draws_the_dynamics_beside_the_source_face(checkpoint, tmp_path):
    out = tmp_path / "dynamics.mp4"
    assert main(["visualize", "--checkpoint", str(checkpoint), "--source", SOURCE, "--frames", "12", "--out", str(out)]) == 0
    frames = decoded(out)
    assert len(frames) == 12 and frames[0].shape == (64, 128, 3)
    assert any(not np.array_equal(frames[0][:, 64:], frame[:, 64:]) for frame in frames[1:]), "the dynamics half must move"


def test_control_channel_recalibrates_and_quits_a_running_live(checkpoint, tmp_path):
    """A recalibrate makes the next frame the anchor y0, so that it gives the neutral output
    again, as frame 0 did; quit ends the run."""
    import json
    import socket
    import time

    import zmq

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    out = tmp_path / "live.y4m"
    argv = ["live", "--checkpoint", str(checkpoint), "--source", SOURCE, "--target", TARGET, "--no-pace"]
    argv += ["--control", address, "--output", str(out)]
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("status", main(argv)), daemon=True)
    runner.start()

    def written() -> list[bytes]:
        """The frames in the output so far, as Y4M payloads (the last one may be partial)."""
        return out.read_bytes().split(b"FRAME\n")[1:] if out.exists() else []

    def wait_for(condition, what: str) -> list[bytes]:
        deadline = time.monotonic() + 60
        while not condition(frames := written()):
            assert runner.is_alive() and time.monotonic() < deadline, f"live did not write {what}"
            time.sleep(0.05)
        return frames

    requester = zmq.Context.instance().socket(zmq.REQ)
    requester.setsockopt(zmq.LINGER, 0)
    requester.setsockopt(zmq.RCVTIMEO, 60_000)
    requester.connect(address)

    def ask(command: str) -> dict:
        requester.send_json({"command": command})
        return json.loads(requester.recv())

    before = len(wait_for(lambda frames: len(frames) >= 3, "3 frames"))
    recalibrated = ask("recalibrate")
    acknowledged = len(written())
    wait_for(lambda frames: frames[0] in frames[before:], "frame 0's neutral output again after the recalibrate")
    unknown, quitted = ask("dance"), ask("quit")
    requester.close()
    runner.join(timeout=60)
    assert not runner.is_alive() and result["status"] == 0
    assert recalibrated == {"ok": True} and quitted == {"ok": True}
    assert unknown["ok"] is False and "unknown command 'dance'" in unknown["error"]
    frames = decoded(out)
    # Only an anchor's frame gives exactly the neutral output: frame 0, and the one after the
    # frame on which the command was read. The output is written on its own thread, up to
    # three frames behind the loop that answered.
    neutral = [index for index, frame in enumerate(frames) if np.array_equal(frame, frames[0])]
    assert len(neutral) == 2 and before <= neutral[1] <= acknowledged + 3, (before, neutral, acknowledged)
