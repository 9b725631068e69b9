"""Errors of the media layer: each message says what failed and what to do about it."""

from __future__ import annotations

from rt_dtgan.errors import RtDtganError


class SourceError(RtDtganError, OSError):
    """A source cannot be opened or read: missing file, unknown device, unreadable data, bad spec."""


class CaptureEnded(SourceError):
    """A capture has delivered every frame it will ever deliver (end of file, or gave up)."""


class SinkError(RtDtganError, OSError):
    """An output cannot be opened or written: bad spec, missing backend, no display, write failure."""


class PipeClosedError(SinkError):
    """The reader of a pipe went away (for example ffplay was quit): stop writing, no traceback."""
