"""Shared fixtures: synthetic official-format files, made once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the synthetic-file helpers

from shared_assets import require
from synthetic import write_nets_ema

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_runtest_setup(item):
    """Tests marked ``shared_assets`` (``shared_assets.needs``) skip, or fail under PASL_REQUIRE_ASSETS=1, without them."""
    for mark in item.iter_markers("shared_assets"):
        require(*mark.args, reason=mark.kwargs.get("reason"))


@pytest.fixture(scope="session")
def nets_ema_path(tmp_path_factory) -> Path:
    """An official-format ``204000_nets_ema.ckpt`` (self-attention variant)."""
    return write_nets_ema(tmp_path_factory.mktemp("aeg") / "204000_nets_ema.ckpt", seed=0)


@pytest.fixture(scope="session")
def nets_ema_plain_path(tmp_path_factory) -> Path:
    """An official-format checkpoint of the variant without self-attention."""
    return write_nets_ema(tmp_path_factory.mktemp("aeg_plain") / "806000_nets_ema.ckpt", seed=3, self_attention=False)


@pytest.fixture(scope="session")
def pae_folder(tmp_path_factory) -> Path:
    """``POE/{FF,FS,FP,SS,SP,PP}/Backbone_IR_50_Epoch_*.pth`` as released (seeds 10..15)."""
    from pae_synthetic import write_pae_folder

    return write_pae_folder(tmp_path_factory.mktemp("pae"))


TEST_THREADS = 2
"""torch's CPU threads during every test: the reduction order of CPU kernels (so the last bits of their
results) can depend on the thread count, and the goldens are compared exactly or within measured last-bit tolerances."""


@pytest.fixture(scope="session", autouse=True)
def _fixed_threads():
    """:data:`TEST_THREADS` torch threads for the whole session (module fixtures included); the caller's restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _deterministic_threads(_fixed_threads):
    """Keep CPU results independent of the machine's core count and of earlier tests: every test starts with
    :data:`TEST_THREADS` torch threads (set again in case an earlier test changed them) and torch's seed at 0."""
    torch.set_num_threads(TEST_THREADS)
    torch.manual_seed(0)
    yield
