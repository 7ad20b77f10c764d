"""One errors module: every error class lives in ``pasl.errors`` and nowhere else."""

from __future__ import annotations

import importlib
import inspect

import pytest

import pasl.errors as errors

CLASSES = ["PASLError", "MissingWeightError", "WeightFileError", "NoFaceError", "NonFiniteError", "BackendUnavailableError",
           "VideoError", "DownloadError", "OutOfMemoryError"]


@pytest.mark.parametrize("name", CLASSES)
def test_defined_and_documented_in_errors(name):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.PASLError) and cls.__module__ == "pasl.errors" and cls.__doc__


def test_no_other_module_defines_an_error():
    found = []
    for module_name in [
        "pasl.align.types",
        "pasl.align.detect",
        "pasl.video",
        "pasl.download",
        "pasl.weights",
        "pasl.pipeline",
        "pasl.files",
    ]:
        module = importlib.import_module(module_name)
        found += [
            f"{module_name}.{n}"
            for n, obj in vars(module).items()
            if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == module_name
        ]
    assert found == []


def test_the_align_api_names_the_same_classes():
    import pasl.align

    assert pasl.align.NoFaceError is errors.NoFaceError and pasl.align.BackendUnavailableError is errors.BackendUnavailableError
    assert issubclass(errors.BackendUnavailableError, ImportError) and issubclass(errors.MissingWeightError, FileNotFoundError)
