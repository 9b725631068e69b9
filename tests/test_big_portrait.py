"""Big portraits (phone photos): brought once, at load, to a working size; small ones untouched."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import decoded, make_lively_model

from rt_dtgan.cli import main
from rt_dtgan.face import load_target, prepare_target
from rt_dtgan.face.images import fit_image
from rt_dtgan.models.checkpoint import save_checkpoint
from rt_dtgan.synth.dataset import synthetic_target

BIG_WIDTH, BIG_HEIGHT = 3000, 2250  # a phone photo's 4:3
WORKING_WIDTH, WORKING_HEIGHT = 1280, 960  # the default working size of that
SOURCE = "synthetic:3"


def write_png(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


@pytest.fixture(scope="module")
def small_face() -> np.ndarray:
    """(256, 256, 3) uint8 synthetic portrait."""
    return synthetic_target(0, 256)


@pytest.fixture(scope="module")
def big_face(small_face) -> np.ndarray:
    """(BIG_HEIGHT, BIG_WIDTH, 3) uint8: the synthetic portrait upscaled, face centred."""
    return cv2.resize(small_face, (BIG_WIDTH, BIG_HEIGHT), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def big_portrait(tmp_path_factory, big_face) -> Path:
    return write_png(tmp_path_factory.mktemp("portrait") / "big.png", big_face)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("model") / "lively.safetensors", make_lively_model(64))


def test_a_big_portrait_is_brought_to_the_working_size_and_its_face_found(big_portrait, big_face):
    target = load_target(big_portrait, max_side=1280)
    assert target.image.shape == (WORKING_HEIGHT, WORKING_WIDTH, 3)
    assert target.original_size == (BIG_WIDTH, BIG_HEIGHT)
    whole = load_target(big_portrait)
    assert whole.image.shape == (BIG_HEIGHT, BIG_WIDTH, 3) and whole.original_size == (BIG_WIDTH, BIG_HEIGHT)
    assert np.abs(target.landmarks.eyes * BIG_WIDTH / WORKING_WIDTH - whole.landmarks.eyes).max() < 1.0, "the same face"
    from_array = prepare_target(big_face, max_side=1280)
    assert np.array_equal(from_array.image, target.image), "decoding downscales as fit_image does"
    assert from_array.original_size == (BIG_WIDTH, BIG_HEIGHT)


def test_a_small_portrait_is_untouched(tmp_path, small_face):
    assert fit_image(small_face, 1280) is small_face
    fitted, given = prepare_target(small_face, max_side=1280), prepare_target(small_face)
    assert np.shares_memory(fitted.image, small_face) and fitted.original_size == (256, 256)
    assert np.array_equal(fitted.crop, given.crop) and np.array_equal(fitted.mesh, given.mesh)
    path = write_png(tmp_path / "small.png", small_face)
    assert np.array_equal(load_target(path, max_side=1280).image, load_target(path).image)


@pytest.mark.parametrize("value", ["10", "-1"])
@pytest.mark.parametrize("command", ["transfer", "live"])
def test_a_bad_portrait_size_is_a_usage_error(tmp_path, capsys, command, value):
    out = ["--out", str(tmp_path / "o.y4m")] if command == "transfer" else ["--output", str(tmp_path / "o.y4m")]
    argv = [command, "--source", SOURCE, "--target", "synthetic:1", *out, "--portrait-size", value]
    assert main(argv) == 2
    assert "argument --portrait-size: must be an integer from 64 up, or 0, got" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "size", "said"),
    [
        ([], (WORKING_WIDTH, WORKING_HEIGHT), f"portrait: {BIG_WIDTH}x{BIG_HEIGHT} -> 1280x960 (--portrait-size 1280)"),
        (["--portrait-size", "0"], (BIG_WIDTH, BIG_HEIGHT), f"portrait: {BIG_WIDTH}x{BIG_HEIGHT}\n"),
    ],
    ids=["default", "kept"],
)
def test_transfer_writes_frames_of_the_working_size(checkpoint, big_portrait, tmp_path, capsys, option, size, said):
    out = tmp_path / "out.y4m"
    argv = ["transfer", "--checkpoint", str(checkpoint), "--source", SOURCE, "--target", str(big_portrait)]
    assert main([*argv, "--out", str(out), "--frames", "3", *option]) == 0
    frames = decoded(out)
    assert len(frames) == 3 and all(frame.shape == (size[1], size[0], 3) for frame in frames)
    err = capsys.readouterr().err
    assert said in err and "face found in 3 (100.0%)" in err
