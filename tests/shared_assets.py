"""The shared test assets (``../shared`` next to the repository) and what a test does when they are missing.

By default a test whose assets are absent is skipped. With ``PASL_REQUIRE_ASSETS=1`` (set by ``.ci/run``) it
fails instead, so CI cannot pass while silently skipping the real-photo, real-FLAME and reference-text tests.
Use :func:`require` inside a test (or fixture) and :func:`needs` as a decorator; both end in :func:`skip_or_fail`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
ASSETS = SHARED / "assets"
REQUIRE_ASSETS_ENV = "PASL_REQUIRE_ASSETS"


def assets_required() -> bool:
    """True when ``PASL_REQUIRE_ASSETS=1``: missing shared assets must fail the run (CI), not skip."""
    return os.environ.get(REQUIRE_ASSETS_ENV, "") == "1"


def skip_or_fail(reason: str) -> None:
    """``pytest.skip(reason)``, or ``pytest.fail`` when ``PASL_REQUIRE_ASSETS=1``."""
    if assets_required():
        pytest.fail(f"{reason} ({REQUIRE_ASSETS_ENV}=1: missing shared test assets fail the run)", pytrace=False)
    pytest.skip(reason)


def require(*paths: Path, reason: str | None = None) -> None:
    """Skip (or fail, see :func:`skip_or_fail`) unless every path exists."""
    missing = [str(path) for path in paths if not Path(path).exists()]
    if missing:
        skip_or_fail(reason or f"shared test assets not available: {', '.join(missing)}")


def needs(*paths: Path, reason: str | None = None) -> pytest.MarkDecorator:
    """Decorator (a ``shared_assets`` marker, checked by ``conftest.pytest_runtest_setup``): :func:`require` before the test."""
    return pytest.mark.shared_assets(*paths, reason=reason)
