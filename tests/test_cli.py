"""The `rt-dtgan` command: doctor, info, clear errors, and the missing-extra sentence."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from conftest import make_lively_model

from rt_dtgan.cli import main
from rt_dtgan.models.checkpoint import save_checkpoint
from rt_dtgan.optional import MissingExtraError, require


def test_doctor_reports_packages_and_a_passing_streaming_check(capsys):
    assert main(["doctor", "--size", "64", "--frames", "30"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime providers" in out
    assert "streaming dynamics  ok: 30 frames" in out


def test_doctor_checks_a_given_checkpoint(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "m.safetensors", make_lively_model())
    assert main(["doctor", "--checkpoint", str(path), "--frames", "20"]) == 0
    assert f"20 frames ({path})" in capsys.readouterr().out


def test_info_prints_the_parts(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "m.safetensors", make_lively_model())
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "64 px crops" in out and "generator" in out


def test_bad_checkpoint_is_one_line_on_stderr(tmp_path, capsys):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x80\x04not really")
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rt-dtgan info: ") and "is a pickle" in err and "\n" not in err


def test_bad_value_exits_with_usage_status(capsys):
    assert main(["doctor", "--frames", "0"]) == 2
    assert "rt-dtgan doctor: argument --frames: must be an integer from 1 up, got '0'" in capsys.readouterr().err


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "rt_dtgan", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("rt-dtgan ")


@pytest.mark.skipif(importlib.util.find_spec("pyvirtualcam") is not None, reason="pyvirtualcam is installed")
def test_missing_extra_names_the_install_command():
    with pytest.raises(
        MissingExtraError, match=r"^the virtual camera needs the optional package 'pyvirtualcam': pip install 'rt-dtgan\[vcam\]'$"
    ):
        require("pyvirtualcam", "the virtual camera")


def test_data_synth_writes_a_dataset_and_keeps_a_full_directory(tmp_path, capsys):
    import json

    out = tmp_path / "synthetic"
    assert main(["data", "synth", "--out", str(out), "--identities", "2", "--size", "64", "--sequences", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "rt-dtgan-dataset" and len(manifest["sequences"]) == 2
    assert all((out / entry["video"]).is_file() and (out / entry["labels"]).is_file() for entry in manifest["sequences"])
    assert main(["data", "synth", "--out", str(out), "--identities", "1"]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_every_user_facing_error_has_one_root_and_keeps_its_builtin_base():
    from rt_dtgan.config import ConfigError
    from rt_dtgan.errors import RtDtganError
    from rt_dtgan.face import FaceError
    from rt_dtgan.media import SinkError, SourceError
    from rt_dtgan.models.checkpoint import CheckpointError
    from rt_dtgan.optional import MissingExtraError
    from rt_dtgan.prepare.prepare import PrepareError
    from rt_dtgan.runtime.export import EngineError
    from rt_dtgan.transport import TransportError

    expected = {
        CheckpointError: ValueError, ConfigError: ValueError, EngineError: ValueError, FaceError: ValueError,
        PrepareError: ValueError, SourceError: OSError, SinkError: OSError, MissingExtraError: ImportError,
        TransportError: RuntimeError,
    }
    for error, builtin in expected.items():
        assert issubclass(error, RtDtganError) and issubclass(error, builtin), error
