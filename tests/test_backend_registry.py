"""The backend registry: the choices, `auto` and `rt-dtgan export` follow BACKENDS; meta.json
is read once; engine folders written under the old name "onnx" still load."""

from __future__ import annotations

import dataclasses
import json
import shutil
from types import SimpleNamespace

import pytest
from conftest import make_lively_model

import rt_dtgan.runtime.backends as backends
import rt_dtgan.runtime.export as export
from rt_dtgan.cli import build_parser, main
from rt_dtgan.models.checkpoint import save_checkpoint
from rt_dtgan.runtime.backend_protocol import BackendEntry
from rt_dtgan.runtime.backends import BACKEND_CHOICES, BACKENDS, EXPORTERS, OnnxRuntimeBackend, backend_name, open_backend


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(checkpoint, ONNX engine folder) of a small lively model, exported once."""
    root = tmp_path_factory.mktemp("registry")
    model = make_lively_model(64, seed=2)
    checkpoint = save_checkpoint(root / "model.safetensors", model)
    export.export_onnx(model, root / "onnx", checkpoint, max_batch=2)
    return checkpoint, root / "onnx"


def _with_meta(engine_dir, tmp_path, **changes):
    """A copy of ``engine_dir`` whose meta.json has ``changes``."""
    copy = tmp_path / "engines"
    shutil.copytree(engine_dir, copy)
    meta = json.loads((copy / "meta.json").read_text()) | changes
    (copy / "meta.json").write_text(json.dumps(meta))
    return copy


def test_the_choices_follow_the_registry():
    assert BACKEND_CHOICES == ("auto", "torch", "onnxruntime", "tensorrt") == ("auto", *BACKENDS)
    assert set(EXPORTERS) == {"onnxruntime", "tensorrt"}
    assert all(entry.engines and entry.precisions for entry in EXPORTERS.values())
    assert backend_name("onnx") == "onnxruntime" and backend_name("tensorrt") == "tensorrt"


def test_exports_name_the_backend_and_old_folders_still_load(exported, tmp_path):
    checkpoint, engine_dir = exported
    assert export.read_meta(engine_dir)["backend"] == "onnxruntime"
    old = _with_meta(engine_dir, tmp_path, backend="onnx")
    backend, why = open_backend("auto", checkpoint, old, threads=1)
    assert backend.name == "onnxruntime" and why == f"ONNX graphs from {old}"
    assert OnnxRuntimeBackend(old, checkpoint, threads=1).max_batch == 2


def test_auto_reads_meta_json_once(exported, monkeypatch):
    checkpoint, engine_dir = exported
    loads = []

    def counted(folder):
        loads.append(folder)
        return load_meta(folder)

    load_meta = export.load_meta
    monkeypatch.setattr(export, "load_meta", counted)
    monkeypatch.setattr(backends, "load_meta", counted)
    backend, _ = open_backend("auto", checkpoint, engine_dir, threads=1)
    assert backend.name == "onnxruntime" and loads == [engine_dir]


def test_auto_leaves_plans_it_cannot_run_to_torch(exported, tmp_path, monkeypatch):
    checkpoint, engine_dir = exported
    plans = _with_meta(engine_dir, tmp_path, backend="tensorrt")
    monkeypatch.setitem(BACKENDS, "tensorrt", dataclasses.replace(BACKENDS["tensorrt"], runs_here=lambda: False))
    backend, why = open_backend("auto", checkpoint, plans)
    assert backend.name == "torch" and why == f"no usable engines in {plans}"


def test_a_registered_backend_is_taken_by_auto_with_the_meta_it_was_given(exported, tmp_path, monkeypatch):
    checkpoint, engine_dir = exported
    folder = _with_meta(engine_dir, tmp_path, backend="stand-in")
    opened = []

    def open_stand_in(request):
        opened.append(request)
        return SimpleNamespace(name="stand-in")

    monkeypatch.setitem(BACKENDS, "stand-in", BackendEntry("stand-in", open_stand_in, engines="stand-in graphs"))
    backend, why = open_backend("auto", checkpoint, folder)
    assert backend.name == "stand-in" and why == f"stand-in graphs from {folder}"
    assert opened[0].meta["backend"] == "stand-in" and opened[0].checkpoint == checkpoint


def test_export_takes_the_old_name_and_refuses_a_precision_its_backend_lacks(tmp_path, capsys):
    parse = build_parser().parse_args
    assert parse(["export", "--checkpoint", "paper", "--backend", "onnx", "--out", "e"]).backend == "onnxruntime"
    assert parse(["export", "--checkpoint", "paper", "--out", "e"]).backend == "onnxruntime"
    with pytest.raises(SystemExit):
        parse(["export", "--checkpoint", "paper", "--backend", "torch", "--out", "e"])
    assert "invalid choice: 'torch'" in capsys.readouterr().err
    assert main(["export", "--checkpoint", "paper", "--backend", "onnx", "--precision", "fp16", "--out", str(tmp_path)]) == 2
    assert "ONNX graphs are exported in fp32; fp16 is a build option of --backend tensorrt" in capsys.readouterr().err
