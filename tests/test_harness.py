"""The test harness itself: fixed torch threads per test, and the shared-assets switch."""

from __future__ import annotations

import pytest
import torch

from conftest import TEST_THREADS
from shared_assets import REQUIRE_ASSETS_ENV, needs, require


def test_torch_threads_are_fixed_during_a_test():
    assert torch.get_num_threads() == TEST_THREADS


def test_missing_assets_skip_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv(REQUIRE_ASSETS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not available"):
        require(tmp_path / "absent.obj")


def test_missing_assets_fail_with_the_switch(monkeypatch, tmp_path):
    monkeypatch.setenv(REQUIRE_ASSETS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_ASSETS_ENV}=1"):
        require(tmp_path / "absent.obj")


def test_present_assets_pass_with_the_switch(monkeypatch, tmp_path):
    monkeypatch.setenv(REQUIRE_ASSETS_ENV, "1")
    require(tmp_path)


@needs(__file__)
def test_the_marker_runs_a_test_whose_assets_exist():
    pass
