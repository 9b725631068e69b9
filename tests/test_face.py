"""Face pipeline: image loading, alignment, paste-back, One-Euro smoothing (no MediaPipe),
then target preparation and tracking on synthetic faces and on the real portraits and clips
(those skipped without them)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest

from rt_dtgan.config import PreprocessConfig
from rt_dtgan.face import (
    NO_FACE,
    FaceError,
    FaceMeshDetector,
    FaceNotFoundError,
    FaceTracker,
    OneEuroConfig,
    OneEuroFilter,
    PasteConfig,
    PastePlan,
    SimilarityTransform,
    TrackerConfig,
    align,
    eyes_to_crop_transform,
    load_image,
    load_target,
    paste_back,
    prepare_target,
)
from rt_dtgan.face.align import crop_eye_points, pixel_centres

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
TARGETS = sorted((REAL_DATA / "targets").glob("*")) if REAL_DATA.is_dir() else []
CLIPS = sorted((REAL_DATA / "driving").glob("*.mp4")) if REAL_DATA.is_dir() else []
needs_real_data = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real test media not found at {REAL_DATA}")


# ---------------------------------------------------------------- helpers


def write_png(path: Path, pixels: np.ndarray, color_type: int, palette=None, transparency=None) -> Path:
    """A minimal PNG encoder: 8- or 16-bit samples (by dtype), no interlace, filter 0."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = pixels.shape[:2]
    depth = 16 if pixels.dtype == np.uint16 else 8
    rows = pixels.astype(">u2" if depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    scanlines = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    if palette is not None:
        data += chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if transparency is not None:
        data += chunk(b"tRNS", bytes(transparency))
    data += chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 1)) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def write_jpeg(path: Path, rgb: np.ndarray) -> Path:
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("mjpeg")
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuvj444p"
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj444p")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8 of low-frequency sinusoids, well represented at any scale >= 1."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.005, 0.03, 2).tolist() + [rng.uniform(0, 6.3)]
        channels.append(127.5 + 100 * np.sin(fx * xs + fy * ys + phase))
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def blob_image(height: int, width: int, centres: np.ndarray, sigma: float) -> np.ndarray:
    """Black (height, width, 3) uint8 with white Gaussian blobs at continuous (x, y) ``centres``."""
    points = pixel_centres(height, width)
    brightness = np.zeros((height, width))
    for centre in centres:
        brightness += np.exp(-((points - centre) ** 2).sum(-1) / (2 * sigma**2))
    return np.repeat((np.clip(brightness, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, axis=-1)


def blob_centroid(image: np.ndarray, near: np.ndarray, radius: int) -> np.ndarray:
    """Intensity centroid (x, y), in continuous coordinates, of the blob within ``radius`` of ``near``."""
    weights = image[..., 0].astype(np.float64)
    points = pixel_centres(*weights.shape)
    weights[np.abs(points - near).max(-1) > radius] = 0
    return (points * weights[..., None]).sum((0, 1)) / weights.sum()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def decode_clip(path: Path, limit: int | None = None) -> list[tuple[np.ndarray, float]]:
    """(frame (H, W, 3) uint8 RGB, timestamp s) for the first ``limit`` frames of a video file."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            frames.append((frame.to_ndarray(format="rgb24"), float(frame.pts * stream.time_base)))
            if limit is not None and len(frames) == limit:
                break
    return frames


# ---------------------------------------------------------------- image loading


def test_grayscale_8_and_16_bit_png(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    loaded = load_image(write_png(tmp_path / "gray.png", gray, color_type=0))
    assert loaded.shape == (20, 30, 3) and loaded.dtype == np.uint8 and loaded.flags.c_contiguous
    assert all(np.array_equal(loaded[..., c], gray) for c in range(3))

    deep = np.random.default_rng(1).integers(0, 65536, (20, 30), dtype=np.uint16)
    loaded = load_image(write_png(tmp_path / "gray16.png", deep, color_type=0))
    assert np.abs(loaded[..., 1].astype(int) - np.round(deep / 257.0)).max() <= 1


def test_16_bit_rgb_png_is_scaled_to_8_bits(tmp_path):
    deep = np.random.default_rng(2).integers(0, 65536, (16, 24, 3), dtype=np.uint16)
    loaded = load_image(write_png(tmp_path / "rgb48.png", deep, color_type=2))
    assert loaded.shape == (16, 24, 3) and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - np.round(deep / 257.0)).max() <= 1


@pytest.mark.parametrize("deep", [False, True])
def test_alpha_is_composited_over_white(tmp_path, deep):
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., :3] = (200, 40, 10)
    rgba[0, :, 3], rgba[1, :, 3], rgba[2, :, 3] = 255, 0, 128
    pixels = rgba.astype(np.uint16) * 257 if deep else rgba
    loaded = load_image(write_png(tmp_path / "rgba.png", pixels, color_type=6)).astype(int)
    assert np.array_equal(loaded[0], np.tile([200, 40, 10], (4, 1)))
    assert np.array_equal(loaded[1], np.full((4, 3), 255))
    expected_half = np.round((np.array([200, 40, 10]) * 128 + 255 * 127) / 255)
    assert np.abs(loaded[2] - expected_half).max() <= 1


def test_gray_with_alpha(tmp_path):
    pixels = np.array([[[90, 255], [90, 0]]], np.uint8)
    loaded = load_image(write_png(tmp_path / "ya.png", pixels, color_type=4))
    assert loaded.tolist() == [[[90, 90, 90], [255, 255, 255]]]


def test_palette_with_and_without_transparency(tmp_path):
    palette = np.array([[255, 0, 0], [0, 128, 0], [10, 20, 30]], np.uint8)
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    loaded = load_image(write_png(tmp_path / "pal.png", indices, color_type=3, palette=palette))
    assert np.array_equal(loaded, palette[indices])
    transparent = write_png(tmp_path / "trns.png", indices, color_type=3, palette=palette, transparency=[0])
    loaded = load_image(transparent)
    assert loaded[0, 0].tolist() == [255, 255, 255] and loaded[0, 1].tolist() == [0, 128, 0]


def test_jpeg(tmp_path):
    image = smooth_image(48, 64)
    loaded = load_image(write_jpeg(tmp_path / "smooth.jpg", image))
    assert loaded.shape == image.shape and np.abs(loaded.astype(int) - image).mean() < 3


def test_huge_image_loads_whole_or_downscaled(tmp_path):
    side = 8000
    row = (np.arange(side) * 255 // (side - 1)).astype(np.uint8)
    path = write_png(tmp_path / "huge.png", np.broadcast_to(row, (side, side)), color_type=0)
    small = load_image(path, max_side=1000)
    assert small.shape == (1000, 1000, 3)
    assert np.abs(small[500, :, 0].astype(int) - np.linspace(0, 255, 1000)).max() <= 2
    whole = load_image(path)
    assert whole.shape == (side, side, 3) and whole[123, 4000].tolist() == [row[4000]] * 3


def test_unreadable_files_raise_a_clear_error(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    for path in (text, tmp_path / "missing.jpg", tmp_path):
        with pytest.raises(FaceError, match=str(path.name)):
            load_image(path)


def test_arrays_of_the_wrong_kind_are_refused():
    eyes = np.array([[10.0, 10.0], [20.0, 10.0]])
    for image in (np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.float32), np.zeros((32, 32, 4), np.uint8)):
        with pytest.raises(FaceError, match="uint8 RGB"):
            align(image, eyes, PreprocessConfig())


# ---------------------------------------------------------------- alignment


@pytest.mark.parametrize(
    "config",
    [PreprocessConfig(), PreprocessConfig(size=64), PreprocessConfig(size=256, left_eye=(0.3, 0.45), right_eye=(0.7, 0.45))],
)
def test_transform_maps_eyes_exactly_onto_config_points(config):
    rng = np.random.default_rng(config.size)
    for _ in range(20):
        left, distance, angle = rng.uniform(0, 2000, 2), rng.uniform(5, 500), rng.uniform(-1, 1)
        eyes = np.stack([left, left + distance * np.array([np.cos(angle), np.sin(angle)])])
        transform = eyes_to_crop_transform(eyes, config)
        assert np.abs(transform.apply(eyes) - crop_eye_points(config)).max() < 1e-9
        assert np.abs(transform.inverse().apply(transform.apply(eyes)) - eyes).max() < 1e-9


def test_similarity_transform_rejects_singular_matrices():
    with pytest.raises(ValueError):
        SimilarityTransform(np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(FaceError, match="coincide"):
        eyes_to_crop_transform(np.array([[5.0, 5.0], [5.0, 5.0]]), PreprocessConfig())


@pytest.mark.parametrize(
    ("image_side", "eye_distance", "sigma", "tolerance"),
    [(300, 40.0, 2.0, 0.1), (300, 150.0, 5.0, 0.15), (2400, 900.0, 25.0, 0.25)],
)
def test_crop_content_puts_the_eyes_on_the_config_points(image_side, eye_distance, sigma, tolerance):
    """Sub-pixel accuracy of the warp itself, including the box-averaged path (scale < 0.5)."""
    config = PreprocessConfig()
    angle = 0.3
    left = np.array([image_side * 0.37, image_side * 0.33])
    eyes = np.stack([left, left + eye_distance * np.array([np.cos(angle), np.sin(angle)])])
    crop, transform = align(blob_image(image_side, image_side, eyes, sigma), eyes, config)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    radius = int(4 * sigma * transform.scale) + 2
    for target_point in crop_eye_points(config):
        assert np.abs(blob_centroid(crop, target_point, radius) - target_point).max() < tolerance


def test_strong_downscaling_does_not_alias():
    checkerboard = ((np.indices((1200, 1200)).sum(0) % 2) * 255).astype(np.uint8)
    image = np.repeat(checkerboard[..., None], 3, axis=-1)
    crop, transform = align(image, np.array([[450.0, 500.0], [850.0, 520.0]]), PreprocessConfig())
    assert transform.scale < 0.1
    assert crop.std() < 4 and abs(crop.mean() - 127.5) < 4


def test_a_face_at_the_border_still_gives_a_crop():
    image = smooth_image(200, 200)
    crop, _ = align(image, np.array([[-30.0, 10.0], [20.0, 12.0]]), PreprocessConfig())
    assert crop.shape == (128, 128, 3)


# ---------------------------------------------------------------- paste-back


def plan_for(image: np.ndarray, eyes: np.ndarray, config: PreprocessConfig, paste: PasteConfig):
    crop, transform = align(image, eyes, config)
    weight = paste.weight(transform.apply(pixel_centres(*image.shape[:2])), config.size)
    return crop, PastePlan.build(image, transform, config.size, paste), weight


def test_paste_back_of_the_unchanged_crop_restores_the_portrait():
    config, paste = PreprocessConfig(), PasteConfig()
    image = smooth_image(300, 260)
    eyes = np.array([[110.0, 120.0], [150.0, 131.0]])  # about 1:1 with the 128 crop
    crop, plan, weight = plan_for(image, eyes, config, paste)
    restored = plan.paste(image, crop)
    assert restored.shape == image.shape and restored.dtype == np.uint8
    assert np.array_equal(restored[weight == 0], image[weight == 0])
    assert (weight == 1).sum() > 3000
    assert psnr(restored[weight > 0], image[weight > 0]) > 40


def test_paste_back_replaces_the_face_and_leaves_the_rest_bit_identical():
    config, paste = PreprocessConfig(size=64), PasteConfig()
    image = smooth_image(500, 400, seed=3)
    eyes = np.array([[150.0, 200.0], [260.0, 180.0]])
    _, plan, weight = plan_for(image, eyes, config, paste)
    generated = np.empty((64, 64, 3), np.uint8)
    generated[:] = (10, 200, 30)
    output = plan.paste(image, generated)
    assert np.array_equal(output[weight == 0], image[weight == 0])
    assert np.array_equal(output[weight == 1], np.broadcast_to([10, 200, 30], output[weight == 1].shape))
    ramp = (weight > 0) & (weight < 1)
    assert ramp.sum() > 1000
    expected = image[ramp] * (1 - weight[ramp, None]) + np.array([10, 200, 30]) * weight[ramp, None]
    assert np.abs(output[ramp] - expected).max() <= 1.01


def test_paste_back_refuses_a_crop_of_the_wrong_size():
    image = smooth_image(200, 200)
    crop, plan, _ = plan_for(image, np.array([[80.0, 90.0], [120.0, 90.0]]), PreprocessConfig(), PasteConfig())
    with pytest.raises(FaceError, match="128, 128, 3"):
        plan.paste(image, crop[:64, :64])


def test_paste_config_is_validated():
    with pytest.raises(ValueError):
        PasteConfig(feather=0.0)
    with pytest.raises(ValueError):
        PasteConfig(semi_axes=(0.0, 0.4))


# ---------------------------------------------------------------- One-Euro smoothing


def run_filter(values: np.ndarray, times: np.ndarray, config: OneEuroConfig | None = None) -> np.ndarray:
    smoother = OneEuroFilter(config)
    return np.array([smoother.filter(value, time) for value, time in zip(values, times)])


def test_a_constant_signal_passes_unchanged():
    times = np.cumsum(np.random.default_rng(0).uniform(0.01, 0.08, 100))
    values = np.tile([[3.5, -2.0], [7.25, 1e3]], (100, 1, 1))
    assert np.array_equal(run_filter(values, times), values)


def test_noise_on_a_still_signal_is_strongly_reduced():
    rng = np.random.default_rng(1)
    times = np.arange(600) / 30.0
    # MediaPipe's eye centres jitter by about 0.2% of the inter-ocular distance on a still face
    noisy = 5.0 + rng.normal(0, 0.002, (600, 4))
    smoothed = run_filter(noisy, times)
    assert smoothed[30:].var(axis=0).max() / noisy.var(axis=0).min() < 0.2
    assert np.abs(smoothed[30:].mean() - 5.0) < 0.002


def test_a_step_is_followed_within_a_few_frames():
    times = np.arange(60) / 30.0
    values = np.where(np.arange(60) < 30, 0.0, 1.0)[:, None]
    smoothed = run_filter(values, times)[:, 0]
    assert np.all(smoothed[:30] == 0.0)
    assert smoothed[30] > 0.5 and np.all(np.abs(smoothed[33:] - 1.0) < 0.05)


def test_irregular_timestamps_and_reset():
    smoother = OneEuroFilter()
    smoother.filter(np.zeros(2), 0.0)
    first = smoother.filter(np.ones(2), 0.005)
    later = OneEuroFilter()
    later.filter(np.zeros(2), 0.0)
    assert np.all(later.filter(np.ones(2), 0.2) > first)  # a longer interval moves further
    with pytest.raises(ValueError, match="increase"):
        smoother.filter(np.ones(2), 0.005)
    smoother.reset()
    assert smoother.last_timestamp is None
    assert np.array_equal(smoother.filter(np.full(2, 9.0), 0.001), np.full(2, 9.0))


def test_smoothing_and_tracker_configs_are_validated():
    for bad in ({"min_cutoff": 0.0}, {"d_cutoff": -1.0}, {"beta": -0.1}, {"min_cutoff": float("inf")}):
        with pytest.raises(ValueError):
            OneEuroConfig(**bad)
    for bad in ({"max_faces": 0}, {"min_detection_confidence": 1.5}, {"reset_after_gap": 0.0}, {"detection_max_side": 10}):
        with pytest.raises(ValueError):
            TrackerConfig(**bad)


# ---------------------------------------------------------------- MediaPipe: real portraits and clips, synthetic faces


@needs_real_data
@pytest.mark.parametrize("path", TARGETS, ids=lambda path: path.name)
def test_each_portrait_is_found_and_aligned(path):
    target = load_target(path, PreprocessConfig())
    assert target.crop.shape == (128, 128, 3) and target.image.shape[2] == 3
    with FaceMeshDetector(video_mode=False) as detector:
        in_crop = detector.detect(target.crop)
    assert in_crop is not None, "the aligned crop no longer shows a face"
    assert np.abs(in_crop.eyes - crop_eye_points(target.config)).max() < 2.0


@needs_real_data
def test_grayscale_and_rgba_portraits():
    gray = load_target(REAL_DATA / "targets" / "av_einstein.jpg")
    assert np.array_equal(gray.crop[..., 0], gray.crop[..., 2])
    transparent = load_target(REAL_DATA / "targets" / "st_happy1.png")
    assert transparent.image.shape == (226, 221, 3)


@needs_real_data
def test_paste_back_on_a_real_portrait():
    target = load_target(REAL_DATA / "targets" / "av_obama.jpg")
    weight = PasteConfig().weight(target.transform.apply(pixel_centres(*target.image.shape[:2])), 128)
    restored = paste_back(target, target.crop)
    assert np.array_equal(restored[weight == 0], target.image[weight == 0])
    assert psnr(restored[weight == 1], target.image[weight == 1]) > 25  # the crop is ~5x smaller than the face
    assert not target.image.flags.writeable


@needs_real_data
def test_a_large_portrait_is_detected_on_a_downscaled_copy():
    image = load_image(REAL_DATA / "targets" / "lp_s1.jpg")
    large = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(width=4000, height=4000).to_ndarray()
    small_target, large_target = prepare_target(image), prepare_target(large, name="upscaled")
    eyes_ratio = large_target.landmarks.eyes / small_target.landmarks.eyes
    assert np.abs(eyes_ratio - 4000 / image.shape[0]).max() < 0.02
    assert psnr(large_target.crop, small_target.crop) > 25


def test_an_image_without_a_face_raises_naming_it():
    with pytest.raises(FaceNotFoundError, match="blank-canvas"):
        prepare_target(np.full((480, 640, 3), 200, np.uint8), name="blank-canvas")


def test_tracker_reports_a_lost_face_and_resumes():
    from rt_dtgan.synth.sequences import freeform_sequence

    frames = [(rendered.image, index / 30) for index, rendered in enumerate(freeform_sequence(3, 40, 256))]
    blank = np.zeros_like(frames[0][0])
    with FaceTracker(PreprocessConfig(size=64), TrackerConfig()) as tracker:
        results = []
        for index, (frame, timestamp) in enumerate(frames):
            results.append(tracker.track(blank if 15 <= index < 25 else frame, timestamp))
        with pytest.raises(ValueError, match="increase"):
            tracker.track(frames[0][0], frames[-1][1])
    before, gap, after = results[:15], results[15:25], results[25:]
    assert all(r.found and r.crop.shape == (64, 64, 3) and r.crop.dtype == np.uint8 for r in before)
    assert all(not r.found and r.crop is None and r.transform is None and r.reason == NO_FACE for r in gap)
    assert sum(r.found for r in after) >= len(after) - 1
    resumed = next(r for r in after if r.found)
    assert np.array_equal(resumed.eyes, resumed.landmarks.eyes), "the smoother was not reset after the gap"
    assert not np.array_equal(before[-1].eyes, before[-1].landmarks.eyes), "no smoothing while tracking"


@needs_real_data
@pytest.mark.heavy
@pytest.mark.parametrize("path", CLIPS, ids=lambda path: path.name)
def test_tracker_finds_the_face_in_nearly_every_frame(path):
    with FaceTracker() as tracker:
        found = [tracker.track(frame, timestamp).found for frame, timestamp in decode_clip(path)]
    assert np.mean(found) >= 0.95


# ---------------------------------------------------------------- neutral reference


def test_the_most_neutral_face_of_the_window_is_picked():
    from rt_dtgan.face import NeutralPicker
    from rt_dtgan.synth import Expression, Identity, render

    identity = Identity.from_seed(3)
    openings = [0.8, 0.5, 0.9, 0.0, 0.7, 0.6, 0.4, 0.8]  # frame 3 is the neutral one; 0.4 s apart
    picker, picked, crops, mouths = NeutralPicker(window_s=2.0), [], [], []
    with FaceTracker(PreprocessConfig()) as tracker:
        for index, opening in enumerate(openings):
            tracked = tracker.track(render(identity, Expression(jaw_drop=opening, lips_part=opening), None, 256), 0.4 * index)
            crops.append(tracked.crop)
            mouths.append(tracked.landmarks.mouth_opening)
            picked.append(picker.offer(tracked))
    assert mouths[3] < min(mouths[:3] + mouths[4:])
    assert all(p is None for p in picked[:5]) and all(p is None for p in picked[6:])  # 2 s after frame 0: frame 5
    assert np.array_equal(picked[5].crop, crops[3])
