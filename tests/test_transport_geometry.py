"""The transport with a geometry model: faces travel with their meshes, results as the parts
of a KeypointMotion, and a remote stream gives what an in-process one gives, bit for bit.

Workers run in threads on tcp://127.0.0.1 with random ports; the model is a lively
geometry model at 64 px with the torch backend, driven by a realistic face mesh that moves.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
import zmq
from conftest import HANG_S, LOOPBACK, decoded, header, make_lively_geometry_model, new_worker, serving

from rt_dtgan.config import MESH_POINTS, PreprocessConfig
from rt_dtgan.models import DynamicsTransferGAN
from rt_dtgan.models.warp import MOVING_POINTS
from rt_dtgan.pipeline import FaceTransfer, LocalDriver, TrackedFrame
from rt_dtgan.runtime.backends import TorchBackend
from rt_dtgan.runtime.engine import Face, StreamEngine
from rt_dtgan.runtime.warping import KeypointMotion
from rt_dtgan.transport import (
    Broker,
    BrokerConfig,
    ClientConfig,
    ErrorCode,
    ModelInfo,
    ProtocolError,
    RemoteDriver,
    StreamClient,
)
from rt_dtgan.transport.protocol import JpegCodec, decode_motion, encode_motion

SIZE = 64
MESH_BYTES = MESH_POINTS * 2 * 4


# Each module's tests run torch on one thread, as a worker beside a tracker does.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def geometry_model() -> DynamicsTransferGAN:
    return make_lively_geometry_model()


@pytest.fixture(scope="module")
def portrait():
    from rt_dtgan.face import prepare_target
    from rt_dtgan.synth.dataset import synthetic_target

    return prepare_target(synthetic_target(5, 256), PreprocessConfig(size=SIZE))


def driving_faces(mesh: np.ndarray, count: int, seed: int) -> list[Face]:
    """``count`` faces: random crops, and ``mesh`` (float32 (MESH_POINTS, 2)) moving a little
    more each frame, as a face that talks."""
    rng = np.random.default_rng(seed)
    drift = np.cumsum(0.02 * rng.standard_normal((count, MESH_POINTS, 2)), axis=0)
    crops = rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)
    return [Face(crop, (mesh + step).astype(np.float32)) for crop, step in zip(crops, drift)]


def dealer(context: zmq.Context, address: str) -> zmq.Socket:
    """A bare DEALER speaking the protocol by hand, as a client in another language would."""
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(address)
    return socket


def request(socket: zmq.Socket, parts: list) -> tuple[dict, list[bytes]]:
    socket.send_multipart(parts)
    assert socket.poll(5000), "no reply"
    reply = socket.recv_multipart()
    return json.loads(reply[0]), reply[1:]


def assert_same_motion(remote: KeypointMotion, local: KeypointMotion) -> None:
    assert isinstance(remote, KeypointMotion) and remote.still == local.still
    for name in ("offsets", "grid", "mask", "colour"):
        expected, got = getattr(local, name), getattr(remote, name)
        assert (got is None) == (expected is None), name
        if expected is not None:
            assert got.dtype == expected.dtype and np.array_equal(got, expected), name


# -- streams --------------------------------------------------------------------------------


class Recording:
    """A StreamDriver that keeps what the driver it wraps gave per step."""

    def __init__(self, driver) -> None:
        self.driver, self.outputs = driver, []

    def step(self, face):
        self.outputs.append(self.driver.step(face))
        return self.outputs[-1]

    def recalibrate(self, reference=None) -> None:
        self.driver.recalibrate(reference)

    def close(self) -> None:
        self.driver.close()


def tracked(face: Face) -> TrackedFrame:
    """A frame whose face was found, as FaceTransfer.render takes it."""
    return TrackedFrame(None, SimpleNamespace(found=True, reason=None, crop=face.crop, mesh=face.mesh), 0.0, 0.0)


def drive(transfer: FaceTransfer, faces: list[Face], reference: Face) -> list[np.ndarray]:
    """Render every face; at frame 8 the reference becomes y0, at frame 14 the next frame does."""
    portraits = []
    for index, face in enumerate(faces):
        if index == 8:
            transfer.recalibrate(reference)
        elif index == 14:
            transfer.recalibrate()
        portraits.append(transfer.draw(transfer.step(tracked(face)))[0])
    return portraits


def test_a_remote_geometry_stream_equals_the_local_one_bit_for_bit(geometry_model, portrait):
    faces = driving_faces(portrait.mesh, 20, seed=1)
    reference = driving_faces(portrait.mesh, 1, seed=2)[0]
    local = Recording(LocalDriver(StreamEngine(TorchBackend(geometry_model)), portrait))
    expected = drive(FaceTransfer(local, portrait, tracker=None), faces, reference)
    with serving(new_worker(geometry_model)) as worker:
        client = StreamClient(ClientConfig(address=worker.address, reply_timeout_s=5.0))
        client.connect()
        assert client.model.warps and client.model.needs_mesh
        remote = Recording(RemoteDriver(client, portrait, None, blocking=True))
        rendered = drive(FaceTransfer(remote, portrait, tracker=None), faces, reference)
        remote.close()
    stills = [motion.still for motion in local.outputs]
    assert stills == [index in (0, 14) for index in range(20)], "y0 at frames 0 and 14, a reference from frame 8"
    assert np.abs(np.stack([m.offsets for m in local.outputs])).max() > 0.01, "the motion must move for this to mean anything"
    for remote_motion, local_motion in zip(remote.outputs, local.outputs, strict=True):
        assert_same_motion(remote_motion, local_motion)
    assert not np.array_equal(expected[1], portrait.image)
    for remote_portrait, local_portrait in zip(rendered, expected, strict=True):
        assert np.array_equal(remote_portrait, local_portrait)


def test_a_reference_and_a_strength_at_open_reach_the_worker(geometry_model, portrait):
    reference, *faces = driving_faces(portrait.mesh, 7, seed=3)
    local = LocalDriver(StreamEngine(TorchBackend(geometry_model)), portrait, reference, strength=0.5)
    with serving(new_worker(geometry_model)) as worker:
        client = StreamClient(ClientConfig(address=worker.address, reply_timeout_s=5.0))
        client.connect()
        remote = RemoteDriver(client, portrait, reference, blocking=True, strength=0.5)
        pairs = [(remote.step(face), local.step(face)) for face in faces]
        remote.close()
    assert not pairs[0][1].still, "with a reference, the first frame moves already"
    for remote_motion, local_motion in pairs:
        assert_same_motion(remote_motion, local_motion)


def test_jpeg_results_keep_the_motion_exact_and_the_colour_close(geometry_model, portrait):
    faces = driving_faces(portrait.mesh, 5, seed=4)
    local = LocalDriver(StreamEngine(TorchBackend(geometry_model)), portrait)
    with serving(new_worker(geometry_model)) as worker:
        config = ClientConfig(address=worker.address, result_format="jpeg", jpeg_quality=2, reply_timeout_s=5.0)
        with StreamClient(config) as client:
            client.open(portrait.crop, target_mesh=portrait.mesh)
            results = [client.process(face.crop, mesh=face.mesh) for face in faces]
    for result, face in zip(results, faces):
        expected = local.step(face)
        assert result.crop is None and result.generated is result.motion
        for name in ("offsets", "grid", "mask"):
            assert np.array_equal(getattr(result.motion, name), getattr(expected, name)), name
        if not expected.still:
            assert np.abs(result.motion.colour.astype(int) - expected.colour).mean() < 6


def test_a_reopened_stream_keeps_its_anchor_with_its_mesh(geometry_model, portrait):
    first, later = driving_faces(portrait.mesh, 2, seed=5)
    engine = StreamEngine(TorchBackend(geometry_model))
    stream = engine.open(portrait)
    engine.recalibrate(stream, first)  # the stream is reopened with its first frame as the anchor
    with serving(new_worker(geometry_model, idle_timeout_s=2.0)) as worker:
        with StreamClient(ClientConfig(address=worker.address, reply_timeout_s=5.0)) as client:
            client.open(portrait.crop, target_mesh=portrait.mesh)
            assert client.process(first.crop, mesh=first.mesh).motion.still
            deadline = time.monotonic() + HANG_S
            while worker.stream_ids and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not worker.stream_ids, "idle stream did not expire"
            reopened = client.process(later.crop, mesh=later.mesh, timeout_s=5)
            assert client.outages == 1
    assert_same_motion(reopened.motion, engine.step(stream, later))


def test_the_command_line_live_remote_equals_transfer_for_a_geometry_model(geometry_model, tmp_path):
    from rt_dtgan.cli import main
    from rt_dtgan.models.checkpoint import save_checkpoint

    checkpoint = save_checkpoint(tmp_path / "geometry.safetensors", geometry_model)
    common = ["--source", "synthetic:3", "--target", "synthetic:1000004", "--frames", "16"]
    assert main(["transfer", "--checkpoint", str(checkpoint), *common, "--out", str(tmp_path / "offline.y4m")]) == 0
    with serving(new_worker(geometry_model)) as worker:
        argv = ["live", "--remote", worker.address, *common, "--no-pace", "--output", str(tmp_path / "remote.y4m")]
        assert main(argv) == 0
    offline, remote = (decoded(tmp_path / name) for name in ("offline.y4m", "remote.y4m"))
    assert len(offline) == len(remote) == 16
    assert any(not np.array_equal(offline[0], frame) for frame in offline[1:]), "the portrait must move"
    assert all(np.array_equal(a, b) for a, b in zip(offline, remote))


# -- the model, described ---------------------------------------------------------------------


def test_pong_and_opened_describe_the_model(geometry_model, lively_model, portrait):
    geometry = ModelInfo.of(geometry_model.config)
    assert geometry.to_json() == {
        "reads_mesh": True, "warps": True, "mesh_points": MESH_POINTS, "keypoints": len(MOVING_POINTS),
        "flow_grid": geometry_model.config.generator.flow_grid, "left_eye": (0.35, 0.4), "right_eye": (0.65, 0.4),
    }
    assert ModelInfo.from_header({}) == ModelInfo.of(lively_model.config), "a worker that says nothing serves crops"
    with serving(new_worker(geometry_model)) as worker, zmq.Context() as context:
        socket = dealer(context, worker.address)
        pong, _ = request(socket, [header(type="PING", seq=1)])
        opening = header(type="OPEN", seq=2, width=SIZE, height=SIZE, mesh=True)
        opened, _ = request(socket, [opening, portrait.crop.tobytes(), portrait.mesh.tobytes()])
        socket.close()
    for reply in (pong, opened):
        assert ModelInfo.from_header(reply) == geometry, reply
    with serving(new_worker(lively_model)) as worker, StreamClient(ClientConfig(address=worker.address)) as client:
        client.connect()
        assert not client.model.needs_mesh and client.model.keypoints is None
        with pytest.raises(ValueError, match="reads crops only"):
            client.open(portrait.crop, target_mesh=portrait.mesh)


def test_the_client_asks_for_meshes_a_geometry_worker_needs(geometry_model, portrait):
    with serving(new_worker(geometry_model)) as worker, StreamClient(ClientConfig(address=worker.address)) as client:
        with pytest.raises(ValueError, match="needs a finite"):
            client.open(portrait.crop)
        client.open(portrait.crop, target_mesh=portrait.mesh)
        with pytest.raises(ValueError, match="needs a finite"):
            client.process(portrait.crop, mesh=np.full((MESH_POINTS, 2), np.nan, np.float32))


# -- malformed meshes and motions -------------------------------------------------------------


def test_each_bad_mesh_message_gets_its_error_code_and_the_worker_goes_on(geometry_model, lively_model, portrait):
    crop, mesh = portrait.crop.tobytes(), portrait.mesh.astype("<f4").tobytes()
    image = dict(format="rgb24", width=SIZE, height=SIZE)
    with serving(new_worker(geometry_model)) as worker, zmq.Context() as context:
        socket = dealer(context, worker.address)
        opening = dict(type="OPEN", seq=2, mesh=True, **image)
        stream = request(socket, [header(**opening), crop, mesh])[0]["stream"]
        frame = dict(type="FRAME", seq=5, stream=stream, mesh=True, **image)
        calibrate = dict(type="CALIBRATE", seq=3, stream=stream, mesh=True, **image)
        nan_mesh, inf_mesh, wide_mesh = portrait.mesh.copy(), portrait.mesh.copy(), portrait.mesh.astype(np.float64)
        nan_mesh[7, 1], inf_mesh[400, 0] = np.nan, np.inf
        cases = [
            ("frame without a mesh", [header(**{**frame, "mesh": None}), crop], ErrorCode.BAD_MESSAGE, "lacks the face mesh"),
            ("frame flagged, mesh missing", [header(**frame), crop], ErrorCode.BAD_MESSAGE, "image then its mesh"),
            ("frame with a mesh too many", [header(**frame), crop, mesh, mesh], ErrorCode.BAD_MESSAGE, "faces"),
            ("mesh flag as text", [header(**{**frame, "mesh": "yes"}), crop, mesh], ErrorCode.BAD_MESSAGE, "'mesh'"),
            ("mesh a byte short", [header(**frame), crop, mesh[:-1]], ErrorCode.BAD_IMAGE, f"need {MESH_BYTES}"),
            ("mesh a byte long", [header(**frame), crop, mesh + b"\0"], ErrorCode.BAD_IMAGE, f"need {MESH_BYTES}"),
            ("empty mesh", [header(**frame), crop, b""], ErrorCode.BAD_IMAGE, "mesh payload"),
            ("mesh as float64", [header(**frame), crop, wide_mesh.tobytes()], ErrorCode.BAD_IMAGE, f"need {MESH_BYTES}"),
            ("mesh with nan", [header(**frame), crop, nan_mesh.tobytes()], ErrorCode.BAD_IMAGE, "not finite"),
            ("mesh with inf", [header(**frame), crop, inf_mesh.tobytes()], ErrorCode.BAD_IMAGE, "not finite"),
            ("open without a mesh", [header(**{**opening, "mesh": False}), crop], ErrorCode.BAD_MESSAGE, "lacks the face mesh"),
            ("open, reference mesh missing", [header(**opening), crop, mesh, crop], ErrorCode.BAD_MESSAGE, "image then its mesh"),
            ("calibrate without a mesh", [header(**{**calibrate, "mesh": None}), crop], ErrorCode.BAD_MESSAGE, "lacks the face mesh"),
            ("calibrate with a nan mesh", [header(**calibrate), crop, nan_mesh.tobytes()], ErrorCode.BAD_IMAGE, "not finite"),
            ("strength out of range", [header(**opening, strength=3.5), crop, mesh], ErrorCode.BAD_MESSAGE, "strength"),
            ("strength as text", [header(**opening, strength="1"), crop, mesh], ErrorCode.BAD_MESSAGE, "strength"),
        ]
        for name, message, code, words in cases:
            reply, payload = request(socket, message)
            assert reply["type"] == "ERROR" and reply["code"] == code and words in reply["message"], (name, reply)
            assert payload == []
        assert worker.stream_ids == {stream}
        reply, _ = request(socket, [header(type="CALIBRATE", seq=6, stream=stream)])
        assert reply["type"] == "CALIBRATED", "a calibration without a face needs no mesh"
        reply, payload = request(socket, [header(**{**frame, "seq": 7}), crop, mesh])
        assert reply["type"] == "RESULT" and reply["motion"] == {"still": True} and len(payload) == 1
        moved = (portrait.mesh + 0.1).astype("<f4").tobytes()
        reply, payload = request(socket, [header(**{**frame, "seq": 8}), crop, moved])
        grid_side = geometry_model.config.generator.flow_grid
        assert reply["motion"] == {"still": False}
        assert [len(p) for p in payload] == [len(MOVING_POINTS) * 8, grid_side * grid_side * 8, SIZE * SIZE, SIZE * SIZE * 3]
        socket.close()
    with serving(new_worker(lively_model)) as worker, zmq.Context() as context:
        socket = dealer(context, worker.address)
        for message, words in (
            ([header(type="OPEN", seq=1, mesh=True, **image), crop, mesh], "reads crops only"),
            ([header(type="OPEN", seq=2, strength=0.5, **image), crop], "strength needs a model that warps"),
        ):
            reply, _ = request(socket, message)
            assert reply["code"] == ErrorCode.BAD_MESSAGE and words in reply["message"], reply
        opened, _ = request(socket, [header(type="OPEN", seq=3, mesh=False, strength=1, **image), crop])
        assert opened["type"] == "OPENED" and "keypoints" not in opened["model"]
        socket.close()


def test_motions_round_trip_and_malformed_ones_are_refused(geometry_model):
    model, codec = ModelInfo.of(geometry_model.config), JpegCodec()
    rng = np.random.default_rng(5)
    grid_side = model.flow_grid
    motion = KeypointMotion(
        rng.standard_normal((model.keypoints, 2)).astype(np.float32),
        rng.uniform(0, SIZE, (grid_side, grid_side, 2)).astype(np.float32),
        rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8),
        rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
    )
    payloads = [part.tobytes() if isinstance(part, np.ndarray) else part for part in encode_motion(motion, "rgb24", codec)]
    moving = {"motion": {"still": False}, "format": "rgb24"}
    assert_same_motion(decode_motion(moving, payloads, model, SIZE, codec), motion)
    still = decode_motion({"motion": {"still": True}}, payloads[:1], model, SIZE, codec)
    assert still.still and np.array_equal(still.offsets, motion.offsets)
    nan_offsets = motion.offsets.copy()
    nan_offsets[3, 0] = np.nan
    for fields, parts, code in (
        ({}, payloads, ErrorCode.BAD_MESSAGE),
        ({"motion": {"still": "no"}}, payloads, ErrorCode.BAD_MESSAGE),
        (moving, payloads[:3], ErrorCode.BAD_MESSAGE),
        ({"motion": {"still": True}}, payloads, ErrorCode.BAD_MESSAGE),
        (moving, [payloads[0][:-4], *payloads[1:]], ErrorCode.BAD_IMAGE),
        (moving, [nan_offsets.tobytes(), *payloads[1:]], ErrorCode.BAD_IMAGE),
        (moving, [payloads[0], payloads[1][8:], *payloads[2:]], ErrorCode.BAD_IMAGE),
        (moving, [*payloads[:2], payloads[2][1:], payloads[3]], ErrorCode.BAD_IMAGE),
        (moving, [*payloads[:3], payloads[3][3:]], ErrorCode.BAD_IMAGE),
    ):
        with pytest.raises(ProtocolError) as refused:
            decode_motion(fields, parts, model, SIZE, codec)
        assert refused.value.code == code, (fields, refused.value)


def test_a_broker_keeps_to_one_model(geometry_model, lively_model):
    with serving(Broker(BrokerConfig(front=LOOPBACK, back="tcp://127.0.0.1:*", worker_timeout_s=2.0))) as broker:
        geometry = new_worker(geometry_model, bind=None, broker=broker.back_address, heartbeat_s=0.1, name="geometry")
        paper = new_worker(lively_model, bind=None, broker=broker.back_address, heartbeat_s=0.1, name="paper")
        with serving(geometry):
            deadline = time.monotonic() + HANG_S
            while not broker.workers and time.monotonic() < deadline:
                time.sleep(0.05)
            with serving(paper):
                time.sleep(0.5)
                assert [info.name for info in broker.workers.values()] == ["geometry"]
                with StreamClient(ClientConfig(address=broker.front_address, reply_timeout_s=5.0)) as client:
                    client.connect()
                    assert client.model == ModelInfo.of(geometry_model.config)


def test_a_paper_model_result_is_a_crop(lively_model):
    target, frame = (np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for seed in (6, 7))
    engine = StreamEngine(TorchBackend(lively_model))
    stream = engine.open(target)
    with serving(new_worker(lively_model)) as worker, StreamClient(ClientConfig(address=worker.address, reply_timeout_s=5.0)) as client:
        client.open(target)
        result = client.process(frame)
    assert result.motion is None and result.generated is result.crop
    assert np.array_equal(result.crop, engine.step(stream, frame))
