"""Every error this package raises on purpose, in one place.

Errors a user can act on: every message names the file (or input) and says what to do.
All derive from :class:`PASLError`, so ``except PASLError`` catches each of them.
"""

from __future__ import annotations


class PASLError(Exception):
    """Base class of the errors this package raises on purpose."""


class MissingWeightError(PASLError, FileNotFoundError):
    """A weight file is not where it was looked for (raised by ``pasl.models`` and the loaders in
    ``pasl.weights``, ``pasl.aeg_files``, ``pasl.flame_files``, ``pasl.pae``, ``pasl.csg`` and the dlib / FAN detectors)."""


class WeightFileError(PASLError, ValueError):
    """A weight file exists but cannot be used: corrupt, unsafe, wrong kind or wrong keys."""


class NoFaceError(PASLError):
    """No frame of a batch contains a face, so there is nothing to align or reenact
    (``pasl.align.align_faces`` with ``require_face``, the pipeline, the Face Align node)."""


class NonFiniteError(PASLError, FloatingPointError):
    """The generator returned NaN or inf pixels (usually fp16/bf16 overflow, or a damaged
    checkpoint); the pipeline refuses to paste them (``pasl.pipeline.Reenactor.reenact``)."""


class BackendUnavailableError(PASLError, ImportError):
    """An alignment backend's Python package (dlib, face_alignment, ...) is not installed."""


class VideoError(PASLError):
    """A video could not be opened, decoded or written (``pasl.video``), or PyAV is missing."""


class DownloadError(PASLError):
    """A download failed (no network, HTTP error) or its content did not match its name's
    checksum (``pasl.download``)."""


class OutOfMemoryError(PASLError, MemoryError):
    """A batched stage ran out of accelerator memory even one frame at a time, after
    :mod:`pasl.oom` had halved its batch down to 1 (``pasl.generate.generate_faces``)."""
