"""Picking the most neutral face of the first seconds as the anchor y0.

z_d = H - H_static measures every expression against y0, so a y0 caught mid-word or
mid-blink shifts every output. ``NeutralPicker`` watches the tracked frames of a window
(2 s by default) and then names the most neutral one: mouth closed, eyes as open as they
usually are over the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rt_dtgan.face.tracker import TrackResult

DEFAULT_WINDOW_S = 2.0


@dataclass(frozen=True, eq=False)
class _Candidate:
    mouth_opening: float
    eye_opening: float
    face: TrackResult


class NeutralPicker:
    """Offer it every tracked frame; once ``window_s`` seconds have passed since the first
    frame offered (with a face), ``offer`` returns the tracked face (its crop and mesh) of
    the most neutral frame of the window, once. ``restart`` opens a new window."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self.restart()

    def restart(self) -> None:
        self._started_at: float | None = None
        self._candidates: list[_Candidate] = []
        self._done = False

    def offer(self, tracked: TrackResult) -> TrackResult | None:
        """The most neutral face when this frame closes the window, else None."""
        if self._done or not tracked.found or tracked.landmarks is None:
            return None
        if self._started_at is None:
            self._started_at = tracked.timestamp
        landmarks = tracked.landmarks
        self._candidates.append(_Candidate(landmarks.mouth_opening, landmarks.eye_opening, tracked))
        if tracked.timestamp - self._started_at < self.window_s:
            return None
        self._done = True
        return self._most_neutral().face

    def _most_neutral(self) -> _Candidate:
        """Score: mouth opening plus the distance of the eye opening from its window median."""
        usual_eyes = float(np.median([candidate.eye_opening for candidate in self._candidates]))
        return min(self._candidates, key=lambda c: c.mouth_opening + abs(c.eye_opening - usual_eyes))
