"""The root of the errors rt-dtgan raises for its user to read."""

from __future__ import annotations


class RtDtganError(Exception):
    """An error whose message, one sentence, says what went wrong and what to do; the command
    line prints it and exits with status 1. Each subclass also derives from the builtin error
    its callers expect (ValueError, OSError, ImportError, RuntimeError)."""
