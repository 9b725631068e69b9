"""Expression-dependent drawing: jaw motion, wrinkles, folds, eyes, brows and mouth.

Every function draws into a head canvas (4, S, S) float32 premultiplied RGBA that starts as
the identity's cached head layer, and touches only the pixels of its own window (boxes from
FaceGeometry), so a control changes the image only where it acts. Pixel fields have shape
(n, 1, h, w) (n = 1, or 2 for left/right pairs) so they broadcast against (n, 3, h, w) colour.
"""

from __future__ import annotations

import numpy as np

from rt_dtgan.synth.canvas import blend, colour, edge, smoothstep, unit_clip
from rt_dtgan.synth.expression import Expression
from rt_dtgan.synth.geometry import JAW_TRAVEL, FaceGeometry
from rt_dtgan.synth.layers import IdentityLayers, Window

_SCLERA = colour([0.93, 0.91, 0.88])
_LASH = colour([0.07, 0.05, 0.045])
_TEETH = colour([0.93, 0.9, 0.82])
_CAVITY = colour([0.16, 0.04, 0.05])
_TONGUE = colour([0.62, 0.28, 0.3])
_PUPIL = colour([0.03, 0.025, 0.025])
_GLINT = colour([0.97, 0.97, 0.97])
_SIDES = np.array([-1.0, 1.0], np.float32).reshape(2, 1, 1, 1)  # image-left, image-right


class _Patch:
    """A working copy of the canvas colour over a Window, written back by store().

    x_row (n, 1, 1, w) and y_column (n, 1, h, 1) let quantities that depend on one axis only
    be computed on a row or a column and broadcast.
    """

    def __init__(self, canvas: np.ndarray, layers: IdentityLayers, name: str) -> None:
        window: Window = layers.windows[name]
        self.canvas = canvas
        self.slices = window.slices
        self.x, self.y, self.shade = window.x, window.y, window.shade
        self.x_row, self.y_column = window.x[..., :1, :], window.y[..., :, :1]
        self.size = layers.size
        self.rgb = np.stack([canvas[:3, r, c] for r, c in window.slices])

    def store(self) -> None:
        for k, (rows, cols) in enumerate(self.slices):
            self.canvas[:3, rows, cols] = self.rgb[k]


def draw_expression(canvas: np.ndarray, layers: IdentityLayers, expression: Expression) -> None:
    """Draw every expression-dependent feature of `expression` into the head canvas, in place."""
    g, e = layers.geometry, expression
    if e.jaw_drop > 0.0:
        _drop_jaw(canvas, layers, e.jaw_drop * JAW_TRAVEL)
    if e.brow_raise > 0.0 or e.brow_lower > 0.0:
        _draw(canvas, layers, "forehead", _forehead, g, e)
    if e.nose_wrinkle > 0.0:
        _draw(canvas, layers, "nose", _nose_wrinkles, g, e.nose_wrinkle)
    mouth = _MouthShape(g, e)
    _draw(canvas, layers, "cheeks", _cheeks, g, e, mouth)
    _draw(canvas, layers, "eyes", _eyes, layers, e)
    _draw(canvas, layers, "brows", _brows, layers, e)
    _draw(canvas, layers, "mouth", _mouth, layers, mouth)


def _draw(canvas: np.ndarray, layers: IdentityLayers, window: str, painter, *args) -> None:
    patch = _Patch(canvas, layers, window)
    painter(patch, *args)
    patch.store()


def _drop_jaw(canvas: np.ndarray, layers: IdentityLayers, travel: float) -> None:
    """Move the chin and lower face down by `travel` (frame units), resampling the head layer."""
    size = layers.size
    (rows, cols), = layers.windows["jaw"].slices
    source = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] - (travel * size) * layers.jaw_follow
    r0 = np.clip(source.astype(np.int32), 0, size - 2)
    weight = source - r0
    index = (r0 * size + np.arange(cols.start, cols.stop, dtype=np.int32)).ravel()
    head = layers.head.reshape(4, size * size)
    shape = weight.shape
    for channel in range(4):
        top = np.take(head[channel], index).reshape(shape)
        canvas[channel, rows, cols] = top + (np.take(head[channel], index + size).reshape(shape) - top) * weight


def _darken_line(patch: _Patch, distance: np.ndarray, width: float, strength) -> None:
    """Multiply the patch by a soft dark line: distance and width in frame units."""
    w = max(width, 0.7 / patch.size)
    patch.rgb *= 1.0 - strength * np.exp(-((distance * (1.0 / w)) ** 2))


def _forehead(patch: _Patch, g: FaceGeometry, e: Expression) -> None:
    """Horizontal forehead wrinkles (brow_raise) and vertical glabella lines (brow_lower)."""
    dx = patch.x - g.cx
    if e.brow_raise > 0.0:
        span = 0.22 * e.brow_raise * (1.0 - smoothstep(0.06, 0.12, np.abs(dx)))
        rel = patch.y - (g.brow_y - 0.035 - 0.012 * e.brow_raise) - 0.6 * dx * dx
        for k in range(3):
            _darken_line(patch, rel + 0.02 * k, 0.0022, span)
    if e.brow_lower > 0.0:
        span = smoothstep(g.brow_y - 0.025, g.brow_y - 0.005, patch.y) * (1.0 - smoothstep(g.brow_y + 0.02, g.brow_y + 0.04, patch.y))
        _darken_line(patch, np.abs(dx) - 0.011, 0.0022, 0.3 * e.brow_lower * span)


def _nose_wrinkles(patch: _Patch, g: FaceGeometry, amount: float) -> None:
    """Short creases across the bridge of the nose (nose_wrinkle)."""
    dx = patch.x - g.cx
    span = 0.3 * amount * (1.0 - smoothstep(0.012, 0.028, np.abs(dx)))
    rel = patch.y - g.eye_y - 0.004 - 0.5 * dx * dx
    for k in range(3):
        _darken_line(patch, rel - 0.011 * k, 0.002, span)


class _MouthShape:
    """Lip curves as functions of the normalised mouth coordinate s in [-1, 1]; frame units."""

    def __init__(self, g: FaceGeometry, e: Expression) -> None:
        self.g = g
        self.half_w = g.mouth_w * (1.0 + 0.2 * e.lip_corner_pull + 0.3 * e.lip_stretch - 0.35 * e.lip_pucker)
        self.corner_dy = -0.03 * e.lip_corner_pull + 0.022 * e.lip_corner_depress + 0.004 * e.lip_stretch
        self.lift = 0.012 * e.nose_wrinkle
        self.open_up = 0.006 * e.lips_part + 0.6 * self.lift + 0.004 * e.jaw_drop
        self.open_down = 0.011 * e.lips_part + 0.85 * JAW_TRAVEL * e.jaw_drop
        self.upper = g.upper_lip * (1.0 + 0.6 * e.lip_pucker - 0.35 * e.lip_stretch - 0.25 * e.lip_corner_pull)
        self.lower = g.lower_lip * (1.0 + 0.5 * e.lip_pucker - 0.3 * e.lip_stretch - 0.15 * e.lip_corner_pull)
        self.roundness = 0.7 - 0.3 * e.lip_pucker
        self.jaw_drop = e.jaw_drop

    def corner(self, side) -> tuple:
        return self.g.cx + side * self.half_w, self.g.mouth_y + self.corner_dy

    def curves(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """(s, q, line, upper inner, lower inner, upper outer, lower outer) for pixel columns x."""
        s = (x - self.g.cx) * (1.0 / self.half_w)
        q = unit_clip(1.0 - s * s)
        line = (self.g.mouth_y + self.corner_dy * s * s) - (0.5 * self.lift) * q
        opening = q ** self.roundness
        upper_inner = line - self.open_up * opening
        lower_inner = line + self.open_down * opening
        taper = q ** 0.45
        bow = 1.0 - 0.3 * np.exp(-((s * (1 / 0.12)) ** 2)) + 0.12 * np.exp(-(((np.abs(s) - 0.28) * (1 / 0.15)) ** 2))
        upper_outer = upper_inner - self.upper * taper * bow
        lower_outer = lower_inner + self.lower * taper * (1.0 + 0.1 * q)
        return s, q, line, upper_inner, lower_inner, upper_outer, lower_outer


def _cheeks(patch: _Patch, g: FaceGeometry, e: Expression, mouth: _MouthShape) -> None:
    """Cheek apples (cheek_raise, smile) and the nasolabial folds from the nose wings to the mouth corners."""
    side = _SIDES
    apple = e.cheek_raise * 0.10 + e.lip_corner_pull * 0.05
    if apple > 0.0:
        ax = (patch.x - g.cx) * side - (g.eye_dx + 0.005)
        ay = patch.y - (g.eye_y + 0.085 - 0.012 * e.cheek_raise)
        patch.rgb *= 1.0 + apple * np.exp(-((ax * (1 / 0.04)) ** 2 + (ay * (1 / 0.03)) ** 2))
    top_x, top_y = g.nose_w * 1.2, g.nose_tip_y - 0.012
    bottom_x = mouth.half_w + 0.016
    bottom_y = g.mouth_y + mouth.corner_dy + 0.018
    y = patch.y_column
    t = unit_clip((y - top_y) * (1.0 / (bottom_y - top_y)))
    fold_x = top_x + (bottom_x - top_x) * t + 0.012 * np.sin(np.pi * t)
    window = smoothstep(top_y - 0.004, top_y + 0.01, y) * (1.0 - smoothstep(bottom_y - 0.01, bottom_y + 0.004, y))
    strength = 0.07 + 0.25 * e.lip_corner_pull + 0.1 * e.cheek_raise + 0.15 * e.nose_wrinkle + 0.08 * e.lip_stretch
    distance = (patch.x - g.cx) * side - fold_x
    _darken_line(patch, distance, 0.004, strength * window)
    patch.rgb *= 1.0 + (0.35 * strength) * window * np.exp(-(((distance - 0.009) * (1 / 0.006)) ** 2))


def _eyes(patch: _Patch, layers: IdentityLayers, e: Expression) -> None:
    """Sclera, iris, pupil, catchlight, lash line, lids and crease of both eyes."""
    g, identity = layers.geometry, layers.identity
    w = g.eye_w
    px = w * patch.size
    u = (patch.x_row - g.cx - _SIDES * g.eye_dx) * (_SIDES / w)
    v = (patch.y - g.eye_y) * (1.0 / w) + g.eye_tilt * u
    q = unit_clip(1.0 - u * u)
    abs_u = np.abs(u)
    within = edge((abs_u - 1.0) * px)
    open_h = g.eye_h / w
    upper_open = open_h * (1.0 + 0.6 * e.eye_widen - 0.3 * e.brow_lower - 0.2 * e.cheek_raise)
    lower = open_h * 0.7 * (1.0 - 0.55 * e.cheek_raise + 0.1 * e.eye_widen)
    lower_lid = lower * q * (1.0 + 0.15 * u)
    open_lid = -upper_open * q ** 0.85 * (1.0 - 0.12 * u)
    upper_lid = open_lid + (lower_lid + 0.03 - open_lid) * e.blink
    opening = edge(np.maximum(upper_lid - v, v - lower_lid) * px) * within

    dv = v - 0.06
    r = np.sqrt(u * u + dv * dv)
    light = patch.shade * 1.1 * (1.0 - 0.45 * np.exp(np.minimum(upper_lid - v, 0.0) * 4.5))
    eyeball = _SCLERA * (light * (0.8 + 0.2 * q))
    iris_tone = 1.15 - 0.55 * np.minimum(r * 2.0, 1.0) ** 3
    iris_cov = edge((r - 0.5) * px)
    blend(eyeball, colour(identity.iris_rgb) * (iris_tone * light), iris_cov)
    blend(eyeball, _PUPIL, edge((r - 0.21) * px))
    glint_u = u - (0.25 * float(layers.light[0])) * _SIDES
    glint = edge((np.sqrt(glint_u * glint_u + (dv + 0.2) ** 2) - 0.1) * px)
    blend(eyeball, _GLINT, 0.9 * glint * iris_cov)

    crease = open_lid * 1.05 - (0.32 + 0.12 * e.eye_widen)
    lid_skin = edge((v - crease) * -px) * edge((v - upper_lid) * px)
    shadow = 0.1 * lid_skin + (0.28 * (1.0 - 0.7 * e.blink)) * _line(v - crease, 0.06)
    shadow += 0.3 * _line(v - lower_lid - 0.035, 0.045)
    if e.cheek_raise > 0.0:
        shadow += (0.2 * e.cheek_raise) * _line(v - lower_lid - 0.35, 0.07) * edge((abs_u - 0.8) * px)
    patch.rgb *= 1.0 - shadow * within
    blend(patch.rgb, eyeball, opening)
    lash = edge((np.abs(v - upper_lid + 0.04) - 0.07 - 0.03 * np.maximum(u, 0.0)) * px) * edge((abs_u - 1.08) * px)
    blend(patch.rgb, _LASH, 0.92 * lash)


def _line(distance: np.ndarray, width: float) -> np.ndarray:
    """Soft line profile in [0, 1]: 1 on the line, gaussian falloff of `width` (same units as distance)."""
    return np.exp(-((distance * (1.0 / width)) ** 2))


def _brows(patch: _Patch, layers: IdentityLayers, e: Expression) -> None:
    """Both eyebrows: raised, lowered and drawn together, or oblique when both act."""
    g, identity = layers.geometry, layers.identity
    half = g.brow_half_length
    centre_x = g.cx + _SIDES * (g.eye_dx + 0.005 - 0.006 * e.brow_lower)
    u = (patch.x_row - centre_x) * (_SIDES / half)
    inner_dy = -0.022 * e.brow_raise + 0.014 * e.brow_lower - 0.024 * e.brow_raise * e.brow_lower
    outer_dy = -0.016 * e.brow_raise + 0.006 * e.brow_lower + 0.01 * e.brow_raise * e.brow_lower
    arch = identity.brow_arch + 0.006 * e.brow_raise
    t = unit_clip((u + 1.0) * 0.5)
    centre = (g.brow_y + inner_dy) - arch * unit_clip(1.0 - (u - 0.2) ** 2) + (outer_dy - inner_dy) * t
    half_thickness = identity.brow_thickness * (0.575 - 0.275 * t)
    coverage = edge((np.abs(patch.y - centre) - half_thickness) * patch.size) * edge((np.abs(u) - 1.0) * (half * patch.size))
    strokes = 1.0 + (0.2 if patch.size >= 128 else 0.05) * np.sin((patch.x * (0.8 * _SIDES) + patch.y) * 600.0)
    blend(patch.rgb, colour(identity.brow_rgb) * (patch.shade * strokes), 0.9 * coverage)


def _mouth(patch: _Patch, layers: IdentityLayers, mouth: _MouthShape) -> None:
    """Lips, the mouth line or opening, teeth and tongue."""
    identity, size = layers.identity, layers.size
    s, q, line, upper_inner, lower_inner, upper_outer, lower_outer = mouth.curves(patch.x_row)
    y = patch.y
    abs_s = np.abs(s)
    ends = edge((abs_s - 1.0) * (mouth.half_w * size))
    lips = edge(np.maximum(upper_outer - y, y - lower_outer) * size) * ends

    tone = 0.8 + 0.25 * edge((line - y) * size)
    lower_mid = (lower_inner + lower_outer) * 0.5 + 0.15 * mouth.lower
    gloss = 0.18 * np.exp(-(((y - lower_mid) * (4.0 / mouth.lower)) ** 2)) * q
    border = 1.0 - 0.18 * (np.exp(-(((y - upper_outer) * 500.0) ** 2)) + np.exp(-(((y - lower_outer) * 500.0) ** 2)))
    lip_rgb = colour(identity.lip_rgb) * (patch.shade * tone * border) + gloss * patch.shade
    blend(patch.rgb, lip_rgb, lips)

    cavity = 0.0
    if mouth.open_up + mouth.open_down > 0.0:
        cavity = edge(np.maximum(upper_inner - y, y - lower_inner) * size) * edge((abs_s - 0.97) * (mouth.half_w * size))
        interior = np.empty_like(patch.rgb)
        interior[...] = _CAVITY * (0.6 + 0.4 * q)
        gaps = 1.0 - 0.35 * np.exp(-((np.sin(s * (np.pi * 5.0)) * 4.0) ** 2))
        teeth_rgb = _TEETH * (patch.shade * (0.75 + 0.25 * q) * gaps)
        blend(interior, teeth_rgb, edge((y - upper_inner - 0.017) * size) * smoothstep(0.85, 0.6, abs_s))
        if mouth.jaw_drop > 0.1:
            tongue = np.exp(-(((y - lower_inner + 0.006) * 125.0) ** 2)) * q
            blend(interior, _TONGUE * patch.shade, (0.8 * smoothstep(0.1, 0.4, mouth.jaw_drop)) * tongue)
            lower_teeth = edge((lower_inner - 0.01 - y) * size) * smoothstep(0.75, 0.5, abs_s)
            blend(interior, teeth_rgb * 0.85, (0.8 * smoothstep(0.2, 0.6, mouth.jaw_drop)) * lower_teeth)
        blend(patch.rgb, interior, cavity)

    closed_line = np.exp(-(((y - line) * (1.0 / max(0.0018, 0.6 / size))) ** 2)) * ends * (0.35 + 0.3 * (1.0 - q))
    corner_x, corner_y = mouth.corner(1)
    corners = np.exp(-(((np.abs(patch.x - mouth.g.cx) - (corner_x - mouth.g.cx)) * (1 / 0.006)) ** 2 + ((y - corner_y) * (1 / 0.004)) ** 2))
    patch.rgb *= 1.0 - 0.65 * closed_line * (1.0 - cavity) - 0.3 * corners
