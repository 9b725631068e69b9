"""Landmark geometry of an identity in the canonical frame (frontal, eyes horizontal).

Coordinates are fractions of the frame side: x to the right, y down, (0.5, 0.5) the centre.
"""

from __future__ import annotations

from dataclasses import dataclass

from rt_dtgan.synth.identity import Identity

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1), fractions of the frame

# Largest downward travel of the chin at jaw_drop = 1, as a fraction of the frame.
JAW_TRAVEL = 0.065


@dataclass(frozen=True)
class FaceGeometry:
    """Positions and sizes derived from an Identity, all in frame fractions."""

    cx: float
    eye_y: float
    eye_dx: float
    eye_w: float
    eye_h: float
    eye_tilt: float
    brow_y: float
    brow_half_length: float
    skull_top: float
    hairline_y: float
    face_w: float
    chin_y: float
    nose_tip_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    upper_lip: float
    lower_lip: float

    @classmethod
    def of(cls, identity: Identity) -> FaceGeometry:
        eye_y = identity.eye_line
        nose_tip_y = eye_y + identity.nose_length
        mouth_y = nose_tip_y + identity.mouth_drop
        return cls(
            cx=0.5,
            eye_y=eye_y,
            eye_dx=identity.eye_spacing,
            eye_w=identity.eye_width,
            eye_h=identity.eye_width * identity.eye_height,
            eye_tilt=identity.eye_tilt,
            brow_y=eye_y - identity.brow_gap,
            brow_half_length=identity.eye_width * 1.45,
            skull_top=eye_y - identity.forehead_height,
            hairline_y=eye_y - identity.brow_gap - identity.hairline,
            face_w=identity.face_width,
            chin_y=max(eye_y + identity.face_length, mouth_y + 0.12),
            nose_tip_y=nose_tip_y,
            nose_w=identity.nose_width,
            mouth_y=mouth_y,
            mouth_w=identity.mouth_width,
            upper_lip=identity.upper_lip,
            lower_lip=identity.lower_lip,
        )

    def eye_center(self, side: int) -> tuple[float, float]:
        """Centre of the eye on the image-left (side=-1) or image-right (side=+1)."""
        return self.cx + side * self.eye_dx, self.eye_y

    def eye_box(self, side: int) -> Box:
        """The eye with its lids and crease."""
        x, y = self.eye_center(side)
        return (x - 1.7 * self.eye_w, y - 1.5 * self.eye_w, x + 1.7 * self.eye_w, y + 1.3 * self.eye_w)

    def brow_box(self, side: int) -> Box:
        """The brow over its whole range of motion."""
        x = self.cx + side * (self.eye_dx + 0.005)
        half = self.brow_half_length + 0.012
        return (x - half, self.brow_y - 0.05, x + half, self.brow_y + 0.03)

    def forehead_box(self) -> Box:
        """Forehead wrinkles and the glabella between the brows."""
        return (self.cx - 0.16, self.brow_y - 0.12, self.cx + 0.16, self.brow_y + 0.05)

    def mouth_box(self) -> Box:
        """Lips, teeth and the mouth opening over their whole range of motion."""
        half = self.mouth_w * 1.45 + 0.02
        return (self.cx - half, self.mouth_y - 0.055, self.cx + half, self.mouth_y + JAW_TRAVEL + 0.06)

    def jaw_box(self) -> Box:
        """The part of the lower face that moves with the jaw."""
        return (self.cx - self.face_w, self.mouth_y - 0.035, self.cx + self.face_w, self.chin_y + JAW_TRAVEL + 0.05)

    def cheek_box(self, side: int) -> Box:
        """Cheek apple and the nasolabial fold."""
        x = self.cx + side * self.eye_dx
        return (x - 0.09, self.eye_y + 0.03, x + 0.09, self.mouth_y + 0.05)

    def nose_bridge_box(self) -> Box:
        """Where nose wrinkles appear."""
        return (self.cx - 0.05, self.eye_y - 0.03, self.cx + 0.05, self.eye_y + 0.06)
