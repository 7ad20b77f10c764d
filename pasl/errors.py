"""Errors a user can act on: every message names the file and says what to do."""

from __future__ import annotations


class PASLError(Exception):
    """Base class of the errors this package raises on purpose."""


class MissingWeightError(PASLError, FileNotFoundError):
    """A weight file is not where it was looked for."""


class WeightFileError(PASLError, ValueError):
    """A weight file exists but cannot be used: corrupt, unsafe, wrong kind or wrong keys."""
