"""Per-identity cached layers: everything that does not depend on expression or pose.

`identity_layers(identity, size)` renders, once per (identity, size), the background, the
head without its moving features (premultiplied RGBA), the layer drawn over the features
(front hair, glasses), the torso, the skin lighting factor and a depth map for head turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rt_dtgan.synth.canvas import (
    blend,
    box_slices,
    check_size,
    colour,
    edge,
    gaussian,
    implicit_coverage,
    lambert,
    pixel_grid,
    smoothstep,
    unit_clip,
)
from rt_dtgan.synth.geometry import JAW_TRAVEL, Box, FaceGeometry
from rt_dtgan.synth.identity import Identity

LAYER_CACHE_SIZE = 32  # about 1 MB per identity at 128 px, 4.5 MB at 256 px


@dataclass(frozen=True, eq=False)
class Window:
    """One or two equally sized pixel windows (left/right features are stacked on axis 0).

    slices: (rows, cols) per window; x, y, shade: (n, 1, h, w) float32 pixel-centre
    coordinates (frame units) and skin lighting factor of the window pixels.
    """

    slices: tuple[tuple[slice, slice], ...]
    x: np.ndarray
    y: np.ndarray
    shade: np.ndarray

    @classmethod
    def over_boxes(cls, boxes: tuple[Box, ...], shade: np.ndarray) -> Window:
        size = shade.shape[0]
        spans = [box_slices(box, size) for box in boxes]
        height = max(r.stop - r.start for r, _ in spans)
        width = max(c.stop - c.start for _, c in spans)
        slices = []
        for rows, cols in spans:
            r0, c0 = min(rows.start, size - height), min(cols.start, size - width)
            slices.append((slice(r0, r0 + height), slice(c0, c0 + width)))
        x, y = pixel_grid(size)
        return cls(
            slices=tuple(slices),
            x=np.stack([x[r, c] for r, c in slices])[:, None],
            y=np.stack([y[r, c] for r, c in slices])[:, None],
            shade=np.stack([shade[r, c] for r, c in slices])[:, None],
        )


@dataclass(frozen=True, eq=False)
class IdentityLayers:
    """Cached renderings of one identity at one size. Arrays are float32 in [0, 1], read-only.

    background: (3, S, S); head, over, torso: (4, S, S) premultiplied RGBA, planar;
    shade: (S, S) skin lighting factor; depth: (S, S) surface height in frame units;
    windows: the pixel windows of the expression features (see features.py);
    jaw_follow: (h, w) in [0, 1], how much each pixel of the "jaw" window follows the jaw;
    over_rows, torso_rows: the rows where over and torso are not transparent.
    """

    identity: Identity
    geometry: FaceGeometry
    size: int
    light: np.ndarray
    background: np.ndarray
    head: np.ndarray
    over: np.ndarray
    torso: np.ndarray
    shade: np.ndarray
    depth: np.ndarray
    windows: dict[str, Window]
    jaw_follow: np.ndarray
    over_rows: slice
    torso_rows: slice


def light_vector(identity: Identity) -> np.ndarray:
    """(3,) unit vector towards the light; y points down, z towards the camera."""
    az, el = identity.light_azimuth, identity.light_elevation
    return np.array([np.cos(el) * np.sin(az), -np.sin(el), np.cos(el) * np.cos(az)], dtype=np.float32)


@lru_cache(maxsize=LAYER_CACHE_SIZE)
def identity_layers(identity: Identity, size: int) -> IdentityLayers:
    """Render (and cache) the expression-independent layers of an identity at a size."""
    check_size(size)
    g = FaceGeometry.of(identity)
    x, y = pixel_grid(size)
    light = light_vector(identity)
    rng = np.random.default_rng([identity.seed, size, 0x1A])
    face_field = _face_field(x, y, g, identity.jaw_squareness)
    height = _face_height(x, y, g, face_field)
    shade = (identity.ambient + (0.92 - identity.ambient) * lambert(height, size, light)).astype(np.float32)
    head, over = _head_and_over(x, y, g, identity, light, size, rng, face_field, height, shade)
    torso = _premultiplied(*_torso(x, y, g, identity, light, size))
    windows = {
        "jaw": Window.over_boxes((g.jaw_box(),), shade),
        "forehead": Window.over_boxes((g.forehead_box(),), shade),
        "nose": Window.over_boxes((g.nose_bridge_box(),), shade),
        "cheeks": Window.over_boxes((g.cheek_box(-1), g.cheek_box(1)), shade),
        "eyes": Window.over_boxes((g.eye_box(-1), g.eye_box(1)), shade),
        "brows": Window.over_boxes((g.brow_box(-1), g.brow_box(1)), shade),
        "mouth": Window.over_boxes((g.mouth_box(),), shade),
    }
    layers = IdentityLayers(
        identity=identity,
        geometry=g,
        size=size,
        light=light,
        background=_background(x, y, identity, rng),
        head=head,
        over=over,
        torso=torso,
        shade=shade,
        depth=_depth(x, y, g),
        windows=windows,
        jaw_follow=_jaw_follow(windows["jaw"], g),
        over_rows=_opaque_rows(over[3]),
        torso_rows=_opaque_rows(torso[3]),
    )
    for array in (layers.background, layers.head, layers.over, layers.torso, layers.shade, layers.jaw_follow):
        array.setflags(write=False)
    return layers


def _head_and_over(x, y, g: FaceGeometry, identity: Identity, light, size, rng, face_field, height, shade):
    """(head, over): the head without moving features, and front hair plus glasses; (4, S, S) premultiplied."""
    rgb = np.zeros((3, size, size), np.float32)
    alpha = np.zeros((size, size), np.float32)
    hair_back, hair_front, hair_rgb = _hair(x, y, g, identity, light, size, rng)
    _over(rgb, alpha, hair_rgb, hair_back)
    _over(rgb, alpha, *_neck(x, y, g, identity, light, size))
    for side in (-1, 1):
        _over(rgb, alpha, *_ear(x, y, g, identity, light, size, side))
    skin = _skin(x, y, g, identity, shade, light, height, size, rng)
    _over(rgb, alpha, skin, implicit_coverage(face_field))
    _nostrils(rgb, x, y, g, identity, shade)
    if identity.beard != "none":
        _over(rgb, alpha, *_beard(x, y, g, identity, shade, size, rng))
    head = _premultiplied(rgb, alpha)

    over_rgb = np.zeros_like(rgb)
    over_alpha = np.zeros_like(alpha)
    _over(over_rgb, over_alpha, hair_rgb, hair_front)
    if identity.glasses != "none":
        _over(over_rgb, over_alpha, *_glasses(x, y, g, identity, size))
    return head, _premultiplied(over_rgb, over_alpha)


def _over(rgb: np.ndarray, alpha: np.ndarray, src_rgb: np.ndarray, src_alpha: np.ndarray) -> None:
    """In place 'over' of a straight-alpha source onto a straight-alpha (rgb, alpha) layer."""
    blend(rgb, src_rgb, src_alpha)
    alpha += (1.0 - alpha) * src_alpha


def _premultiplied(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(4, S, S) float32: rgb * alpha and alpha."""
    return np.concatenate([rgb * alpha, alpha[None]], axis=0).astype(np.float32)


def _face_field(x: np.ndarray, y: np.ndarray, g: FaceGeometry, squareness: float) -> np.ndarray:
    """Implicit face outline (negative inside): an ellipse above the cheekbones, a superellipse below."""
    widest = g.eye_y + 0.03
    dx = np.abs(x - g.cx) / g.face_w
    vertical = (y - widest) / np.where(y < widest, widest - g.skull_top, g.chin_y - widest)
    exponent = 2.0 + (squareness - 2.0) * smoothstep(widest - 0.04, widest + 0.12, y)
    return vertical * vertical + dx ** exponent - 1.0


def _face_height(x: np.ndarray, y: np.ndarray, g: FaceGeometry, face_field: np.ndarray) -> np.ndarray:
    """Height field of the face (frame units) used for shading: a dome plus nose, sockets, cheeks."""
    h = 0.14 * np.clip(-face_field, 0.0, 1.0) ** 0.6
    t = np.clip((y - g.eye_y + 0.01) / (g.nose_tip_y - g.eye_y), 0.0, 1.1)
    ridge_w = g.nose_w * (0.3 + 0.5 * t)
    h += 0.045 * t ** 1.3 * np.exp(-(((x - g.cx) / ridge_w) ** 2)) * smoothstep(g.nose_tip_y + 0.012, g.nose_tip_y - 0.004, y)
    h += 0.012 * gaussian(x, y, g.cx, g.nose_tip_y - 0.008, g.nose_w * 0.55, g.nose_w * 0.45)
    for side in (-1, 1):
        ex, ey = g.eye_center(side)
        h -= 0.022 * gaussian(x, y, ex, ey, g.eye_w * 1.35, g.eye_w * 0.95)
        h += 0.010 * gaussian(x, y, ex, g.brow_y + 0.004, 0.075, 0.018)
        h += 0.014 * gaussian(x, y, ex + side * 0.02, g.eye_y + 0.085, 0.055, 0.045)
        h += 0.010 * gaussian(x, y, g.cx + side * g.nose_w * 0.75, g.nose_tip_y - 0.004, g.nose_w * 0.38, g.nose_w * 0.32)
        h -= 0.008 * gaussian(x, y, g.cx + side * g.face_w * 0.9, g.eye_y - 0.06, 0.04, 0.06)
    h += 0.014 * gaussian(x, y, g.cx, g.mouth_y - 0.004, g.mouth_w * 1.5, 0.05)
    h += 0.010 * gaussian(x, y, g.cx, g.chin_y - 0.035, 0.045, 0.03)
    h -= 0.005 * gaussian(x, y, g.cx, g.mouth_y + 0.042, g.mouth_w * 0.9, 0.01)
    h -= 0.003 * gaussian(x, y, g.cx, (g.nose_tip_y + g.mouth_y) / 2, 0.008, 0.02)
    return h.astype(np.float32)


def _speckle(rng: np.random.Generator, size: int, amount: float) -> np.ndarray:
    """(S, S) multiplicative texture around 1."""
    return (1.0 + amount * rng.standard_normal((size, size))).astype(np.float32)


def _skin(x, y, g: FaceGeometry, identity: Identity, shade, light, height, size, rng) -> np.ndarray:
    """(3, S, S) lit skin colour with blush, warm shadows and a soft specular highlight."""
    base = colour(identity.skin_rgb)
    blush = sum(gaussian(x, y, g.cx + s * (g.eye_dx + 0.01), g.eye_y + 0.095, 0.05, 0.035) for s in (-1, 1))
    blush = blush + 0.6 * gaussian(x, y, g.cx, g.nose_tip_y - 0.01, g.nose_w * 0.8, g.nose_w * 0.6)
    tint = 1.0 + identity.blush * blush * colour([0.05, -0.18, -0.16])
    warm = 1.0 + (1.0 - shade) * colour([0.06, -0.03, -0.08])
    rgb = base * tint * warm * (shade * _speckle(rng, size, 0.015))
    return rgb + 0.06 * _specular(height, size, light)


def _specular(height: np.ndarray, size: int, light: np.ndarray) -> np.ndarray:
    """Blinn-Phong highlight of a height field, viewer along +z."""
    half = light + np.array([0.0, 0.0, 1.0], np.float32)
    half = half / np.linalg.norm(half)
    gy, gx = np.gradient(height)
    sx, sy = gx * size, gy * size
    cos = np.clip((-sx * half[0] - sy * half[1] + half[2]) / np.sqrt(sx * sx + sy * sy + 1.0), 0.0, 1.0)
    return (cos ** 24).astype(np.float32)


def _nostrils(rgb, x, y, g: FaceGeometry, identity: Identity, shade) -> None:
    dark = colour(identity.skin_rgb) * 0.25 * shade
    for side in (-1, 1):
        field = ((x - g.cx - side * g.nose_w * 0.42) / (g.nose_w * 0.3)) ** 2 + ((y - g.nose_tip_y - 0.004) / (g.nose_w * 0.13)) ** 2 - 1.0
        blend(rgb, dark, 0.9 * implicit_coverage(field))


def _neck(x, y, g: FaceGeometry, identity: Identity, light, size):
    width = g.face_w * 0.42 + 0.3 * np.clip(y - g.chin_y - 0.07, 0.0, None) ** 1.5
    dx = (x - g.cx) / width
    coverage = edge((np.abs(x - g.cx) - width) * size) * smoothstep(g.mouth_y - 0.05, g.mouth_y, y)
    height = 0.08 * np.sqrt(np.clip(1.0 - dx * dx, 0.0, 1.0))
    shade = identity.ambient + (1 - identity.ambient) * lambert(height, size, light)
    shadow = 0.45 + 0.55 * smoothstep(g.chin_y - 0.01, g.chin_y + 0.07, y)
    return colour(identity.skin_rgb) * (0.9 * shade * shadow), coverage


def _ear(x, y, g: FaceGeometry, identity: Identity, light, size, side: int):
    ex, ey = g.cx + side * (g.face_w + 0.008), g.eye_y + 0.045
    field = ((x - ex) / 0.028) ** 2 + ((y - ey) / 0.058) ** 2 - 1.0
    height = 0.03 * np.sqrt(np.clip(-field, 0.0, 1.0))
    shade = identity.ambient + (1 - identity.ambient) * lambert(height, size, light)
    inner = 1.0 - 0.35 * gaussian(x, y, ex - side * 0.004, ey + 0.005, 0.012, 0.03)
    return colour(identity.skin_rgb) * (0.88 * shade * inner), implicit_coverage(field)


def _hair(x, y, g: FaceGeometry, identity: Identity, light, size, rng):
    """(back coverage, front coverage, colour): back is drawn behind the face, front over it."""
    style = identity.hair_style
    if style == "bald":
        zero = np.zeros_like(x)
        return zero, zero, np.zeros((3,) + x.shape, np.float32)
    vol = identity.hair_volume
    side_pad, top_pad, bottom = {
        "buzz": (0.006, 0.01, g.eye_y - 0.01),
        "short": (0.02 + 0.015 * vol, 0.035 + 0.03 * vol, g.eye_y + 0.02),
        "side_part": (0.025 + 0.015 * vol, 0.05 + 0.03 * vol, g.eye_y + 0.03),
        "bangs": (0.035 + 0.02 * vol, 0.045 + 0.02 * vol, g.mouth_y + 0.02 + 0.08 * vol),
        "long": (0.035 + 0.03 * vol, 0.045 + 0.02 * vol, 1.05),
        "bun": (0.012, 0.018, g.eye_y),
        "curly": (0.07 + 0.04 * vol, 0.08 + 0.04 * vol, g.chin_y - 0.06 + 0.08 * vol),
    }[style]
    dx = x - g.cx
    angle = np.arctan2(y - g.eye_y, dx)
    bumps = 0.012 * np.sin(angle * 14.0 + identity.seed) + 0.008 * np.sin(angle * 23.0) if style == "curly" else 0.0
    spread = 0.12 * np.clip(y - g.chin_y, 0.0, None) if style == "long" else 0.0
    half_w = g.face_w + side_pad + bumps + spread
    top_h = g.eye_y - g.skull_top + top_pad + bumps
    upper = (dx / half_w) ** 2 + ((y - g.eye_y) / top_h) ** 2 - 1.0
    sides = np.abs(dx) / half_w - 1.0
    outer = implicit_coverage(np.where(y < g.eye_y, upper, sides)) * edge((y - bottom) * size / 3.0)
    if style == "bun":
        bun = (dx / 0.06) ** 2 + ((y - g.skull_top + 0.03) / 0.05) ** 2 - 1.0
        outer = np.maximum(outer, implicit_coverage(bun))
    front = outer * _above_hairline(x, y, g, identity, size)
    return outer, front, _hair_colour(x, y, g, identity, light, size, rng)


def _above_hairline(x, y, g: FaceGeometry, identity: Identity, size) -> np.ndarray:
    """Coverage of the part of the face that the front hair hides."""
    u = (x - g.cx) / g.face_w
    style = identity.hair_style
    if style == "bangs":
        line = g.brow_y - 0.02 - 0.006 * np.abs(np.sin(x * 90.0)) + 0.06 * np.clip(np.abs(u) - 0.5, 0.0, None)
        temple = 0.86
    elif style == "side_part":
        line = g.hairline_y + 0.05 * np.clip(0.6 - u * (1 if identity.seed % 2 else -1), 0.0, 1.0) ** 2
        temple = 0.93
    else:
        line = g.hairline_y + 0.004 * np.sin(x * 70.0)
        temple = 0.94 if style in ("short", "buzz", "bun", "curly") else 0.88
    line = line + (g.eye_y - 0.02 - line) * np.clip(np.abs(u), 0.0, 1.0) ** 5
    above = edge((y - line) * size)
    beside = edge((temple - np.abs(u)) * g.face_w * size)
    return np.maximum(above, beside)


def _hair_colour(x, y, g: FaceGeometry, identity: Identity, light, size, rng) -> np.ndarray:
    """(3, S, S): hair colour lit as a large dome, with strands and a sheen band."""
    dx = x - g.cx
    dome = np.sqrt(np.clip(1.0 - (dx / (g.face_w + 0.12)) ** 2 - ((y - g.eye_y) / 0.5) ** 2, 0.0, 1.0))
    shade = identity.ambient + (1 - identity.ambient) * lambert(0.25 * dome, size, light)
    crown_y = g.skull_top + 0.06
    angle = np.arctan2(y - crown_y, dx)
    radius = np.sqrt(dx * dx + (y - crown_y) ** 2)
    detail = 1.0 if size >= 128 else 0.4
    if identity.hair_style == "curly":
        strands = np.sin(x * 260.0) * np.sin(y * 260.0 + np.sin(x * 50.0) * 2.0)
    else:
        strands = np.sin(angle * 70.0 + 4.0 * np.sin(radius * 30.0))
    texture = 1.0 + detail * (0.12 * strands + 0.06 * rng.standard_normal(x.shape))
    sheen = 0.25 * np.exp(-(((radius - 0.22) / 0.04) ** 2)) * np.clip(-light[1] + 0.3, 0.0, 1.0)
    hair = colour(identity.hair_rgb)
    rgb = hair * (shade * texture) + sheen * (0.3 + 0.7 * float(hair.mean()))
    if identity.hair_style == "buzz":
        rgb = 0.55 * rgb + 0.45 * colour(identity.skin_rgb) * shade
    return rgb.astype(np.float32)


def _beard(x, y, g: FaceGeometry, identity: Identity, shade, size, rng):
    """(colour, coverage) of facial hair drawn on the static head."""
    dx = np.abs(x - g.cx)
    widest = g.eye_y + 0.03
    chin = g.chin_y + 0.018
    jaw = ((y - widest) / (chin - widest)) ** 2 + (dx / (g.face_w + 0.006)) ** identity.jaw_squareness - 1.0
    lower_face = implicit_coverage(np.where(y < widest, dx / (g.face_w + 0.006) - 1.0, jaw))
    top = g.nose_tip_y + 0.018 + (g.eye_y + 0.03 - g.nose_tip_y - 0.018) * np.clip(dx / g.face_w, 0, 1) ** 3
    full = lower_face * edge((top - y) * size)
    moustache = edge((g.nose_tip_y + 0.014 - y) * size) * edge((y - g.mouth_y - 0.004 - 0.02 * (dx / g.mouth_w) ** 2) * size)
    moustache = moustache * edge((dx - g.mouth_w * 1.1) * size)
    style = identity.beard
    if style in ("full", "stubble"):
        coverage = full
    elif style == "goatee":
        chin_y = (g.mouth_y + g.chin_y) / 2.0 + 0.01
        field = (dx / (g.mouth_w * 0.9)) ** 2 + ((y - chin_y) / (g.chin_y - g.mouth_y + 0.02) * 2.0) ** 2 - 1.0
        coverage = np.maximum(moustache, lower_face * implicit_coverage(field))
    else:
        coverage = moustache
    stubble = style == "stubble"
    grain = rng.standard_normal(x.shape).astype(np.float32)
    strands = np.sin(x * 400.0 + 3.0 * np.sin(y * 90.0)) if size >= 128 else 0.0
    rgb = colour(identity.hair_rgb) * 0.85 * shade * (1.0 + 0.08 * grain + 0.1 * strands)
    density = np.clip(0.3 + 0.06 * grain, 0.0, 1.0) if stubble else np.clip(0.97 + 0.05 * grain, 0.0, 1.0)
    return rgb.astype(np.float32), (coverage * density).astype(np.float32)


def _glasses(x, y, g: FaceGeometry, identity: Identity, size):
    """(colour, coverage) of spectacles: two rims, a bridge, the arms and faint lenses."""
    thickness = 0.006 if identity.glasses == "round" else 0.008
    rim = np.zeros_like(x)
    lens = np.zeros_like(x)
    for side in (-1, 1):
        ex, ey = g.eye_center(side)
        u = (x - ex) / (g.eye_w * 1.75)
        v = (y - ey - 0.006) / (g.eye_w * 1.35)
        power = 2.0 if identity.glasses == "round" else 5.0
        radius = (np.abs(u) ** power + np.abs(v) ** power) ** (1.0 / power)
        scale = g.eye_w * (1.75 if identity.glasses == "round" else 1.5)
        rim = np.maximum(rim, edge((np.abs(radius - 1.0) * scale - thickness / 2) * size))
        lens = np.maximum(lens, edge((radius - 1.0) * scale * size))
        arm_x0, arm_x1 = sorted((ex + side * g.eye_w * 1.75, g.cx + side * (g.face_w + 0.01)))
        arm = edge((np.abs(y - ey + 0.004) - thickness / 2.5) * size)
        arm = arm * edge((arm_x0 - x) * size) * edge((x - arm_x1) * size)
        rim = np.maximum(rim, arm)
    bridge_y = g.eye_y - 0.004 + 0.4 * (x - g.cx) ** 2 / g.eye_dx
    bridge = edge((np.abs(y - bridge_y) - thickness / 2) * size) * edge((np.abs(x - g.cx) - g.eye_dx * 0.5) * size)
    rim = np.maximum(rim, bridge)
    glint = 0.35 * lens * np.clip(np.sin((x + y) * 40.0), 0.0, 1.0) ** 8
    lens_only = lens * (1.0 - rim)
    rgb = colour(identity.glasses_rgb) * rim + 0.85 * lens_only
    coverage = np.maximum(rim, 0.10 * lens + glint)
    rgb = rgb / np.maximum(rim + lens_only, 1e-6)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32), coverage.astype(np.float32)


def _torso(x, y, g: FaceGeometry, identity: Identity, light, size):
    """(rgb, alpha) of shoulders and clothes, with a V neckline showing the neck."""
    dx = np.abs(x - g.cx)
    neck_base = g.chin_y + 0.07
    top = neck_base + 0.012 * smoothstep(0.05, 0.14, dx) + 0.3 * np.clip(dx - 0.14, 0.0, None) ** 2
    body = edge((y - top) * -size)
    neckline = edge((0.075 * unit_clip(1.0 - (y - neck_base) / 0.1) - dx) * size)
    alpha = body * neckline
    height = 0.3 * np.sqrt(np.clip(1.0 - (dx / 0.6) ** 2, 0.0, 1.0))
    shade = identity.ambient + (1 - identity.ambient) * lambert(height, size, light)
    fold = 1.0 - 0.06 * np.sin(x * 45.0 + 3.0 * y) ** 2
    rgb = colour(identity.clothing_rgb) * (shade * fold)
    return rgb.astype(np.float32), alpha.astype(np.float32)


def _background(x, y, identity: Identity, rng) -> np.ndarray:
    """(3, S, S): a two-colour gradient with soft out-of-focus blobs and a vignette."""
    grey = colour([0.5, 0.5, 0.5])
    top = 0.55 * colour(identity.background_top_rgb) + 0.45 * grey
    bottom = 0.55 * colour(identity.background_bottom_rgb) + 0.45 * grey
    rgb = top + (bottom - top) * y
    for _ in range(3):
        cx, cy = rng.uniform(0.0, 1.0, 2)
        blob = 0.6 * colour(rng.uniform(0.1, 0.95, 3)) + 0.4 * grey
        blend(rgb, blob, 0.35 * gaussian(x, y, cx, cy, *rng.uniform(0.1, 0.3, 2)))
    vignette = 1.0 - 0.25 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    return (rgb * vignette).astype(np.float32)


def _opaque_rows(alpha: np.ndarray) -> slice:
    """The smallest slice of rows outside which alpha (S, S) is zero (empty when all zero)."""
    rows = np.flatnonzero(alpha.max(axis=1) > 0.0)
    return slice(int(rows[0]), int(rows[-1]) + 1) if rows.size else slice(0, 0)


def _jaw_follow(window: Window, g: FaceGeometry) -> np.ndarray:
    """(h, w) weight of the jaw motion: 1 from the mouth line to below the chin, fading at the sides."""
    x, y = window.x[0, 0], window.y[0, 0]
    below_mouth = smoothstep(g.mouth_y - 0.03, g.mouth_y + 0.035, y)
    above_neck = 1.0 - smoothstep(g.chin_y + JAW_TRAVEL - 0.005, g.chin_y + JAW_TRAVEL + 0.045, y)
    centre = 1.0 - smoothstep(g.face_w * 0.45, g.face_w * 0.98, np.abs(x - g.cx))
    return (below_mouth * above_neck * centre).astype(np.float32)


def _depth(x, y, g: FaceGeometry) -> np.ndarray:
    """(S, S) surface height in frame units for the parallax of head turns."""
    dome = np.sqrt(np.clip(1.0 - ((x - g.cx) / (g.face_w * 1.25)) ** 2 - ((y - g.eye_y - 0.06) / 0.45) ** 2, 0.0, 1.0))
    nose = gaussian(x, y, g.cx, g.nose_tip_y - 0.03, g.nose_w * 0.9, 0.06)
    return (0.16 * dome + 0.05 * nose).astype(np.float32)
