"""`rt-dtgan data prepare`: dataset layouts, the prepared manifest and videos, caching, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from rt_dtgan.cli import main
from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face import FaceTracker
from rt_dtgan.face.landmarks import MOTION_POINTS
from rt_dtgan.prepare import (
    LAYOUTS,
    detect_layout,
    find_sequences,
    prepare_dataset,
    read_landmarks,
    read_manifest,
    read_mesh,
    read_sequence,
)
from rt_dtgan.prepare import prepare as prepare_module
from rt_dtgan.synth.dataset import VideoWriter, synthetic_target

SIZE = 64
FRAMES = 3
GREY = np.full((128, 128, 3), 128, np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    """An (H, W, 3) uint8 RGB image as a PNG file (PyAV's encoder)."""
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = image.shape[1], image.shape[0], "rgb24"
    packets = list(codec.encode(av.VideoFrame.from_ndarray(image, format="rgb24"))) + list(codec.encode(None))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(bytes(packet) for packet in packets))


def write_frames(folder: Path, image: np.ndarray, names: list[str]) -> None:
    for name in names:
        write_png(folder / name, image)


def touch(root: Path, *relative: str) -> None:
    """Empty placeholder files: the layouts look at names only."""
    for name in relative:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def ckplus_names(sequence: str) -> list[str]:
    return [f"{sequence}_{frame:08d}.png" for frame in range(1, FRAMES + 1)]


def found(root: Path, layout: str) -> list[tuple[str, str | None, str | None]]:
    return [(s.id, s.subject, s.label) for s in find_sequences(root, LAYOUTS[layout])]


# ---------------------------------------------------------------- layouts


def test_folder_layout_finds_videos_and_image_folders_with_labels_from_folder_names(tmp_path):
    touch(
        tmp_path, "happy/clip.mp4", "happy/clip.avi", "Surprised/take1/0.png", "Surprised/take1/1.png",
        "misc/notes.txt", "misc/seq/a.jpg", ".hidden/x.png", "__MACOSX/happy/y.png",
    )
    assert found(tmp_path, "folder") == [
        ("happy_clip", None, "happiness"),
        ("happy_clip-2", None, "happiness"),
        ("misc_seq", None, None),
        ("Surprised_take1", None, "surprise"),
    ]
    take = find_sequences(tmp_path, LAYOUTS["folder"])[3]
    assert take.path == tmp_path / "Surprised" / "take1" and [p.name for p in take.images] == ["0.png", "1.png"]
    assert detect_layout(tmp_path).name == "folder"


def test_ckplus_layout_reads_emotion_codes_with_contempt_and_missing_files_as_none(tmp_path):
    for sequence in ("S005/001", "S005/002", "S010/001"):
        touch(tmp_path / "cohn-kanade-images" / sequence, *ckplus_names(sequence.replace("/", "_")))
    (tmp_path / "Emotion/S005/001").mkdir(parents=True)
    (tmp_path / "Emotion/S005/001/S005_001_00000003_emotion.txt").write_text("   5.0000000e+00\n")
    (tmp_path / "Emotion/S005/002").mkdir(parents=True)
    (tmp_path / "Emotion/S005/002/S005_002_00000003_emotion.txt").write_text("   2.0000000e+00\n")
    assert found(tmp_path, "ckplus") == [
        ("S005_001", "S005", "happiness"), ("S005_002", "S005", None), ("S010_001", "S010", None)
    ]
    assert detect_layout(tmp_path).name == "ckplus"
    assert found(tmp_path / "cohn-kanade-images", "ckplus")[0] == ("S005_001", "S005", "happiness")


def test_oulu_layout_takes_every_lighting_with_ids_from_the_path(tmp_path):
    touch(tmp_path, "VL/Strong/P001/Anger/000.jpeg", "VL/Strong/P001/Anger/001.jpeg", "NI/Dark/P002/Happiness/000.jpeg")
    assert found(tmp_path, "oulu") == [("NI_Dark_P002_Happiness", "P002", "happiness"), ("VL_Strong_P001_Anger", "P001", "anger")]
    assert detect_layout(tmp_path).name == "oulu"


def test_mug_layout_finds_takes_of_subjects_and_expressions(tmp_path):
    touch(
        tmp_path, "subjects3/001/anger/take000/img_0000.jpg", "subjects3/001/neutral/take001/img_0000.jpg",
        "subjects3/002/happiness/take000/img_0000.jpg",
    )
    assert found(tmp_path, "mug") == [
        ("001_anger_take000", "001", "anger"),
        ("001_neutral_take001", "001", "neutral"),
        ("002_happiness_take000", "002", "happiness"),
    ]
    assert detect_layout(tmp_path).name == "mug"


# ---------------------------------------------------------------- preparing


@pytest.fixture(scope="module")
def ckplus_tree(tmp_path_factory) -> Path:
    """A CK+ tree of real images: two face sequences (one labelled happiness) and one without a face."""
    root = tmp_path_factory.mktemp("ckplus")
    images = root / "cohn-kanade-images"
    write_frames(images / "S005/001", synthetic_target(0, 128), ckplus_names("S005_001"))
    write_frames(images / "S005/002", GREY, ckplus_names("S005_002"))
    write_frames(images / "S010/001", synthetic_target(1, 128), ckplus_names("S010_001"))
    (root / "Emotion/S005/001").mkdir(parents=True)
    (root / "Emotion/S005/001/S005_001_00000003_emotion.txt").write_text("   5.0000000e+00\n")
    return root


@pytest.fixture(scope="module")
def prepared(ckplus_tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    assert prepare_dataset(ckplus_tree, out, size=SIZE, progress=False) == out / "manifest.json"
    return out


def test_prepare_writes_the_manifest_and_lossless_videos_of_the_aligned_faces(prepared, ckplus_tree):
    manifest = read_manifest(prepared)
    header = (manifest["format"], manifest["version"], manifest["size"], manifest["layout"])
    assert header == ("rt-dtgan prepared faces", 1, SIZE, "ckplus")
    assert manifest["preprocess"]["size"] == SIZE and manifest["preprocess"]["left_eye"] == [0.35, 0.40]
    first, second = manifest["sequences"]
    assert (first["id"], first["subject"], first["label"]) == ("S005_001", "S005", "happiness")
    assert (second["id"], second["subject"], second["label"]) == ("S010_001", "S010", None)
    assert first["source"] == "cohn-kanade-images/S005/001" and first["video"] == "sequences/S005_001.mkv"
    assert (first["fps"], first["frames"], first["kept"], first["kept_indices"]) == (30.0, FRAMES, FRAMES, [0, 1, 2])
    crops = read_sequence(prepared, first)
    assert crops.shape == (FRAMES, SIZE, SIZE, 3) and crops.dtype == np.uint8
    with FaceTracker(PreprocessConfig(size=SIZE)) as tracker:
        expected = [tracker.track(synthetic_target(0, 128), index / 30.0) for index in range(FRAMES)]
    np.testing.assert_array_equal(crops, np.stack([tracked.crop for tracked in expected]))
    points = read_landmarks(prepared, first)
    in_crop = [t.transform.apply(t.landmarks.points[list(MOTION_POINTS), :2]) / SIZE for t in expected]
    np.testing.assert_allclose(points, np.stack(in_crop), atol=1e-6)
    inner_lips_y = points[:, :2, 1]
    assert (inner_lips_y > manifest["preprocess"]["left_eye"][1]).all() and (inner_lips_y < 1).all()
    assert first["landmarks"] == "sequences/S005_001.landmarks.npy"
    np.testing.assert_allclose(read_mesh(prepared, first), np.stack([t.mesh for t in expected]), atol=1e-6)
    np.testing.assert_allclose(read_mesh(prepared, first, "crop_mesh"), np.stack([t.crop_mesh for t in expected]), atol=1e-6)
    assert sorted(path.name for path in (prepared / "sequences").iterdir()) == [
        "S005_001.crop_mesh.npy", "S005_001.landmarks.npy", "S005_001.mesh.npy", "S005_001.mkv",
        "S010_001.crop_mesh.npy", "S010_001.landmarks.npy", "S010_001.mesh.npy", "S010_001.mkv",
    ]


def test_a_sequence_without_a_face_is_skipped_with_the_reason(prepared):
    (skipped,) = read_manifest(prepared)["skipped"]
    assert skipped["source"] == "cohn-kanade-images/S005/002"
    assert skipped["reason"] == "a face in only 0 of 3 frames (needs at least half, and 2)"


def test_read_manifest_names_a_file_that_is_not_a_prepared_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "rt-dtgan-dataset", "version": 1}))
    with pytest.raises(ValueError, match=f"{tmp_path / 'manifest.json'} is not a prepared-faces manifest"):
        read_manifest(tmp_path)
    with pytest.raises(ValueError, match="no prepared dataset"):
        read_manifest(tmp_path / "elsewhere")


class CountingTracker(FaceTracker):
    """A FaceTracker that counts the sequences tracked (one tracker each)."""

    created = 0

    def __init__(self, *args, **kwargs) -> None:
        type(self).created += 1
        super().__init__(*args, **kwargs)


def test_a_rerun_reuses_unchanged_sequences_and_redoes_changed_ones(tmp_path, monkeypatch):
    source, out = tmp_path / "videos", tmp_path / "out"
    (source / "happy").mkdir(parents=True)
    with VideoWriter(source / "happy" / "clip.mp4", 128) as video:
        for _ in range(FRAMES):
            video.write(synthetic_target(2, 128))
    write_frames(source / "still" / "take", synthetic_target(3, 128), ["0.png", "1.png", "2.png"])
    (source / "broken").mkdir()
    (source / "broken" / "0.png").write_bytes(b"not an image")
    monkeypatch.setattr(prepare_module, "FaceTracker", CountingTracker)

    def run() -> tuple[int, dict]:
        CountingTracker.created = 0
        prepare_dataset(source, out, size=SIZE, progress=False)
        return CountingTracker.created, read_manifest(out)

    tracked, manifest = run()
    assert tracked == 3 and manifest["layout"] == "folder"
    clip, still = manifest["sequences"]
    assert (clip["id"], clip["label"], clip["kept"], clip["fps"]) == ("happy_clip", "happiness", FRAMES, 30.0)
    assert (still["id"], still["label"], still["kept"], still["fps"]) == ("still_take", None, FRAMES, 25.0)
    (broken,) = manifest["skipped"]
    assert broken["source"] == "broken" and broken["reason"].startswith("unreadable: cannot decode image file")
    clip_video = out / clip["video"]
    clip_written = clip_video.stat().st_mtime_ns

    tracked, again = run()
    assert tracked == 0 and again == manifest

    write_png(source / "still" / "take" / "3.png", synthetic_target(3, 128))
    tracked, changed = run()
    assert tracked == 1 and clip_video.stat().st_mtime_ns == clip_written
    assert changed["sequences"][0] == clip and changed["sequences"][1]["frames"] == FRAMES + 1
    assert read_sequence(out, changed["sequences"][1]).shape == (FRAMES + 1, SIZE, SIZE, 3)


# ---------------------------------------------------------------- command line


def test_cli_prepares_a_dataset(ckplus_tree, tmp_path, capsys):
    assert main(["data", "prepare", "--source", str(ckplus_tree), "--out", str(tmp_path), "--size", str(SIZE)]) == 0
    assert f"prepared: 2, skipped: 1 (see {tmp_path / 'manifest.json'})" in capsys.readouterr().err
    assert len(read_manifest(tmp_path)["sequences"]) == 2


def test_cli_rejects_a_missing_source_folder_in_one_line(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert main(["data", "prepare", "--source", str(missing), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error == f"rt-dtgan data prepare: argument --source: no such folder: {missing} (see rt-dtgan data prepare --help)\n"


@pytest.mark.heavy
def test_workers_prepare_the_same_dataset(ckplus_tree, prepared, tmp_path):
    prepare_dataset(ckplus_tree, tmp_path, size=SIZE, progress=False, workers=2)
    assert read_manifest(tmp_path) == read_manifest(prepared)
