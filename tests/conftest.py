"""Shared fixtures: synthetic official-format files, made once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the synthetic-file helpers

from synthetic import write_nets_ema  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


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


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Keep CPU results independent of the machine's core count."""
    torch.manual_seed(0)
    yield
