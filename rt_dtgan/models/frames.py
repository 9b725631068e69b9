"""B sequences of T frames as one batch of B * T frames, for networks that take one frame at a time."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class FrameFold:
    """(B, T, ...) <-> (B * T, ...), the frames of one sequence next to each other."""

    batch: int
    length: int

    @classmethod
    def of(cls, sequences: Tensor) -> FrameFold:
        """The fold of ``sequences`` (B, T, ...)."""
        return cls(sequences.shape[0], sequences.shape[1])

    def frames(self, sequences: Tensor) -> Tensor:
        """(B, T, ...) -> (B * T, ...)."""
        return sequences.flatten(0, 1)

    def held(self, items: Tensor | None) -> Tensor | None:
        """One item per sequence (B, ...) -> (B * T, ...), each item at every frame of its
        sequence; None stays None."""
        if items is None:
            return None
        return items.unsqueeze(1).expand(-1, self.length, *items.shape[1:]).flatten(0, 1)

    def unfold(self, frames: Tensor) -> Tensor:
        """(B * T, ...) -> (B, T, ...)."""
        return frames.unflatten(0, (self.batch, self.length))
