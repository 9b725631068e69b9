"""Errors of the face pipeline."""

from __future__ import annotations

from rt_dtgan.errors import RtDtganError


class FaceError(RtDtganError, ValueError):
    """An image cannot be used: unreadable, wrong shape or dtype, or otherwise unusable."""


class FaceNotFoundError(FaceError):
    """No usable face was found in an image; the message names the image."""
