"""Errors of the slicer capability."""

from __future__ import annotations


class SlicerError(Exception):
    """Base of the slicer capability's errors; ``code`` is machine-readable, the
    message says what to do next."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
