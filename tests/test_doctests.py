"""The ``Example:`` doctests in ``pasl/``: one test per docstring, run by plain ``python -m pytest``.

They are collected here rather than with ``--doctest-modules``: the repository root is a ComfyUI pack (its
``__init__.py`` imports ComfyUI), so pytest's own doctest collection would import ``pasl`` through that package.
Only modules whose source holds ``>>>`` are imported; ``pasl/__main__.py`` is never run.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PASL = Path(__file__).resolve().parents[1] / "pasl"


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PASL.rglob("*.py")):
        if path.name == "__main__.py" or ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(PASL.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _doctests() -> list:
    found = []
    finder = doctest.DocTestFinder(exclude_empty=True)
    for name in _modules_with_examples():
        module = importlib.import_module(name)
        found += [test for test in finder.find(module, name) if test.examples]
    return sorted(found, key=lambda test: test.name)


DOCTESTS = _doctests()


def test_every_module_with_examples_is_collected():
    assert len(_modules_with_examples()) >= 8
    assert {test.name.rsplit(".", 1)[0] for test in DOCTESTS} >= {"pasl.align.crop", "pasl.csg.codes", "pasl.composite"}


@pytest.mark.parametrize("test", DOCTESTS, ids=[test.name for test in DOCTESTS])
def test_docstring_example(test):
    output = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=output.append, clear_globs=True)
    assert result.failed == 0, "".join(output)
