"""Every golden file says how it was made, and the scripts that make them are here and runnable.

Each ``tests/golden/*.npz`` needs a parseable ``provenance`` entry (a JSON string written by
``tests/golden/make/_common.py``: official repository and commit, script, command line,
inputs, versions) or a section in ``tests/golden/PROVENANCE.md``; every script either
names must exist and answer ``--help`` without an official checkout.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
MAKE = GOLDEN / "make"
PROVENANCE_MD = GOLDEN / "PROVENANCE.md"
GOLDEN_FILES = sorted(GOLDEN.glob("*.npz"))
SCRIPT_RE = re.compile(r"tests/golden/make/[A-Za-z0-9_]+\.py")


def md_sections() -> dict[str, str]:
    """``{'aeg_official_fp32.npz': section text}`` from the ``## `name.npz``` headings."""
    text = PROVENANCE_MD.read_text(encoding="utf-8")
    parts = re.split(r"^## +`?([A-Za-z0-9_]+\.npz)`?[^\n]*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def provenance_record(path: Path) -> dict | None:
    """The JSON ``provenance`` entry, or None (absent, or an earlier free-text note)."""
    with np.load(path, allow_pickle=False) as data:
        if "provenance" not in data.files:
            return None
        text = str(data["provenance"])
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def named_scripts() -> set[str]:
    scripts = set()
    for path in GOLDEN_FILES:
        record = provenance_record(path)
        if record is not None:
            scripts.add(record["script"])
    if PROVENANCE_MD.exists():
        scripts.update(SCRIPT_RE.findall(PROVENANCE_MD.read_text(encoding="utf-8")))
    return scripts


def test_there_are_golden_files_and_a_provenance_document():
    assert GOLDEN_FILES, "no tests/golden/*.npz found"
    assert PROVENANCE_MD.is_file()


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.name)
def test_each_golden_file_says_how_it_was_made(path):
    record = provenance_record(path)
    sections = md_sections()
    assert record is not None or path.name in sections, (
        f"{path.name} has neither a provenance entry nor a section in tests/golden/PROVENANCE.md"
    )
    if path.name in sections:
        section = sections[path.name]
        scripts = SCRIPT_RE.findall(section)
        assert scripts, f"the PROVENANCE.md section of {path.name} names no tests/golden/make/ script"
        assert all((REPO / s).is_file() for s in scripts), scripts
    if record is not None:
        assert record["golden"] == f"tests/golden/{path.name}"
        assert (REPO / record["script"]).is_file(), record["script"]
        assert record["command"].startswith("python " + record["script"])
        assert record["official"] and all(o["repo"] and o["commit"] for o in record["official"])
        assert not any("unknown" in o["commit"] for o in record["official"]), record["official"]
        assert record["inputs"] and record["versions"]["torch"]


def test_every_section_is_about_an_existing_golden_file():
    names = {p.name for p in GOLDEN_FILES}
    assert set(md_sections()) <= names


@pytest.mark.parametrize("script", sorted(named_scripts()))
def test_named_script_runs_help_without_the_official_checkout(script):
    path = REPO / script
    assert path.is_file(), f"{script} is named but missing"
    result = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "--official" in result.stdout and "--verify" in result.stdout
